package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"

	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
)

// Identity is what a Main last made durable on the drive: which database
// it owns. The journal's file id is random (journal.NewFileID), so a
// database on another drive, or one created apart, has another; the
// generation and the checksum of the last durable checkpoint tell a copy
// of the same database that was changed elsewhere (by stock SQLite, or by
// another ejectsafe process) from the one this Main wrote.
//
// The journal's file id changes when the Main replaces the journal
// (compaction, after a failed write): Identity always names the current
// one. A host-side log of this database can record an Identity and be
// proved to belong to the database on the drive by comparing them.
type Identity struct {
	JournalID uint64 // the journal header's file id; 0 when there is no journal yet
	Gen       uint64 // the last durable generation (Done in the journal); 0 if none
	Size      int64  // the database's size at Gen (or as Open found it)
	Sum       uint64 // its checksum (journal.Sum); valid when SumKnown
	SumKnown  bool   // false for a database this package never committed and never read whole
}

func (id Identity) String() string {
	sum := "checksum unknown"
	if id.SumKnown {
		sum = fmt.Sprintf("checksum %#016x", id.Sum)
	}
	return fmt.Sprintf("journal %016x, generation %d, %d bytes, %s", id.JournalID, id.Gen, id.Size, sum)
}

// ErrChanged means the database or journal at a Main's path is not the
// one the Main last wrote: another drive is mounted at the same path, or
// the database was changed by someone else. The *ChangedError says what
// differs. Nothing was written. A Commit returns it (wrapped in a
// *CommitError) when a folded copy's read-back showed the base no longer
// holds what its recorded checksum says; every later Commit refuses with
// it, writing nothing, until the base reads as recorded again.
var ErrChanged = errors.New("checkpoint: not the database this store last wrote")

// ChangedError names what differs between the drive and a Main's
// Identity.
type ChangedError struct {
	DB   string
	What string
}

func (e *ChangedError) Error() string        { return fmt.Sprintf("%s: %s", e.DB, e.What) }
func (e *ChangedError) Is(target error) bool { return target == ErrChanged }

// fileSig is what a stat of the database said after the Main last wrote
// or read it: a cheap check that nobody wrote it since.
type fileSig struct {
	known bool
	size  int64
	mtime time.Time
}

// noteSig records the database's stat. Called with cmu held.
func (m *Main) noteSig() {
	fi, err := m.fsys.Stat(m.p.db)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.sig = fileSig{known: true, size: -1}
	case err != nil:
		m.sig = fileSig{}
	default:
		m.sig = fileSig{known: true, size: fi.Size(), mtime: fi.ModTime()}
	}
}

// Identity returns what the Main last made durable.
func (m *Main) Identity() Identity {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	return m.identity()
}

func (m *Main) identity() Identity {
	id := Identity{Size: m.disk.size, Sum: m.disk.sum, SumKnown: m.disk.known}
	if m.jf.exists || m.jf.f != nil {
		id.JournalID = m.jf.j.Header.FileID
	}
	if m.lastDone != nil {
		id.Gen = m.lastDone[2].Gen
	}
	return id
}

// Prove checks, reading only, that the database and journal at the Main's
// path are the ones it last wrote; it returns nil, a *ChangedError saying
// what differs, or the drive's error (a drive that is gone).
//
// The quick check (full false) costs one stat of the database and one read
// of the journal's header: the database's size and modification time must
// be those the Main saw after its last commit, and the journal's file id
// its own. It proves the database unchanged only while the Main's handles
// are on the same mount (no one else writes it: the caller holds its OS
// lock). After the drive was pulled and a drive came back (a new mount),
// the full check reads the whole journal and the whole database: every
// record must be one this Main wrote or tried to write, its last durable
// checkpoint must be there, and the database's checksum must be that of
// its last durable checkpoint or of one it had in flight (which Recover
// then settles).
func (m *Main) Prove(full bool) error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	changed := func(format string, a ...any) error {
		return &ChangedError{DB: m.p.db, What: fmt.Sprintf(format, a...)}
	}
	id := m.identity()
	if !full {
		fi, err := m.fsys.Stat(m.p.db)
		size := int64(-1)
		if err == nil {
			size = fi.Size()
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if !m.sig.known || size != m.sig.size || (size >= 0 && !fi.ModTime().Equal(m.sig.mtime)) {
			return changed("database stat changed (%d bytes, was %d)", size, m.sig.size)
		}
		h, exists, err := readJournalHeader(m.fsys, m.p.journal)
		switch {
		case err != nil && !errors.Is(err, errNotJournal):
			return err
		case err != nil:
			return changed("journal: %v", err)
		case exists != (id.JournalID != 0):
			return changed("journal present %v, want %v", exists, id.JournalID != 0)
		case exists && h.FileID != id.JournalID:
			return changed("journal id %016x, want %016x", h.FileID, id.JournalID)
		}
		return nil
	}

	data, exists, err := readJournal(m.fsys, m.p.journal)
	if err != nil {
		return err
	}
	var j journal.Journal
	if exists {
		if j, err = journal.Decode(data); err != nil {
			return changed("journal unreadable: %v", err)
		}
		ours := j.Header.FileID == id.JournalID || j.Header.FileID == m.jf.tryID
		if !ours {
			return changed("journal id %016x, this store's is %016x", j.Header.FileID, id.JournalID)
		}
	} else if id.JournalID != 0 {
		return changed("journal missing; this store wrote journal %016x", id.JournalID)
	}
	// Every record on the drive is one this Main holds or tried to append.
	known := make(map[journal.Record]bool)
	for _, r := range m.jf.j.Records {
		known[r] = true
	}
	for _, r := range m.jf.tried {
		known[r] = true
	}
	for _, r := range m.lastDone {
		known[r] = true
	}
	hasDone := id.Gen == 0
	for _, r := range j.Records {
		if !known[r] {
			return changed("journal holds %v, which this store did not write (it last wrote generation %d)", r, id.Gen)
		}
		hasDone = hasDone || (r.Kind == journal.Done && r.Gen == id.Gen)
	}
	if !hasDone {
		return changed("journal lacks generation %d, this store's last checkpoint", id.Gen)
	}

	// The database: our last durable state, or a checkpoint we had in
	// flight.
	type state struct {
		size int64
		sum  uint64
	}
	var want []state
	if id.SumKnown {
		want = append(want, state{id.Size, id.Sum})
	}
	for _, r := range m.jf.tried {
		if r.Kind == journal.Ready || r.Kind == journal.Intent {
			want = append(want, state{r.Size, r.Sum})
		}
	}
	if u := m.unsure; u != nil {
		want = append(want, state{u.ready.Size, u.ready.Sum})
	}
	db, err := statSum(m.fsys, m.p.db, &m.buf, func(size int64) bool {
		for _, w := range want {
			if w.size == size {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	for _, w := range want {
		if db.matches(w.size, w.sum) {
			m.noteSig() // the quick check starts from what was proven
			return nil
		}
	}
	// An in-place commit this Main had in flight when the drive went:
	// the database partly written beside its redo log, which proves to
	// make that commit's state (recovery, which runs next, applies it).
	for _, r := range m.jf.tried {
		if r.Kind != journal.Intent {
			continue
		}
		lf, err := readInPlaceLog(m.fsys, m.p, r, &m.buf)
		if err != nil {
			return err
		}
		if lf.proves && !lf.more {
			return nil
		}
	}
	if !id.SumKnown && len(want) == 0 {
		// A database this package never committed nor read whole: only
		// its size can be compared.
		if (db.Exists && db.Size == id.Size) || (!db.Exists && id.Size == 0) {
			return nil
		}
		return changed("database is %d bytes; this store found %d", db.Size, id.Size)
	}
	if !db.Exists {
		return changed("database missing; this store last wrote generation %d (%d bytes)", id.Gen, id.Size)
	}
	return changed("database is %d bytes with checksum %#016x; this store last wrote generation %d, %d bytes with checksum %#016x: changed elsewhere",
		db.Size, db.Sum, id.Gen, id.Size, id.Sum)
}

// errNotJournal marks a journal header that does not decode.
var errNotJournal = errors.New("not a journal header")

// readJournalHeader reads and decodes the journal's header slot only.
func readJournalHeader(fsys device.FS, name string) (journal.Header, bool, error) {
	f, err := fsys.Open(name, device.ReadOnly)
	if errors.Is(err, fs.ErrNotExist) {
		return journal.Header{}, false, nil
	}
	if err != nil {
		return journal.Header{}, false, err
	}
	defer f.Close() // read-only
	b := make([]byte, journal.HeaderSize)
	if err := readFull(f, b, 0); err != nil {
		return journal.Header{}, true, err
	}
	h, err := journal.DecodeHeader(b)
	if err != nil {
		return h, true, fmt.Errorf("%w: %w", errNotJournal, err)
	}
	return h, true, nil
}

// Reattach moves the Main onto the files at its path again, after the
// drive was pulled and came back: it closes the old handles (errors from
// the dead mount are dropped: nothing was pending on them), opens the
// journal and the database anew, and keeps every write not yet committed.
// The caller must first prove the drive (Prove(true)) and then run
// Recover, which settles a checkpoint the pull interrupted: Reattach
// reads the outcome from the journal. Afterwards reads give the same
// bytes as before and the next Commit writes every pending write.
func (m *Main) Reattach() error {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	if m.isClosed() {
		return ErrClosed
	}
	fail := func(err error) error { return fmt.Errorf("checkpoint reattach %s: %w", m.p.db, err) }
	data, jexists, err := readJournal(m.fsys, m.p.journal)
	if err != nil {
		return fail(err)
	}
	var j journal.Journal
	if jexists {
		if j, err = journal.Decode(data); err != nil {
			return fail(fmt.Errorf("%w: journal %s: %w", ErrRecoveryNeeded, m.p.journal, err))
		}
		if why := cleanJournal(j, len(data)); why != "" {
			return fail(fmt.Errorf("%w: journal %s: %s", ErrRecoveryNeeded, m.p.journal, why))
		}
	}
	var nb *baseRef
	f, err := m.fsys.Open(m.p.db, device.ReadOnly)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		nb = newBaseRef(nil, 0)
	case err != nil:
		return fail(err)
	default:
		size, err := f.Size()
		if err != nil {
			f.Close() // read-only
			return fail(err)
		}
		nb = newBaseRef(f, size)
	}
	cp, hasCP := j.Latest()
	done, hasDone := lastDoneOf(j)
	// A commit whose rename was unsure: Recover decided by checksums. If
	// it kept the new content, the pending writes are in the new base;
	// otherwise they go back under the writes made since.
	if u := m.unsure; u != nil {
		if !(hasCP && cp.Gen == u.gen && cp.State == journal.Done) {
			m.unfreeze()
		}
		m.unsure = nil
	} else {
		m.unfreeze() // a no-op: a failed commit unfroze already
	}
	// An in-place commit that failed with its log made: Recover settled
	// it on the drive (its log applied or removed). Its pages are in the
	// overlay still (unfrozen), so the next commit writes them again
	// over whichever state Recover left.
	m.inplace = nil
	m.jf.close() // the old mount's handle: its error says nothing about the new one
	// The next commit writes a new journal rather than appending to this
	// one: the last appends before the pull may have failed, and a new
	// file leaves no doubt about what is durable.
	m.jf = jfile{fsys: m.fsys, p: m.p, perm: m.perm, j: j, exists: jexists, poisoned: true}
	m.disk = diskState{size: nb.size}
	if nb.f == nil {
		m.disk = diskState{size: 0, sum: emptySum, known: true}
	}
	m.lastDone = nil
	if hasDone {
		m.lastDone = done
		if nb.f != nil && done[2].Size == nb.size {
			m.disk.sum, m.disk.known = done[2].Sum, true
		}
	}
	m.smu.Lock()
	m.stats.Generation = 0
	if hasDone {
		m.stats.Generation = done[2].Gen
	}
	m.stats.Unsure = false
	m.smu.Unlock()
	if next := j.NextGen(); next > m.nextGen {
		m.nextGen = next
	}
	m.stale = false
	m.baseChanged = nil    // the caller proved the database (Prove(true))
	m.noKernelCopy = false // a new mount: perhaps another filesystem
	m.mu.RLock()
	m.base.gone.Store(true)
	m.mu.RUnlock()
	m.swapBase(nb) // pending is nil: settled above
	m.smu.Lock()
	m.firstErr = nil // errors of closing handles on the dead mount
	m.smu.Unlock()
	m.noteSig()
	return nil
}

// lastDoneOf returns the Began, Ready and Done records of the journal's
// last done checkpoint: after a rolled-back one, the one before it.
func lastDoneOf(j journal.Journal) ([]journal.Record, bool) {
	for i := len(j.Records) - 1; i >= 0; i-- {
		d := j.Records[i]
		if d.Kind != journal.Done {
			continue
		}
		var began, ready journal.Record
		for k := i - 1; k >= 0 && j.Records[k].Gen == d.Gen; k-- {
			switch j.Records[k].Kind {
			case journal.Began:
				began = j.Records[k]
			case journal.Ready, journal.Intent:
				ready = j.Records[k]
			}
		}
		return []journal.Record{began, ready, d}, true
	}
	return nil, false
}
