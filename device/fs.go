// Package device is the one seam between ejectsafe and storage: every byte
// the project writes, and every file SQLite opens on the drive, goes through
// an FS. The OS implementation (OS) lives here, with what the layers above
// may ask an FS for beside the seam (capability.go: IsNative, VolumeOf),
// found through a wrapper's Unwrap. Package faultinject provides an FS that
// simulates power loss and injects errors, and Faulty, which injects errors
// into any FS. Finding out what a mount is (its type, the drive, the
// caveats) is package probe's, not the seam's.
//
// Paths are absolute and cleaned (filepath.Clean). Implementations must be
// safe for concurrent use by multiple goroutines; a File's ReadAt and
// WriteAt may be called concurrently, as with pread/pwrite.
package device

import (
	"io"
	"os"
)

// OpenMode says how FS.Open opens an existing file.
type OpenMode int

const (
	// ReadOnly opens for reading only.
	ReadOnly OpenMode = iota
	// ReadWrite opens for reading and writing.
	ReadWrite
)

// FS is the filesystem seam.
type FS interface {
	// Open opens an existing file. It never creates one.
	Open(name string, mode OpenMode) (File, error)
	// Create creates a new file, read-write, failing with an error that
	// satisfies errors.Is(err, fs.ErrExist) if the name exists (O_EXCL).
	// The new directory entry is not durable until SyncDir of its parent.
	Create(name string, perm os.FileMode) (File, error)
	// Rename atomically replaces newname with oldname where the
	// filesystem can (not on FAT). Not durable until SyncDir.
	Rename(oldname, newname string) error
	// Remove deletes a file. Not durable until SyncDir.
	Remove(name string) error
	// Stat describes a file or directory. It follows symbolic links, as
	// os.Stat does.
	Stat(name string) (os.FileInfo, error)
	// List returns the names (not paths) in a directory, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes the directory's entries durable: creations, renames
	// and removals in it survive a power cut once SyncDir returns nil.
	SyncDir(dir string) error
	// Lock takes an exclusive advisory lock on name, creating the file if
	// it is missing, without blocking. If another holder has it, the error
	// is a *LockedError (errors.Is(err, ErrLocked)). The lock is per open
	// file description: a second Lock of the same file in the same process
	// fails too. Close the returned Closer to release it.
	Lock(name string) (io.Closer, error)
	// FreeSpace reports the bytes available to this process on the
	// filesystem holding name. A filesystem that does not report sizes
	// gives an error wrapping ErrFreeSpaceUnknown (and so
	// errors.ErrUnsupported).
	FreeSpace(name string) (int64, error)
}

// File is an open file.
type File interface {
	// ReadAt follows io.ReaderAt: a short read returns io.EOF.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt follows io.WriterAt.
	WriteAt(p []byte, off int64) (int, error)
	// Truncate sets the file's size.
	Truncate(size int64) error
	// Size returns the file's current size.
	Size() (int64, error)
	// Sync makes the file's data and size durable (fsync). After a Sync
	// error the file's durable state is unknown: callers must not retry
	// Sync on the same file (see the fsyncgate discussion); they abandon
	// the operation instead.
	Sync() error
	// Close releases the file. Close after a failed Sync still reports
	// the first error it meets.
	Close() error
	// Name returns the path the file was opened with.
	Name() string
}
