package checkpoint

import (
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
)

// unsure is a commit whose rename or directory fsync failed: the
// database name holds the old or the new content, durably or not.
type unsure struct {
	gen          uint64
	began, ready journal.Record
}

// Commit makes every write so far durable, as one new generation of the
// database file (see the package documentation for the steps). It is a
// no-op when nothing was written since the last commit. On failure the
// database on the drive is a committed state, reads are unchanged, and
// the error is a *CommitError wrapping the cause; call Commit again to
// retry, with a new generation and a new copy.
func (m *Main) Commit() error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	// A failed rename left the name undecided, or an in-place commit
	// failed with its log made: settle it first, since the next Began
	// must name the database's true base (and no log may outlive it).
	if m.unsure != nil {
		if err := m.resolveUnsure(); err != nil {
			return m.failed(err)
		}
	}
	if m.inplace != nil {
		if err := m.settleInPlace(); err != nil {
			return m.failed(err)
		}
	}
	// A durable commit whose reopen failed: try again, else the commit
	// below copies from the old handle plus the overlay (the same bytes).
	stale := false
	if m.stale {
		if f, err := m.fsys.Open(m.p.db, device.ReadOnly); err == nil {
			nb := newBaseRef(f, m.disk.size)
			nb.sum, nb.summed = m.disk.sum, m.disk.known && !m.disk.claimed
			m.swapBase(nb)
		} else {
			m.unfreeze()
			stale = true
		}
		m.stale = false
	}
	pend, size, base, ok := m.freeze()
	if !ok {
		return nil
	}
	m.freeSeen = -1
	mode := m.pickMode(pend, size, base, stale)
	start := time.Now()
	var err error
	written := size
	if mode == ModeInPlace {
		written, err = m.commitInPlace(pend, size, base) // releases base
	} else {
		err = m.commit(pend, size, base) // releases base
	}
	if err != nil {
		return m.failed(err)
	}
	end := time.Now()
	m.rates[mode].observe(written, end.Sub(start).Seconds())
	m.smu.Lock()
	m.stats.Commits++
	if mode == ModeInPlace {
		m.stats.InPlace++
	}
	m.stats.LastMode = mode
	m.stats.LastWritten = written
	m.stats.LastCommit = end
	m.stats.LastDuration = end.Sub(start)
	m.stats.LastBytes = size
	m.smu.Unlock()
	return nil
}

// pickMode decides how the commit of pend over src to size bytes is
// written: Options.Mode, unless the commit cannot go in place
// (inPlaceBlocked), and ModeAuto's rule (chooseMode) on what each mode
// would write.
func (m *Main) pickMode(pend *level, size int64, src *baseRef, stale bool) Mode {
	if m.opts.Mode == ModeCopy || m.copyOnly || m.inPlaceBlocked(pend, size, src, stale) != "" {
		return ModeCopy
	}
	if m.opts.Mode == ModeInPlace {
		return ModeInPlace
	}
	n := len(inPlacePages(pend, size, src.size, m.bs))
	e := estimate{copyBytes: size, inPlaceBytes: logBytes(n, m.bs) + int64(n)*m.bs, free: -1,
		copyNeed: max(size, m.hint.Load()), inPlaceNeed: logBytes(n, m.bs) + max(size-src.size, 0)}
	if free, err := m.fsys.FreeSpace(m.p.dir); err == nil {
		e.free, m.freeSeen = free, free
	}
	return chooseMode(e, m.rates[ModeCopy], m.rates[ModeInPlace])
}

func (m *Main) failed(err error) error {
	m.smu.Lock()
	m.stats.Failures++
	m.stats.LastErr = err
	m.stats.Unsure = m.unsure != nil || (m.inplace != nil && m.inplace.logDurable)
	m.smu.Unlock()
	return err
}

// attempt is one commit of generation gen: what its steps share, and the
// cleanup it owes. Each step is a method; commit runs them in order.
type attempt struct {
	m    *Main
	gen  uint64
	pend *level
	size int64
	src  *baseRef // the caller's reference to the base; release drops it
	// copy is the new generation under its temporary name, until the
	// rename (device.Pending).
	copy     *device.Pending
	folded   bool   // the copy's checksum was folded from the base's (copy.go)
	intended uint64 // the checksum of the bytes written
	began    journal.Record
	ready    journal.Record
}

// release drops the attempt's reference to the old base, once.
func (a *attempt) release() {
	if a.src != nil {
		a.m.releaseBase(a.src)
		a.src = nil
	}
}

// abort fails the attempt before the rename: the database is untouched,
// so the copy is discarded (invariant fsync-fails-the-checkpoint: no fsync
// is retried on it), the pending writes go back to the overlay, and the
// next commit starts afresh with a new generation.
func (a *attempt) abort(op string, err error) error {
	if a.copy != nil {
		a.copy.Abort()
	}
	a.m.unfreeze()
	return &CommitError{Gen: a.gen, Op: op, Err: err}
}

// commit writes one generation, by the steps of the checkpoint protocol
// (package doc; the same numbers there). The caller holds cmu and has
// frozen pend; src is its reference to the base, which commit releases.
func (m *Main) commit(pend *level, size int64, src *baseRef) error {
	a := &attempt{m: m, gen: m.nextGen, pend: pend, size: size, src: src}
	m.nextGen++
	defer a.release()
	if op, err := a.verifyBase(); err != nil { // 1
		return a.abort(op, err)
	}
	if err := m.ensureJournal(a.gen); err != nil { // 2
		return a.abort("journal", err)
	}
	if op, err := a.writeCopy(); err != nil { // 3
		return a.abort(op, err)
	}
	if err := a.copy.Sync(); err != nil { // 4
		op := "fsync copy"
		if re := (*device.ReplaceError)(nil); errors.As(err, &re) && re.Op == device.OpClose {
			op = "close copy"
		}
		return a.abort(op, errors.Unwrap(err))
	}
	var failed error
	err := a.copy.Commit(func() error { // 8, after 5-7
		op, err := a.readBack() // 5
		if err == nil {
			op, err = a.recordReady() // 6
		}
		if err != nil {
			failed = a.abort(op, err)
			return failed
		}
		a.readFromCopy() // 7
		return nil
	})
	switch {
	case failed != nil:
		return failed
	case err != nil:
		// 8 failed: which file the name holds is unknown. Keep both
		// the old base and the pending writes, and settle it by
		// checksum before the next commit (resolveUnsure).
		op := "rename"
		if re := (*device.ReplaceError)(nil); errors.As(err, &re) && re.Op == device.OpSyncDir {
			op = "fsync dir"
		}
		m.unsure = &unsure{gen: a.gen, began: a.began, ready: a.ready}
		return &CommitError{Gen: a.gen, Op: op, Err: fmt.Errorf("%w: %w", ErrUnsure, errors.Unwrap(err))}
	}
	a.recordDone()     // 9
	return a.newBase() // 10
}

// SetCopyOnly makes commits copy whatever the mode, until called with
// false: for the store's fold of a stock -wal at Open, whose checkpoint
// must be a copy (the redo log of an in-place commit would have to
// overwrite that -wal, which it never does: ErrLogInTheWay); the store
// removes the -wal once the copy holds it, and recovery proves a copy
// cut before that (rowFoldedStock).
func (m *Main) SetCopyOnly(on bool) {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	m.copyOnly = on
}

// checkFree checks that need bytes are free on the database's
// filesystem for what: running out halfway is slower and says less. A
// drive that cannot tell (fusefat's statfs) is not checked: the writes
// report ENOSPC themselves.
//
// The free space pickMode measured for this commit is used once, not
// asked again (a statfs through a FUSE driver costs a round trip: 0.14
// ms on exfat-fuse, 3% of a small in-place checkpoint there); between
// the two only the journal may have grown, by a few KiB.
func (m *Main) checkFree(need int64, what string) error {
	free, err := m.freeSeen, error(nil)
	if free < 0 {
		free, err = m.fsys.FreeSpace(m.p.dir)
	}
	m.freeSeen = -1
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		return err
	case free < need:
		return fmt.Errorf("%w: %d bytes free, %s needs %d", ErrNoSpace, free, what, need)
	}
	return nil
}

// verifyBase is step 1. A base found changed behind the store (checkBase)
// stays refused: a copy of it would record someone else's bytes, under
// the pending writes SQLite made for the old ones, as the store's own
// data. Read it again: a drive that misread once may read right now.
func (a *attempt) verifyBase() (string, error) {
	if a.m.baseChanged == nil {
		return "", nil
	}
	return "verify base", a.m.checkBase(a.src)
}

// writeCopy is step 3 (step 2, ensureJournal, made the journal
// appendable): the copy, written in one pass in order, the base with the
// overlay patched in. Check the free space first: running out halfway is
// slower and says less. A drive that cannot tell (fusefat's statfs) is
// not checked: the writes report ENOSPC themselves.
func (a *attempt) writeCopy() (string, error) {
	m := a.m
	if err := m.checkFree(max(a.size, m.hint.Load()), "the copy"); err != nil {
		return "free space", err
	}
	var err error
	if a.copy, err = device.CreatePending(m.fsys, m.p.db, m.p.temp(a.gen), m.perm, false); err != nil {
		return "create copy", errors.Unwrap(err)
	}
	write := m.writeCopy
	if a.folded = m.foldable(a.src); a.folded {
		write = m.writeCopyFold
	}
	if a.intended, err = write(a.copy.File(), a.pend, a.size, a.src); err != nil {
		return "write copy", err
	}
	return "", nil
}

// readBack is step 5 (step 4 fsynced the copy before any record claims
// it, else a pull could leave a torn copy the journal calls ready). The
// copy's checksum, read back through a new handle (a FUSE driver is
// asked again, not the page cache of the handle that wrote): what Ready
// claims is what the file holds. It must be the checksum of the bytes
// written: a drive that returns other bytes (fusefat corrupts files
// written out of order) fails the commit here, before any record claims
// the copy. With a folded checksum (copy.go) this also checks that the
// base still holds what its checksum says. Skipped with ReadBackNever,
// where the read would come from the page cache and prove nothing: Ready
// then claims the intended checksum, which recovery checks the copy
// against.
func (a *attempt) readBack() (string, error) {
	m := a.m
	if m.opts.ReadBack == ReadBackNever {
		return "", nil
	}
	temp := a.copy.Name()
	back, err := statSum(m.fsys, temp, &m.buf, func(int64) bool { return true })
	if err == nil && !back.Exists {
		err = fmt.Errorf("copy %s: %w", temp, fs.ErrNotExist)
	}
	if err != nil {
		return "checksum copy", err
	}
	if back.Size == a.size && back.Sum == a.intended {
		return "", nil
	}
	// A folded checksum starts from the base's record: a base that no
	// longer holds it explains the mismatch as well as a bad write. Read
	// the base once to tell which.
	if a.folded {
		if err := m.checkBase(a.src); err != nil {
			return "verify base", err
		}
	}
	return "verify copy", fmt.Errorf("%w: copy %s reads back as %d bytes with checksum %#016x; written: %d bytes, %#016x",
		ErrDriveCorrupted, temp, back.Size, back.Sum, a.size, a.intended)
}

// recordReady is step 6: Began and Ready, fsynced before the rename
// (invariant journal-ahead): from here recovery can tell a complete copy
// from the base by checksum, whatever a pull leaves at either name.
func (a *attempt) recordReady() (string, error) {
	m := a.m
	if a.folded {
		m.smu.Lock()
		m.stats.Folded++
		m.smu.Unlock()
	}
	a.began = journal.Record{Kind: journal.Began, Gen: a.gen, Size: m.disk.size, Sum: m.disk.sum}
	a.ready = journal.Record{Kind: journal.Ready, Gen: a.gen, Size: a.size, Sum: a.intended}
	if m.ready != nil {
		if err := m.ready(a.ready); err != nil {
			return "before ready", err
		}
	}
	if err := m.jf.append(a.began, a.ready); err != nil {
		// Ready may be durable: recovery decides by checksums, and the
		// copy is removed now (abort), so it rolls back.
		return "journal ready", err
	}
	return "", nil
}

// readFromCopy is step 7: reads move to the verified copy, and the old
// database file is closed, before the rename: libfuse hides a file that
// is still open when it is renamed over (.fuse_hidden*), and a pull then
// leaves the hidden file, the size of the database, on the drive. The
// copy holds the base with the pending writes: the same bytes reads saw.
// The pending writes stay: if the rename fails they are committed again.
func (a *attempt) readFromCopy() {
	a.release() // the copy is written and verified: the old base is not needed here
	a.m.readFromCopy(a.copy.Name(), a.size, a.intended)
}

// recordDone is step 9 (step 8, the rename over the database and the
// directory fsync, is the commit point). The commit is durable already: a
// failure here only poisons the journal, which the next commit replaces;
// recovery finds Ready and a database that matches it, and records Done
// itself.
func (a *attempt) recordDone() {
	m := a.m
	m.markDone(a.began, a.ready)
	if m.jf.usable() {
		m.jf.append(m.lastDone[2]) // an error poisons the journal; see above
	}
}

// newBase is step 10: the database reopened as the base, the overlay
// dropped. If it cannot be opened the commit still stands; the old handle
// and the pending writes keep serving the same bytes.
func (a *attempt) newBase() error {
	m := a.m
	f, err := m.fsys.Open(m.p.db, device.ReadOnly)
	if err != nil {
		m.stale = true
		return &CommitError{Gen: a.gen, Op: "reopen", Durable: true, Err: err}
	}
	m.swapBase(newSummedBaseRef(f, a.size, a.intended))
	m.hint.Store(0) // the next checkpoint sends its own
	m.noteSig()
	return nil
}

// writeCopy writes the new generation into tf strictly in order, from
// offset 0 to size in chunks of chunkSize, each written once: the base's
// bytes below the pending cut, zeros beyond them, the pending blocks
// patched in. It never writes below an offset it already wrote nor
// leaves a hole: fusefat corrupts a file extended after a write at a
// lower offset. It returns the checksum of the bytes written, the copy's
// intended checksum. When the database's checksum is not known yet (a
// database this package never committed) it also hashes the whole base,
// which Began needs.
func (m *Main) writeCopy(tf device.File, pend *level, size int64, src *baseRef) (uint64, error) {
	var baseSum hash.Hash64
	end := size // the bytes to go through: the copy's, and the base's when hashed
	if !m.disk.known || m.disk.claimed {
		baseSum, end = journal.NewSum(), max(size, src.size)
	}
	keep := min(src.size, pend.cut) // base bytes the copy keeps
	idx := pendingBlocks(pend)
	sum := journal.NewSum()
	b := buffer(&m.buf, chunkSize)
	sb := make([]byte, m.bs) // a spilled block, read back
	for off := int64(0); off < end; {
		k := min(int64(len(b)), end-off)
		c := b[:k]
		// The base's bytes in this chunk, if anyone needs them.
		n := min(max(src.size-off, 0), k) // base bytes in the chunk
		if baseSum == nil {
			n = min(max(keep-off, 0), k)
		}
		if n > 0 {
			if err := readFull(src.f, c[:n], off); err != nil {
				return 0, err
			}
			if baseSum != nil {
				baseSum.Write(c[:n])
			}
		}
		if w := min(max(size-off, 0), k); w > 0 {
			c = c[:w]
			clear(c[min(max(keep-off, 0), w):]) // cut off, or past the base
			if err := m.overlayChunk(c, off, pend, &idx, sb); err != nil {
				return 0, err
			}
			sum.Write(c)
			if _, err := tf.WriteAt(c, off); err != nil {
				return 0, err
			}
		}
		off += k
	}
	if baseSum != nil {
		m.disk.sum, m.disk.known, m.disk.claimed = baseSum.Sum64(), true, false
	}
	return sum.Sum64(), nil
}

// markDone records that generation began/ready is the database on the
// drive.
func (m *Main) markDone(began, ready journal.Record) {
	m.disk = diskState{size: ready.Size, sum: ready.Sum, known: true}
	m.lastDone = []journal.Record{began, ready, {Kind: journal.Done, Gen: ready.Gen, Size: ready.Size, Sum: ready.Sum}}
	m.smu.Lock()
	m.stats.Generation = ready.Gen
	m.smu.Unlock()
}

// swapBase makes nb the base and drops the pending level, whose writes nb
// holds.
func (m *Main) swapBase(nb *baseRef) {
	m.mu.Lock()
	old, done := m.base, m.pending
	m.base, m.pending = nb, nil
	sp := m.retireSpillLocked(false)
	m.mu.Unlock()
	m.recycle(done)
	m.releaseBase(old)
	if sp != nil {
		sp.release()
	}
}

// readFromCopy makes the verified copy at temp the file reads come from,
// keeping the pending writes, and waits a little for the old base's
// reads in flight to end so that it is closed. Best effort: if the copy
// cannot be opened, or reads take long, the old base serves on.
func (m *Main) readFromCopy(temp string, size int64, sum uint64) {
	f, err := m.fsys.Open(temp, device.ReadOnly)
	if err != nil {
		return
	}
	nb := newSummedBaseRef(f, size, sum)
	m.mu.Lock()
	old := m.base
	m.base = nb
	m.mu.Unlock()
	m.releaseBase(old)
	select {
	case <-old.closed:
	case <-time.After(time.Second):
	}
}

// ensureJournal makes the journal appendable before generation gen.
func (m *Main) ensureJournal(gen uint64) error {
	jf := &m.jf
	if jf.f == nil && !jf.poisoned && jf.exists {
		err := jf.open()
		if errors.Is(err, fs.ErrNotExist) {
			jf.exists = false // removed under us: start a new one
		} else if err != nil {
			return err
		}
	}
	if jf.usable() && jf.j.Free >= checkpointSlots {
		return nil // room for Began, Ready and Done, written in place
	}
	// A new journal, carrying the last checkpoint so the next open still
	// knows the database's checksum without reading it.
	h := journal.Header{FileID: journal.NewFileID(), BaseGen: gen - 1}
	var recs []journal.Record
	if d := m.lastDone; d != nil && m.disk.known && d[2].Size == m.disk.size && d[2].Sum == m.disk.sum {
		h.BaseGen, recs = d[0].Gen-1, d
	}
	if err := jf.rebuild(h, recs, m.opts.JournalLimit); err != nil {
		return err
	}
	m.smu.Lock()
	m.stats.Rewrites++
	m.smu.Unlock()
	return nil
}

// resolveUnsure settles a commit whose rename or directory fsync failed.
// A fresh directory fsync makes whatever the name holds now durable; then
// the checksum of the file at the name says which it is, as Recover would
// decide: the new content (record Done, adopt it as the base) or the old
// (remove the copy, record Aborted, and commit the writes again).
func (m *Main) resolveUnsure() error {
	u := m.unsure
	fail := func(op string, err error) error {
		return &CommitError{Gen: u.gen, Op: "settle rename: " + op, Err: fmt.Errorf("%w: %w", ErrUnsure, err)}
	}
	if err := m.fsys.SyncDir(m.p.dir); err != nil {
		return fail("fsync dir", err)
	}
	want := func(size int64) bool { return size == u.ready.Size || size == u.began.Size }
	db, err := statSum(m.fsys, m.p.db, &m.buf, want)
	if err != nil {
		return fail("checksum", err)
	}
	temp := m.p.temp(u.gen)
	switch {
	case db.matches(u.ready.Size, u.ready.Sum):
		// The rename happened. On a filesystem that renames in two steps
		// the copy's name may remain: remove it.
		if err := m.fsys.Remove(temp); err == nil {
			if err := m.fsys.SyncDir(m.p.dir); err != nil {
				return fail("fsync dir", err)
			}
		}
		m.markDone(u.began, u.ready)
		if m.jf.usable() {
			m.jf.append(m.lastDone[2]) // an error poisons the journal, replaced next
		}
		m.unsure = nil
		m.noteSig()
		if f, err := m.fsys.Open(m.p.db, device.ReadOnly); err == nil {
			m.swapBase(newSummedBaseRef(f, u.ready.Size, u.ready.Sum))
		} else {
			m.stale = true
		}
	case db.matches(u.began.Size, u.began.Sum):
		// The rename did not happen: the copy, if still there, is junk.
		if err := m.fsys.Remove(temp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail("remove copy", err)
		}
		if err := m.fsys.SyncDir(m.p.dir); err != nil {
			return fail("fsync dir", err)
		}
		if m.jf.usable() {
			m.jf.append(journal.Record{Kind: journal.Aborted, Gen: u.gen})
		}
		m.unsure = nil
		m.unfreeze()
	default:
		return fail("check", &UnrecoverableError{DB: m.p.db, Reason: "the database matches neither the copy nor the base",
			Began: u.began, Ready: u.ready, Files: []FileSum{db}})
	}
	m.smu.Lock()
	m.stats.Unsure = false
	m.smu.Unlock()
	return nil
}

// Prepare does ahead of a commit, outside SQLite's locks, the part of
// it that does not depend on the writes: when the database's checksum is
// not known yet (a database this package never committed), it reads the
// base and computes it, which Began needs. Otherwise it does nothing.
//
// It writes nothing on the drive. It used to copy the base into the next
// copy ahead of time, leaving the commit to write the overlay at lower
// offsets and then extend the file: fusefat corrupts a file written in
// that order, so the copy is now written by the commit alone, in one
// pass in order (writeCopy). Correctness over speed.
func (m *Main) Prepare() error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	if m.disk.known || m.unsure != nil || m.stale {
		return nil // nothing to compute, or the base is about to change
	}
	m.mu.RLock()
	src := m.base
	src.refs.Add(1)
	m.mu.RUnlock()
	defer m.releaseBase(src)
	sum, err := sumFile(src.f, src.size, &m.buf)
	if err != nil {
		return &CommitError{Gen: m.nextGen, Op: "prepare: checksum base", Err: err}
	}
	m.disk.sum, m.disk.known = sum, true
	return nil
}
