package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/probe"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

const sqliteHeader = "SQLite format 3\x00"

// Open opens the database at path, creating it if missing, and puts it in
// WAL mode through the shim. Bad input (a directory, a file that is not
// SQLite, a read-only file or directory, a missing parent directory) is
// refused with an error before anything on the drive is modified.
func Open(path string, opts *Options) (*Store, error) { return openWith(path, opts, nil) }

// mainOpener opens a Store's mainFile.
type mainOpener func(device.FS, string) (mainFile, error)

// openWith is Open with the mainFile from newMain; nil means package
// checkpoint's two-phase one. Tests wrap it to watch the hook calls, or
// pass the in-place one.
func openWith(path string, opts *Options, newMain mainOpener) (*Store, error) {
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
	co, err := checkFilesystem(o, abs)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	if newMain == nil {
		co.Mode = o.CheckpointMode.checkpointMode()
		co.BlockSize = blockSizeFor(o, abs)
		newMain = twoPhaseWith(co)
	}

	s := &Store{path: abs, opts: o, newMain: newMain, events: &eventQueue{f: o.OnStateChange}, answer: newAnswerGate()}
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
// It also says whether checkpoints read their copies back (readBackFor),
// and whether they may grow the database in place (fusefat corrupts a
// file extended through a handle opened on it; an unknown filesystem is
// treated alike).
func checkFilesystem(o Options, path string) (checkpoint.Options, error) {
	careful := checkpoint.Options{ReadBack: checkpoint.ReadBackAlways, NoGrowInPlace: true}
	if !device.IsNative(o.FS) {
		return careful, nil
	}
	p, err := probePath(filepath.Dir(path))
	if err != nil {
		o.Logger.Warn("ejectsafe: cannot probe the filesystem", "path", path, "err", err)
		return careful, nil
	}
	ok, warnings := p.Verdict()
	if !ok && !o.AllowNetworkFS {
		return careful, fmt.Errorf("%w: %s (store.Options.AllowNetworkFS overrides this check, at the risk of a corrupt database)", ErrNetworkFS, warnings[0])
	}
	for _, w := range warnings {
		// Once per process and mount: an app opening many stores on one
		// drive is told once.
		if _, seen := warned.LoadOrStore(p.MountPoint+"\x00"+w, true); !seen {
			o.Logger.Warn("ejectsafe: "+w, "path", path, "fstype", p.FSType, "mount", p.MountPoint)
		}
	}
	return checkpoint.Options{ReadBack: readBackFor(p.Class),
		NoGrowInPlace:  p.Class == probe.Unknown || p.FSType == "fuse.fusefat",
		PatchAfterCopy: patchAfterCopyFor(p.Class, p.FSType)}, nil
}

// blockSizeFor is the checkpoint overlay's block size for the database at
// path: its page size, so that an in-place checkpoint writes its redo log
// in the page size SQLite reads it in (checkpoint.Options.BlockSize; with
// any other block size such a database checkpoints by copy). An existing
// database's header names it; a database Open creates gets
// Options.PageSize. A header SQLite would not use, or one that cannot be
// read, leaves the default: the in-place mode then finds the page size is
// not the block size and copies, which is always safe. It reads 18 bytes.
func blockSizeFor(o Options, path string) int {
	f, err := o.FS.Open(path, device.ReadOnly)
	if err == nil {
		hdr := make([]byte, 18)
		n, _ := f.ReadAt(hdr, 0)
		f.Close() // read-only
		if n == len(hdr) {
			if ps := sqlitewal.DBHeaderPageSize(hdr); sqlitewal.ValidPageSize(ps) {
				return ps
			}
			return 0
		}
		if n > 0 {
			return 0 // a header cut short: not a database SQLite made
		}
	}
	if sqlitewal.ValidPageSize(o.PageSize) {
		return o.PageSize
	}
	return 0
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
	main, err := s.newMain(fsys, s.path)
	if s.opts.ReadOnly && errors.Is(err, checkpoint.ErrRecoveryNeeded) {
		return fmt.Errorf("%w: %w; open it writable once to recover it", ErrReadOnly, err)
	}
	if err != nil {
		return err
	}
	s.state.main = main
	undo = append(undo, func() { main.Close() })
	// A new Store: writes to the in-memory WAL are welcome again. Not
	// before this point: an Open that failed earlier (the lock, the
	// volume, recovery) must leave an earlier Close's cut in place, or a
	// transaction of the closed Store could still commit into a WAL no
	// Store will checkpoint.
	walCut(s.path, false)

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
			// A checkpoint of a transaction larger than RAM keeps its
			// pages beside the log, not in memory (checkpoint/spill.go):
			// the same private directory on the host's own disk, which
			// holds the same data already.
			if m, ok := s.state.main.(checkpointer); ok {
				m.SetSpill(filepath.Dir(s.state.hl.path))
			}
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
		// A copy: an in-place commit's redo log would need the -wal's
		// name (checkpoint.Main.SetCopyOnly).
		if m, ok := s.state.main.(interface{ SetCopyOnly(bool) }); ok {
			m.SetCopyOnly(true)
			defer m.SetCopyOnly(false)
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

func isNotADB(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrNotADB
}
