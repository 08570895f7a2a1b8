package device

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 is found missing (Linux before 5.6, or a
// seccomp filter that refuses it): then only the last element is kept
// from being a link (O_NOFOLLOW).
var noOpenat2 atomic.Bool

// openNoFollow opens name with flags (which include O_NOFOLLOW) and,
// where the kernel has openat2, RESOLVE_NO_SYMLINKS: a link in any
// component of name, not only the last, is ELOOP. Magic links
// (/proc/self/fd/N) are refused with it.
func openNoFollow(name string, flags int, perm uint32) (int, error) {
	if !noOpenat2.Load() {
		// O_LARGEFILE, as unix.Open adds it: 64-bit kernels force it for
		// openat2 too, but a 32-bit one would answer EOVERFLOW for a
		// database over 2 GiB (it is 0 in Go's amd64 and arm64 tables).
		how := unix.OpenHow{Flags: uint64(flags | unix.O_LARGEFILE), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		if flags&unix.O_CREAT != 0 {
			how.Mode = uint64(perm)
		}
		for {
			fd, err := unix.Openat2(unix.AT_FDCWD, name, &how)
			switch {
			case err == unix.EINTR:
				continue
			case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM) && !probeOpenat2():
				noOpenat2.Store(true)
			default:
				return fd, err
			}
			break
		}
	}
	for {
		fd, err := unix.Open(name, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// probeOpenat2 tells a seccomp filter that answers EPERM for openat2
// from a real EPERM (an immutable file opened for writing): it opens "/"
// with openat2, which only a filter refuses.
func probeOpenat2() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
