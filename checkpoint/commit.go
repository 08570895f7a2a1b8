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

// prepared is a copy of the base made ahead of a commit by Prepare.
type prepared struct {
	gen   uint64
	f     device.File
	epoch uint64 // the baseEpoch it copies
	size  int64  // bytes copied: the base's size
}

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
			m.swapBase(newBaseRef(f, m.disk.size))
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
	err := m.commit(pend, size, base)
	m.releaseBase(base)
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

// commit writes one generation. The caller holds cmu and has frozen pend.
func (m *Main) commit(pend *level, size int64, src *baseRef) error {
	prep := m.takePrepared()
	gen := m.nextGen
	if prep != nil {
		gen = prep.gen
	} else {
		m.nextGen++
	}
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
	if prep != nil {
		tf = prep.f
	}

	// 1. A journal that records can be appended to: created on the first
	// commit, replaced after a failed write (never fsynced again) or when
	// it grew past its limit.
	if err := m.ensureJournal(gen); err != nil {
		return abort("journal", err)
	}

	// 2. The copy: the base, then the overlay. Check the free space first:
	// running out halfway is slower and says less.
	written := int64(0) // the copy's size so far
	if prep != nil {
		written = prep.size
	}
	need := max(size, m.hint.Load()) - written
	free, err := m.fsys.FreeSpace(m.p.dir)
	if err != nil {
		return abort("free space", err)
	}
	if free < need {
		return abort("free space", fmt.Errorf("%w: %d bytes free, the copy needs %d", ErrNoSpace, free, need))
	}
	if prep == nil {
		if tf, err = m.fsys.Create(temp, m.perm); err != nil {
			return abort("create copy", err)
		}
		// When the database's checksum is not known yet (a database this
		// package never committed), hash the base while copying it: Began
		// needs it.
		// Otherwise copy only what the overlay does not cut off.
		var h hash.Hash64
		n := min(src.size, pend.cut)
		if !m.disk.known {
			h, n = journal.NewSum(), src.size
		}
		if err := copyBase(tf, src.f, n, h, !m.opts.NoKernelCopy, &m.buf); err != nil {
			return abort("copy", err)
		}
		written = n
		if h != nil {
			m.disk.sum, m.disk.known = h.Sum64(), true
		}
	}
	if !m.disk.known {
		// Prepare hashes the base when the checksum is unknown, so this
		// is only a safety net.
		sum, err := sumFile(src.f, src.size, &m.buf)
		if err != nil {
			return abort("checksum base", err)
		}
		m.disk.sum, m.disk.known = sum, true
	}
	if pend.cut < written {
		if err := tf.Truncate(pend.cut); err != nil {
			return abort("truncate copy", err)
		}
		written = pend.cut
	}
	if err := m.writeBlocks(tf, pend, size, &written); err != nil {
		return abort("write copy", err)
	}
	if written != size {
		if err := tf.Truncate(size); err != nil {
			return abort("truncate copy", err)
		}
	}

	// 3. The copy's checksum, read back: what Ready claims is what the
	// file holds, whatever a copy path got wrong.
	sum, err := sumFile(tf, size, &m.buf)
	if err != nil {
		return abort("checksum copy", err)
	}

	// 4. fsync the copy before any record claims it (Ready): without the
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

	// 5. Began and Ready, fsynced before the rename: from here recovery
	// can tell a complete copy from the base by checksum, whatever a pull
	// leaves at either name.
	began := journal.Record{Kind: journal.Began, Gen: gen, Size: m.disk.size, Sum: m.disk.sum}
	ready := journal.Record{Kind: journal.Ready, Gen: gen, Size: size, Sum: sum}
	if err := m.jf.append(began, ready); err != nil {
		// Ready may be durable: recovery decides by checksums, and the
		// copy is removed now, so it rolls back.
		discard()
		return abort("journal ready", err)
	}

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
	m.swapBase(newBaseRef(f, size))
	m.hint.Store(0) // the next checkpoint sends its own
	return nil
}

// writeBlocks writes the pending level's blocks below size into the copy,
// coalescing runs of adjacent blocks into writes of up to chunkSize.
func (m *Main) writeBlocks(tf device.File, pend *level, size int64, written *int64) error {
	idx := pendingBlocks(pend)
	for i := 0; i < len(idx); {
		start := idx[i] * m.bs
		if start >= size {
			break
		}
		j := i + 1
		for j < len(idx) && idx[j] == idx[j-1]+1 && int64(j-i+1)*m.bs <= chunkSize {
			j++
		}
		end := min(idx[j-1]*m.bs+m.bs, size)
		var b []byte
		if j == i+1 {
			b = pend.blocks[idx[i]][:end-start]
		} else {
			b = buffer(&m.buf, end-start)[:end-start]
			for k := i; k < j; k++ {
				copy(b[(idx[k]-idx[i])*m.bs:], pend.blocks[idx[k]])
			}
		}
		if _, err := tf.WriteAt(b, start); err != nil {
			return err
		}
		*written = max(*written, end)
		i = j
	}
	return nil
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
	m.baseEpoch++
	m.releaseBase(old)
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
	if jf.usable() && int64(jf.j.Len) <= m.opts.JournalLimit {
		return nil
	}
	// A new journal, carrying the last checkpoint so the next open still
	// knows the database's checksum without reading it.
	h := journal.Header{FileID: journal.NewFileID(), BaseGen: gen - 1}
	var recs []journal.Record
	if d := m.lastDone; d != nil && m.disk.known && d[2].Size == m.disk.size && d[2].Sum == m.disk.sum {
		h.BaseGen, recs = d[0].Gen-1, d
	}
	if err := jf.rebuild(h, recs); err != nil {
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
		if f, err := m.fsys.Open(m.p.db, device.ReadOnly); err == nil {
			m.swapBase(newBaseRef(f, u.ready.Size))
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

// Prepare copies the base into the next generation's copy ahead of the
// commit, so that the commit only applies the overlay: the store calls it
// outside SQLite's locks. It is optional (Commit copies the base itself
// when there is no prepared copy of the current base) and a no-op when a
// copy is prepared already. The copy is not fsynced here: the commit
// fsyncs it once complete.
func (m *Main) Prepare() error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	if m.unsure != nil || m.stale {
		return nil // the base is about to change: the commit copies it
	}
	if m.prep != nil {
		if m.prep.epoch == m.baseEpoch {
			return nil
		}
		m.dropPrepared()
	}
	m.mu.RLock()
	src := m.base
	src.refs.Add(1)
	m.mu.RUnlock()
	defer m.releaseBase(src)

	gen := m.nextGen
	m.nextGen++
	temp := m.p.temp(gen)
	fail := func(op string, err error) error {
		return &CommitError{Gen: gen, Op: "prepare: " + op, Err: err}
	}
	free, err := m.fsys.FreeSpace(m.p.dir)
	if err != nil {
		return fail("free space", err)
	}
	if free < src.size {
		return fail("free space", fmt.Errorf("%w: %d bytes free, the copy needs %d", ErrNoSpace, free, src.size))
	}
	f, err := m.fsys.Create(temp, m.perm)
	if err != nil {
		return fail("create copy", err)
	}
	var h hash.Hash64
	if !m.disk.known {
		h = journal.NewSum()
	}
	if err := copyBase(f, src.f, src.size, h, !m.opts.NoKernelCopy, &m.buf); err != nil {
		f.Close()
		m.fsys.Remove(temp) // best effort: Recover removes a leftover
		return fail("copy", err)
	}
	if h != nil {
		m.disk.sum, m.disk.known = h.Sum64(), true
	}
	m.prep = &prepared{gen: gen, f: f, epoch: m.baseEpoch, size: src.size}
	return nil
}

// takePrepared returns the prepared copy if it copies the current base,
// and removes a stale one.
func (m *Main) takePrepared() *prepared {
	p := m.prep
	if p == nil {
		return nil
	}
	if p.epoch != m.baseEpoch {
		m.dropPrepared()
		return nil
	}
	m.prep = nil
	return p
}

// dropPrepared closes and removes an unused prepared copy.
func (m *Main) dropPrepared() error {
	p := m.prep
	if p == nil {
		return nil
	}
	m.prep = nil
	err := p.f.Close()
	if rerr := m.fsys.Remove(m.p.temp(p.gen)); err == nil {
		err = rerr
	}
	if err == nil {
		err = m.fsys.SyncDir(m.p.dir)
	}
	return err
}
