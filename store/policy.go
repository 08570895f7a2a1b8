package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
)

// Checkpoint makes every committed transaction durable in the database
// file and empties the in-memory WAL. On error nothing is lost: the WAL
// stays in memory, the Store keeps serving, and a later Checkpoint retries.
func (s *Store) Checkpoint(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpointLocked(ctx)
}

func (s *Store) checkpointLocked(ctx context.Context) error {
	if s.closed {
		if s.ejected {
			s.answer.wait()
			return ErrEjected
		}
		return ErrClosed
	}
	if s.opts.ReadOnly {
		return nil // nothing can have been committed
	}
	// Writers wait at the gate's high-water mark while this checkpoint can
	// rewind the WAL (gate.go). With ManualCheckpoint the mark is armed
	// for this checkpoint only: between the application's checkpoints
	// nothing would rewind, and a WAL at its cap fails commits
	// (IsWALFull).
	if s.opts.ManualCheckpoint {
		s.checkpointing = true
		s.setHighWater()
		defer func() {
			s.checkpointing = false
			s.setHighWater()
		}()
	} else {
		defer s.setHighWater() // off while checkpoints fail (gate.go)
	}
	start := time.Now()
	flushFails := hostLogFlushFails(s.path)
	s.state.takeErr() // forget errors of earlier operations
	// Before any write: the drive and the database are the ones this
	// Store last wrote (invariant proven-drive), reattaching after a re-plug.
	if err := s.ensureAttached(); err != nil {
		return s.failed(fmt.Errorf("%w: %w", ErrCheckpoint, err))
	}
	// Outside SQLite's locks, what does not depend on the writes: the
	// base's checksum when it is not known yet (Prepare writes nothing;
	// the copy itself is written by the commit, in one pass in order).
	// The database file does not change between checkpoints, so commits
	// go on meanwhile. Only when there is work: a checkpoint with nothing
	// to write must not read the database.
	if p, ok := s.state.main.(checkpointer); ok && s.pending() {
		if err := p.Prepare(); err != nil {
			return s.failed(fmt.Errorf("%w: %w", ErrCheckpoint, err))
		}
	}
	err := s.backfill(ctx)
	if err != nil {
		if hostLogFlushFails(s.path) != flushFails && !errors.Is(err, ErrHostLogFlush) {
			err = fmt.Errorf("%w: %w", err, ErrHostLogFlush) // SQLite's xSync of the WAL
		}
		return s.failed(err)
	}
	s.smu.Lock()
	s.stats.Checkpoints++
	s.stats.LastCheckpoint = time.Now()
	s.stats.LastCheckpointDuration = s.stats.LastCheckpoint.Sub(start)
	s.stats.LastCheckpointError = nil
	s.smu.Unlock()
	s.setCond(Attached, nil)
	return nil
}

// failed counts a failed checkpoint and returns err. A failure that the
// identity check did not already explain is a drive that went away if
// its mount did, else a failing checkpoint.
func (s *Store) failed(err error) error {
	s.smu.Lock()
	s.stats.CheckpointFailures++
	s.stats.LastCheckpointError = err
	cur, vol := s.cond.Condition, s.vol
	s.smu.Unlock()
	switch {
	case errors.Is(err, ErrDriveLost) || errors.Is(err, ErrDriveChanged) || cur == Detached:
	case errors.Is(err, checkpoint.ErrChanged):
		// The commit found the database changed behind the Store (a
		// folded copy's base no longer has its recorded checksum): what
		// the full proof would say. Refuse the drive as ensureAttached
		// does; the Main refuses to commit over that base anyway.
		return s.changed(vol, err)
	case isGone(err):
		s.lost(err)
	case errors.Is(err, syscall.EIO):
		if v, verr := device.VolumeOf(s.opts.FS, filepath.Dir(s.path), false); verr != nil || !v.SameMount(vol) {
			s.lost(err)
			break
		}
		fallthrough
	default:
		if cur == Attached || cur == CheckpointsFailing {
			s.setCond(CheckpointsFailing, err)
		}
	}
	return err
}

// backfill runs PASSIVE checkpoints until every frame committed before it
// began is in the database file. PASSIVE never waits on a lock, so
// commits and reads go on meanwhile; a reader on an old snapshot only
// delays it, up to BusyTimeout. Once all frames are backfilled, the next
// writer restarts the WAL at its start, reusing its memory, and
// journal_size_limit trims what exceeds RetainWALBytes.
func (s *Store) backfill(ctx context.Context) error {
	// Writers held at the gate's high-water mark: rewind at once, which
	// backfills every frame, and commit (gate.go).
	if w, _ := walStats(s.path); s.highWater() > 0 && int64(w.size) > s.highWater() {
		rewound, err := s.tryRewind(ctx)
		if err != nil {
			return err
		}
		if rewound {
			if err := s.state.hl.commit(s.state.main, s.state.main.Commit); err != nil {
				return fmt.Errorf("%w: %w", ErrCheckpoint, s.cause(err))
			}
			return nil
		}
	}
	start := time.Now()
	deadline := start.Add(s.opts.BusyTimeout)
	target := -1 // frames in the WAL when we began
	reread := false
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		var busy, logFrames, done int
		err := s.pin.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &done)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCheckpoint, s.cause(err))
		}
		// SQLite answers -1, -1 (and no error) when it could not run the
		// checkpoint, for example because reading the database failed; and
		// any device error the shim met means this checkpoint proves
		// nothing.
		if dev := s.state.takeErr(); dev != nil {
			return fmt.Errorf("%w: %w", ErrCheckpoint, dev)
		}
		if logFrames < 0 || done < 0 {
			// The pinned connection has not opened the WAL yet (its
			// pragmas ran on an empty file): SQLite then tries to open it
			// itself and, losing to a busy writer, answers -1, -1. Open it
			// with a read, once, and try again.
			if !reread {
				reread = true
				if err := s.openWAL(ctx); err != nil {
					return fmt.Errorf("%w: %w", ErrCheckpoint, err)
				}
				continue
			}
			return fmt.Errorf("%w: SQLite could not checkpoint (wal_checkpoint answered %d, %d)", ErrCheckpoint, logFrames, done)
		}
		if target < 0 {
			target = logFrames
		}
		// A WAL shorter than target was restarted, which SQLite does only
		// after backfilling all of it.
		if done >= target || logFrames < target {
			// Rewind first (gate.go): it moves the frames committed since
			// into the same commit, and the WAL restarts before the slow
			// part. Then: SQLite syncs the database only when the backfill
			// reached the WAL's end as it stood then; make what it wrote
			// durable.
			if testHookBeforeRewind != nil {
				testHookBeforeRewind(ctx)
			}
			rerr := s.rewind(ctx)
			if err := s.state.hl.commit(s.state.main, s.state.main.Commit); err != nil {
				return fmt.Errorf("%w: %w", ErrCheckpoint, s.cause(err))
			}
			// Every frame committed before this checkpoint began is
			// backfilled and now durable: a rewind that ran out of time
			// only left the WAL where it was. That is success, not a
			// failed checkpoint.
			if rerr != nil && ctx.Err() != nil && errors.Is(rerr, ctx.Err()) {
				return nil
			}
			return rerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %w: %d of %d frames copied", ErrCheckpoint, ErrCheckpointBusy, done, target)
		}
		if time.Since(start) > gateWait && s.rewindMissed.IsZero() {
			s.rewindMissedNow() // a reader holds an old snapshot: stop holding writers back
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrCheckpoint, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// testHookBeforeRewind, when set by a test, runs in backfill after the
// PASSIVE backfill is complete and before the rewind.
var testHookBeforeRewind func(ctx context.Context)

// pending reports whether a checkpoint has anything to write: WAL frames
// not yet backfilled, or pages backfilled but not yet committed. A wrong
// "no" only skips Prepare: the commit then computes the base's checksum
// itself, while it writes the copy.
func (s *Store) pending() bool {
	if w, _ := walStats(s.path); w.dirty > 0 {
		return true
	}
	m, ok := s.state.main.(checkpointer)
	return !ok || m.Stats().Overlay > 0
}

// openWAL makes the pinned connection read the database, which opens its
// WAL: checkpoints run on that connection.
func (s *Store) openWAL(ctx context.Context) error {
	var n int
	if err := s.pin.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		return s.cause(err)
	}
	if dev := s.state.takeErr(); dev != nil {
		return dev
	}
	return nil
}

// pressureTick is how often the automatic checkpointer looks at the WAL
// while writes go on: a writer can fill a quarter of the cap in a few
// milliseconds, and the checkpoint must start before it fills the rest.
const pressureTick = 2 * time.Millisecond

// autoCheckpoint checkpoints once writes pause for CheckpointIdle, at
// least every CheckpointInterval while they do not, and at once when the
// uncheckpointed WAL passes a quarter of MaxWALBytes.
func (s *Store) autoCheckpoint() {
	defer close(s.done)
	tick := max(min(s.opts.CheckpointIdle, s.opts.CheckpointInterval)/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastWrites int64
	var lastChange, dirtySince, lastProbe time.Time
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			st, _ := walStats(s.path)
			if int64(st.writes) != lastWrites {
				lastWrites, lastChange = int64(st.writes), now
				t.Reset(pressureTick) // writes go on: watch closely
			} else {
				t.Reset(tick)
			}
			if st.dirty == 0 {
				dirtySince = time.Time{}
				if now.Sub(lastProbe) >= s.opts.CheckpointInterval {
					lastProbe = now
					s.probe()
				}
				continue
			}
			if dirtySince.IsZero() {
				dirtySince = now
			}
			pressed := int64(st.dirty) > s.walBudget()/4
			if !pressed && now.Sub(lastChange) < s.opts.CheckpointIdle && now.Sub(dirtySince) < s.opts.CheckpointInterval {
				continue
			}
			if err := s.Checkpoint(context.Background()); err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrEjected) {
				dirtySince = time.Time{}
			} else {
				dirtySince = now // failed: the error is in Stats; retry after another interval
			}
		}
	}
}

// probe looks at the drive while nothing is to be checkpointed, so that
// a pull is noticed (and a re-plug reattached) without waiting for a
// write: one statx while all is well. It skips a turn if a checkpoint or
// Close runs.
func (s *Store) probe() {
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.smu.Lock()
	cur, vol := s.cond.Condition, s.vol
	s.smu.Unlock()
	if v, err := device.VolumeOf(s.opts.FS, filepath.Dir(s.path), false); err == nil && v.SameMount(vol) && (cur == Attached || cur == CheckpointsFailing) {
		return
	}
	if err := s.ensureAttached(); err == nil {
		s.setCond(Attached, nil)
	}
}
