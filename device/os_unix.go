//go:build linux || darwin || freebsd

package device

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes flock(LOCK_EX|LOCK_NB) on f's open file description.
// It reports held=true, with a nil error, when another description
// holds the lock.
func lockFile(f *os.File) (held bool, err error) {
	err = control(f, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	})
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// unlockFile releases the flock on f's open file description.
func unlockFile(f *os.File) error {
	return control(f, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_UN) })
	})
}

// control runs fn on f's descriptor without racing a concurrent Close.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}

// syncDir opens dir read-only with O_DIRECTORY (so a regular file is
// ENOTDIR, not a silent fsync of the wrong thing), fsyncs it (plus
// afterFsync, as File.Sync) and closes it, keeping the first error.
func syncDir(dir string) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if err == nil {
		err = afterFsync(d)
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// freeSpace is statfs(2) f_bavail * f_bsize: the blocks available to an
// unprivileged process, which is what this process may write.
func freeSpace(name string) (int64, error) {
	var st unix.Statfs_t
	if err := ignoringEINTR(func() error { return unix.Statfs(name, &st) }); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: name, Err: err}
	}
	// A filesystem that reports no size at all (fusefat's statfs answers
	// zeros) does not know its free space: say so rather than "0 bytes
	// free", which would refuse every write that checks first.
	if st.Blocks == 0 && st.Bfree == 0 && st.Bavail == 0 {
		return 0, &os.PathError{Op: "statfs", Path: name, Err: ErrFreeSpaceUnknown}
	}
	avail := int64(st.Bavail) // int64 on FreeBSD, where it can go negative
	if avail < 0 {
		return 0, nil
	}
	return mulClamp(uint64(avail), uint64(st.Bsize)), nil
}

// rename is rename(2): atomic replacement on POSIX filesystems, not on
// FAT. Durable only after syncDir of the parent.
func rename(oldname, newname string) error { return os.Rename(oldname, newname) }
