// Package checkpoint keeps a database file on a removable drive safe
// across a pull: a commit either replaces the file by a copy (copy mode,
// below) or writes the changed pages in place only once a redo log in
// SQLite's WAL format made them recoverable (inplace.go); Options.Mode
// chooses, ModeAuto per commit. It implements the store's MainFile
// two-phase (Main) and the recovery that runs before the next open
// (Recover).
//
// # The protocol
//
// A Main serves the database as a durable base file, opened read-only,
// under an in-memory overlay of every write since the last commit. Commit
// makes the overlay durable in one generation G, in copy mode by these
// steps (commit()
// in commit.go carries the same numbers, one method of attempt each; the
// invariants are named as in docs/ARCHITECTURE.md):
//
//  1. if a commit found the base changed behind the store, read it again
//     and refuse while it still is (a copy would record someone else's
//     bytes as ours);
//  2. make the journal appendable, with room for three records: created
//     on the first commit, replaced whole after a failed write or when its
//     free slots ran out;
//  3. check the free space, then write the base with the overlay patched
//     in to TempName(db, G) through device's durable-write module, in one
//     pass in order (fusefat corrupts files written otherwise),
//     checksumming the bytes as they are written, or, once the base's
//     checksum is known, folding the changes into it without reading the
//     unchanged bytes (copy.go);
//  4. fsync the copy and close it: Ready must never claim data that may
//     not be there;
//  5. unless Options.ReadBack says not to, read the copy back through a
//     new handle: its checksum must be that of the bytes written, else the
//     commit fails with ErrDriveCorrupted;
//  6. append Began{G, base} and Ready{G, copy} to the journal and fsync
//     it: the rename must only happen once recovery can tell the copy is
//     complete (invariant journal-ahead);
//  7. move reads to the verified copy and close the old base (libfuse
//     hides a file renamed over while open);
//  8. rename the copy over the database and fsync the directory: the
//     commit point; only now does the new state survive a pull
//     (invariant replace-by-rename);
//  9. append Done{G} and fsync, so that after Commit returns nothing of
//     the checkpoint is left for the kernel to write later (invariant
//     quiet-between-checkpoints);
//  10. reopen the database read-only as the new base, drop the overlay.
//
// A failure before step 8 discards the copy and keeps the overlay: the
// database on the drive is untouched and reads are unchanged
// (invariant fsync-fails-the-checkpoint). A failure of the rename or of
// the directory fsync leaves the name undecided: the
// Main keeps serving the same bytes and the next Commit settles the name
// by checksum before anything else (ErrUnsure). A failed journal write is
// never fsynced again: the next commit replaces the journal whole, as it
// does when the journal's free slots run out (Options.JournalLimit).
// Recover decides
// after a crash by the journal and by checksums; see Recover.
//
// Began is written with Ready rather than before the copy: a copy without
// a journal record is a leftover that recovery removes, exactly as one
// with only a Began would be, so an earlier Began would only cost an
// fsync and leave the journal open to a torn write for the whole copy.
//
// Prepare computes the base's checksum ahead of time when it is not known
// yet; it writes nothing (see Prepare for why).
package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
)

// Default option values.
const (
	DefaultBlockSize    = 4096
	DefaultJournalLimit = 64 * journal.SlotSize
)

// Options configures a Main. The zero value is the recommended
// configuration.
type Options struct {
	// BlockSize is the granularity of the in-memory overlay, in bytes.
	// Writes of any offset and length are correct; writes that are not
	// whole blocks are merged with the current content first. Zero means
	// DefaultBlockSize, SQLite's default page size.
	BlockSize int
	// JournalLimit is the size of the journal file, in bytes: it is
	// created whole at this size (rounded down to whole slots, and at
	// least large enough for the records it starts with and one more
	// checkpoint), its free slots are filled in place, and once too few
	// are left for a checkpoint the next commit replaces it with a new
	// journal holding only the last checkpoint. The journal never grows:
	// fusefat corrupts files extended after they were reopened. Zero
	// means DefaultJournalLimit (256 KiB, 64 slots: about 20
	// checkpoints, as every record fills a 4 KiB slot and a checkpoint
	// takes three).
	JournalLimit int64
	// ReadBack says whether Commit reads each copy back, through a new
	// handle, and compares its checksum with that of the bytes it wrote
	// (ErrDriveCorrupted on a mismatch, before anything claims the copy).
	// The zero value, ReadBackAlways, is the safe choice when nothing is
	// known of the filesystem.
	ReadBack ReadBack
	// Mode is how commits write to the drive: ModeCopy (the zero value)
	// copies the whole database and renames the copy over it;
	// ModeInPlace writes the changed pages in place behind a redo log in
	// SQLite's WAL format (inplace.go); ModeAuto picks per commit
	// (chooseMode).
	Mode Mode
	// NoGrowInPlace: a commit that grows the database copies even in
	// ModeInPlace. For filesystems that corrupt a file extended through
	// a handle opened on it (fusefat).
	NoGrowInPlace bool
	// PatchAfterCopy lets a copy be written as the base copied whole (by
	// the kernel, copy_file_range) and then the rewritten blocks over it,
	// instead of strictly in order with each byte written once. Only for
	// filesystems that keep a file's bytes whatever the order of writes:
	// kernel filesystems, never a FUSE driver (fusefat corrupts files
	// written out of order). False: in order.
	PatchAfterCopy bool
	// SpillDir, when set, is a directory on the host's own disk where an
	// overlay larger than SpillAbove keeps further blocks (spill.go):
	// the checkpoint of a transaction larger than RAM then does not hold
	// its pages in memory. Empty: the overlay is all in memory.
	SpillDir string
	// SpillAbove is the overlay's memory, in bytes, past which blocks
	// spill. Zero means DefaultSpillAbove.
	SpillAbove int64
}

// ReadBack is what Commit does to check a copy it wrote.
type ReadBack int

const (
	// ReadBackAlways reads the whole copy back after its fsync. Through a
	// FUSE driver the read asks the daemon again, which is what catches a
	// driver that stores other bytes than it was given (fusefat). On a
	// kernel filesystem the read is served from the page cache the write
	// just filled: it checks the kernel's memory, not the drive.
	ReadBackAlways ReadBack = iota
	// ReadBackNever records the checksum the copy must have (computed in
	// the write pass, or folded from the base's: copy.go), without reading
	// the copy: for filesystems where
	// the read-back proves nothing (kernel filesystems). Recovery still
	// checks every copy by that checksum before it trusts it.
	ReadBackNever
)

// Stats describes a Main's commits.
type Stats struct {
	Generation   uint64        // the last durable generation: Done in the journal, 0 if none
	Commits      int64         // commits that wrote a generation, in this Main
	Failures     int64         // commits that failed
	Rewrites     int64         // journal rewrites (creation, compaction, after a failure)
	Folded       int64         // commits whose copy's checksum was folded from the base's, not read (copy.go)
	LastCommit   time.Time     // when the last successful commit ended
	LastDuration time.Duration // how long it took
	LastBytes    int64         // the size of the database it wrote
	LastErr      error         // the error of the last failed commit
	Overlay      int64         // bytes of writes held in memory or spilled, not yet committed
	Spilled      int64         // of Overlay, bytes in the spill file (Options.SpillDir)
	SpillErr     error         // the last spill's failure (the blocks stayed in memory), nil once a spill succeeds
	SpillErrs    int64         // spills that failed
	Unsure       bool          // a rename's or an in-place write's outcome is unknown until the next Commit
	InPlace      int64         // commits written in place (ModeInPlace, or ModeAuto's pick)
	LastMode     Mode          // how the last successful commit wrote: ModeCopy or ModeInPlace
	LastWritten  int64         // bytes the last successful commit wrote to the drive (copy, or log and pages), journal aside
}

// Main is the main database file of one store, served from a read-only
// base file on the drive under an in-memory overlay, and committed by
// replacing the base. It satisfies store.MainFile. ReadAt and Size are
// safe to call concurrently with every method; WriteAt and Truncate are
// serialized by the caller (SQLite's locks) and may run during Commit.
//
// Lock order: cmu, then mu, then smu; wmu, then mu. mu and smu are
// leaves (nothing is locked while either is held, and mu is never held
// across I/O); cmu and wmu are never held together, so that WriteAt runs
// during a Commit's long copy. fmu is a leaf too, taken under wmu
// (takeBlock) or cmu (recycle), never with mu held.
type Main struct {
	fsys device.FS
	opts Options
	p    paths
	bs   int64
	perm os.FileMode // the database's permission bits, given to copies

	// wmu serializes WriteAt and Truncate, which read the current view of
	// a partly written block before replacing it.
	wmu sync.Mutex

	// fmu guards free: blocks of committed overlays, kept for the next
	// writes (takeBlock, recycle).
	fmu  sync.Mutex
	free [][]byte

	// mu guards the view: base, dirty, pending, size, closed. It is never
	// held across I/O: readers take a reference to the base and read it
	// after unlocking.
	mu      sync.RWMutex
	closed  bool
	base    *baseRef // the committed file; its content never changes
	sp      *spill   // the spill file every spilled block is in; nil if none (spill.go)
	dirty   *level   // writes since the last freeze
	pending *level   // writes being committed, or whose commit is unsure; nil otherwise
	size    int64    // the logical size

	// cmu serializes Commit, Prepare and Close and guards the fields below.
	cmu      sync.Mutex
	jf       jfile
	disk     diskState // what the database name holds durably
	lastDone []journal.Record
	nextGen  uint64
	unsure   *unsure
	inplace  *inPlace // an in-place commit that failed after its log was made; settled first
	rates    [2]rate  // write speeds observed here: copy, in place (chooseMode)
	freeSeen int64    // free space pickMode measured for the commit in progress, or -1 (checkFree)
	copyOnly bool     // commits copy whatever the mode (SetCopyOnly)
	stale    bool     // the base handle predates the last commit (its reopen failed)
	hint     atomic.Int64
	buf      []byte
	sig      fileSig // the database's stat after the last commit (Prove)
	// baseChanged: a commit found the base's bytes no longer those of
	// its recorded checksum (checkBase). Commits refuse, writing nothing,
	// until the base reads as recorded again.
	baseChanged error
	// noKernelCopy: copy_file_range was refused between the base and a
	// copy (copyKernel): folded copies go through user space.
	noKernelCopy bool
	ready        func(journal.Record) error // SetBeforeReady

	smu      sync.Mutex
	stats    Stats
	firstErr error // the first error of closing a retired base, for Close
}

// diskState is what the database name holds on the drive.
type diskState struct {
	size  int64
	sum   uint64
	known bool // sum is known; otherwise the next commit computes it
	// claimed: sum is what the journal's last Done says of a file of
	// this size, not yet computed over the file. Good enough to name the
	// database (Identity), never to vouch for it in a Began record: a
	// stock tool may have rewritten it in place since. The next commit
	// computes it over the base it copies.
	claimed bool
}

// baseRef is a counted reference to a base file, so that readers can use
// it without holding mu while a commit swaps it out: the owner's reference
// is dropped at the swap and the file closes when the last reader is done.
type baseRef struct {
	f    device.File // nil when there is no database file (empty)
	size int64
	// sum and summed are read and written only under cmu (by commits).
	sum    uint64 // the file's checksum, as recorded (journal) or written; valid when summed
	summed bool   // sum is known: the next commit folds its changes into it (copy.go)
	refs   atomic.Int64
	closed chan struct{} // closed once the last reference is released
	// gone: the file is on a mount that died (Reattach): its close error
	// says nothing about the database and is not reported.
	gone atomic.Bool
}

func newBaseRef(f device.File, size int64) *baseRef {
	r := &baseRef{f: f, size: size, closed: make(chan struct{})}
	r.refs.Store(1)
	return r
}

// newSummedBaseRef is newBaseRef for a file whose checksum is sum.
func newSummedBaseRef(f device.File, size int64, sum uint64) *baseRef {
	r := newBaseRef(f, size)
	r.sum, r.summed = sum, true
	return r
}

func (m *Main) releaseBase(r *baseRef) {
	if r.refs.Add(-1) != 0 {
		return
	}
	defer close(r.closed)
	if r.f != nil {
		if err := r.f.Close(); err != nil && !r.gone.Load() {
			m.smu.Lock()
			if m.firstErr == nil {
				m.firstErr = err
			}
			m.smu.Unlock()
		}
	}
}

// Open opens the main file of the database at dbPath on fsys. Recover
// must have run first: Open fails with ErrRecoveryNeeded if the journal
// shows a checkpoint in flight or damage. A missing database is the empty
// database. Open reads the journal but not the database: its cost does
// not grow with the database.
func Open(fsys device.FS, dbPath string, opts Options) (*Main, error) {
	p := newPaths(dbPath)
	if opts.BlockSize <= 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.JournalLimit <= 0 {
		opts.JournalLimit = DefaultJournalLimit
	}
	opts.JournalLimit = min(opts.JournalLimit, MaxJournalSize)
	fail := func(err error) (*Main, error) { return nil, fmt.Errorf("checkpoint open %s: %w", p.db, err) }

	// The journal says which generation is next and, when its last
	// record is Done for a file of the database's size, the database's
	// checksum, which the next Began needs.
	data, jexists, err := readJournal(fsys, p.journal)
	if err != nil {
		return fail(err)
	}
	var j journal.Journal
	if jexists {
		if j, err = journal.Decode(data); err != nil {
			return fail(fmt.Errorf("%w: journal %s: %w", ErrRecoveryNeeded, p.journal, err))
		}
		if why := cleanJournal(j, len(data)); why != "" {
			return fail(fmt.Errorf("%w: journal %s: %s", ErrRecoveryNeeded, p.journal, why))
		}
	}
	next := j.NextGen()
	if next == 0 {
		return fail(fmt.Errorf("%w: journal %s: generations exhausted", ErrJournal, p.journal))
	}

	m := &Main{fsys: fsys, opts: opts, p: p, bs: int64(opts.BlockSize), perm: 0o644, freeSeen: -1,
		dirty: newLevel(), nextGen: next}
	f, err := fsys.Open(p.db, device.ReadOnly)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.base = newSummedBaseRef(nil, 0, emptySum)
		m.disk = diskState{size: 0, sum: emptySum, known: true}
	case err != nil:
		return fail(err)
	default:
		size, err := f.Size()
		if err == nil {
			var fi os.FileInfo
			if fi, err = fsys.Stat(p.db); err == nil {
				m.perm = fi.Mode().Perm()
			}
		}
		if err != nil {
			f.Close() // read-only
			return fail(err)
		}
		m.base = newBaseRef(f, size)
		m.disk = diskState{size: size}
	}
	m.size = m.base.size
	// The last done checkpoint, also when one after it was rolled back
	// (Aborted: the database is that base again). An in-place commit
	// records its Intent before its log, so a crash often leaves one.
	if done, ok := lastDoneOf(j); ok {
		m.lastDone = done
		m.stats.Generation = done[2].Gen
		if f != nil && done[2].Size == m.disk.size {
			// Claimed, not proven: the first commit hashes the base it
			// copies (Began must name the true base) and folds only after.
			m.disk.sum, m.disk.known, m.disk.claimed = done[2].Sum, true, true
		}
	}
	m.jf = jfile{fsys: fsys, p: p, perm: m.perm, j: j, exists: jexists}
	m.noteSig()
	return m, nil
}

// Size returns the logical size of the database.
func (m *Main) Size() (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.size, nil
}

// Sync is SQLite's xSync: the end of a checkpoint or of a rollback-journal
// transaction. It commits.
func (m *Main) Sync() error { return m.Commit() }

// CheckpointStart marks the start of a SQLite checkpoint. It prepares the
// copy if the store has not already done so; the error is reported but
// changes nothing (the commit will copy the base itself).
func (m *Main) CheckpointStart() error { return m.Prepare() }

// CheckpointDone marks the end of a SQLite checkpoint's backfill. The
// commit follows with Sync or the store's Commit.
func (m *Main) CheckpointDone() error { return nil }

// SizeHint records the size SQLite expects the file to grow to; the free
// space check of the next commit asks for at least that much.
func (m *Main) SizeHint(size int64) error {
	m.hint.Store(size)
	return nil
}

// Stats returns the commit statistics.
func (m *Main) Stats() Stats {
	m.mu.RLock()
	spilled := m.spilledBlocks() * m.bs
	overlay := m.memBlocks()*m.bs + spilled
	m.mu.RUnlock()
	m.smu.Lock()
	defer m.smu.Unlock()
	s := m.stats
	s.Overlay, s.Spilled = overlay, spilled
	return s
}

// Close releases the files. It does not commit: writes not committed are
// dropped (the store commits first). A copy that Prepare made and no
// commit used is removed. If a commit's outcome is unsure, Recover
// resolves it at the next open. Close keeps the first error.
func (m *Main) Close() error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	base := m.base
	m.dirty, m.pending = newLevel(), nil
	sp := m.retireSpillLocked(true)
	m.mu.Unlock()
	if sp != nil {
		sp.release() // closes now, or when the last reader is done
	}
	m.fmu.Lock()
	m.free = nil // a closed Main keeps no blocks for writes it will never take
	m.fmu.Unlock()

	err := m.jf.close()
	m.releaseBase(base) // closes now, or when the last reader is done
	m.smu.Lock()
	if err == nil {
		err = m.firstErr
	}
	m.smu.Unlock()
	if err != nil {
		return fmt.Errorf("checkpoint close %s: %w", m.p.db, err)
	}
	return nil
}

func (m *Main) isClosed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.closed
}

// newLevel returns an empty overlay level.
func newLevel() *level {
	return &level{blocks: map[int64][]byte{}, spilled: map[int64]int64{}, cut: math.MaxInt64}
}

// SetBeforeReady sets a function each commit calls with its Ready record
// (the generation, size and checksum the database will have) before the
// record is written, so before any byte of that generation reaches the
// drive under the database's name; an error aborts the commit. The store
// records it in its host log: a crash with that commit in flight leaves
// a log that proves the generation on the drive its own. Call it before
// the first commit (it is read under the commit lock).
func (m *Main) SetBeforeReady(f func(journal.Record) error) {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	m.ready = f
}

// SetSpill sets Options.SpillDir after Open: the store learns where its
// host log lives only once the database is open. Blocks written from
// then on may spill; "" stops spilling (blocks spilled stay readable).
func (m *Main) SetSpill(dir string) {
	m.wmu.Lock() // spillFor reads it under wmu
	defer m.wmu.Unlock()
	m.opts.SpillDir = dir
}
