package store

import (
	"errors"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/probe"
)

// mainFile receives every read and write SQLite makes to the main database
// file of a Store, from every connection; it is shared by all of them.
//
// SQLite checkpoints in this order (SQLite 3.53, wal.c walCheckpoint):
//
//	CheckpointStart          SQLITE_FCNTL_CKPT_START
//	SizeHint                 SQLITE_FCNTL_SIZE_HINT, when the file grows
//	WriteAt, for each page   backfill from the WAL
//	CheckpointDone           SQLITE_FCNTL_CKPT_DONE
//	Truncate                 to the database's size in pages
//	Sync                     the barrier: the checkpoint is durable when it returns nil
//
// SQLite issues Truncate and Sync only when the checkpoint reached the end
// of the WAL as it stands when the backfill ends: with commits arriving
// meanwhile, or a reader on an old snapshot, SQLite backfills pages and
// records them as in the database without any Sync. So the Store calls
// Commit after every checkpoint: it makes every write so far durable, and
// is a no-op when nothing is pending.
//
// Writes also arrive outside checkpoints, for example when a new database
// enters WAL mode through a rollback journal; they too end with Sync.
// ReadAt and Size may be called concurrently with each other and with the
// write methods, which SQLite's locks serialize.
//
// The two-phase checkpoint (package checkpoint) implements mainFile so that
// the database is never written in place: it is the default. inPlace, in
// this package, writes in place; tests use it to show what the two-phase
// checkpoint prevents.
type mainFile interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() (int64, error)
	WriteAt(p []byte, off int64) error
	Truncate(size int64) error
	Sync() error
	CheckpointStart() error
	CheckpointDone() error
	SizeHint(size int64) error
	Commit() error
	Close() error
}

var _ mainFile = (*checkpoint.Main)(nil)

// checkpointer is what the Store uses of a mainFile beyond SQLite's calls,
// all of it package checkpoint's two-phase Main: the identity of the
// database on the drive, proved after a re-plug and moved onto again
// (identity.go), the copy prepared outside SQLite's locks and the
// counters (policy.go, Stats), and the hook that records each commit's
// Ready in the host log (hostlog.go). A mainFile without it (inPlace, a
// test's wrapper) is checked by volume only, prepares nothing and
// reports no generation.
type checkpointer interface {
	mainFile
	Identity() checkpoint.Identity
	Prove(full bool) error
	Reattach() error
	Prepare() error
	Stats() checkpoint.Stats
	SetBeforeReady(func(journal.Record) error)
	SetSpill(dir string)
}

var _ checkpointer = (*checkpoint.Main)(nil)

// twoPhaseWith opens package checkpoint's mainFile with the options
// checkFilesystem chose for the filesystem.
func twoPhaseWith(co checkpoint.Options) func(device.FS, string) (mainFile, error) {
	return func(fsys device.FS, path string) (mainFile, error) {
		return checkpoint.Open(fsys, path, co)
	}
}

// readBackFor says whether checkpoints on a filesystem of class c read
// their copies back. A read right after the write is served from the page
// cache on a kernel filesystem (local, overlay, memory): it proves
// nothing about the drive and costs a second pass over the database, so
// it is skipped there. Through a FUSE driver it asks the daemon again,
// which is how fusefat's corruption of files written out of order was
// caught: kept. Unknown and network filesystems keep it too, as does any
// device.FS that is not native (device.IsNative; the caller decides that).
func readBackFor(c probe.Class) checkpoint.ReadBack {
	switch c {
	case probe.Local, probe.Overlay, probe.Memory:
		return checkpoint.ReadBackNever
	}
	return checkpoint.ReadBackAlways
}

// patchAfterCopyFor says whether a copy checkpoint may write the
// rewritten blocks over a kernel copy of the base, out of order
// (checkpoint.Options.PatchAfterCopy): on kernel filesystems, never
// through a FUSE driver, whatever class its name puts it in
// (fuse-overlayfs is an overlay), since fusefat corrupts files written
// out of order.
func patchAfterCopyFor(c probe.Class, fstype string) bool {
	return readBackFor(c) == checkpoint.ReadBackNever && !strings.HasPrefix(fstype, "fuse")
}

// inPlace is a mainFile whose writes go straight to the database file. It
// is not safe against a pull during a checkpoint; only tests use it, to
// show the failures the two-phase checkpoint removes.
type inPlace struct {
	f     device.File
	mu    sync.Mutex
	dirty bool // written since the last Sync
}

func openInPlace(fsys device.FS, path string) (mainFile, error) {
	if _, err := fsys.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createEmpty(fsys, path); err != nil {
			return nil, err
		}
	}
	f, err := fsys.Open(path, device.ReadWrite)
	if err != nil {
		return nil, err
	}
	return &inPlace{f: f}, nil
}

func (p *inPlace) ReadAt(b []byte, off int64) (int, error) { return p.f.ReadAt(b, off) }
func (p *inPlace) Size() (int64, error)                    { return p.f.Size() }
func (p *inPlace) Truncate(size int64) error               { p.setDirty(true); return p.f.Truncate(size) }
func (p *inPlace) CheckpointStart() error                  { return nil }
func (p *inPlace) CheckpointDone() error                   { return nil }
func (p *inPlace) SizeHint(int64) error                    { return nil }
func (p *inPlace) Close() error                            { return p.f.Close() }

func (p *inPlace) WriteAt(b []byte, off int64) error {
	p.setDirty(true)
	_, err := p.f.WriteAt(b, off)
	return err
}

func (p *inPlace) setDirty(v bool) {
	p.mu.Lock()
	p.dirty = v
	p.mu.Unlock()
}

// Sync fsyncs the database file. After a failed fsync the in-place writer
// cannot know what reached the drive; it reports the error every time.
func (p *inPlace) Sync() error {
	p.setDirty(false)
	return p.f.Sync()
}

// Commit syncs if anything was written since the last Sync.
func (p *inPlace) Commit() error {
	p.mu.Lock()
	dirty := p.dirty
	p.mu.Unlock()
	if !dirty {
		return nil
	}
	return p.Sync()
}

// dbState is what the shim's Go half knows of one open Store: the Go
// half of the database's state in the shim, whose C half (es_dbstate in
// shim_internal.h) names it by id.
type dbState struct {
	id   uint64 // in dbStates, and es_dbstate.owner (register)
	path string
	fs   device.FS
	main mainFile

	mu      sync.Mutex
	lastErr error // the first device error since takeErr

	// abandoned refuses every write to the main file: an abandoned
	// Store's connections close without checkpointing.
	abandoned atomic.Bool

	// deferSync turns SQLite's xSync of the main file into a no-op while
	// the Store runs a checkpoint it commits (MainFile.Commit) right
	// after: the WAL rewind inside the gate (gate.go).
	deferSync atomic.Bool

	// hl is the host log (hostlog.go), nil at Durability Checkpoint:
	// every commit of the main file to the drive goes through hl.commit.
	hl *hostLog

	// fenced refuses the same while the Store's drive is lost, changed or
	// held by another process (ensureAttached).
	fenced atomic.Bool
}

// errFenced is what an xSync meets while writes to the drive are refused.
var errFenced = errors.New("store: writes to the drive refused: the drive is not proven to be this store's")

// writable reports whether the main file may be committed to the drive.
func (d *dbState) writable() error {
	switch {
	case d.abandoned.Load():
		return errAbandoned
	case d.fenced.Load():
		return errFenced
	}
	return nil
}

// noteErr keeps the first device error the shim met, so that an operation
// failing with a bare SQLite code can report its cause.
func (d *dbState) noteErr(err error) {
	d.mu.Lock()
	if d.lastErr == nil {
		d.lastErr = err
	}
	d.mu.Unlock()
}

// takeErr returns and clears the recorded device error.
func (d *dbState) takeErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.lastErr
	d.lastErr = nil
	return err
}

// createEmpty makes a new, empty database file durable: an empty file is a
// valid empty SQLite database.
func createEmpty(fsys device.FS, path string) error {
	return device.CreateFile(fsys, path, nil, 0o644)
}
