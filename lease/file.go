package lease

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/layout"
	"github.com/ejectsafe/ejectsafe/probe"
)

// Names of lease files, from the table in package layout.
const (
	DirName        = layout.LeaseDir    // below the volume root
	FallbackSuffix = layout.LeaseSuffix // next to the database
	fileExt        = layout.LeaseExt
)

// Place is where one database's lease lives.
type Place struct {
	Path string // the lease file
	Root string // the volume root the DB path is relative to
	DB   string // the database, relative to Root, slash-separated
}

// PlaceFor decides where dbPath's lease lives: in the volume's lease
// directory when fsys is native (device.IsNative: the OS's, or a wrapper
// of it) and the volume root can hold it (the
// directory is made if needed, shared by every user: leaseDir), else
// next to the database. The root
// filesystem gets no lease directory: it is not ejected.
func PlaceFor(fsys device.FS, dbPath string) Place {
	fallback := Place{Path: dbPath + FallbackSuffix, Root: filepath.Dir(dbPath), DB: filepath.Base(dbPath)}
	if !device.IsNative(fsys) {
		return fallback
	}
	p, err := probe.Path(filepath.Dir(dbPath))
	// The root filesystem is not ejected: no lease directory on it.
	if err != nil || p.MountPoint == "" || p.MountPoint == "/" || systemVolume(p.MountPoint) || p.ReadOnly {
		return fallback
	}
	rel, err := filepath.Rel(p.MountPoint, dbPath)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fallback
	}
	// Directories are not part of device.FS; fsys is native, so the OS's
	// calls reach the same directories.
	// A lease directory that is a link, or that this process cannot
	// write (another user's, made before directories were shared), is
	// found here, before the Store creates anything: the lease goes
	// next to the database instead.
	dir, err := leaseDir(p.MountPoint)
	if err != nil {
		return fallback
	}
	me, err := Me()
	if err != nil {
		return fallback
	}
	rel = filepath.ToSlash(rel)
	// The holder is in the file's name too (name.go): another user, who
	// may not read the lease, can still tell when its holder is gone.
	return Place{Path: filepath.Join(dir, leaseFileName(rel, me)), Root: p.MountPoint, DB: rel}
}

// Write replaces the lease at path atomically and durably, through
// device.WriteFile (a temp file in the same directory, fsync, rename,
// directory fsync).
func Write(fsys device.FS, path string, l Lease) error {
	data, err := l.Encode()
	if err != nil {
		return err
	}
	// 0600: a lease names its holder's endpoint; other users have no
	// business reading it (filesystems without modes ignore this).
	if err := device.WriteFile(fsys, path, layout.LeaseTemp(path, os.Getpid()), data, 0o600); err != nil {
		return fmt.Errorf("lease: write %s: %w", path, err)
	}
	return nil
}

// Read reads and validates the lease at path. A file larger than MaxSize
// is invalid and not read.
func Read(fsys device.FS, path string) (Lease, error) {
	f, err := fsys.Open(path, device.ReadOnly)
	if err != nil {
		return Lease{}, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return Lease{}, err
	}
	if n > MaxSize {
		return Lease{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrInvalid, n, MaxSize)
	}
	b := make([]byte, n)
	if got, err := f.ReadAt(b, 0); int64(got) != n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Lease{}, err
	}
	return Parse(b)
}

// Remove deletes the lease at path durably; a missing lease is no error.
func Remove(fsys device.FS, path string) error {
	if err := device.Remove(fsys, path); err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	return nil
}

// Found is a lease file found on a volume.
type Found struct {
	File  string // the lease file
	Root  string // the volume root its DB is relative to
	Lease Lease
	Err   error  // why the file is invalid; Lease is zero then
	Stale bool   // the holder is gone
	Why   string // why it is stale
	// Unreadable: this user may not read the file (another user's lease,
	// 0600); Err is then fs.ErrPermission, or ErrInvalid for a file
	// refused by its name alone, and Stale and Why are judged without
	// reading it (name.go). Owner is the file's owner uid (-1: unknown):
	// the user whose holder the lease may name (AskHolder).
	Unreadable bool
	Owner      int
}

// DBPath is the database the lease names, on this volume.
func (f Found) DBPath() string { return filepath.Join(f.Root, filepath.FromSlash(f.Lease.DB)) }

// Find lists the leases on the OS volume holding path: every lease in the
// volume's lease directory, and the fallback leases next to databases in
// path's directory (or next to path, when it is a database file).
func Find(path string) (root string, found []Found, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", nil, err
	}
	dir := abs
	if !fi.IsDir() {
		dir = filepath.Dir(abs)
	}
	p, err := probe.Path(dir)
	if err != nil {
		return "", nil, err
	}
	root = p.MountPoint
	return root, collect(root, dir), nil
}

// FindNear lists the leases a Store whose lease lives at place can see
// without probing the volume again: those in place's directory (the
// volume's lease directory, or the database's own directory for a
// fallback lease) and the fallback leases beside the database at dbPath.
func FindNear(place Place, dbPath string) []Found {
	return collect(place.Root, filepath.Dir(dbPath))
}

// collect reads the leases in root's lease directory and the fallback
// leases in dir.
func collect(root, dir string) (found []Found) {
	var files []string
	if names, err := device.OS.List(filepath.Join(root, DirName)); err == nil {
		for _, n := range names {
			if strings.HasSuffix(n, fileExt) {
				files = append(files, filepath.Join(root, DirName, n))
			}
		}
	}
	if names, err := device.OS.List(dir); err == nil {
		for _, n := range names {
			if strings.HasSuffix(n, FallbackSuffix) {
				files = append(files, filepath.Join(dir, n))
			}
		}
	}
	sort.Strings(files)
	for _, file := range files {
		f := Found{File: file, Root: root, Owner: fileOwner(file)}
		if strings.HasSuffix(file, FallbackSuffix) {
			f.Root = filepath.Dir(file)
		}
		f.Lease, f.Err = Read(device.OS, file)
		if f.Err == nil {
			checkName(&f)
		}
		switch {
		case f.Err == nil:
			f.Stale, f.Why = f.Lease.Stale()
		case isPermission(f.Err):
			judgeUnreadable(&f)
		}
		found = append(found, f)
	}
	return found
}
