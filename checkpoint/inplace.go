package checkpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// The in-place checkpoint (ModeInPlace, or ModeAuto's pick).
//
// A commit in place writes only the pages that changed, into the
// database file itself, and stays crash-safe because a redo log of those
// pages is durable first. The log is SQLite's own WAL file, <db>-wal, in
// SQLite's format (package sqlitewal): a pull at any instant leaves the
// old database with no valid log, or a log that SQLite's own recovery (or
// ours, recover_inplace.go) replays to the new state. Steps 1 and 2 are
// the copy's (commit.go); then:
//
//  3. the new database's checksum, folded from the base's, reading only
//     the old bytes of the pages rewritten and of those cut off (the
//     base is hashed whole once when its checksum is not known yet), and
//     the free space the log and any growth need;
//  4. Began{G, base} and Intent{G, new} appended and fsynced, after the
//     SetBeforeReady hook: from here recovery knows the state a log must
//     produce, so it can tell a whole log from a torn or foreign one;
//  5. the log written at <db>-wal: into the file an earlier commit
//     retired (its header zeros, sqlitewal.Retired), or a new file when
//     there is none (any other -wal is someone else's and is never
//     overwritten); one frame per page in ascending order, the last a
//     commit frame with the new size in pages, fresh salts; fsynced,
//     closed, and when the file was created the directory fsynced
//     (invariant log-ahead). Frames of an earlier log past this one's
//     end carry other salts, so neither SQLite nor recovery reads them
//     as this log's. On NoGrowInPlace a retired file too small for the
//     log is removed and created again (fusefat corrupts a file
//     extended through a handle opened on it);
//  6. the pages written in place through a new handle, in ascending
//     offset order, the file cut if it shrank; fsynced and closed;
//  7. on a filesystem that reads back (Options.ReadBack), the pages read
//     back through a new handle and compared;
//  8. the log retired: its header overwritten with zeros and fsynced (a
//     log over keepLogMax, 8 MiB, is removed instead, the directory
//     fsynced, so that its space is free again). A
//     log must never outlive the state it describes (a later checkpoint
//     would be undone by it), and a retired one describes nothing. The
//     file stays for the next commit: creating and removing it each time
//     costs two directory changes and, on exFAT, two rewrites of the
//     whole allocation bitmap per checkpoint (BENCHMARKS.md). Close
//     removes it;
//  9. Done appended and fsynced;
//  10. the database reopened as the base, the overlay dropped.
//
// A failure before step 5's directory fsync removes the log and records
// Aborted: the database was not touched. From then on the log is durable
// and the database may be partly written: the Main keeps the pages (the
// overlay still serves them) and the next Commit settles first
// (settleInPlace) by writing the pages again through a new handle and
// fsyncing it, which is recovery's roll forward done from memory. That
// fsync is of a new open of the file after every page whose write-back
// may have failed was written again: no page is trusted to a flush that
// failed (invariant fsync-fails-the-checkpoint).

// inPlace is one in-place commit of generation gen, kept by the Main
// (Main.inplace) when it fails after its log became durable, until the
// next Commit settles it.
type inPlace struct {
	m      *Main
	gen    uint64
	pend   *level   // the pages, final content; never modified once frozen
	size   int64    // the new size
	pages  []int64  // block indexes written, ascending
	src    *baseRef // the base, while commitInPlace runs
	began  journal.Record
	intent journal.Record
	// How far it got.
	logMade    bool // the log may exist on the drive
	logDurable bool // the log is fsynced and its directory entry too
	pagesDone  bool // the pages are in place, fsynced
	written    int64
}

// inPlacePages returns the block indexes an in-place commit of pend to
// size writes over a base of baseSize bytes, ascending: every pending
// block below size, and every block from the base bytes kept to size
// that the overlay does not hold (zeros in the raw view: growth, or
// bytes past a cut).
func inPlacePages(pend *level, size, baseSize, bs int64) []int64 {
	keep := min(baseSize, pend.cut)
	idx := slices.DeleteFunc(pendingBlocks(pend), func(b int64) bool { return b*bs >= size })
	n := len(idx)
	for b := (keep + bs - 1) / bs; b*bs < size; b++ {
		if !pend.holds(b) {
			idx = append(idx, b)
		}
	}
	if len(idx) > n {
		slices.Sort(idx)
	}
	return idx
}

// page returns block b's bytes in the new generation: the pending
// block (read into buf if it was spilled), or zeros.
func (a *inPlace) page(b int64, zero, buf []byte) ([]byte, error) {
	d, ok, err := a.m.block(a.pend, b, buf)
	if err != nil || ok {
		return d, err
	}
	return zero, nil
}

// runs calls fn for each run of consecutive pages, at most chunkSize
// bytes, with their bytes gathered into buf.
func (a *inPlace) runs(buf []byte, fn func(off int64, data []byte) error) error {
	bs := a.m.bs
	zero, sb := make([]byte, bs), make([]byte, bs)
	per := max(int64(len(buf))/bs, 1)
	for i := 0; i < len(a.pages); {
		j := i + 1
		for j < len(a.pages) && a.pages[j] == a.pages[j-1]+1 && int64(j-i) < per {
			j++
		}
		n := int64(j - i)
		c := buf[:n*bs]
		for k := range n {
			d, err := a.page(a.pages[i]+k, zero, sb)
			if err != nil {
				return err
			}
			copy(c[k*bs:(k+1)*bs], d)
		}
		if err := fn(a.pages[i]*bs, c); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// commitInPlace writes one generation in place, by the steps above. The
// caller holds cmu and has frozen pend; src is its reference to the
// base, which commitInPlace releases. It returns the bytes it wrote to
// the drive.
func (m *Main) commitInPlace(pend *level, size int64, src *baseRef) (int64, error) {
	a := &inPlace{m: m, gen: m.nextGen, pend: pend, size: size, src: src,
		pages: inPlacePages(pend, size, src.size, m.bs)}
	m.nextGen++
	defer m.releaseBase(src)
	if m.baseChanged != nil { // 1
		if err := m.checkBase(src); err != nil {
			return 0, a.abort("verify base", err)
		}
	}
	if err := m.ensureJournal(a.gen); err != nil { // 2
		return 0, a.abort("journal", err)
	}
	newSum, err := a.newSum() // 3
	if err != nil {
		return 0, a.abort("checksum", err)
	}
	if op, err := a.checkSpace(); err != nil {
		return 0, a.abort(op, err)
	}
	a.began = journal.Record{Kind: journal.Began, Gen: a.gen, Size: m.disk.size, Sum: m.disk.sum}
	a.intent = journal.Record{Kind: journal.Intent, Gen: a.gen, Size: size, Sum: newSum}
	if m.ready != nil { // 4
		if err := m.ready(a.intent); err != nil {
			return 0, a.abort("before intent", err)
		}
	}
	if err := m.jf.append(a.began, a.intent); err != nil {
		// Intent may be durable: recovery finds the database the base
		// and no log, and rolls back.
		return 0, a.abort("journal intent", err)
	}
	if op, err := a.writeLog(); err != nil { // 5
		return 0, a.failLog(op, err)
	}
	return a.finish()
}

// finish runs steps 6-10 of a commit whose log is durable: from
// commitInPlace, or from settleInPlace after a failure.
func (a *inPlace) finish() (int64, error) {
	m := a.m
	if !a.pagesDone {
		if op, err := a.writePages(); err != nil { // 6
			return 0, a.unsure(op, err)
		}
		if op, err := a.readBack(); err != nil { // 7
			return 0, a.unsure(op, err)
		}
		a.pagesDone = true
	}
	if op, err := m.retireLog(); err != nil { // 8
		return 0, a.unsure(op, err)
	}
	a.logMade, a.logDurable = false, false
	m.inplace = nil
	m.markDone(a.began, a.intent) // 9
	if m.jf.usable() {
		m.jf.append(m.lastDone[2]) // an error poisons the journal; recovery finds the database new and finishes
	}
	f, err := m.fsys.Open(m.p.db, device.ReadOnly) // 10
	if err != nil {
		// The old handle is the same file, and holds the new bytes
		// under its old size: the overlay serves on (the next Commit
		// tries again, as after a copy's failed reopen), and its
		// recorded checksum no longer describes it.
		m.stale = true
		m.base.summed = false // under cmu, like every use of summed
		return a.written, &CommitError{Gen: a.gen, Op: "reopen", Durable: true, Err: err}
	}
	m.swapBase(newSummedBaseRef(f, a.size, a.intent.Sum))
	m.hint.Store(0)
	m.noteSig()
	return a.written, nil
}

// abort fails the commit before its log exists: the database is
// untouched, the pending writes go back to the overlay.
func (a *inPlace) abort(op string, err error) error {
	a.m.unfreeze()
	return &CommitError{Gen: a.gen, Op: op, Err: err}
}

// failLog fails the commit while its log was being made: the database is
// untouched, so the log is removed and the checkpoint recorded aborted.
// If the log cannot be removed it may be whole on the drive (stock SQLite
// would apply it, which is this very commit): the Main settles it first
// at the next Commit, before any other write.
func (a *inPlace) failLog(op string, err error) error {
	m := a.m
	m.unfreeze()
	cerr := &CommitError{Gen: a.gen, Op: op, Err: err}
	if a.logMade {
		if rerr := device.Remove(m.fsys, m.p.wal); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			m.inplace = a
			return cerr
		}
		a.logMade = false
	}
	if m.jf.usable() {
		m.jf.append(journal.Record{Kind: journal.Aborted, Gen: a.gen}) // an error poisons the journal, replaced next
	}
	return cerr
}

// unsure fails a commit whose log is durable: the database may be partly
// written. The overlay keeps serving every page; the next Commit writes
// them again (settleInPlace) before anything else.
func (a *inPlace) unsure(op string, err error) error {
	m := a.m
	m.unfreeze()
	m.inplace = a
	return &CommitError{Gen: a.gen, Op: op, Err: fmt.Errorf("%w: %w", ErrUnsure, err)}
}

// settleInPlace settles an in-place commit that failed: one whose log
// never became durable is removed and recorded aborted; one whose log is
// durable is finished from memory (its pages written again through a new
// handle, then steps 7-10).
func (m *Main) settleInPlace() error {
	a := m.inplace
	if !a.logDurable {
		if err := device.Remove(m.fsys, m.p.wal); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &CommitError{Gen: a.gen, Op: "settle in place: remove log", Err: err}
		}
		if m.jf.usable() {
			m.jf.append(journal.Record{Kind: journal.Aborted, Gen: a.gen})
		}
		m.inplace = nil
		return nil
	}
	if _, err := a.finish(); err != nil {
		var ce *CommitError
		if errors.As(err, &ce) && ce.Durable {
			return nil // settled; the base handle serves the same bytes
		}
		return err
	}
	m.smu.Lock()
	m.stats.Unsure = false
	m.smu.Unlock()
	return nil
}

// newSum is step 3's checksum of the new generation, folded from the
// base's: the base's sum, less the bytes cut off, with the rewritten
// blocks patched in, then the bytes beyond what the base keeps. It reads
// the old bytes of the blocks it patches and those cut off, nothing
// else. A base whose checksum is not known is hashed whole first.
func (a *inPlace) newSum() (uint64, error) {
	m, src := a.m, a.src
	base := src.sum
	if !src.summed {
		s, err := sumFile(src.f, src.size, &m.buf)
		if err != nil {
			return 0, err
		}
		base = s
		m.disk.sum, m.disk.known, m.disk.claimed = s, true, false
	}
	bs := m.bs
	keep := min(src.size, a.pend.cut, a.size)
	prefix := base
	if keep < src.size {
		cut, err := sumRange(src.f, keep, src.size, &m.buf)
		if err != nil {
			return 0, err
		}
		prefix = journal.SumTrim(base, cut, src.size-keep)
	}
	p := journal.NewSumPatcher(prefix, keep)
	old, zero, sb := make([]byte, bs), make([]byte, bs), make([]byte, bs)
	tail := journal.NewSum()
	for _, b := range a.pages {
		bo := b * bs
		blk, err := a.page(b, zero, sb)
		if err != nil {
			return 0, err
		}
		if bo < keep {
			hi := min(bo+bs, keep)
			if err := readFull(src.f, old[:hi-bo], bo); err != nil {
				return 0, err
			}
			p.Patch(bo, old[:hi-bo], blk[:hi-bo])
			if hi < bo+bs {
				tail.Write(blk[hi-bo:])
			}
			continue
		}
		tail.Write(blk)
	}
	return journal.SumConcat(p.Sum64(), tail.Sum64(), a.size-keep), nil
}

// logBytes is the size of the redo log of n pages.
func logBytes(n int, bs int64) int64 { return sqlitewal.FileSize(n, int(bs)) }

// checkSpace checks that the log and any growth fit the free space. A
// -wal already there holds its space: the log needs only what it adds.
func (a *inPlace) checkSpace() (string, error) {
	m := a.m
	need := logBytes(len(a.pages), m.bs)
	if fi, err := m.fsys.Stat(m.p.wal); err == nil {
		need = max(need-fi.Size(), 0)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "free space", err
	}
	if err := m.checkFree(need+max(a.size-a.src.size, 0), "the redo log with the growth"); err != nil {
		return "free space", err
	}
	return "", nil
}

// offsetWriter writes a file from its start, in order.
type offsetWriter struct {
	f   device.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}

// ErrLogInTheWay: an in-place commit found a -wal beside the database
// that is not a retired redo log (its header is not zeros): stock
// SQLite's, or someone else's. It is never overwritten; the commit fails
// with the database untouched, and the next Open folds the -wal in or
// refuses it.
var ErrLogInTheWay = errors.New("a -wal that is not a retired redo log is beside the database")

// openLog opens the file step 5 writes the log into: the retired log
// left there (created reports false), or a new file. need is the log's
// size.
func (a *inPlace) openLog(need int64) (f device.File, created bool, op string, err error) {
	m := a.m
	f, err = m.fsys.Open(m.p.wal, device.ReadWrite)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err = m.fsys.Create(m.p.wal, m.perm)
		if err != nil {
			return nil, false, "create log", err
		}
		return f, true, "", nil
	case err != nil:
		return nil, false, "open log", err
	}
	size, err := f.Size()
	var retired bool
	if err == nil {
		retired, err = sqlitewal.Retired(f, size)
	}
	switch {
	case err != nil:
		f.Close()
		return nil, false, "read log", err
	case !retired:
		f.Close()
		return nil, false, "open log", fmt.Errorf("%w: %s", ErrLogInTheWay, m.p.wal)
	case m.opts.NoGrowInPlace && size < need:
		// Written from its start and then extended, the file would be
		// extended through a handle opened on it: a new one instead.
		f.Close()
		if err := m.fsys.Remove(m.p.wal); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, "remove log", err
		}
		f, err = m.fsys.Create(m.p.wal, m.perm)
		if err != nil {
			return nil, false, "create log", err
		}
		return f, true, "", nil
	}
	return f, false, "", nil
}

// keepLogMax is the largest redo log step 8 keeps (retired) for the
// next commit; a larger one is removed, as its space on the drive may be
// wanted (a copy needs the database's size free). Its creation and
// removal cost (on exFAT, two rewrites of the allocation bitmap: 256 KiB
// on a 64 GiB stick) is then a few percent of the checkpoint that wrote
// it.
const keepLogMax = 8 << 20

// retireLog is step 8: the log's header overwritten with zeros through
// a new handle and fsynced; a log larger than keepLogMax is removed and
// the directory fsynced instead. A log already gone (a person removed
// it) describes nothing either.
func (m *Main) retireLog() (string, error) {
	f, err := m.fsys.Open(m.p.wal, device.ReadWrite)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "retire log", err
	}
	if size, err := f.Size(); err != nil || size > keepLogMax {
		f.Close()
		if err != nil {
			return "retire log", err
		}
		if err := device.Remove(m.fsys, m.p.wal); err != nil {
			return "remove log", err
		}
		return "", nil
	}
	if _, err := f.WriteAt(make([]byte, sqlitewal.HeaderSize), 0); err != nil {
		f.Close()
		return "retire log", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "fsync retired log", err
	}
	if err := f.Close(); err != nil {
		return "close retired log", err
	}
	return "", nil
}

// RemoveRetiredLog removes the retired redo log an in-place commit left
// beside the database (step 8; this Main's, or one a process that ended
// without Close left), if it is retired:
// for the store's Close, once its last checkpoint proved the drive, so
// that a closed database leaves no -wal behind. A -wal that is not
// retired is left alone (the next Open deals with it).
func (m *Main) RemoveRetiredLog() error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	return m.removeKeptLog()
}

func (m *Main) removeKeptLog() error {
	if m.inplace != nil {
		return nil
	}
	exists, retired, err := LogState(m.fsys, m.p.wal)
	if err != nil || !exists || !retired {
		return err // none, or not ours: left for the next Open
	}
	return device.Remove(m.fsys, m.p.wal)
}

// LogState reports whether a -wal is at wal on fsys and whether it is
// retired (sqlitewal.Retired: empty, or its header zeros), which SQLite
// and recovery read as no log. The one test of a -wal for the store, the
// read-only Open, the host log's replay and the tests.
func LogState(fsys device.FS, wal string) (exists, retired bool, err error) {
	f, err := fsys.Open(wal, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	defer f.Close() // read-only
	size, err := f.Size()
	if err == nil {
		retired, err = sqlitewal.Retired(f, size)
	}
	return true, retired, err
}

// writeLog is step 5: the redo log, written in one pass in order into
// the retired log's file or a new one (openLog), fsynced, closed, and a
// new file's directory entry fsynced.
func (a *inPlace) writeLog() (string, error) {
	m := a.m
	f, created, op, err := a.openLog(logBytes(len(a.pages), m.bs))
	if err != nil {
		return op, err
	}
	a.logMade = true
	bw := bufio.NewWriterSize(&offsetWriter{f: f}, chunkSize)
	fail := func(op string, err error) (string, error) {
		f.Close()
		return op, err
	}
	w, err := sqlitewal.NewWriter(bw, sqlitewal.WriteOptions{PageSize: int(m.bs), DBPages: uint32(a.size / m.bs)})
	if err != nil {
		return fail("write log", err)
	}
	zero, sb := make([]byte, m.bs), make([]byte, m.bs)
	for _, b := range a.pages {
		d, err := a.page(b, zero, sb)
		if err == nil {
			err = w.Add(uint32(b+1), d)
		}
		if err != nil {
			return fail("write log", err)
		}
	}
	if err := w.Commit(); err != nil {
		return fail("write log", err)
	}
	if err := bw.Flush(); err != nil {
		return fail("write log", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync log", err)
	}
	if err := f.Close(); err != nil {
		return "close log", err
	}
	if created {
		if err := m.fsys.SyncDir(m.p.dir); err != nil {
			return "fsync dir", err
		}
	}
	a.logDurable = true
	a.written += logBytes(len(a.pages), m.bs)
	return "", nil
}

// writePages is step 6: the pages in ascending offset order through a
// new read-write handle, the file cut when it shrank, fsynced, closed.
func (a *inPlace) writePages() (string, error) {
	m := a.m
	f, err := m.fsys.Open(m.p.db, device.ReadWrite)
	if err != nil {
		return "open database", err
	}
	buf := buffer(&m.buf, chunkSize)
	err = a.runs(buf, func(off int64, data []byte) error {
		_, err := f.WriteAt(data, off)
		return err
	})
	if err != nil {
		f.Close()
		return "write in place", err
	}
	if sz, err := f.Size(); err != nil {
		f.Close()
		return "size", err
	} else if sz > a.size {
		if err := f.Truncate(a.size); err != nil {
			f.Close()
			return "truncate", err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "fsync database", err
	}
	if err := f.Close(); err != nil {
		return "close database", err
	}
	a.written += int64(len(a.pages)) * m.bs
	return "", nil
}

// readBack is step 7: the pages written, and the size, read back through
// a new handle (unless ReadBackNever) and compared with what was written.
func (a *inPlace) readBack() (string, error) {
	m := a.m
	if m.opts.ReadBack == ReadBackNever {
		return "", nil
	}
	f, err := m.fsys.Open(m.p.db, device.ReadOnly)
	if err != nil {
		return "open database", err
	}
	defer f.Close()
	if sz, err := f.Size(); err != nil {
		return "size", err
	} else if sz != a.size {
		return "verify in place", fmt.Errorf("%w: %s is %d bytes after writing in place, want %d", ErrDriveCorrupted, m.p.db, sz, a.size)
	}
	want := buffer(&m.buf, chunkSize)
	got := make([]byte, len(want))
	err = a.runs(want, func(off int64, data []byte) error {
		g := got[:len(data)]
		if err := readFull(f, g, off); err != nil {
			return err
		}
		if !slices.Equal(g, data) {
			return fmt.Errorf("%w: %s reads back other bytes at %d after writing in place", ErrDriveCorrupted, m.p.db, off)
		}
		return nil
	})
	if err != nil {
		return "verify in place", err
	}
	return "", nil
}
