package device

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The durable-write module: every file ejectsafe replaces, creates or
// removes on a drive goes through the functions below, on an FS, so that
// faultinject sees each operation and the sequence is written once.
//
// Replacing a file (renameio's shape, plus the directory fsync renameio
// leaves out):
//
//  1. create the new content under a temporary name in the target's own
//     directory (CreatePending): a rename never crosses filesystems;
//  2. write it (Pending.File);
//  3. fsync it, then close it (Pending.Sync): without the fsync, a crash
//     after the rename may leave the target empty or torn, a valid
//     outcome for a filesystem that orders metadata before data (Ts'o);
//     a close error may report lost writes (NFS);
//  4. the caller's hook, if any: checks and records that must hold
//     before the name changes (the checkpoint reads the copy back and
//     appends its journal records here);
//  5. rename the temporary file over the target, then fsync the
//     directory (Pending.Commit): until the directory fsync the rename
//     itself may not survive a pull, so it is the commit point;
//  6. or abandon it (Pending.Abort): close and remove the temporary file.
//
// A failed fsync is never retried on the same file (the file's durable
// state is unknown, File.Sync): the caller aborts and starts again with a
// new temporary file.

// Operations a *ReplaceError names.
const (
	OpCreate  = "create"
	OpWrite   = "write"
	OpSync    = "fsync"
	OpClose   = "close"
	OpRename  = "rename"
	OpSyncDir = "fsync dir"
)

// ReplaceError is a failed step of the durable-write module. After Op
// OpRename or OpSyncDir the target's name holds the old or the new
// content, durably or not: the caller must not assume either.
type ReplaceError struct {
	Op   string // one of the Op constants
	Name string // the file or directory the step acted on
	Err  error
}

func (e *ReplaceError) Error() string { return e.Op + " " + e.Name + ": " + e.Err.Error() }

func (e *ReplaceError) Unwrap() error { return e.Err }

// Pending is a file being written under a temporary name to replace its
// target durably. It is not safe for concurrent use.
type Pending struct {
	fsys   FS
	target string
	temp   string
	f      File // nil after Sync or Abort
	synced bool
	done   bool // committed or aborted
}

// CreatePending starts step 1: it creates temp (which must be in target's
// directory) with perm, failing if temp exists, unless replaceLeftover:
// then a leftover at temp (an earlier attempt that did not finish) is
// removed first.
func CreatePending(fsys FS, target, temp string, perm os.FileMode, replaceLeftover bool) (*Pending, error) {
	if filepath.Dir(target) != filepath.Dir(temp) {
		return nil, &ReplaceError{Op: OpCreate, Name: temp, Err: fmt.Errorf("not in the directory of %s", target)}
	}
	f, err := fsys.Create(temp, perm)
	if replaceLeftover && errors.Is(err, fs.ErrExist) {
		if err = fsys.Remove(temp); err == nil {
			f, err = fsys.Create(temp, perm)
		}
	}
	if err != nil {
		return nil, &ReplaceError{Op: OpCreate, Name: temp, Err: err}
	}
	return &Pending{fsys: fsys, target: target, temp: temp, f: f}, nil
}

// File is the temporary file, open read-write, for step 2; nil after
// Sync.
func (p *Pending) File() File { return p.f }

// Name is the temporary file's name.
func (p *Pending) Name() string { return p.temp }

// Sync is step 3: fsync the temporary file, then close it. On an error
// the caller must Abort: the fsync is not retried.
func (p *Pending) Sync() error {
	if p.f == nil {
		return &ReplaceError{Op: OpSync, Name: p.temp, Err: fs.ErrClosed}
	}
	f := p.f
	p.f = nil
	if err := f.Sync(); err != nil {
		f.Close() // the fsync's error is the one to report
		return &ReplaceError{Op: OpSync, Name: p.temp, Err: err}
	}
	if err := f.Close(); err != nil {
		return &ReplaceError{Op: OpClose, Name: p.temp, Err: err}
	}
	p.synced = true
	return nil
}

// Commit runs step 4, before (if not nil), then step 5. An error of
// before is returned as it is, with the temporary file still in place:
// the caller decides whether to Abort. Rename and directory fsync errors
// are a *ReplaceError (OpRename, OpSyncDir): the target's content is then
// unknown, and the temporary file is left alone.
func (p *Pending) Commit(before func() error) error {
	if !p.synced || p.done {
		return &ReplaceError{Op: OpRename, Name: p.temp, Err: errors.New("not synced, or already committed or aborted")}
	}
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	p.done = true
	if err := p.fsys.Rename(p.temp, p.target); err != nil {
		return &ReplaceError{Op: OpRename, Name: p.temp, Err: err}
	}
	dir := filepath.Dir(p.target)
	if err := p.fsys.SyncDir(dir); err != nil {
		return &ReplaceError{Op: OpSyncDir, Name: dir, Err: err}
	}
	return nil
}

// Abort is step 6: it closes the temporary file if it is open and removes
// it, then fsyncs the directory (best effort: a leftover is removed by the
// next attempt or by recovery). It reports whether the file was removed.
func (p *Pending) Abort() bool {
	if p.f != nil {
		p.f.Close() // the error that made the caller abort is the one to report
		p.f = nil
	}
	p.done = true
	if p.fsys.Remove(p.temp) != nil {
		return false
	}
	p.fsys.SyncDir(filepath.Dir(p.temp)) // best effort, see above
	return true
}

// WriteFile replaces target with data durably, through temp: steps 1 to
// 5, and Abort on any failure. A leftover at temp is replaced.
func WriteFile(fsys FS, target, temp string, data []byte, perm os.FileMode) error {
	p, err := CreatePending(fsys, target, temp, perm, true)
	if err != nil {
		return err
	}
	if _, err := p.File().WriteAt(data, 0); err != nil {
		p.Abort()
		return &ReplaceError{Op: OpWrite, Name: temp, Err: err}
	}
	if err := p.Sync(); err != nil {
		p.Abort()
		return err
	}
	if err := p.Commit(nil); err != nil {
		p.Abort()
		return err
	}
	return nil
}

// CreateFile creates name (failing if it exists) with data, durably: the
// data fsynced, the file closed, then its directory entry fsynced.
func CreateFile(fsys FS, name string, data []byte, perm os.FileMode) error {
	f, err := fsys.Create(name, perm)
	if err != nil {
		return &ReplaceError{Op: OpCreate, Name: name, Err: err}
	}
	if len(data) > 0 {
		if _, err := f.WriteAt(data, 0); err != nil {
			f.Close()
			return &ReplaceError{Op: OpWrite, Name: name, Err: err}
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return &ReplaceError{Op: OpSync, Name: name, Err: err}
	}
	if err := f.Close(); err != nil {
		return &ReplaceError{Op: OpClose, Name: name, Err: err}
	}
	return SyncDirOf(fsys, name)
}

// Remove deletes name durably: the removal, then a directory fsync. A
// missing file is no error, and then nothing is fsynced.
func Remove(fsys FS, name string) error {
	if err := fsys.Remove(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return SyncDirOf(fsys, name)
}

// Rename moves from to to (in the same directory) durably: the rename,
// then a directory fsync.
func Rename(fsys FS, from, to string) error {
	if err := fsys.Rename(from, to); err != nil {
		return err
	}
	return SyncDirOf(fsys, to)
}

// SyncDirOf fsyncs the directory holding name, wrapping a failure as
// *ReplaceError OpSyncDir.
func SyncDirOf(fsys FS, name string) error {
	dir := filepath.Dir(name)
	if err := fsys.SyncDir(dir); err != nil {
		return &ReplaceError{Op: OpSyncDir, Name: dir, Err: err}
	}
	return nil
}
