package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
)

// The WAL rewind, and the gate that lets it in.
//
// SQLite restarts the WAL at its start only when a transaction begins with
// every frame backfilled and no reader on a WAL snapshot, or when a
// TRUNCATE checkpoint gets the writer lock and every reader lock. Writers
// back to back give it neither: the WAL then runs into MaxWALBytes with
// every frame checkpointed, and commits fail as if the WAL were full. So:
//
//  1. After each checkpoint's PASSIVE backfill, when the WAL is larger
//     than rewindAt, the Store closes the shim's gate: new transactions
//     wait before their first wal-index lock (shim_shm.c, gateWait);
//     transactions in progress finish.
//  2. It waits, at most gateWait, until no connection holds the writer
//     lock or a reader lock, then runs a TRUNCATE checkpoint, which
//     backfills the few frames committed since and rewinds the WAL.
//  3. It opens the gate. The longest time it was closed is in
//     Stats.LongestGateHold: it bounds what the rewind adds to a commit.
//
// Between checkpoints the gate also closes by itself while the WAL is
// above highWater (half the cap): a writer faster than the checkpoints
// then waits for the rewind rather than filling the WAL. With
// ManualCheckpoint the mark is armed only while a checkpoint runs (from
// its copy to its commit): a writer that never pauses would otherwise
// fill the WAL in a fraction of a second while the checkpoint copies,
// and fail. Between the application's checkpoints nothing would rewind,
// so nothing holds writers back: at the cap commits fail with an error
// IsWALFull recognizes (the application chose when to checkpoint).
//
// A transaction waits at the gate at most BusyTimeout, as it would for a
// lock (Stats.LongestGateWait); past it, it goes on and may find the WAL
// full. The Store's own connection, on which checkpoints and rewinds
// run, never waits there (shim.c, ES_FCNTL_NOGATE). The Store turns
// that off while a rewind cannot get in (a read transaction held open
// keeps its snapshot in the WAL, and SQLite cannot restart the WAL under
// it): holding writers back would not help, the WAL grows, and at the cap
// commits fail with an error IsWALFull recognizes. The next rewind that
// succeeds turns it on again. It is off as well while checkpoints fail
// (a drive full or gone): the WAL then fills up to the cap, as before.

// gateWait bounds how long the gate stays closed waiting for transactions
// in progress to end. A transaction still open after it is taken for a
// long-held reader: the rewind gives up (nothing is lost; the frames are
// checkpointed already) and is tried again later.
const gateWait = 250 * time.Millisecond

// gateRetry is how long after a failed rewind the Store waits before it
// closes the gate again, unless the WAL is past highWater.
const gateRetry = time.Second

// rewindBusy bounds how long the TRUNCATE checkpoint waits in SQLite's
// busy handler. With the gate quiet it waits for nothing; this is a
// safety bound.
const rewindBusy = 10 * time.Millisecond

// rewindAt is the WAL size past which a checkpoint rewinds the WAL: a
// quarter of the cap, or RetainWALBytes when that is smaller (so that
// memory beyond it is returned).
func (s *Store) rewindAt() int64 { return min(s.walBudget()/4, s.opts.RetainWALBytes) }

// highWater is the WAL size past which new transactions wait for a
// checkpoint's rewind: with ManualCheckpoint only while a checkpoint runs,
// 0 (off) between them, where nothing would rewind. The caller holds s.mu.
func (s *Store) highWater() int64 {
	if s.opts.ManualCheckpoint && !s.checkpointing {
		return 0
	}
	return s.walBudget() / 2
}

// rewind brings the WAL back to its start through the gate (see above).
// The caller holds s.mu and has just backfilled the WAL. It returns an
// error only when the TRUNCATE checkpoint failed; a rewind that cannot get
// in returns nil: the data is checkpointed already.
func (s *Store) rewind(ctx context.Context) error {
	_, err := s.tryRewind(ctx)
	return err
}

// tryRewind is rewind; it also reports whether the WAL was rewound, which
// means every frame was backfilled.
func (s *Store) tryRewind(ctx context.Context) (bool, error) {
	w, _ := walStats(s.path)
	size := int64(w.size)
	if size <= s.rewindAt() {
		return false, nil
	}
	if !s.rewindMissed.IsZero() && time.Since(s.rewindMissed) < gateRetry && (s.highWater() == 0 || size <= s.highWater()) {
		return false, nil
	}
	start := time.Now()
	setGate(s.path, 1, -1)
	defer func() {
		setGate(s.path, 0, -1)
		s.smu.Lock() // Stats reads under smu alone
		if d := time.Since(start); d > s.stats.LongestGateHold {
			s.stats.LongestGateHold = d
		}
		s.smu.Unlock()
	}()
	for wait := 20 * time.Microsecond; !gateQuiet(s.path); wait = min(2*wait, time.Millisecond) {
		if time.Since(start) > gateWait {
			s.rewindMissedNow()
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w: %w", ErrCheckpoint, ctx.Err())
		case <-time.After(wait):
		}
	}
	if _, err := s.pin.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout=%d", rewindBusy.Milliseconds())); err != nil {
		return false, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	// SQLite syncs the database when a TRUNCATE checkpoint has backfilled
	// everything; here that would be a whole copy checkpoint with every
	// new transaction waiting at the gate. The caller commits right after
	// the gate opens, which makes the same writes durable. Not with
	// ManualCheckpoint: nothing else holds a writer back then, and the
	// copy inside the rewind is what keeps a writer that never pauses
	// from filling the WAL between the application's checkpoints.
	var busy, logFrames, done int
	// Nor after a failed checkpoint: the rewind would move the frames into
	// the MainFile's memory, which the cap does not bound, while the drive
	// refuses the commits that would free it.
	// Nor with a host log: SQLite empties the WAL right after this xSync,
	// and a crash before the commit would lose the rewound frames from
	// both the log and the drive.
	s.state.deferSync.Store(s.highWater() > 0 && s.stats.LastCheckpointError == nil && s.state.hl == nil)
	err := s.pin.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
	s.state.deferSync.Store(false)
	// Restored whatever ctx says: an expired ctx must not leave the
	// pinned connection with the rewind's short busy timeout.
	if _, rerr := s.pin.ExecContext(context.Background(), fmt.Sprintf("PRAGMA busy_timeout=%d", s.opts.BusyTimeout.Milliseconds())); err == nil {
		err = rerr
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrCheckpoint, s.cause(err))
	}
	if dev := s.state.takeErr(); dev != nil {
		return false, fmt.Errorf("%w: %w", ErrCheckpoint, dev)
	}
	if busy != 0 {
		s.rewindMissedNow()
		return false, nil
	}
	s.smu.Lock()
	s.stats.Rewinds++
	s.smu.Unlock()
	if !s.rewindMissed.IsZero() {
		s.rewindMissed = time.Time{}
		s.setHighWater()
	}
	return true, nil
}

// setHighWater arms the gate's high-water mark, or disarms it while a
// rewind cannot get in or checkpoints fail: holding writers back then
// would only slow them (each new transaction waiting up to the gate's
// bound) without freeing the WAL. The caller holds s.mu.
func (s *Store) setHighWater() {
	hw := s.highWater()
	if !s.rewindMissed.IsZero() || s.stats.LastCheckpointError != nil {
		hw = 0
	}
	setGate(s.path, -1, hw)
}

// rewindMissedNow records a rewind that could not get in, and stops the
// gate from holding writers back at the high-water mark until one does.
func (s *Store) rewindMissedNow() {
	s.smu.Lock()
	s.stats.RewindsMissed++
	s.smu.Unlock()
	s.rewindMissed = time.Now()
	s.setHighWater()
}

// IsWALFull reports whether err is a commit refused because the in-memory
// WAL reached Options.MaxWALBytes. The transaction changed nothing. It
// happens when a single transaction is larger than the WAL's room, or
// when a read transaction held open keeps the WAL from being rewound
// while writes go on (end long read transactions, or raise MaxWALBytes).
//
// The error itself is mattn/go-sqlite3's sqlite3.Error with Code
// sqlite3.ErrFull ("database or disk is full"); errors.Is(err,
// sqlite3.ErrFull) is false for it, since sqlite3.ErrFull is a code, not
// an error. A commit never writes the drive, so on a commit this code
// means the WAL; an error wrapping ErrCheckpoint is a checkpoint's, and
// is never reported as WAL full (its cause, such as ENOSPC, says why).
func IsWALFull(err error) bool {
	if err == nil || errors.Is(err, ErrCheckpoint) {
		return false
	}
	se, ok := sqliteError(err)
	return ok && se.Code == sqlite3.ErrFull
}

// sqliteError finds SQLite's error in err's chain, as a value or a
// pointer (mattn returns both).
func sqliteError(err error) (sqlite3.Error, bool) {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se, true
	}
	var sp *sqlite3.Error
	if errors.As(err, &sp) && sp != nil {
		return *sp, true
	}
	return sqlite3.Error{}, false
}

// IsHostLogFlush reports whether err is a failed flush of the host log:
// an error wrapping ErrHostLogFlush (a checkpoint's, the Store's), or, as
// a commit through DB() at Durability HostSync meets it, SQLite's
// SQLITE_IOERR_FSYNC (a commit writes nothing to the drive, so its only
// flush is the host log's). The commit failed; the log moved to a new
// file, and the Store goes on. Another error wrapping ErrCheckpoint is a
// checkpoint's on the drive, never reported as a host log's.
func IsHostLogFlush(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrHostLogFlush):
		return true
	case errors.Is(err, ErrCheckpoint):
		return false
	}
	se, ok := sqliteError(err)
	return ok && se.ExtendedCode == sqlite3.ErrIoErrFsync
}
