package device

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
)

// OS is the FS of the operating system. It is safe for concurrent use.
var OS FS = osFS{}

// NewOS returns the FS of the operating system (the same value as OS).
func NewOS() FS { return osFS{} }

// osFS implements FS with the os package plus the platform calls in
// os_<platform>.go (lockFile, unlockFile, lockHolder, freeSpace,
// syncDir, rename).
type osFS struct{}

// Native reports true: osFS's names are the operating system's.
func (osFS) Native() bool { return true }

// Open opens an existing regular file; it never passes O_CREATE, so a
// missing file is an error that satisfies errors.Is(err, fs.ErrNotExist).
// Like Create and Lock, it never follows a symbolic link (ErrSymlink),
// never blocks on a FIFO or device, and refuses anything but a regular
// file (ErrNotRegular): see openFile in open_unix.go.
func (osFS) Open(name string, mode OpenMode) (File, error) {
	var flag int
	switch mode {
	case ReadOnly:
		flag = os.O_RDONLY
	case ReadWrite:
		flag = os.O_RDWR
	default:
		return nil, fmt.Errorf("device: open %s: unknown mode %d", name, mode)
	}
	f, err := openFile(name, flag, 0)
	if err != nil {
		return nil, err // *os.PathError: errors.Is sees fs sentinels and errnos
	}
	return &osFile{f: f, name: name}, nil
}

// Create creates name with O_EXCL, so an existing name (even a dangling
// symlink) fails with an error that satisfies errors.Is(err, fs.ErrExist).
func (osFS) Create(name string, perm os.FileMode) (File, error) {
	f, err := openFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f, name: name}, nil
}

// Rename replaces newname with oldname (rename(2) on unix, MoveFileEx
// with write-through on Windows).
func (osFS) Rename(oldname, newname string) error { return rename(oldname, newname) }

// Remove deletes name.
func (osFS) Remove(name string) error { return os.Remove(name) }

// Stat follows symlinks, like os.Stat.
func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// List returns the names in dir, sorted. It reads names only: no lstat
// per entry. dir is opened as openFile opens files: a link is not
// followed and a FIFO does not block.
func (osFS) List(dir string) ([]string, error) {
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir fsyncs dir so that creations, renames and removals in it are
// durable. The fsync error is returned as is: after it the directory's
// durable state is unknown and the caller abandons the operation.
func (osFS) SyncDir(dir string) error { return syncDir(dir) }

// FreeSpace reports the bytes available to an unprivileged user on the
// filesystem holding name (statfs f_bavail * f_bsize on unix).
func (osFS) FreeSpace(name string) (int64, error) { return freeSpace(name) }

// Lock opens (creating if missing, mode 0644) name as openFile does (a
// symbolic link is refused, nothing is created where it points; a FIFO
// or directory is refused) and takes an
// exclusive, non-blocking lock on the open file description: flock(2)
// on unix, LockFileEx on Windows. Both conflict between two descriptions
// in one process, so a second Store in this process is kept out as well
// as a second process.
//
// On conflict the error is a *LockedError naming the holder's pid where
// the platform can tell (Linux, from /proc/locks), 0 elsewhere.
func (osFS) Lock(name string) (io.Closer, error) {
	f, err := openFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	held, err := lockFile(f)
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	if held {
		// Look the holder up while f is still open: its st_dev/st_ino
		// identify the lock in /proc/locks.
		pid := lockHolder(f)
		f.Close()
		return nil, &LockedError{Path: name, PID: pid}
	}
	return &osLock{f: f, name: name}, nil
}

// osLock is a held lock. Close releases it.
type osLock struct {
	once sync.Once
	err  error
	f    *os.File
	name string
}

// Close unlocks explicitly, then closes the file, keeping the first
// error. The explicit unlock matters: closing only drops this fd's
// reference to the open file description, and a child forked but not
// yet exec'd by another goroutine may still share it; on Windows the
// release on close is also documented as lazy. Close is idempotent.
func (l *osLock) Close() error {
	l.once.Do(func() {
		err := unlockFile(l.f)
		if err != nil {
			err = &os.PathError{Op: "unlock", Path: l.name, Err: err}
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
		l.err = err
	})
	return l.err
}

// osFile is a File over *os.File. The *os.File is never handed out.
// ReadAt and WriteAt are pread/pwrite and safe to call concurrently.
type osFile struct {
	f    *os.File
	name string
}

// ReadAt follows io.ReaderAt: os.File.ReadAt loops until p is full and
// returns io.EOF on a short read.
func (f *osFile) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

// WriteAt follows io.WriterAt.
func (f *osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }

// Truncate sets the file's size (ftruncate).
func (f *osFile) Truncate(size int64) error { return f.f.Truncate(size) }

// Size returns the size from fstat.
func (f *osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Sync is fsync(2) on Linux, fcntl(F_FULLFSYNC) on darwin and
// FlushFileBuffers on Windows (all via os.File.Sync), followed on Linux
// by a flush for FUSE filesystems known to drop fsync (afterFsync). Never
// retry it after an error (see File.Sync).
func (f *osFile) Sync() error {
	if err := f.f.Sync(); err != nil {
		return err
	}
	return afterFsync(f.f)
}

// afterFsync runs after every successful fsync of a file or directory
// this package makes. It does nothing by default; os_linux.go sets it to
// flushFsyncDropped, which makes fsync mean something on filesystems that
// acknowledge it without flushing (fusefat).
var afterFsync = func(*os.File) error { return nil }

// Close closes the file.
func (f *osFile) Close() error { return f.f.Close() }

// Name returns the path the file was opened with.
func (f *osFile) Name() string { return f.name }

// Fd returns the file's descriptor (a HANDLE on Windows) for system calls
// the FS interface does not cover, such as copy_file_range. It is valid
// only until Close; the caller must not close it or keep it past Close.
func (f *osFile) Fd() uintptr { return f.f.Fd() }

// mulClamp returns a*b clamped to math.MaxInt64, for block counts times
// block sizes.
func mulClamp(a, b uint64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return int64(a * b)
}
