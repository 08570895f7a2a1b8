package store

import (
	"context"
	"fmt"
	"github.com/ejectsafe/ejectsafe/checkpoint"
	"log/slog"
	"net/url"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/device"
)

// Defaults for the zero Options.
const (
	DefaultCheckpointIdle     = time.Second
	DefaultCheckpointInterval = 5 * time.Second
	DefaultMaxWALBytes        = 64 << 20
	DefaultRetainWALBytes     = DefaultMaxWALBytes
	DefaultBusyTimeout        = 5 * time.Second
)

// Options configure a Store. The zero value (or a nil *Options) gives the
// defaults a user of a removable drive wants: automatic checkpoints soon
// after writes pause, a 64 MiB WAL cap, the operating system's filesystem.
type Options struct {
	// FS is the filesystem the database lives on. Nil means device.OS.
	// Tests pass a faultinject.FS, or a faultinject.Faulty over
	// device.OS. A native FS (device.IsNative: device.OS or a wrapper of
	// it) gets what the OS's does: the filesystem probed, symbolic links
	// resolved, the lease in the volume's lease directory, the host log by
	// default.
	FS device.FS

	// ManualCheckpoint, when true, makes the Store checkpoint only when
	// Checkpoint or Close is called. Zero value: false, the Store
	// checkpoints by itself.
	//
	// DANGER: with ManualCheckpoint, pulling the drive or killing the
	// process loses every commit since the last Checkpoint.
	ManualCheckpoint bool

	// CheckpointIdle is how long writes must pause before an automatic
	// checkpoint. Zero means DefaultCheckpointIdle (1 s).
	CheckpointIdle time.Duration

	// CheckpointInterval bounds the time between automatic checkpoints
	// under steady writes, and so the work a pull can lose. Zero means
	// DefaultCheckpointInterval (5 s).
	CheckpointInterval time.Duration

	// CheckpointMode is how a checkpoint writes the database on the
	// drive. CheckpointAuto (the zero value) picks per checkpoint the
	// mode that should take less time on this drive, from the bytes each
	// would write and the speeds it has seen for each there (package
	// checkpoint's chooseMode). CheckpointCopy writes a copy of the whole
	// database and renames it over the database: the database file is
	// never written in place, at the cost of the whole file (and as much
	// free space) per checkpoint. CheckpointInPlace writes the changed
	// pages into the database, after a redo log of them in SQLite's own
	// WAL format (<db>-wal, removed once the pages are durable) made
	// them recoverable: about twice the changed pages per checkpoint. A
	// pull during either leaves the old or the new state, which stock
	// SQLite reads too. A checkpoint that cannot go in place (a database
	// that grows on fusefat, a page size that is not the block size)
	// copies.
	CheckpointMode CheckpointMode

	// MaxWALBytes caps the memory the WAL may hold. A commit that would
	// grow it past the cap fails with SQLite's "database or disk is full"
	// (IsWALFull reports it) and changes nothing; checkpoints rewind the
	// WAL, holding new transactions back briefly when writes come back to
	// back (gate.go). Zero means DefaultMaxWALBytes (64 MiB) with the WAL
	// in memory (Durability Checkpoint); with a host log, a third of the free
	// space of the host log's filesystem at Open (at least 64 MiB): a
	// transaction may then be far larger than RAM, and the process keeps
	// only RetainWALBytes of it resident.
	MaxWALBytes int64

	// RetainWALBytes is how much WAL memory is kept after a checkpoint for
	// the next transactions to reuse; touching fresh memory costs a page
	// fault per page, and a retained size below what the WAL reaches
	// between checkpoints costs those faults on every cycle (0.35-0.77x
	// the commit rate measured). Zero means MaxWALBytes: the memory the
	// WAL once touched, up to the cap (64 MiB by default), stays until
	// Close. A smaller value returns memory above it at each checkpoint.
	RetainWALBytes int64

	// BusyTimeout is how long a connection waits for a lock held by
	// another connection of this Store. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// AllowNetworkFS lets Open use a database on a network filesystem
	// (NFS, SMB, 9p, virtiofs, sshfs, VM shared folders). Zero value:
	// false, Open refuses with ErrNetworkFS.
	//
	// DANGER: locks and fsync are not reliable there; ejectsafe cannot
	// keep its guarantee and the database may be corrupted.
	AllowNetworkFS bool

	// Logger receives what Open finds worth knowing about the filesystem
	// (FUSE, overlay, container, VM, tmpfs). Nil means slog.Default().
	Logger *slog.Logger

	// OnEjectRequest, when set, is asked before the Store gives its
	// database up to an eject request (ejectsafe eject). A non-nil error
	// refuses; its message is shown to the person ejecting. When nil, or
	// when it returns nil, the Store checkpoints, releases its lease and
	// closes its files on the drive; its methods then return ErrEjected.
	// It is called from another goroutine; ctx ends when the person
	// ejecting stops waiting.
	OnEjectRequest func(ctx context.Context) error

	// Params are DSN parameters of github.com/mattn/go-sqlite3 that every
	// connection of the pool is opened with, for example
	// url.Values{"_foreign_keys": {"on"}, "_txlock": {"immediate"}}.
	// A PRAGMA run through DB() reaches one pooled connection only; these
	// reach all of them. _busy_timeout sets BusyTimeout. Parameters the
	// Store sets itself (_journal_mode, _locking_mode, _synchronous, vfs,
	// mode) and unknown ones are refused with ErrBadOptions.
	//
	// "_txlock": {"immediate"} makes every transaction begun with
	// DB().Begin take the write lock at once. Use it when transactions
	// read and then write: SQLite cannot wait for a deferred transaction
	// to upgrade to writing while another connection writes, and fails
	// it at once with "database is locked" (sqlite3.ErrBusy), whatever
	// the busy timeout; immediate transactions wait their turn instead.
	// That error is between connections of this Store; ErrLocked is
	// another process holding the database. Zero value: nil, mattn's
	// defaults (foreign keys off, deferred transactions).
	Params url.Values

	// ConnectHook, when set, runs on every new connection of the pool
	// after the Store's own setup and Params: register functions and
	// collations, run per-connection PRAGMAs. An error fails the
	// operation that opened the connection (Open, for the first one). A
	// hook that changes journal_mode, locking_mode, wal_autocheckpoint or
	// synchronous is refused with ErrBadOptions. Zero value: nil, no hook.
	ConnectHook func(*sqlite3.SQLiteConn) error

	// PageSize is the page size of a database Open creates: a power of
	// two from 512 to 65536. Zero means SQLite's default (4096). An
	// existing database keeps its page size (Open logs a warning when it
	// differs): a database in WAL mode cannot change it, and SQLite
	// ignores PRAGMA page_size then. Set it here, before the database is
	// created.
	PageSize int

	// ReadOnly opens an existing database for reading only, for a
	// write-protected card or a read-only mount: nothing is written to
	// the drive (no lock file, no lease, no recovery, no checkpoint) and
	// every write fails with SQLite's "attempt to write a readonly
	// database". Without a lock, another process may change the
	// database meanwhile; the Store then goes on reading the file as it
	// was at Open. A database that needs recovery (an interrupted
	// checkpoint, or a -wal or hot -journal that stock SQLite left) is
	// refused with ErrReadOnly: open it writable once to recover it.
	// Zero value: false, a writable Store.
	//
	// DANGER: a ReadOnly Store writes no lease, so ejectsafe eject cannot
	// find it or ask it to let go: close it before removing the drive.
	ReadOnly bool

	// OnStateChange, when set, is told every change of the Store's
	// condition (see Condition): the drive lost, the drive or database
	// changed, the database held by another process, reattached,
	// checkpoints failing (and attached again), ejected, closed. Calls
	// come in order from a goroutine of the Store's, never while it holds
	// a lock: the callback may call the Store. Nil: no calls; State
	// answers at any time either way.
	OnStateChange func(Event)

	// Durability says what a commit survives once it returned: an
	// application crash (HostLog), a host power cut too (HostSync), or
	// neither (Checkpoint). Zero value: DurabilityDefault, which is
	// HostLog where the platform supports a host log (Linux, macOS, the
	// BSDs), with a native FS (see FS); Checkpoint on other platforms, with
	// an FS that is not native and no HostDir, for ReadOnly, and (logged, and
	// in Recovery().Notes) when the host-log directory is refused. An
	// explicit HostLog or HostSync fails Open with ErrHostDir instead.
	// See README "What stays on the host computer".
	//
	// DANGER: at HostLog and HostSync the database's recently written
	// pages are in a file on the host's disk (readable by this user and
	// root) until the Store closes cleanly, and after a crash until the
	// next Open; Checkpoint writes nothing on the host.
	Durability Durability

	// HostDir is the directory of host logs. Empty means
	// os.UserCacheDir()/ejectsafe. Open creates it with mode 0700 and
	// refuses (ErrHostDir) one that another user owns, that others can
	// enter, or that is on a removable, network or FUSE filesystem.
	HostDir string

	// durabilityDefaulted: Durability was the zero value. Then a host-log
	// directory Open must refuse (ErrHostDir) falls back to Checkpoint,
	// logged, rather than failing Open.
	durabilityDefaulted bool

	// maxDefaulted: MaxWALBytes was zero; with a host log the cap then
	// comes from the host disk's free space (hostWALCap), and budget
	// keeps the checkpoint policy's figures (gate high-water mark,
	// pressure) at DefaultMaxWALBytes.
	maxDefaulted bool
	budget       int64
}

// CheckpointMode is Options.CheckpointMode.
type CheckpointMode int

const (
	CheckpointAuto    CheckpointMode = iota // per checkpoint, the cheaper on this drive
	CheckpointCopy                          // a copy renamed over the database
	CheckpointInPlace                       // the changed pages in place, behind a redo log
)

func (c CheckpointMode) String() string {
	switch c {
	case CheckpointAuto:
		return "auto"
	case CheckpointCopy:
		return "copy"
	case CheckpointInPlace:
		return "in-place"
	}
	return fmt.Sprintf("CheckpointMode(%d)", int(c))
}

// checkpointMode is package checkpoint's name for c.
func (c CheckpointMode) checkpointMode() checkpoint.Mode {
	switch c {
	case CheckpointCopy:
		return checkpoint.ModeCopy
	case CheckpointInPlace:
		return checkpoint.ModeInPlace
	}
	return checkpoint.ModeAuto
}

func (o Options) withDefaults() (Options, error) {
	if o.CheckpointIdle < 0 || o.CheckpointInterval < 0 || o.MaxWALBytes < 0 || o.RetainWALBytes < 0 || o.BusyTimeout < 0 {
		return o, fmt.Errorf("%w: negative duration or size", ErrBadOptions)
	}
	if o.CheckpointMode < CheckpointAuto || o.CheckpointMode > CheckpointInPlace {
		return o, fmt.Errorf("%w: %v", ErrBadOptions, o.CheckpointMode)
	}
	if err := o.checkConnect(); err != nil {
		return o, err
	}
	if o.FS == nil {
		o.FS = device.OS
	}
	switch {
	case o.Durability < DurabilityDefault || o.Durability > HostSync:
		return o, fmt.Errorf("%w: unknown durability %d", ErrBadOptions, int(o.Durability))
	case o.ReadOnly:
		o.Durability = Checkpoint // nothing is committed
	case o.Durability == DurabilityDefault && ((!device.IsNative(o.FS) && o.HostDir == "") || !hlSupported()):
		o.Durability = Checkpoint
	case o.Durability == DurabilityDefault:
		o.Durability, o.durabilityDefaulted = defaultDurability, true
	case o.Durability != Checkpoint && !hlSupported():
		return o, ErrHostLogUnsupported
	}
	if o.CheckpointIdle == 0 {
		o.CheckpointIdle = DefaultCheckpointIdle
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.MaxWALBytes == 0 {
		o.MaxWALBytes, o.maxDefaulted = DefaultMaxWALBytes, true
	}
	if o.RetainWALBytes == 0 {
		o.RetainWALBytes = o.MaxWALBytes
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
