package realfs

import "errors"

// External commands fail with an error naming the command line, its exit
// status and its combined output. The sentinels below are the package's
// own errors; test them with errors.Is.
var (
	// ErrUnavailable means a prerequisite is missing: not root, no
	// /dev/fuse, no loop devices, or a tool not installed. Available wraps
	// it with the list of what is missing.
	ErrUnavailable = errors.New("realfs: unavailable")

	// ErrNotMounted means the operation needs a live mount and the volume
	// was pulled or unmounted.
	ErrNotMounted = errors.New("realfs: volume not mounted")

	// ErrMounted means the operation needs the image at rest (Fsck) and
	// the volume is mounted.
	ErrMounted = errors.New("realfs: volume mounted")

	// ErrReadOnly means Fill was called on a read-only mount.
	ErrReadOnly = errors.New("realfs: volume mounted read-only")

	// ErrClosed means Cleanup already ran.
	ErrClosed = errors.New("realfs: volume cleaned up")

	// ErrDaemonNotFound means no process serving the mount was found, so
	// Pull cannot kill it.
	ErrDaemonNotFound = errors.New("realfs: FUSE daemon not found")
)
