// Package store is ejectsafe's public API: an SQLite database on a
// removable drive whose write-ahead log lives in heap memory, so commits
// never touch the drive, and whose checkpoints are the only writes to it.
//
// A Store owns one database file. Its *sql.DB (github.com/mattn/go-sqlite3
// through the "ejectsafe" VFS shim) may be used from any number of
// goroutines; many readers run concurrently with one writer. Only one
// process may open a database at a time.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// Stats describe a Store at one instant.
type Stats struct {
	Generation             uint64         // the last durable checkpoint's generation in the journal
	WALBytes               int64          // bytes of WAL held in memory, checkpointed or not
	DirtyBytes             int64          // bytes of WAL frames not yet checkpointed
	WALAllocated           int64          // bytes of memory allocated for the WAL
	Checkpoints            int64          // checkpoints completed
	CheckpointFailures     int64          // checkpoints that failed
	LastCheckpoint         time.Time      // when the last successful checkpoint ended
	LastCheckpointDuration time.Duration  // how long it took
	LastCheckpointError    error          // the last failure's error, nil after a success
	LeaseError             error          // why the control endpoint could not start; nil if it runs
	Rewinds                int64          // WAL rewinds through the gate (gate.go)
	RewindsMissed          int64          // rewinds that could not get in (a transaction held open)
	LongestGateHold        time.Duration  // the longest time new transactions waited for a rewind
	LongestGateWait        time.Duration  // the longest one transaction waited at the gate, to the millisecond (gate.go)
	InPlaceCheckpoints     int64          // checkpoints written in place (CheckpointMode), of those the Store's database file made
	LastCheckpointWritten  int64          // bytes the last checkpoint wrote to the drive (the copy, or the redo log and the pages)
	LastCheckpointMode     CheckpointMode // how the last checkpoint wrote: CheckpointCopy or CheckpointInPlace
}

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	path    string
	opts    Options
	newMain mainOpener // opens state.main (openWith)
	state   *dbState
	lock    io.Closer
	db      *sql.DB
	conn    *connector
	pin     *sql.Conn // keeps one connection open, so SQLite's close-time checkpoint runs only in Close

	mu      sync.Mutex // serializes checkpoints, reattaching and Close
	closed  bool
	ejected bool
	refused refusal // the last DriveChanged verdict (identity.go); under mu

	// smu guards what Stats, State and Identity read, so that they never
	// wait for a checkpoint (which holds mu for its whole length).
	smu      sync.Mutex
	stats    Stats
	cond     State
	vol      device.VolumeID // the volume the Store's handles are on, as last proven
	recovery RecoveryReport
	events   *eventQueue

	lease    lease.Place   // where this Store's lease lives
	endpoint *lease.Server // nil if the control endpoint could not start
	leaseErr error         // why not, for Stats (under smu)
	answer   *answerGate   // open once an eject's answer is delivered (answer.go)

	rewindMissed  time.Time // when a rewind last could not get in; zero after one did (gate.go)
	checkpointing bool      // under mu: a checkpoint runs; with ManualCheckpoint, the gate's high-water mark is armed

	stop chan struct{}
	done chan struct{}
}

func (s *Store) isClosed() bool {
	c := s.State().Condition
	return c == Closed || c == Ejected
}

// DB returns the database handle. It stays valid until Close succeeds.
func (s *Store) DB() *sql.DB { return s.db }

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// cause prefers the device error the shim recorded over SQLite's bare code.
func (s *Store) cause(err error) error {
	if dev := s.state.takeErr(); dev != nil {
		return fmt.Errorf("%w (%v)", dev, err)
	}
	return err
}

// Stats reports the Store's counters. It never waits for a checkpoint.
func (s *Store) Stats() Stats {
	s.smu.Lock()
	st := s.stats
	st.LeaseError = s.leaseErr
	s.smu.Unlock()
	if w, ok := walStats(s.path); ok {
		st.WALBytes, st.DirtyBytes, st.WALAllocated = int64(w.size), int64(w.dirty), int64(w.allocated)
	}
	if m, ok := s.state.main.(checkpointer); ok {
		cs := m.Stats()
		st.Generation, st.InPlaceCheckpoints, st.LastCheckpointWritten = cs.Generation, cs.InPlace, cs.LastWritten
		st.LastCheckpointMode = CheckpointCopy
		if cs.LastMode == checkpoint.ModeInPlace {
			st.LastCheckpointMode = CheckpointInPlace
		}
	}
	st.LongestGateWait = gateLongest(s.path)
	return st
}

// Recovery reports what Open's recovery found and did.
// After a reattach it is what the recovery on the new mount found.
func (s *Store) Recovery() RecoveryReport {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.recovery
}

// Close checkpoints and releases the database. It is a clean cut: once
// it starts, no transaction commits (a write fails with SQLite's
// SQLITE_READONLY, "attempt to write a readonly database", and a new
// connection of DB() with ErrClosed), and every transaction acknowledged
// before is in its checkpoint. If that checkpoint fails, Close returns its error (wrapping
// ErrCheckpoint) and the Store stays open with the WAL in memory, serving
// reads but refusing every write (SQLITE_READONLY), so nothing is
// committed that a retry would not cover: fix the cause and call Close
// again, or, if the drive is gone for good, call Abandon.
// Any other error was met while releasing files, after everything was
// durable: the Store is closed. Close after a successful Close returns
// nil. Close waits for the drive however long it takes; CloseContext
// bounds the wait.
//
// A write transaction held open when Close starts stalls it: Close waits
// up to the busy timeout (Options.BusyTimeout, at least a second) for the
// transaction to end, then checkpoints without it. The transaction can no
// longer commit (its Commit fails); its connection keeps the in-memory WAL
// (all backfilled) until the transaction ends. End transactions before
// Close.
func (s *Store) Close() error { return s.shutdown(context.Background(), false) }

// CloseContext is Close, returning when ctx ends if the drive has not
// answered by then (a slow card, or a drive that hangs). It then returns
// an error wrapping ctx.Err(). The drive operation in flight cannot be
// interrupted: when it returns, the close either completes (if that was
// its last step) or stops with ctx's error, leaving the Store open as
// after a failed Close. Either way nothing committed is lost. Call Close
// to retry (it waits for the operation in flight first), or Abandon to
// let the database go without a checkpoint.
func (s *Store) CloseContext(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.shutdown(ctx, false) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done: // finished meanwhile: its answer is the truth
			return err
		default:
		}
		return fmt.Errorf("store: close %s: the drive has not answered; the close goes on in the background: %w", s.path, ctx.Err())
	}
}

// shutdown checkpoints and releases the database, for Close or an eject.
func (s *Store) shutdown(ctx context.Context, eject bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if s.ejected {
			s.answer.wait()
			return ErrEjected
		}
		return nil
	}
	// The clean cut: from here no transaction commits (the shim refuses
	// every WAL write, SQLITE_READONLY) and no connection opens
	// (ErrClosed). A commit already writing finishes publishing first, so
	// the checkpoint below holds every transaction acknowledged before
	// the cut. The cut stays if the checkpoint fails: the Store stays open
	// for another Close, with nothing committed after the first attempt.
	s.conn.closing.Store(true)
	walCut(s.path, true)
	uncut := func() {
		// A failed Close leaves the Store open: it serves reads, and
		// writes stay refused until a Close succeeds. A failed eject
		// leaves the application running as before.
		s.conn.closing.Store(false)
		if eject {
			walCut(s.path, false)
		}
	}
	for deadline := time.Now().Add(max(s.opts.BusyTimeout, time.Second)); writerBusy(s.path) && time.Now().Before(deadline); {
		// A transaction still holding the writer lock past the bound is
		// one held open: its commit will fail at the cut.
		time.Sleep(100 * time.Microsecond)
	}
	if err := s.checkpointLocked(ctx); err != nil {
		uncut()
		s.mu.Unlock()
		return fmt.Errorf("store: close %s: store still open: %w", s.path, err)
	}
	if w, ok := walStats(s.path); ok && w.dirty > 0 {
		// Unreachable with the cut; if it ever happens, keep the Store.
		uncut()
		s.mu.Unlock()
		return fmt.Errorf("store: close %s: store still open: %w (%d bytes not checkpointed)", s.path, ErrWALRetained, int64(w.dirty))
	}
	// The checkpoint proved the drive: the retired redo log of its
	// in-place checkpoints can go, so that a closed database leaves no
	// -wal on the drive. A failure leaves it there, retired (empty to
	// SQLite, reused by the next in-place checkpoint): nothing depends
	// on it, and the close goes on.
	if m, ok := s.state.main.(interface{ RemoveRetiredLog() error }); ok && !s.opts.ReadOnly {
		m.RemoveRetiredLog()
	}
	s.closed, s.ejected = true, eject
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
		setGate(s.path, 0, 0) // nothing rewinds now: hold no one back
	}

	// Closing the last connection runs SQLite's own PASSIVE checkpoint of
	// anything committed since ours, then deletes the (memory) WAL. After
	// an eject the *sql.DB stays open with no connection, and its
	// connector refuses new ones with ErrEjected.
	err := s.pin.Close()
	var cerr error
	if eject {
		s.conn.ejected.Store(true)
		s.db.SetMaxIdleConns(0) // closes the idle connections now, and the others when released
	} else {
		cerr = s.db.Close()
	}
	if err == nil {
		err = cerr
	}
	if eject {
		s.setCond(Ejected, ErrEjected)
	} else {
		s.setCond(Closed, nil)
	}
	if w, ok := walStats(s.path); ok && w.exists != 0 && w.dirty > 0 && err == nil {
		// Committed frames not in the database after the last
		// connection's close-time checkpoint. Frames already backfilled
		// do not count: a connection still held (a transaction open at
		// the cut, which cannot commit) keeps the WAL alive, and SQLite
		// deletes it when that connection closes.
		err = fmt.Errorf("store: close %s: %w (%d bytes)", s.path, ErrWALRetained, int64(w.dirty))
	} else if hl := s.state.hl; hl != nil && err == nil {
		// Everything is on the drive: the host log goes (SQLite's xDelete
		// of the WAL removed it already, unless no WAL was ever opened).
		if rerr := os.Remove(hl.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("store: close %s: remove host log: %w", s.path, rerr)
		}
	}
	return s.release(err)
}

// Abandon releases the Store without a checkpoint, for a drive that is
// gone or a process that must let go now. Later calls return ErrClosed.
//
// Abandon does not wait for an operation on the drive already in flight
// (a checkpoint, or a CloseContext that timed out on a hung drive): it
// returns at once and the Store is released when that operation returns;
// until then another Open of the database in this process gets
// ErrAlreadyOpen. If that operation was a Close whose checkpoint
// succeeds, nothing is lost after all.
//
// DANGER: every commit since the last successful checkpoint is lost. Use
// Close, which refuses to drop anything, unless the drive cannot take a
// checkpoint.
func (s *Store) Abandon() error {
	if !s.mu.TryLock() {
		go func() {
			s.mu.Lock()
			s.abandon()
		}()
		return nil
	}
	return s.abandon()
}

// abandon is Abandon with s.mu held; it unlocks it.
func (s *Store) abandon() error {
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
		setGate(s.path, 0, 0) // nothing rewinds now: hold no one back
	}
	s.state.abandoned.Store(true) // the close-time checkpoint fails and writes nothing
	s.setCond(Closed, nil)
	pending := s.pending() // read while a connection holds the wal-index
	// SQLite's close deletes the WAL (and the shim the host log) when every
	// frame is backfilled, though the backfilled pages may not have
	// reached the drive (a failed commit): keep the log out of its way.
	hl, keep := s.state.hl, ""
	if hl != nil && pending && os.Rename(hl.path, hl.path+hlAbandoning) == nil {
		keep = hl.path + hlAbandoning
	}
	s.pin.Close()
	s.db.Close()
	walDiscard(s.path) // a host log stays on the host's disk: the next Open replays it
	switch {
	case keep != "":
		if err := os.Rename(keep, hl.path); err != nil {
			s.opts.Logger.Error("ejectsafe: abandoned host log left under another name", "log", keep, "err", err)
		}
	case hl != nil && !pending:
		os.Remove(hl.path) // everything it holds is on the drive
	}
	return s.release(nil)
}

// release frees what Open took, after the last connection closed; err is
// the first error so far.
func (s *Store) release(err error) error {
	if s.endpoint != nil {
		s.endpoint.Close()
	}
	if s.opts.ReadOnly {
		// No lease, no lock.
	} else if lerr := lease.Remove(s.opts.FS, s.lease.Path); err == nil && lerr != nil {
		err = fmt.Errorf("store: close %s: %w", s.path, lerr)
	}
	s.state.unregister()
	s.state.hl.close()
	if cerr := s.state.main.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: close %s: %w", s.path, cerr)
	}
	if s.lock == nil {
		// ReadOnly: no lock was taken.
	} else if cerr := s.lock.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: close %s: unlock: %w", s.path, cerr)
	}
	return err
}
