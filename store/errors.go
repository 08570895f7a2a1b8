package store

import (
	"errors"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
)

// Errors returned by this package, grouped by when they occur. Wrapped
// errors keep their cause: errors.Is(err, syscall.EIO) works on a
// checkpoint that met a failing drive, as does errors.Is(err,
// ErrCheckpoint).

// Errors of Open: it refused the database, or the options, and modified
// nothing.
var (
	// ErrLocked means another process has the database open. The error
	// chain holds a *device.LockedError naming the process where the
	// platform can tell.
	//
	// It is not SQLite's "database is locked" (sqlite3.ErrBusy), which is
	// between connections of this Store: a transaction that read and then
	// tried to write while another connection wrote. Options.Params
	// "_txlock": {"immediate"} makes transactions wait for the write lock
	// at BEGIN instead.
	ErrLocked = device.ErrLocked

	// ErrAlreadyOpen means this process already has a Store open on the
	// database. One Store serves any number of goroutines: share it.
	ErrAlreadyOpen = errors.New("store: database already open in this process")

	// ErrNotDatabase means the file exists and is not an SQLite database.
	// Open leaves it untouched.
	ErrNotDatabase = errors.New("store: not an SQLite database")

	// ErrHardLinked means the database file has more than one name (hard
	// links). A checkpoint replaces the file under one name, which would
	// leave the other names on the old database; Open refuses it before
	// anything is modified. Remove the other names, or copy the file.
	ErrHardLinked = errors.New("store: database file has more than one hard link")

	// ErrIsDirectory means the path names a directory.
	ErrIsDirectory = errors.New("store: path is a directory")

	// ErrReadOnly means the database file, its directory or its
	// filesystem cannot be written. ejectsafe needs to write next to the
	// database (checkpoint copies, its lock and journal); Options.ReadOnly
	// opens it for reading without writing anything. With ReadOnly it
	// means the database needs a recovery only a writable Open can make.
	ErrReadOnly = errors.New("store: read-only")

	// ErrNetworkFS means the database is on a network filesystem, where
	// ejectsafe cannot keep its guarantee; the error says why.
	// Options.AllowNetworkFS overrides the check.
	ErrNetworkFS = errors.New("store: network filesystem refused")

	// ErrBadOptions means an Options field holds a value out of range.
	ErrBadOptions = errors.New("store: invalid options")

	// ErrDamaged means Open found the database file itself damaged
	// (SQLite's quick_check fails on it alone) while a -wal stock SQLite
	// left beside it waited to be folded in. Nothing was modified; the
	// error says how to keep the -wal's data.
	ErrDamaged = errors.New("store: the database file is damaged")

	// ErrUnrecoverable means Open's recovery found a checkpoint it could
	// not settle from what it can prove: a copy that was complete, next
	// to a database that is not the checkpoint's base (written elsewhere
	// after the drive was pulled), or next to a -wal or -journal stock
	// SQLite left. Nothing was modified; the error names the files. A
	// person chooses with "ejectsafe recover --keep-drive" (the
	// database as it is on the drive) or "--roll-forward" (the
	// checkpoint's copy); either keeps every other file aside. It is
	// checkpoint.ErrUnrecoverable.
	ErrUnrecoverable = checkpoint.ErrUnrecoverable

	// ErrJournal means Open's recovery cannot use the checkpoint journal:
	// larger than any ejectsafe writes (refused without reading it), of
	// a newer format, or holding a record a broken writer produced.
	// Nothing was modified; "ejectsafe recover --reset-journal" moves it
	// aside once the database passes integrity_check. It is
	// checkpoint.ErrJournal.
	ErrJournal = checkpoint.ErrJournal

	// ErrHostDir means the host-log directory (Options.HostDir) cannot
	// be used: not this user's alone, on a removable, network or FUSE
	// filesystem, or the host disk is full. Open refuses.
	ErrHostDir = errors.New("store: host log directory refused")

	// ErrHostLogUnsupported means this platform has no host log: use
	// Durability Checkpoint.
	ErrHostLogUnsupported = errors.New("store: host log not supported on this platform")
)

// Why Open did not apply a host log an earlier process left
// (RecoveryReport.HostLogErr; ApplyHostLog and ExportHostLog refuse with
// them too). Open itself succeeds: the log was renamed aside, untouched.
var (
	// ErrHostLogForeign: it belongs to another database (another
	// checkpoint journal id).
	ErrHostLogForeign = errors.New("store: host log of another database")

	// ErrHostLogGeneration: the database on the drive is not the one the
	// log continues (written elsewhere meanwhile, by stock SQLite or
	// another host).
	ErrHostLogGeneration = errors.New("store: host log of another generation of the database")

	// ErrHostLogTorn: its header is unreadable (garbage, or torn).
	ErrHostLogTorn = errors.New("store: host log torn or garbage")

	// ErrHostLogOtherBoot: written at level HostLog before the host
	// restarted, so its pages may have reached the disk out of order.
	ErrHostLogOtherBoot = errors.New("store: host log from before a restart of the host")
)

// Errors of a checkpoint (Checkpoint, the automatic ones, Close). The
// committed data stays in memory or in the host log and the Store keeps
// serving; a later checkpoint retries. ErrCheckpoint wraps the cause,
// which may be one of the others here: they are package checkpoint's
// own values, so errors.Is works with either name.
var (
	// ErrCheckpoint wraps the cause of a failed checkpoint. The committed
	// data stays in memory and the Store keeps serving; a later checkpoint
	// retries the whole operation.
	ErrCheckpoint = errors.New("store: checkpoint failed")

	// ErrCheckpointBusy means a reader held an old snapshot for longer
	// than the busy timeout, so the checkpoint could not finish. Nothing
	// is lost; retry after long read transactions end.
	ErrCheckpointBusy = errors.New("store: checkpoint blocked by readers")

	// ErrNoSpace means the drive has too little free space for the copy
	// of the database a checkpoint writes (it wraps syscall.ENOSPC).
	// Nothing is lost; free space on the drive. It is
	// checkpoint.ErrNoSpace.
	ErrNoSpace = checkpoint.ErrNoSpace

	// ErrDriveCorrupted means the checkpoint's copy read back as other
	// bytes than were written (a failing drive or cable, a FUSE driver
	// that corrupts files written out of order). The copy was removed
	// before any record claimed it; the writes stay in memory. If it
	// keeps happening, the drive cannot be trusted with the database. It
	// is checkpoint.ErrDriveCorrupted.
	ErrDriveCorrupted = checkpoint.ErrDriveCorrupted

	// ErrUnsure means a checkpoint failed at its rename or the directory
	// fsync after it: which content the database's name holds is not
	// known yet. The Store serves the right content from memory, and the
	// next checkpoint (or Open's recovery) decides by checksums before
	// anything else. It is checkpoint.ErrUnsure.
	ErrUnsure = checkpoint.ErrUnsure
)

// The drive, while the Store runs (State, Options.OnStateChange; a
// checkpoint then fails with them).
var (
	// ErrDriveChanged means something is at the database's path, but it
	// is not the drive or the database this Store last wrote: another
	// drive mounted at the same path (two sticks with the same label), or
	// the database changed elsewhere (stock sqlite3, another computer)
	// while the drive was away, or behind the Store while it was attached
	// (a checkpoint's folded copy found the database no longer holds its
	// recorded checksum). The error names what differs. The Store
	// writes nothing there, not even its lock file or lease, keeps serving
	// from memory what SQLite can, and reattaches if its own drive and
	// database come back (Options.OnStateChange, State).
	ErrDriveChanged = errors.New("store: not the drive or database this store last wrote")

	// ErrDriveLost means the drive holding the database is not there (the
	// mount is dead or gone). Commits go on into memory; nothing is
	// written until the same drive comes back with the same database, and
	// then the Store reattaches by itself.
	ErrDriveLost = errors.New("store: the drive is gone")
)

// Errors of a commit through DB(), besides SQLite's own (see also
// IsWALFull).
var (
	// ErrHostLogFlush means a flush of the host log to the host's disk
	// failed (Durability HostSync): the operation in progress failed.
	// The flush is never retried on that file: the log moved to a new
	// file (written from memory and flushed), and later commits go on
	// there. A commit through DB() meets it as SQLite's
	// SQLITE_IOERR_FSYNC: test it with IsHostLogFlush.
	ErrHostLogFlush = errors.New("store: host log flush failed")
)

// Errors of closing, and of a Store once closed or released.
var (
	// ErrClosed is returned by methods of a Store after Close succeeded,
	// and to a new connection of its *sql.DB once Close began.
	ErrClosed = errors.New("store: closed")

	// ErrEjected is returned by a Store's methods after it checkpointed
	// and released its database for an eject request (ejectsafe eject).
	// The Store's *sql.DB is closed; open the database again once the
	// drive is back.
	ErrEjected = errors.New("store: released for an eject request")

	// ErrWALRetained is returned by Close when, after its checkpoint,
	// the in-memory WAL still holds committed frames that are not in the
	// database (frames already backfilled never count, so a transaction
	// held open across Close does not cause it). Close's clean cut (no
	// transaction commits once Close began) makes this a safeguard that
	// should never fire: Close then returns it with the Store still open,
	// so Close can be called again. Should the close of SQLite's last
	// connection still leave such frames, they stay in this process's
	// memory and the next Open of the same database in this process
	// recovers them.
	ErrWALRetained = errors.New("store: uncheckpointed writes remain in memory")
)
