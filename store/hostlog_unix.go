//go:build linux || darwin || freebsd

package store

/*
#include "hostlog.h"
*/
import "C"

import (
	"fmt"
	"os"
	"syscall"
)

func hlSupported() bool { return C.es_hl_supported() != 0 }

// openPrivate opens (create: creates, exclusively) a host log: no
// symlink followed, mode 0600, owned by this user and by no one else.
func openPrivate(path string, create bool) (*os.File, error) {
	flags := os.O_RDWR | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	// The file opened, not the name (which could be swapped meanwhile):
	// fstat of the fd, and one link only (a hard link to another file
	// of this user's would otherwise pass).
	fi, err := f.Stat()
	if err == nil {
		err = privateInfo(path, fi, false)
	}
	if err == nil {
		if st := fi.Sys().(*syscall.Stat_t); st.Nlink != 1 { // privateInfo checked the type
			err = fmt.Errorf("%s: %d links, want 1", path, st.Nlink)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkPrivate refuses a host-log file or directory that is not this
// user's alone: another owner, or any permission for group or others.
func checkPrivate(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return privateInfo(path, fi, dir)
}

func privateInfo(path string, fi os.FileInfo, dir bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case dir != fi.IsDir() || (!dir && !fi.Mode().IsRegular()):
		return fmt.Errorf("%s: not a regular %s", path, map[bool]string{true: "directory", false: "file"}[dir])
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s: owned by uid %d, not %d", path, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s: mode %s lets others in (want %s)", path, fi.Mode().Perm(), map[bool]os.FileMode{true: 0o700, false: 0o600}[dir])
	}
	return nil
}

func dupFd(f *os.File) (int, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	return fd, err
}

func closeFd(fd int) { syscall.Close(fd) }

func errnoErr(e int) error { return syscall.Errno(e) }

// freeBytes is the space an unprivileged user may still use on the
// filesystem holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
