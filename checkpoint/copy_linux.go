package checkpoint

import (
	"errors"
	"os"

	"github.com/ejectsafe/ejectsafe/device"
	"golang.org/x/sys/unix"
)

// copyKernel copies n bytes at off from src to the same offset in dst
// with copy_file_range(2), when both are the OS's files (a wrapper, such
// as a fault injector, has no descriptor and is copied through its own
// ReadAt and WriteAt). It returns how many bytes it copied, and
// unsupported when the kernel does not offer the call for these files:
// then it copied nothing more, returns no error, and the caller copies the
// rest itself and need not ask the kernel again.
//
// Not offered: no such call (ENOSYS), not between these filesystems
// (EXDEV) or on this one (EOPNOTSUPP, EINVAL), forbidden by a seccomp
// filter or a sandbox (EPERM), and a first call that copies nothing,
// which some filesystems answer instead of an error (procfs, some FUSE
// drivers). A later call that copies nothing means src ended early: the
// caller's plain copy reads on and reports it.
func copyKernel(dst, src device.File, off, n int64) (done int64, unsupported bool, err error) {
	type fder interface{ Fd() uintptr }
	df, ok := dst.(fder)
	sf, ok2 := src.(fder)
	if !ok || !ok2 {
		return 0, true, nil
	}
	for done < n {
		in, out := off+done, off+done
		k, err := unix.CopyFileRange(int(sf.Fd()), &in, int(df.Fd()), &out, int(min(n-done, 1<<30)), 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EOPNOTSUPP),
			errors.Is(err, unix.EINVAL), errors.Is(err, unix.EPERM):
			return done, true, nil
		case err != nil:
			return done, false, &os.PathError{Op: "copy_file_range from " + src.Name() + " to", Path: dst.Name(), Err: err}
		case k == 0:
			return done, done == 0, nil
		}
		done += int64(k)
	}
	return done, false, nil
}

// startWriteback asks the kernel to start writing f's dirty pages in
// [off, off+n) to the device now (sync_file_range with
// SYNC_FILE_RANGE_WRITE), without waiting: the fsync that follows then
// finds most of them written. It only starts writes: it does not wait for
// them, makes nothing durable, and reports no error of the writes
// themselves (the fsync does). A file without a descriptor, or a kernel
// or filesystem that does not offer the call, is left to the fsync; any
// other error (the device refusing new writes) is returned.
func startWriteback(f device.File, off, n int64) error {
	type fder interface{ Fd() uintptr }
	ff, ok := f.(fder)
	if !ok || n <= 0 {
		return nil
	}
	err := unix.SyncFileRange(int(ff.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	switch {
	case err == nil, errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP),
		errors.Is(err, unix.ESPIPE), errors.Is(err, unix.EPERM):
		return nil
	}
	return &os.PathError{Op: "sync_file_range", Path: f.Name(), Err: err}
}
