//go:build linux

package checkpoint

import (
	"fmt"
	"io"
	"os"

	"github.com/ejectsafe/ejectsafe/device"
	"golang.org/x/sys/unix"
)

// kernelCopy copies the first n bytes of src to dst with
// copy_file_range(2), when both are OS files. It reports done=false,
// having copied nothing, when the kernel or the filesystem does not offer
// it (old kernels, cross-filesystem on old kernels, some FUSE and network
// filesystems): the caller then copies through user space.
func kernelCopy(dst, src device.File, n int64) (done bool, err error) {
	d, ok := dst.(fder)
	if !ok {
		return false, nil
	}
	s, ok := src.(fder)
	if !ok {
		return false, nil
	}
	var roff, woff, copied int64
	for copied < n {
		k, err := unix.CopyFileRange(int(s.Fd()), &roff, int(d.Fd()), &woff, int(min(n-copied, 1<<30)), 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil && copied == 0 && fallback(err):
			return false, nil
		case err != nil:
			return true, &os.PathError{Op: "copy_file_range", Path: dst.Name(), Err: err}
		case k == 0:
			return true, fmt.Errorf("copy_file_range %s: %w", src.Name(), io.ErrUnexpectedEOF)
		}
		copied += int64(k)
	}
	return true, nil
}

// fallback reports errors that mean "not supported here", not "failed".
func fallback(err error) bool {
	switch err {
	case unix.ENOSYS, unix.EXDEV, unix.EINVAL, unix.EOPNOTSUPP, unix.EBADF, unix.EPERM:
		return true
	}
	return false
}
