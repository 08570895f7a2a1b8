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
	// A failed rename left the name undecided: settle it first, since the
	// next Began must name the database's true base.
	if m.unsure != nil {
		if err := m.resolveUnsure(); err != nil {
			return m.failed(err)
		}
	}
	// A durable commit whose reopen failed: try again, else the commit
	// below copies from the old handle plus the overlay (the same bytes).
	if m.stale {
		if f, err := m.fsys.Open(m.p.db, device.ReadOnly); err == nil {
			nb := newBaseRef(f, m.disk.size)
			nb.sum, nb.summed = m.disk.sum, m.disk.known && !m.disk.claimed
			m.swapBase(nb)
		} else {
			m.unfreeze()
		}
		m.stale = false
	}
	pend, size, base, ok := m.freeze()
	if !ok {
		return nil
	}
	start := time.Now()
	err := m.commit(pend, size, base) // releases base
	if err != nil {
		return m.failed(err)
	}
	m.smu.Lock()
	m.stats.Commits++
	m.stats.LastCommit = time.Now()
	m.stats.LastDuration = m.stats.LastCommit.Sub(start)
	m.stats.LastBytes = size
	m.smu.Unlock()
	return nil
}

func (m *Main) failed(err error) error {
	m.smu.Lock()
	m.stats.Failures++
	m.stats.LastErr = err
	m.stats.Unsure = m.unsure != nil
	m.smu.Unlock()
	return err
}

// commit writes one generation. The caller holds cmu and has frozen pend;
// src is its reference to the base, which commit releases.
func (m *Main) commit(pend *level, size int64, src *baseRef) error {
	// src is the caller's reference to the base; commit releases it, as
	// early as it can (see 5b).
	released := false
	release := func() {
		if !released {
			released = true
			m.releaseBase(src)
		}
	}
	defer release()
	gen := m.nextGen
	m.nextGen++
	temp := m.p.temp(gen)
	var tf device.File
	discard := func() {
		if m.fsys.Remove(temp) == nil {
			m.fsys.SyncDir(m.p.dir) // best effort: Recover removes a leftover
		}
	}
	abort := func(op string, err error) error {
		// Before the rename the database is untouched: discard the copy,
		// keep the overlay, and the next commit starts afresh (DESIGN
		// invariant 6: no fsync is retried on the copy).
		if tf != nil {
			tf.Close() // the commit's error is the one to report
			discard()
		}
		m.unfreeze()
		return &CommitError{Gen: gen, Op: op, Err: err}
	}

	// 0. A base found changed behind the store (checkBase) stays refused:
	// a copy of it would record someone else's bytes, under the pending
	// writes SQLite made for the old ones, as the store's own data. Read
	// it again: a drive that misread once may read right now.
	if m.baseChanged != nil {
		if err := m.checkBase(src); err != nil {
			return abort("verify base", err)
		}
	}

	// 1. A journal that records can be appended to: created on the first
	// commit, replaced after a failed write (never fsynced again) or when
	// its free slots ran out.
	if err := m.ensureJournal(gen); err != nil {
		return abort("journal", err)
	}

	// 2. The copy, written in one pass in order: the base with the
	// overlay patched in. Check the free space first: running out halfway
	// is slower and says less. A drive that cannot tell (fusefat's statfs)
	// is not checked: the writes report ENOSPC themselves.
	need := max(size, m.hint.Load())
	free, err := m.fsys.FreeSpace(m.p.dir)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		return abort("free space", err)
	case free < need:
		return abort("free space", fmt.Errorf("%w: %d bytes free, the copy needs %d", ErrNoSpace, free, need))
	}
	if tf, err = m.fsys.Create(temp, m.perm); err != nil {
		return abort("create copy", err)
	}
	write, folded := m.writeCopy, m.foldable(src)
	if folded {
		write = m.writeCopyFold
	}
	intended, err := write(tf, pend, size, src)
	if err != nil {
		return abort("write copy", err)
	}

	// 3. fsync the copy before any record claims it (Ready): without the
	// fsync a pull could leave a torn copy that the journal calls ready.
	// Close it too: a close error may report lost writes (NFS).
	if err := tf.Sync(); err != nil {
		return abort("fsync copy", err)
	}
	err = tf.Close()
	tf = nil
	if err != nil {
		discard()
		return abort("close copy", err)
	}

	// 4. The copy's checksum, read back through a new handle (a FUSE
	// driver is asked again, not the page cache of the handle that
	// wrote): what Ready claims is what the file holds. It must be the
	// checksum of the bytes written: a drive that returns other bytes
	// (fusefat corrupts files written out of order) fails the commit
	// here, before any record claims the copy.
	// With a folded checksum (copy.go) this also checks that the base
	// still holds what its checksum says.
	// Skipped with ReadBackNever, where the read would come from the page
	// cache and prove nothing: Ready then claims the intended checksum,
	// which recovery checks the copy against.
	if m.opts.ReadBack != ReadBackNever {
		back, err := statSum(m.fsys, temp, &m.buf, func(int64) bool { return true })
		if err == nil && !back.Exists {
			err = fmt.Errorf("copy %s: %w", temp, fs.ErrNotExist)
		}
		if err != nil {
			discard()
			return abort("checksum copy", err)
		}
		if back.Size != size || back.Sum != intended {
			discard()
			// A folded checksum starts from the base's record: a base
			// that no longer holds it explains the mismatch as well as
			// a bad write. Read the base once to tell which.
			if folded {
				if err := m.checkBase(src); err != nil {
					return abort("verify base", err)
				}
			}
			return abort("verify copy", fmt.Errorf("%w: copy %s reads back as %d bytes with checksum %#016x; written: %d bytes, %#016x",
				ErrDriveCorrupted, temp, back.Size, back.Sum, size, intended))
		}
	}
	sum := intended
	if folded {
		m.smu.Lock()
		m.stats.Folded++
		m.smu.Unlock()
	}

	// 5. Began and Ready, fsynced before the rename: from here recovery
	// can tell a complete copy from the base by checksum, whatever a pull
	// leaves at either name.
	began := journal.Record{Kind: journal.Began, Gen: gen, Size: m.disk.size, Sum: m.disk.sum}
	ready := journal.Record{Kind: journal.Ready, Gen: gen, Size: size, Sum: sum}
	if m.ready != nil {
		if err := m.ready(ready); err != nil {
			discard()
			return abort("before ready", err)
		}
	}
	if err := m.jf.append(began, ready); err != nil {
		// Ready may be durable: recovery decides by checksums, and the
		// copy is removed now, so it rolls back.
		discard()
		return abort("journal ready", err)
	}

	// 5b. Reads move to the verified copy, and the old database file is
	// closed, before the rename: libfuse hides a file that is still open
	// when it is renamed over (.fuse_hidden*), and a pull then leaves the
	// hidden file, the size of the database, on the drive. The copy holds
	// the base with the pending writes: the same bytes reads saw. The
	// pending writes stay: if the rename fails they are committed again.
	release() // the copy is written and verified: the old base is not needed here
	m.readFromCopy(temp, size, sum)

	// 6. Rename over the database and fsync the directory: the commit
	// point. If either fails, which file the name holds is unknown: keep
	// both the old base and the pending writes, and settle it by checksum
	// before the next commit.
	if err := m.fsys.Rename(temp, m.p.db); err != nil {
		m.unsure = &unsure{gen: gen, began: began, ready: ready}
		return &CommitError{Gen: gen, Op: "rename", Err: fmt.Errorf("%w: %w", ErrUnsure, err)}
	}
	if err := m.fsys.SyncDir(m.p.dir); err != nil {
		m.unsure = &unsure{gen: gen, began: began, ready: ready}
		return &CommitError{Gen: gen, Op: "fsync dir", Err: fmt.Errorf("%w: %w", ErrUnsure, err)}
	}

	// 7. Done. The commit is durable already: a failure here only poisons
	// the journal, which the next commit replaces; recovery finds Ready
	// and a database that matches it, and records Done itself.
	m.markDone(began, ready)
	if m.jf.usable() {
		m.jf.append(m.lastDone[2]) // an error poisons the journal; see above
	}

	// 8. The new base. If it cannot be opened the commit still stands;
	// the old handle and the pending writes keep serving the same bytes.
	f, err := m.fsys.Open(m.p.db, device.ReadOnly)
	if err != nil {
		m.stale = true
		return &CommitError{Gen: gen, Op: "reopen", Durable: true, Err: err}
	}
	m.swapBase(newSummedBaseRef(f, size, sum))
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
			for len(idx) > 0 && idx[0]*m.bs < off+w {
				bo := idx[0] * m.bs
				blk := pend.blocks[idx[0]]
				if bo+int64(len(blk)) <= off { // wholly written in an earlier chunk
					idx = idx[1:]
					continue
				}
				lo := max(bo, off)
				hi := min(bo+int64(len(blk)), off+w)
				copy(c[lo-off:hi-off], blk[lo-bo:hi-bo])
				if bo+int64(len(blk)) > off+w {
					break // continues in the next chunk
				}
				idx = idx[1:]
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
	old := m.base
	m.base, m.pending = nb, nil
	m.mu.Unlock()
	m.releaseBase(old)
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
