package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// lockFile takes LockFileEx(EXCLUSIVE|FAIL_IMMEDIATELY) over the whole
// file range. Windows byte-range locks belong to the handle, so a second
// handle in this process conflicts, as flock does on unix.
func lockFile(f *os.File) (held bool, err error) {
	err = control(f, func(h windows.Handle) error {
		var ol windows.Overlapped
		return windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY,
			0, ^uint32(0), ^uint32(0), &ol)
	})
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return true, nil
	}
	return false, err
}

// unlockFile releases the range lockFile took. Windows releases locks of
// a closed handle only "depending upon available system resources", so
// unlock explicitly.
func unlockFile(f *os.File) error {
	return control(f, func(h windows.Handle) error {
		var ol windows.Overlapped
		return windows.UnlockFileEx(h, 0, ^uint32(0), ^uint32(0), &ol)
	})
}

// lockHolder cannot tell who holds a Windows byte-range lock. PID 0
// means unknown.
func lockHolder(*os.File) int { return 0 }

func control(f *os.File, fn func(h windows.Handle) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(windows.Handle(fd)) }); err != nil {
		return err
	}
	return ferr
}

// syncDir only checks that dir is a directory. Windows cannot flush a
// directory handle (FlushFileBuffers on one is "access denied"); instead
// rename passes MOVEFILE_WRITE_THROUGH, which returns once the rename is
// on the disk, and is what makes a checkpoint's rename durable:
//   - NTFS: the rename is also journaled (metadata), so it is atomic;
//   - FAT32, exFAT: no journal; write-through is all there is, and a pull
//     during the rename is handled by the checkpoint journal (both names,
//     decided by checksums). With the drive's "Better performance" policy
//     (write caching on) Windows may still hold it in the drive's cache:
//     keep removable drives on "Quick removal", Windows' default.
//
// Creations and removals are not flushed by anything here; the
// checkpoint's invariants rest on the rename and the files' own fsyncs.
func syncDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "syncdir", Path: dir, Err: fmt.Errorf("not a directory")}
	}
	return nil
}

// freeSpace is GetDiskFreeSpaceEx's free bytes available to the caller
// (which honours quotas). It needs a directory, so a file's parent is
// asked.
func freeSpace(name string) (int64, error) {
	dir := name
	if fi, err := os.Stat(name); err != nil {
		return 0, err
	} else if !fi.IsDir() {
		dir = filepath.Dir(name)
	}
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, &os.PathError{Op: "statfs", Path: name, Err: err}
	}
	var avail uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, nil, nil); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: name, Err: err}
	}
	return mulClamp(avail, 1), nil
}

// rename is MoveFileEx(REPLACE_EXISTING|WRITE_THROUGH): it replaces
// newname and returns only after the move is flushed to disk, standing
// in for the directory fsync Windows lacks.
func rename(oldname, newname string) error {
	from, err := windows.UTF16PtrFromString(oldname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	to, err := windows.UTF16PtrFromString(newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	if err := windows.MoveFileEx(from, to, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}
