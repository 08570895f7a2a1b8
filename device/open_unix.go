//go:build unix

package device

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openFile opens a file on the drive the one way this package does:
//
//  1. without following a symbolic link anywhere in name on Linux 5.6 and
//     later (openat2 with RESOLVE_NO_SYMLINKS, open_linux.go), and in the
//     last element everywhere (O_NOFOLLOW): a link planted on the drive
//     (a lock file pointing at /etc/nologin, a journal pointing at a
//     device) is an error wrapping ErrSymlink, never followed. Callers
//     resolve the links of the path they are given first (store.Open
//     does), so a link met here is one that appeared on the drive;
//  2. without blocking (O_NONBLOCK): opening a FIFO for reading waits for
//     a writer, and a device may wait for media;
//  3. then fstat on the descriptor: anything but a regular file is closed
//     again and refused with an error wrapping ErrNotRegular, before one
//     byte is read or written;
//  4. then O_NONBLOCK is cleared, so reads and writes of the regular file
//     behave as usual;
//  5. with O_NOCTTY, so that a terminal under the name never becomes the
//     process's controlling terminal on the way to being refused.
//
// With O_CREATE|O_EXCL the kernel never follows a final link anyway;
// with O_CREATE alone (Lock), O_NOFOLLOW makes a link, dangling or not, an
// error instead of a file created where it points.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	// O_NOCTTY: a terminal planted under the name is refused below, but
	// the open itself would make it the controlling terminal of a
	// session leader that has none (a daemon holding a store).
	fd, err := openNoFollow(name, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, openError(name, err)
	}
	if err := checkRegular(fd); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openDir opens a directory for listing, with the same rules as openFile
// (no link followed, no blocking) and O_DIRECTORY, so that a FIFO or a
// file under the name is ENOTDIR at once.
func openDir(name string) (*os.File, error) {
	fd, err := openNoFollow(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		// O_DIRECTORY|O_NOFOLLOW answers ENOTDIR for a link: say so.
		if fi, lerr := os.Lstat(name); errors.Is(err, unix.ENOTDIR) && lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			err = unix.ELOOP
		}
		return nil, openError(name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openError is the *os.PathError for a failed open; ELOOP, which
// O_NOFOLLOW and RESOLVE_NO_SYMLINKS answer for a link, also wraps
// ErrSymlink, so the message says what was refused.
func openError(name string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		err = fmt.Errorf("%w: %w", ErrSymlink, err)
	}
	return &os.PathError{Op: "open", Path: name, Err: err}
}

// checkRegular refuses a descriptor that is not a regular file, naming
// its type (never its content).
func checkRegular(fd int) error {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	if t := uint32(st.Mode) & unix.S_IFMT; t != unix.S_IFREG {
		return fmt.Errorf("%w (%s)", ErrNotRegular, typeName(t))
	}
	return nil
}

// typeName names a file type from st_mode & S_IFMT.
func typeName(t uint32) string {
	switch t {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return fmt.Sprintf("file type %#o", t)
}
