//go:build !(linux || darwin || freebsd || windows)

package device

import (
	"errors"
	"fmt"
	"os"
)

// errUnsupported is what the platform calls return where this package
// has no implementation yet. Open, Create, ReadAt and friends still work
// through the os package.
var errUnsupported = fmt.Errorf("device: not supported on this platform: %w", errors.ErrUnsupported)

func lockFile(*os.File) (bool, error) { return false, errUnsupported }

func unlockFile(*os.File) error { return errUnsupported }

func lockHolder(*os.File) int { return 0 }

// syncDir opens dir and fsyncs it, as on unix, without O_DIRECTORY.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func freeSpace(name string) (int64, error) {
	return 0, &os.PathError{Op: "statfs", Path: name, Err: errUnsupported}
}

func rename(oldname, newname string) error { return os.Rename(oldname, newname) }
