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
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/probe"
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

	// MaxWALBytes caps the memory the WAL may hold. A commit that would
	// grow it past the cap fails with SQLite's "database or disk is full"
	// (IsWALFull reports it) and changes nothing; checkpoints rewind the
	// WAL, holding new transactions back briefly when writes come back to
	// back (gate.go). Zero means DefaultMaxWALBytes (64 MiB) with the WAL
	// in memory (Durability Checkpoint); with a host log, half the free
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

	// newMain opens the mainFile; nil means package checkpoint's two-phase
	// one. Tests wrap it to watch the hook calls.
	newMain func(device.FS, string) (mainFile, error)
}

func (o Options) withDefaults() (Options, error) {
	if o.CheckpointIdle < 0 || o.CheckpointInterval < 0 || o.MaxWALBytes < 0 || o.RetainWALBytes < 0 || o.BusyTimeout < 0 {
		return o, fmt.Errorf("%w: negative duration or size", ErrBadOptions)
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

// Stats describe a Store at one instant.
type Stats struct {
	Generation             uint64        // the last durable checkpoint's generation in the journal
	WALBytes               int64         // bytes of WAL held in memory, checkpointed or not
	DirtyBytes             int64         // bytes of WAL frames not yet checkpointed
	WALAllocated           int64         // bytes of memory allocated for the WAL
	Checkpoints            int64         // checkpoints completed
	CheckpointFailures     int64         // checkpoints that failed
	LastCheckpoint         time.Time     // when the last successful checkpoint ended
	LastCheckpointDuration time.Duration // how long it took
	LastCheckpointError    error         // the last failure's error, nil after a success
	LeaseError             error         // why the control endpoint could not start; nil if it runs
	Rewinds                int64         // WAL rewinds through the gate (gate.go)
	RewindsMissed          int64         // rewinds that could not get in (a transaction held open)
	LongestGateHold        time.Duration // the longest time new transactions waited for a rewind
	LongestGateWait        time.Duration // the longest one transaction waited at the gate, to the millisecond (gate.go)
}

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	path  string
	opts  Options
	state *dbState
	lock  io.Closer
	db    *sql.DB
	conn  *connector
	pin   *sql.Conn // keeps one connection open, so SQLite's close-time checkpoint runs only in Close

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
	leaseErr error         // why not, for Stats
	answer   *answerGate   // open once an eject's answer is delivered (answer.go)

	rewindMissed  time.Time   // when a rewind last could not get in; zero after one did (gate.go)
	checkpointing atomic.Bool // a checkpoint runs (set under mu): with ManualCheckpoint, the gate's high-water mark is armed

	stop chan struct{}
	done chan struct{}
}

const sqliteHeader = "SQLite format 3\x00"

// Open opens the database at path, creating it if missing, and puts it in
// WAL mode through the shim. Bad input (a directory, a file that is not
// SQLite, a read-only file or directory, a missing parent directory) is
// refused with an error before anything on the drive is modified.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("store: open %q: %w: empty path or NUL byte", path, ErrBadOptions)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := registerOnce(); err != nil {
		return nil, err
	}
	// Every name is derived from the real path: symlinks resolved.
	if abs, err = resolvePath(o.FS, abs); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if o.ReadOnly {
		err = checkPathReadOnly(o.FS, abs)
	} else if err = checkLinks(o.FS, abs); err == nil {
		err = checkPath(o.FS, abs)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	readBack, err := checkFilesystem(o, abs)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if o.newMain == nil {
		o.newMain = twoPhaseWith(readBack)
	}

	s := &Store{path: abs, opts: o, events: &eventQueue{f: o.OnStateChange}, answer: newAnswerGate()}
	s.cond = State{Condition: Attached, Since: time.Now()}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if !o.ManualCheckpoint && !o.ReadOnly {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		setGate(s.path, -1, s.highWater())
		go s.autoCheckpoint()
	}
	return s, nil
}

// checkPath refuses bad input without modifying anything.
func checkPath(fsys device.FS, path string) error {
	dir := filepath.Dir(path)
	dfi, err := fsys.Stat(dir)
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	if !dfi.IsDir() {
		return fmt.Errorf("parent %s: %w", dir, syscall.ENOTDIR)
	}
	if dfi.Mode().Perm()&0o222 == 0 {
		return fmt.Errorf("directory %s: %w", dir, ErrReadOnly)
	}
	fi, err := fsys.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // Open creates it
	}
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		return ErrIsDirectory
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: not a regular file (%s)", ErrNotDatabase, fi.Mode().Type())
	case fi.Mode().Perm()&0o222 == 0:
		return fmt.Errorf("file mode %s: %w", fi.Mode().Perm(), ErrReadOnly)
	case fi.Size() == 0:
		return nil // SQLite treats an empty file as an empty database
	}
	return checkHeader(fsys, path)
}

// checkHeader refuses a non-empty file whose first bytes are not SQLite's
// header. It only reads.
func checkHeader(fsys device.FS, path string) error {
	f, err := fsys.Open(path, device.ReadOnly)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, len(sqliteHeader))
	if n, err := f.ReadAt(hdr, 0); n < len(hdr) || string(hdr) != sqliteHeader {
		if err != nil && err != io.EOF {
			return err
		}
		return fmt.Errorf("%w: bad header", ErrNotDatabase)
	}
	return nil
}

// probePath is probe.Path; tests replace it to play other filesystems.
var probePath = probe.Path

// checkFilesystem probes the filesystem holding path when o.FS is native: a network
// filesystem is refused unless AllowNetworkFS; other caveats are logged.
// It also says whether checkpoints read their copies back (readBackFor).
func checkFilesystem(o Options, path string) (checkpoint.ReadBack, error) {
	if !device.IsNative(o.FS) {
		return checkpoint.ReadBackAlways, nil
	}
	p, err := probePath(filepath.Dir(path))
	if err != nil {
		o.Logger.Warn("ejectsafe: cannot probe the filesystem", "path", path, "err", err)
		return checkpoint.ReadBackAlways, nil
	}
	ok, warnings := p.Verdict()
	if !ok && !o.AllowNetworkFS {
		return 0, fmt.Errorf("%w: %s (store.Options.AllowNetworkFS overrides this check, at the risk of a corrupt database)", ErrNetworkFS, warnings[0])
	}
	for _, w := range warnings {
		// Once per process and mount: an app opening many stores on one
		// drive is told once.
		if _, seen := warned.LoadOrStore(p.MountPoint+"\x00"+w, true); !seen {
			o.Logger.Warn("ejectsafe: "+w, "path", path, "fstype", p.FSType, "mount", p.MountPoint)
		}
	}
	return readBackFor(p.Class), nil
}

// warned holds the filesystem warnings already logged.
var warned sync.Map

// open takes the process lock, registers the database with the shim and
// opens the first connection. On error it undoes what it did.
func (s *Store) open() (err error) {
	fsys := s.opts.FS
	// In the shim's registry (ErrAlreadyOpen when another Store of this
	// process has the path); main is set before SQLite sees it.
	s.state = &dbState{path: s.path, fs: fsys}
	if err := s.state.register(s.opts.MaxWALBytes, s.opts.RetainWALBytes); err != nil {
		return err
	}
	var undo []func()
	defer func() {
		if err != nil {
			// Closing the connections below runs SQLite's close-time
			// checkpoint: a failed Open writes nothing to the drive (a
			// refused -wal must not be folded in on the way out).
			s.state.abandoned.Store(true)
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			s.state.unregister()
		}
	}()

	if s.opts.ReadOnly {
		// Nothing is written: no lock file, no recovery.
		if err := checkReadOnlyState(fsys, s.path); err != nil {
			return err
		}
		s.recovery = RecoveryReport{Action: "skipped", text: "read-only: recovery not run"}
	} else {
		// Where the lease will live, decided before anything is
		// created: a volume lease directory this process cannot write
		// (another user's) or that is a link is found now, and the
		// lease goes next to the database (lease.PlaceFor).
		s.lease = lease.PlaceFor(fsys, s.path)

		// One process per database: an OS lock, taken before the first
		// byte is written anywhere.
		s.lock, err = fsys.Lock(s.path + lockSuffix)
		if err != nil {
			if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("%w: %w", ErrReadOnly, err)
			}
			return err
		}
		undo = append(undo, func() { s.lock.Close() })

		// The volume the Store owns: every later write is made only
		// after proving the drive at the path is still this one
		// (identity.go).
		if s.vol, err = device.VolumeOf(fsys, filepath.Dir(s.path), true); err != nil {
			return err
		}

		// Recovery before anything reads the database: roll an
		// interrupted checkpoint back or forward and remove leftovers.
		rep, err := checkpoint.Recover(fsys, s.path)
		if err != nil {
			return err
		}
		s.recovery = newRecoveryReport(rep)
	}
	main, err := s.opts.newMain(fsys, s.path)
	if s.opts.ReadOnly && errors.Is(err, checkpoint.ErrRecoveryNeeded) {
		return fmt.Errorf("%w: %w; open it writable once to recover it", ErrReadOnly, err)
	}
	if err != nil {
		return err
	}
	s.state.main = main
	undo = append(undo, func() { main.Close() })

	if err := checkStockJournal(fsys, s.path); err != nil {
		return err
	}
	// The host log (hostlog.go): a log an earlier process left is proven
	// this database's and replayed, or set aside; then the WAL lives in it.
	var replay int64
	if s.opts.Durability == HostLog || s.opts.Durability == HostSync {
		s.state.hl, replay, err = s.hostLogOpen(&s.recovery)
		switch {
		case err != nil && s.opts.durabilityDefaulted && errors.Is(err, ErrHostDir):
			s.opts.Logger.Warn("ejectsafe: no host log: commits since the last checkpoint are lost if the application crashes (Durability Checkpoint)", "db", s.path, "err", err)
			s.recovery.Notes = append(s.recovery.Notes, fmt.Sprintf("no host log, durability checkpoint: %v", err))
			s.opts.Durability = Checkpoint
		case err != nil:
			return err
		default:
			// Only a log this Open created is removed: a log replayed or
			// reused (a WAL retained in memory from a failed Close, step
			// 0) may hold acknowledged commits.
			fresh := replay == 0 && s.state.hl != nil && s.state.hl.fresh
			undo = append(undo, func() {
				walDiscard(s.path)
				s.state.hl.close()
				if fresh { // ours, and nothing was committed into it
					os.Remove(s.state.hl.path)
				}
			})
			s.hostWALCap()
		}
	}
	stockWAL, err := loadStockWAL(fsys, s.path)
	if err != nil {
		return err
	}
	// If Open fails from here on, drop what was loaded: it is still on
	// the drive, untouched.
	undo = append(undo, func() { walDiscard(s.path) })

	s.conn = &connector{dsn: s.dsn(), path: s.path, drv: &sqlite3.SQLiteDriver{ConnectHook: s.connect}, answer: s.answer}
	s.db = sql.OpenDB(s.conn)
	undo = append(undo, func() { s.db.Close() })
	s.pin, err = s.db.Conn(context.Background())
	if err != nil {
		if isNotADB(err) {
			return fmt.Errorf("%w: %w", ErrNotDatabase, err)
		}
		return s.cause(err)
	}
	undo = append(undo, func() { s.pin.Close() })
	// The checkpoints run on the pinned connection: it never waits at the
	// gate, whose rewind it runs; everyone else waits at most BusyTimeout
	// (gate.go).
	if !s.opts.ReadOnly {
		if err := s.pin.Raw(func(dc any) error {
			return dc.(*sqlite3.SQLiteConn).SetFileControlInt("main", fcntlNoGate, 1)
		}); err != nil {
			return fmt.Errorf("exempt the checkpoint's connection from the gate: %w", err)
		}
		gateLimit(s.path, s.opts.BusyTimeout)
	}
	if err := s.openWAL(context.Background()); err != nil {
		return err
	}
	s.notePageSize(context.Background())

	// A WAL that stock SQLite left is folded in before anything else can
	// commit: checkpoint it through the mainFile, and only once that is
	// durable remove the stock files. A hot rollback journal needs no
	// such step: SQLite rolls it back through the shim on the first read
	// (done above) and syncs the database before deleting the journal.
	// A replayed host log the same way: its log is then all on the
	// drive, and stays as the WAL from here on.
	if replay > 0 && !stockWAL {
		if err := s.checkpointLocked(context.Background()); err != nil {
			return fmt.Errorf("replay the host log: %w", err)
		}
	}
	if stockWAL {
		// Loaded, not yet written anywhere: a -wal whose frames do not fit
		// this database shows here, and is refused with nothing modified.
		res, err := quickCheck(context.Background(), s.pin)
		if isCorrupt(err) {
			res, err = err.Error(), nil
		}
		if err != nil {
			return s.cause(err)
		}
		if res != "ok" {
			// The database alone tells which file is at fault.
			wal := s.path + walSuffix
			alone, checked, err := checkAlone(fsys, s.path)
			switch {
			case err != nil:
				return fmt.Errorf("%w: with %s folded in, quick_check says: %s; checking the database alone: %w; nothing was modified", ErrForeignLog, wal, res, err)
			case !checked:
				return fmt.Errorf("%w: with %s folded in, quick_check says: %s (the database alone is too large to check here: it may be the one damaged); nothing was modified; %s", ErrForeignLog, wal, res, keepWALData)
			case alone != "ok":
				return fmt.Errorf("%w: %s: quick_check on it alone says: %s; its -wal was not folded in, nothing was modified; %s", ErrDamaged, s.path, alone, keepWALData)
			default:
				return fmt.Errorf("%w: the database alone passes quick_check, with %s folded in it says: %s; nothing was modified; %s", ErrForeignLog, wal, res, keepWALData)
			}
		}
		if err := s.checkpointLocked(context.Background()); err != nil {
			return fmt.Errorf("fold in the WAL stock SQLite left: %w", err)
		}
		if err := removeStockFiles(fsys, s.path); err != nil {
			return err
		}
	}
	if err := s.takeLease(); err != nil {
		return err
	}
	s.sweepDead()
	return nil
}

// takeLease starts the control endpoint and writes this Store's lease,
// replacing a stale one: the OS lock, taken first, proves no live holder
// on this host has the database. A control endpoint that cannot start is
// not fatal: the lease then names none, and an eject cannot ask this
// process to release (Stats().LeaseError says why).
func (s *Store) takeLease() error {
	if s.opts.ReadOnly {
		return nil // a lease is a file on the drive
	}
	me, err := lease.Me()
	if err != nil {
		return fmt.Errorf("lease: who am I: %w", err)
	}
	if s.lease.Path == "" {
		s.lease = lease.PlaceFor(s.opts.FS, s.path)
	}
	if s.endpoint, s.leaseErr = lease.Listen(endpointHandler{s}); s.leaseErr != nil {
		s.endpoint = nil
	}
	if err := s.writeLease(me, lease.StateOpen); err != nil {
		if s.endpoint != nil {
			s.endpoint.Close()
		}
		return err
	}
	return nil
}

func (s *Store) writeLease(me lease.Self, state string) error {
	l := lease.Lease{
		Version: lease.Version, DB: s.lease.DB, PID: me.PID, Start: me.Start,
		Host: me.Host, Boot: me.Boot, State: state, Since: time.Now().UTC(),
	}
	if s.endpoint != nil {
		l.Endpoint = s.endpoint.Endpoint()
	}
	return lease.Write(s.opts.FS, s.lease.Path, l)
}

// endpointHandler answers the control endpoint for a Store.
type endpointHandler struct{ s *Store }

func (h endpointHandler) Status() lease.Status {
	st := h.s.Stats()
	state := lease.StateOpen
	if h.s.isClosed() {
		state = "closed"
	}
	h.s.smu.Lock()
	vol := h.s.vol
	h.s.smu.Unlock()
	return lease.Status{
		DB: h.s.path, State: state, DirtyBytes: st.DirtyBytes, WALBytes: st.WALBytes,
		Generation: st.Generation, LastCheckpoint: st.LastCheckpoint,
		VolumeDev: vol.Dev, VolumeMount: vol.Mount, VolumeSerial: vol.Serial,
	}
}

// Eject asks the application (Options.OnEjectRequest), then checkpoints and
// releases the database; the Store's methods return ErrEjected afterwards.
func (h endpointHandler) Eject(ctx context.Context) error {
	s := h.s
	if f := s.opts.OnEjectRequest; f != nil {
		if err := f(ctx); err != nil {
			return &lease.RefusedError{Reason: err.Error()}
		}
	}
	if me, err := lease.Me(); err == nil {
		s.writeLease(me, lease.StateCheckpointing) // best effort: it is informative
	}
	if err := s.shutdown(ctx, true); err != nil {
		if me, merr := lease.Me(); merr == nil && !s.isClosed() {
			s.writeLease(me, lease.StateOpen)
		}
		return err
	}
	return nil
}

func (s *Store) isClosed() bool {
	c := s.State().Condition
	return c == Closed || c == Ejected
}

func isNotADB(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrNotADB
}

// connector opens connections with this Store's DSN and setup. After an
// eject it opens none: the *sql.DB stays open so that its calls fail
// with ErrEjected, as the README promises, rather than with database/sql's
// "database is closed".
type connector struct {
	dsn     string
	drv     *sqlite3.SQLiteDriver
	ejected atomic.Bool
	closing atomic.Bool // Close began: no new connection
	path    string
	answer  *answerGate
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	if c.ejected.Load() {
		c.answer.wait()
		return nil, fmt.Errorf("store: %s: %w", c.path, ErrEjected)
	}
	if c.closing.Load() {
		return nil, fmt.Errorf("store: %s: %w", c.path, ErrClosed)
	}
	return c.drv.Open(c.dsn)
}
func (c *connector) Driver() driver.Driver { return c.drv }

// setupConn runs on every new connection of a writable Store. mattn applies its own pragmas
// first (locking_mode NORMAL, synchronous NORMAL); with the shim's xShm
// methods in heap memory, NORMAL locking mode can enter WAL.
func setupConn(c *sqlite3.SQLiteConn, retainWAL int64, pageSize, syncLevel int) error {
	if pageSize != 0 {
		// Before the database enters WAL mode, which writes its first
		// page; a no-op on a database that has one.
		if _, err := c.Exec(fmt.Sprintf("PRAGMA page_size=%d", pageSize), nil); err != nil {
			return err
		}
	}
	mode, err := pragma(c, "PRAGMA journal_mode=WAL")
	if err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("store: journal_mode=WAL answered %q", mode)
	}
	// synchronous=NORMAL: the WAL is memory, so the only syncs are the
	// checkpoint's, which SQLite issues at NORMAL and above. Never OFF:
	// then no xSync ends a checkpoint.
	// At HostSync, FULL: SQLite then syncs the WAL (the host log) at
	// every commit.
	if _, err := c.Exec(fmt.Sprintf("PRAGMA synchronous=%d; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=%d", syncLevel, retainWAL), nil); err != nil {
		return err
	}
	if sync, err := pragma(c, "PRAGMA synchronous"); err != nil || sync != fmt.Sprint(syncLevel) {
		return fmt.Errorf("store: synchronous is %q, want %d: %v", sync, syncLevel, err)
	}
	return nil
}

func pragma(c *sqlite3.SQLiteConn, q string) (string, error) {
	rows, err := c.Query(q, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	v := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(v); err != nil {
		return "", fmt.Errorf("store: %s: %w", q, err)
	}
	return fmt.Sprint(v[0]), nil
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
		s.checkpointing.Store(true)
		s.setHighWater()
		defer func() {
			s.checkpointing.Store(false)
			s.setHighWater()
		}()
	} else {
		defer s.setHighWater() // off while checkpoints fail (gate.go)
	}
	start := time.Now()
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
	if p, ok := s.state.main.(interface{ Prepare() error }); ok && s.pending() {
		if err := p.Prepare(); err != nil {
			return s.failed(fmt.Errorf("%w: %w", ErrCheckpoint, err))
		}
	}
	err := s.backfill(ctx)
	if err != nil {
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
	m, ok := s.state.main.(*checkpoint.Main)
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

// Stats reports the Store's counters. It never waits for a checkpoint.
func (s *Store) Stats() Stats {
	s.smu.Lock()
	st := s.stats
	s.smu.Unlock()
	if w, ok := walStats(s.path); ok {
		st.WALBytes, st.DirtyBytes, st.WALAllocated = int64(w.size), int64(w.dirty), int64(w.allocated)
	}
	if m, ok := s.state.main.(*checkpoint.Main); ok {
		st.Generation = m.Stats().Generation
	}
	st.LeaseError = s.leaseErr
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
