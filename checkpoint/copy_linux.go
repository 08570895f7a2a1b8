package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ejectsafe/ejectsafe/device"
	"golang.org/x/sys/unix"
)

// copyKernel copies n bytes at off from src to the same offset in dst
// with copy_file_range(2), when both are the OS's files (a wrapper, such
// as a fault injector, has no descriptor and is copied through its own
// ReadAt and WriteAt). It returns how many bytes it copied; where the
// kernel does not offer the call for these files it returns what it
// copied so far and no error, and the caller copies the rest itself.
func copyKernel(dst, src device.File, off, n int64) (int64, error) {
	type fder interface{ Fd() uintptr }
	df, ok := dst.(fder)
	sf, ok2 := src.(fder)
	if !ok || !ok2 {
		return 0, nil
	}
	var done int64
	for done < n {
		in, out := off+done, off+done
		k, err := unix.CopyFileRange(int(sf.Fd()), &in, int(df.Fd()), &out, int(min(n-done, 1<<30)), 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL):
			return done, nil // not offered here
		case err != nil:
			return done, &os.PathError{Op: "copy_file_range from " + src.Name() + " to", Path: dst.Name(), Err: err}
		case k == 0:
			return done, fmt.Errorf("copy_file_range from %s at %d: %w", src.Name(), off+done, io.ErrUnexpectedEOF)
		}
		done += int64(k)
	}
	return done, nil
}
