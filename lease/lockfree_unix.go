//go:build unix

package lease

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

func lockFree(name string) (bool, error) {
	// O_NONBLOCK: a FIFO planted under the name must not hang the open;
	// O_NOCTTY: a terminal there must not become ours (device/open_unix.go).
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return true, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("lease: %s is not a regular file", name)
	}
	switch err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil
	case err != nil:
		return false, &fs.PathError{Op: "flock", Path: name, Err: err}
	}
	return true, unix.Flock(fd, unix.LOCK_UN)
}
