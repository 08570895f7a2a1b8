package device

import (
	"errors"
	"fmt"
)

// ErrLocked means another open file description holds the lock that
// FS.Lock asked for: another process, or another Store in this one.
var ErrLocked = errors.New("device: locked by another holder")

// ErrFreeSpaceUnknown is returned by FreeSpace when the filesystem reports
// no sizes (fusefat does). It wraps errors.ErrUnsupported: callers that
// check space before writing should skip the check, not refuse.
var ErrFreeSpaceUnknown = fmt.Errorf("device: the filesystem does not report its free space: %w", errors.ErrUnsupported)

// LockedError is the error FS.Lock returns when the lock is held. It
// satisfies errors.Is(err, ErrLocked).
type LockedError struct {
	Path string // the lock file
	PID  int    // the holding process, 0 when the platform cannot tell
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is locked by process %d", e.Path, e.PID)
	}
	return fmt.Sprintf("%s is locked by another holder", e.Path)
}

// Is reports ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ErrSymlink means a name on the drive is a symbolic link (or, on Linux,
// passes through one) where a file was expected. The FS never follows
// such a link: a link planted on a drive could point anywhere on the
// host. The error also satisfies errors.Is(err, syscall.ELOOP) on unix.
var ErrSymlink = errors.New("device: symbolic link not followed")

// ErrNotRegular means a name on the drive is not a regular file (a FIFO,
// a device, a socket, a directory) where one was expected. It is found
// before anything is read or written, and without blocking.
var ErrNotRegular = errors.New("device: not a regular file")
