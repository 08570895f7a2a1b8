//go:build unix && !linux

package device

import "golang.org/x/sys/unix"

// openNoFollow opens name with flags, which include O_NOFOLLOW: the last
// element is never a followed link. (Only Linux has openat2's
// RESOLVE_NO_SYMLINKS for the directories above it; callers resolve the
// path's links before they open.)
func openNoFollow(name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(name, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
