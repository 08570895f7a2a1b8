//go:build linux || darwin || freebsd

package probe

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MapShared maps the first size bytes of the existing file name
// read-write and MAP_SHARED, extending the file with zeros if it is
// shorter (as SQLite extends its -shm file). The descriptor is closed
// before MapShared returns; the mapping keeps the file referenced.
func MapShared(name string, size int) (*SharedMap, error) {
	if size <= 0 {
		return nil, fmt.Errorf("probe: map %s: size %d", name, size)
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < int64(size) {
		if err := f.Truncate(int64(size)); err != nil {
			return nil, err
		}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var b []byte
	var merr error
	if err := rc.Control(func(fd uintptr) {
		b, merr = unix.Mmap(int(fd), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	}); err != nil {
		return nil, err
	}
	if err := merr; err != nil {
		return nil, &os.PathError{Op: "mmap", Path: name, Err: err}
	}
	return &SharedMap{b: b, name: name}, nil
}

func unmap(b []byte) error { return unix.Munmap(b) }
