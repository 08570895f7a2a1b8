package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ejectsafe/ejectsafe/device"
)

// maxSymlinks bounds the links followed for one path, as the kernel's
// ELOOP limit does.
const maxSymlinks = 40

// resolvePath returns the real path of the database named by abs (absolute
// and clean): every symlink, in the directories and in the last element,
// followed. Every name a Store derives (lock, journal, lease, checkpoint
// copy) comes from the result, so a database reached through a link is the
// same database as through its real name: the same lock, and a checkpoint
// renames over the file itself, never over the link. A last element that
// is a link to a missing file resolves to the file it would create, as
// open(O_CREAT) does.
//
// On a directory that compares names without case, each existing
// component is spelled as the directory holds it (device.CanonicalName):
// "case.db" opens "Case.db", and every name derived from the path must
// come from one spelling.
//
// Only a native FS (device.IsNative) has links; another gets abs back.
func resolvePath(fsys device.FS, abs string) (string, error) {
	if !device.IsNative(fsys) {
		return abs, nil
	}
	p := abs
	for range maxSymlinks {
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return "", fmt.Errorf("parent directory: %w", err)
		}
		p = filepath.Join(dir, filepath.Base(p))
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Mode()&fs.ModeSymlink == 0) {
			// One spelling on a case-insensitive volume (FAT, exFAT):
			// the one the directory holds.
			return device.CanonicalName(p)
		}
		if err != nil {
			return "", err
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = filepath.Clean(target)
	}
	return "", &os.PathError{Op: "resolve symlinks", Path: abs, Err: syscall.ELOOP}
}

// checkLinks refuses a database file with more than one hard link: a
// checkpoint renames a new file over one name, and the other names would
// keep the old database, splitting it in two. Nothing is modified.
func checkLinks(fsys device.FS, path string) error {
	fi, err := fsys.Stat(path)
	if err != nil {
		return nil // missing: Open creates it; other errors: checkPath reports them
	}
	if n, ok := linkCount(path, fi); ok && n > 1 && fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s has %d names; remove the others (or copy the file) and open it again", ErrHardLinked, path, n)
	}
	return nil
}
