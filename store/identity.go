package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/lease"
)

// Identity is what a Store owns on its drive: the volume (its serial,
// and the mount the Store's handles are on) and the database (the
// checkpoint journal's random id plus the generation, size and checksum
// of the last durable checkpoint). Before any write to the drive the
// Store proves both are unchanged (see Options.OnStateChange for what it
// does when they are not). Issue 13's host-side log reuses it to prove
// that a log belongs to the database on the drive.
type Identity struct {
	Volume   device.VolumeID
	Database DatabaseID
}

// DatabaseID identifies a database by its checkpoint journal: the
// journal's random id, and the generation, size and checksum of the last
// durable checkpoint.
type DatabaseID struct {
	JournalID uint64 // the journal header's file id; 0 when there is no journal yet
	Gen       uint64 // the last durable generation; 0 if none
	Size      int64  // the database's size at Gen (or as Open found it)
	Sum       uint64 // its checksum; valid when SumKnown
	SumKnown  bool   // false for a database never checkpointed nor read whole
}

func (d DatabaseID) String() string { return checkpoint.Identity(d).String() }

// Identity returns what the Store owns. It waits for a commit in
// progress (the database part is read under the commit's lock).
func (s *Store) Identity() Identity {
	s.smu.Lock()
	id := Identity{Volume: s.vol}
	s.smu.Unlock()
	if m, ok := s.state.main.(checkpointer); ok {
		id.Database = DatabaseID(m.Identity())
	}
	return id
}

// goneErrnos are what a pulled drive answers: a dead FUSE mount
// (ENOTCONN), a vanished device (ENODEV, ENXIO), a filesystem shut down
// (ESHUTDOWN), a stale handle (ESTALE). EIO is not among them: a drive
// that is there can fail an I/O; failed tells by the mount.
var goneErrnos = []syscall.Errno{syscall.ENOTCONN, syscall.ENODEV, syscall.ENXIO, syscall.ESHUTDOWN, syscall.ESTALE}

func isGone(err error) bool {
	for _, e := range goneErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// lost records that the drive is gone and returns the error to report.
func (s *Store) lost(err error) error {
	err = fmt.Errorf("%w: %s: %w", ErrDriveLost, filepath.Dir(s.path), err)
	s.fence(true)
	s.setCond(DriveLost, err)
	return err
}

// changed records that the drive or the database is not the one the
// Store last wrote, and returns the error to report.
func (s *Store) changed(vol device.VolumeID, err error) error {
	err = fmt.Errorf("%w: %w", ErrDriveChanged, err)
	s.fence(true)
	s.refused = refusal{vol: vol, err: err}
	s.setCond(DriveChanged, err)
	return err
}

// fence stops (or allows again) every write SQLite could make to the
// drive through the shim (the xSync that commits): a belt to the braces
// of ensureAttached, which runs before every checkpoint.
func (s *Store) fence(on bool) { s.state.fenced.Store(on) }

// refusal caches the last DriveChanged verdict for one mount: the same
// mount gets the same answer without reading the database again.
type refusal struct {
	vol device.VolumeID
	err error
}

// ensureAttached proves, before any write to the drive, that the volume
// and the database are the ones the Store last wrote, reattaching after a
// re-plug; it writes nothing unless both are proven. The caller holds mu.
//
// Same mount as the Store's handles: one statx of the directory, one stat
// of the database and one read of the journal's header (Main.Prove(false));
// if those disagree, the full proof decides. A new mount: see reattach.
func (s *Store) ensureAttached() error {
	dir := filepath.Dir(s.path)
	vol, err := device.VolumeOf(s.opts.FS, dir, false)
	if err != nil {
		if isGone(err) || errors.Is(err, fs.ErrNotExist) {
			return s.lost(err)
		}
		return err
	}
	m, canProve := s.state.main.(checkpointer)
	cur := s.State().Condition
	if vol.SameMount(s.vol) && cur != DriveChanged && cur != Detached {
		// The Store's handles and lock are on this mount: the quick
		// check, and the full proof if it sees a change or the drive
		// failed for a while. No reattaching: the handles are good, and
		// recovering would retry fsyncs on files whose fsync failed.
		var err error
		switch {
		case !canProve:
		case cur == DriveLost:
			err = m.Prove(true)
		default:
			if err = m.Prove(false); errors.Is(err, checkpoint.ErrChanged) {
				err = m.Prove(true)
			}
		}
		switch {
		case errors.Is(err, checkpoint.ErrChanged):
			return s.changed(vol, err)
		case isGone(err):
			return s.lost(err)
		case err == nil:
			s.fence(false)
		}
		return err // nil, or the drive's error (failed decides what it means)
	}
	if r := s.refused; r.err != nil && cur == DriveChanged && vol.SameMount(r.vol) {
		return r.err // nothing was remounted since the verdict
	}
	return s.reattach(vol)
}

// reattach moves the Store onto a new mount at its path, if it is the
// Store's drive and database. Each step reads only, until both are
// proven; the order is the issue's: new handles, the OS lock and the
// lease retaken before the first write, recovery, then (the caller) a
// checkpoint.
func (s *Store) reattach(vol device.VolumeID) error {
	fsys := s.opts.FS
	dir := filepath.Dir(s.path)
	m, canProve := s.state.main.(checkpointer)

	// 1. Something at the path? A mount point left empty by the pull
	// shows the filesystem below it, with no database and no journal.
	_, dbErr := fsys.Stat(s.path)
	_, jErr := fsys.Stat(journal.Name(s.path))
	if errors.Is(dbErr, fs.ErrNotExist) && errors.Is(jErr, fs.ErrNotExist) {
		return s.lost(fmt.Errorf("no database at %s: %w", s.path, fs.ErrNotExist))
	}
	for _, err := range []error{dbErr, jErr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			if isGone(err) {
				return s.lost(err)
			}
			return err
		}
	}

	// 2. The volume: its serial must be the Store's where it was known.
	full, err := device.VolumeOf(fsys, dir, true)
	if err != nil {
		if isGone(err) {
			return s.lost(err)
		}
		return err
	}
	if s.vol.Serial != "" && full.Serial != s.vol.Serial {
		got := full.Serial
		if got == "" {
			got = "unreadable (" + full.Source + ")"
		}
		return s.changed(vol, fmt.Errorf("%s: volume serial %s, this store's drive is %s", dir, got, s.vol.Serial))
	}

	// 3. The OS lock, before anything is written, and without creating
	// anything: if the lock file is not there yet (a pull can lose it), it
	// is created only once the database is proven.
	lockPath := s.path + lockSuffix
	var newLock interface{ Close() error }
	keepLock := false
	if _, err := fsys.Stat(lockPath); err == nil {
		l, err := fsys.Lock(lockPath)
		switch {
		case errors.Is(err, ErrLocked) && vol.SameMount(s.vol):
			// The mount the Store's lock is on: the holder is this Store
			// (a path that failed for a while and came back).
			keepLock = true
		case err != nil:
			if errors.Is(err, ErrLocked) {
				err = fmt.Errorf("store: %s came back, but another process holds the database: %w", dir, err)
				s.fence(true)
				s.setCond(Detached, err)
			}
			return err
		default:
			newLock = l
		}
	}
	undo := func() {
		if newLock != nil {
			newLock.Close()
		}
	}

	// 4. The database and the journal: the ones the Store last wrote, or
	// a checkpoint it had in flight when the drive went.
	if canProve {
		if err := m.Prove(true); err != nil {
			undo()
			if errors.Is(err, checkpoint.ErrChanged) {
				return s.changed(vol, err)
			}
			if isGone(err) {
				return s.lost(err)
			}
			return err
		}
	}
	if newLock == nil && !keepLock {
		l, err := fsys.Lock(lockPath)
		if err != nil {
			if errors.Is(err, ErrLocked) {
				s.fence(true)
				s.setCond(Detached, err)
			}
			return err
		}
		newLock = l
	}

	// 5. Proven and locked: the lease on the new mount, so that eject
	// finds this holder before anything else is written.
	if me, err := lease.Me(); err == nil {
		s.lease = lease.PlaceFor(fsys, s.path)
		if err := s.writeLease(me, lease.StateOpen); err != nil {
			s.opts.Logger.Warn("ejectsafe: reattaching, but the lease could not be written", "path", s.path, "err", err)
		}
	}

	// 6. Recover a checkpoint the pull interrupted, and move the MainFile
	// onto the new files.
	rep, err := checkpoint.Recover(fsys, s.path)
	if err != nil {
		undo()
		return err
	}
	if canProve {
		if err := m.Reattach(); err != nil {
			undo()
			return err
		}
	}
	if newLock != nil {
		old := s.lock
		s.lock = newLock
		old.Close() // a handle on the dead mount: its error says nothing now
	}
	s.smu.Lock()
	s.vol, s.recovery = full, newRecoveryReport(rep)
	s.smu.Unlock()
	s.refused = refusal{}
	s.fence(false)

	s.opts.Logger.Info("ejectsafe: drive back, database proven", "path", s.path, "volume", full.String(), "recovery", rep.String())
	return nil
}
