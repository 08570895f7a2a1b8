package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/layout"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// State is what recovery found on the drive.
type State int

const (
	// StateUnknown: recovery refused before it could tell (ErrJournal).
	StateUnknown State = iota
	// StateClean: no checkpoint in flight (no journal, or its last
	// checkpoint is done or aborted).
	StateClean
	// StateBegan: a checkpoint began and its copy was never claimed
	// complete.
	StateBegan
	// StateReady: a checkpoint's copy was complete and fsynced; the
	// rename over the database may or may not have happened.
	StateReady
	// StateDamaged: the journal's header is unreadable.
	StateDamaged
	// StateInPlace: an in-place checkpoint recorded its Intent; the
	// database may be partly written, its redo log (-wal) whole or not.
	StateInPlace
)

func (s State) String() string {
	switch s {
	case StateUnknown:
		return "state unknown"
	case StateClean:
		return "no checkpoint in flight"
	case StateBegan:
		return "checkpoint began, copy incomplete"
	case StateReady:
		return "checkpoint ready, rename unknown"
	case StateDamaged:
		return "journal damaged"
	case StateInPlace:
		return "in-place checkpoint in flight"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText gives JSON a token: "unknown", "clean", "began", "ready",
// "damaged" or "in_place".
func (s State) MarshalText() ([]byte, error) {
	if s < StateUnknown || s > StateInPlace {
		return nil, fmt.Errorf("checkpoint: invalid state %d", int(s))
	}
	return []byte([...]string{"unknown", "clean", "began", "ready", "damaged", "in_place"}[s]), nil
}

// Action is what recovery did (or, from Verify, would do).
type Action int

const (
	// ActionNone: the database was clean and nothing was left over.
	ActionNone Action = iota
	// ActionClean: no checkpoint in flight; leftovers removed, or a torn
	// journal replaced.
	ActionClean
	// ActionRollBack: the copy was discarded, the database kept, Aborted
	// recorded.
	ActionRollBack
	// ActionRollForward: the verified copy was renamed over the database
	// and Done recorded.
	ActionRollForward
	// ActionFinish: the database already matched the copy; Done recorded.
	ActionFinish
	// ActionReset: the journal could not vouch for anything; the database
	// was kept, copies discarded and a new journal written.
	ActionReset
	// ActionRefused: recovery returned ErrUnrecoverable or ErrJournal and
	// modified nothing.
	ActionRefused
)

func (a Action) String() string {
	switch a {
	case ActionNone:
		return "nothing to do"
	case ActionClean:
		return "cleaned up"
	case ActionRollBack:
		return "rolled back"
	case ActionRollForward:
		return "rolled forward"
	case ActionFinish:
		return "finished"
	case ActionReset:
		return "kept the database, reset the journal"
	case ActionRefused:
		return "refused, modified nothing"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// MarshalText gives JSON a token: "none", "clean", "roll_back",
// "roll_forward", "finish", "reset" or "refused".
func (a Action) MarshalText() ([]byte, error) {
	if a < ActionNone || a > ActionRefused {
		return nil, fmt.Errorf("checkpoint: invalid action %d", int(a))
	}
	return []byte([...]string{"none", "clean", "roll_back", "roll_forward", "finish", "reset", "refused"}[a]), nil
}

// Report says what Recover found and did, or what Verify found and
// Recover would do.
type Report struct {
	DB         string
	DryRun     bool           // from Verify: nothing was modified
	Journal    string         // "missing", "ok", "torn", or "damaged: " and why
	Last       journal.Record // the last trustworthy record; zero if none
	State      State
	Action     Action
	Gen        uint64   // the checkpoint acted on, 0 if none
	Removed    []string // leftovers removed (or to remove)
	MovedAside []string // copies kept under an orphan name (or to keep)
	Rewrote    bool     // the journal was (or would be) replaced
	// Mismatch (Verify only): the database is not what the journal's last
	// checkpoint wrote (size or checksum): written outside ejectsafe, or
	// damaged on the drive.
	Mismatch bool
	Notes    []string
}

// String renders the report on one line, for the CLI.
func (r Report) String() string {
	var b strings.Builder
	verb, would := "recover", ""
	if r.DryRun {
		verb, would = "verify", "would be "
	}
	fmt.Fprintf(&b, "%s %s: journal %s", verb, r.DB, r.Journal)
	if r.Last.Kind != 0 {
		fmt.Fprintf(&b, " (last: %v)", r.Last)
	}
	fmt.Fprintf(&b, "; %v", r.State)
	if r.DryRun && r.Action != ActionNone {
		fmt.Fprintf(&b, "; recover would have: %v", r.Action)
	} else {
		fmt.Fprintf(&b, "; %v", r.Action)
	}
	if r.Gen != 0 && (r.Action == ActionRollBack || r.Action == ActionRollForward || r.Action == ActionFinish) {
		fmt.Fprintf(&b, " checkpoint %d", r.Gen)
	}
	if len(r.Removed) > 0 {
		fmt.Fprintf(&b, "; %sremoved: %s", would, strings.Join(r.Removed, ", "))
	}
	if len(r.MovedAside) > 0 {
		fmt.Fprintf(&b, "; %skept aside: %s", would, strings.Join(r.MovedAside, ", "))
	}
	if r.Rewrote && r.Action != ActionReset {
		fmt.Fprintf(&b, "; journal %srewritten", would)
	}
	for _, n := range r.Notes {
		b.WriteString("; " + n)
	}
	return b.String()
}

// Recover brings dbPath's directory to a clean state after a crash or a
// pull, and reports what it did: afterwards the database name holds a
// committed state, no copy or journal temp is left, and the journal (if
// any) is clean, so Open succeeds. Recover is idempotent: a pull during
// it is recovered by the next Recover. It fails, modifying nothing, with
// ErrUnrecoverable or ErrJournal when it cannot tell what is right.
func Recover(fsys device.FS, dbPath string) (Report, error) {
	return recoverDB(fsys, dbPath, true, ChooseNothing)
}

// Choice is a person's decision for a checkpoint Recover refused to settle
// by itself (ErrUnrecoverable): a checkpoint whose copy was complete, next
// to a database that is not provably its base, or next to a -wal or
// -journal that stock SQLite left. Every file that is not kept at its name
// is kept under an aside name (Report.MovedAside); nothing is deleted.
type Choice int

const (
	// ChooseNothing: recovery acts only on what it has proven.
	ChooseNothing Choice = iota
	// ChooseKeepDrive keeps the database as it is on the drive, with the
	// -wal or -journal stock SQLite left next to it (the next Open folds
	// them in); the checkpoint's copy is moved aside and the checkpoint
	// recorded as aborted.
	ChooseKeepDrive
	// ChooseRollForward takes the checkpoint's copy, which must match the
	// journal's Ready record: the database, its -wal, -journal and -shm
	// are moved aside, and the copy renamed over the database.
	ChooseRollForward
)

// RecoverWith is Recover with a person's Choice for a checkpoint Recover
// would refuse; with ChooseNothing it is Recover. Use it only after
// reading what Recover refused (the *UnrecoverableError names the files).
func RecoverWith(fsys device.FS, dbPath string, c Choice) (Report, error) {
	return recoverDB(fsys, dbPath, true, c)
}

// Verify inspects dbPath's directory as Recover would, without modifying
// anything: the report says what Recover would do. For a clean database
// whose journal records its checksum, Verify also checks the database
// against it (reading it whole).
func Verify(fsys device.FS, dbPath string) (Report, error) {
	return recoverDB(fsys, dbPath, false, ChooseNothing)
}

type tempFile struct {
	gen  uint64
	name string
}

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte(layout.SQLiteHeader)

// recoverDB is the recovery pipeline: read what is on the drive (steps 1
// to 3), decide (step 4, decide: a row of the recovery table), then stop
// there (modify=false: Verify) or apply the decision (steps 5 to 9).
func recoverDB(fsys device.FS, dbPath string, modify bool, choice Choice) (Report, error) {
	p := newPaths(dbPath)
	rep := Report{DB: p.db, DryRun: !modify}
	wrap := func(err error) error { return fmt.Errorf("checkpoint recover %s: %w", p.db, err) }
	var buf []byte
	f := facts{choice: choice}

	// 1. List the directory: which copies and journal temps exist. Names
	// say what a file was meant to be, never what it holds.
	names, err := fsys.List(p.dir)
	if err != nil {
		return rep, wrap(err)
	}
	var temps []tempFile
	var maxGen uint64
	jtemp := false
	for _, n := range names {
		if g, ok := journal.ParseTempName(p.baseName, n); ok {
			temps = append(temps, tempFile{gen: g, name: filepath.Join(p.dir, n)})
			maxGen = max(maxGen, g)
		}
		jtemp = jtemp || n == filepath.Base(p.jtemp)
	}
	// Stock SQLite's own files next to the database: a -wal or hot
	// -journal holds writes made on top of the database as it was when
	// they were written, so they belong to that file only.
	f.stock, f.stockUsed, f.journalFromEmpty, err = stockFiles(fsys, p, names)
	if err != nil {
		return rep, wrap(err)
	}

	// 2. Read the journal. A newer format, or a record no torn write can
	// produce (a broken writer), is not ours to overwrite: decide
	// refuses it.
	data, jexists, err := readJournal(fsys, p.journal)
	switch {
	case errors.Is(err, ErrJournal):
		f.jreadErr = err
	case err != nil:
		return rep, wrap(err)
	case jexists:
		f.jexists = true
		f.j, f.jerr = journal.Decode(data)
	}

	// 3. The database, summed where it could match the checkpoint in
	// flight; the copy of a Ready checkpoint unless the database is it;
	// the first bytes of each where a decision needs them.
	cp, inFlight := f.inFlight()
	if f.jreadErr == nil && !errors.Is(f.jerr, journal.ErrVersion) && !errors.Is(f.jerr, journal.ErrRecord) {
		if f.db, err = statSum(fsys, p.db, &buf, f.wantDBSum); err != nil {
			return rep, wrap(err)
		}
		if (f.jerr != nil || f.j.Torn || f.j.Damaged) && f.db.Exists && f.db.Size > 0 {
			if f.dbSQLite, err = looksLikeSQLite(fsys, p.db); err != nil {
				return rep, wrap(err)
			}
		}
		f.cpy = FileSum{Name: p.temp(cp.Gen)}
		if ready := cp.Ready; inFlight && f.jerr == nil && cp.State == journal.Ready && !f.db.matches(ready.Size, ready.Sum) {
			if f.cpy, err = statSum(fsys, f.cpy.Name, &buf, func(n int64) bool { return n == ready.Size }); err != nil {
				return rep, wrap(err)
			}
			if f.cpy.matches(ready.Size, ready.Sum) && ready.Size > 0 {
				if f.cpySQLite, err = looksLikeSQLite(fsys, f.cpy.Name); err != nil {
					return rep, wrap(err)
				}
			}
		}
	}

	// The redo log of an in-place checkpoint in flight, proved against
	// the database (recover_inplace.go); for a copy whose database is its
	// base, a stock -wal proved against the copy.
	switch {
	case inFlight && cp.InPlace && f.jerr == nil:
		if f.log, err = readInPlaceLog(fsys, p, cp.Ready, &buf); err != nil {
			return rep, wrap(err)
		}
	case inFlight && cp.State == journal.Ready && f.jerr == nil && f.cpy.matches(cp.Ready.Size, cp.Ready.Sum) &&
		f.db.matches(cp.Began.Size, cp.Began.Sum) && onlyWAL(f.stock, f.stockUsed):
		if f.log, err = readStockWAL(fsys, p, cp.Ready, &buf); err != nil {
			return rep, wrap(err)
		}
	}

	// 4. Decide: one row of the recovery table (decide.go).
	d := decide(p, f)
	rep.Journal, rep.State, rep.Action, rep.Gen = d.journal, d.state, d.action, d.gen
	rep.Notes = append(rep.Notes, d.notes...)
	if d.row == rowJournalUnusable {
		return rep, wrap(d.err)
	}
	rep.Last, _ = f.j.Last()
	if d.err != nil {
		return rep, d.err
	}
	maxGen = max(maxGen, rep.Last.Gen, f.j.Header.BaseGen)
	j, db, record, reset, torn := f.j, f.db, d.record, d.reset, f.j.Torn || f.j.Damaged
	forward, keepCopy, setAside := d.forward, d.keepCopy, d.setAside

	// Every copy but the one rolled forward is a leftover. Without a
	// database, and without a journal that can vouch for what a copy is,
	// a copy with data is kept aside rather than removed.
	var remove, aside []tempFile
	for _, t := range temps {
		switch {
		case t.name == forward:
		case t.name == keepCopy:
			aside = append(aside, t)
			rep.MovedAside = append(rep.MovedAside, t.name)
		case !db.Exists && (reset || !jexists):
			fi, err := fsys.Stat(t.name)
			if err != nil {
				return rep, wrap(err)
			}
			if fi.Size() > 0 {
				aside = append(aside, t)
				rep.MovedAside = append(rep.MovedAside, t.name)
				continue
			}
			fallthrough
		default:
			remove = append(remove, t)
			rep.Removed = append(rep.Removed, t.name)
		}
	}
	if jtemp {
		rep.Removed = append(rep.Removed, p.jtemp)
	}
	if d.removeLog {
		rep.Removed = append(rep.Removed, p.wal)
	}
	// A journal with no free slot for the record (not written by this
	// version) is replaced too: appending would extend it.
	rep.Rewrote = reset || torn || (record.Kind != 0 && j.Free == 0)
	if rep.Action == ActionClean && len(rep.Removed) == 0 && len(aside) == 0 && !rep.Rewrote {
		rep.Action = ActionNone
	}
	if !modify {
		if rep.State == StateClean && !torn && rep.Last.Kind == journal.Done && db.Exists && db.Size != rep.Last.Size {
			rep.Mismatch = true
			rep.Notes = append(rep.Notes, fmt.Sprintf("database is %d bytes, the journal's last checkpoint %d: written outside ejectsafe, or damaged", db.Size, rep.Last.Size))
		}
		if rep.State == StateClean && !torn && rep.Last.Kind == journal.Done && db.Exists && db.Size == rep.Last.Size {
			sum, err := statSum(fsys, p.db, &buf, func(int64) bool { return true })
			switch {
			case err != nil:
				return rep, wrap(err)
			case sum.Sum == rep.Last.Sum:
				rep.Notes = append(rep.Notes, "database matches the journal's checksum")
			default:
				rep.Mismatch = true
				rep.Notes = append(rep.Notes, fmt.Sprintf("database checksum %#016x differs from the journal's: written outside ejectsafe, or damaged", sum.Sum))
			}
		}
		return rep, nil
	}
	if rep.Action == ActionNone {
		return rep, nil
	}

	// 5. Remove the journal temp: it only ever holds history that the
	// journal holds too (a creation, compaction or replacement that did
	// not finish).
	changed := false
	if jtemp {
		if err := fsys.Remove(p.jtemp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, wrap(err)
		}
		changed = true
	}

	// 6. Roll forward: the copy matched Ready, so it is whole and synced.
	// The journal stays as it is until the directory fsync below: a pull
	// before then decides again by checksums. On a person's choice the
	// database goes aside first, and that is durable before stock
	// SQLite's files follow: a pull in between leaves the copy with no
	// database and the stock files at their names, which the next Recover
	// refuses (as --keep-drive does: no database to keep) and
	// --roll-forward finishes. Moving the stock files first would leave
	// the base alone beside the copy, which the next Recover (every Open)
	// rolls forward over, losing the base the -wal set aside belongs to.
	// Each move is durable (device.Rename) where the next step must
	// not overtake it: the database before the stock files, and the
	// last before the copy takes the name (a pull must not bring a -wal
	// back beside the rolled-forward database).
	for i, a := range setAside {
		name, err := asideName(fsys, p, a.kind)
		if err != nil {
			return rep, wrap(err)
		}
		if a.kind == "db" || i == len(setAside)-1 {
			err = device.Rename(fsys, a.name, name)
		} else {
			err = fsys.Rename(a.name, name)
		}
		if err != nil {
			return rep, wrap(err)
		}
		rep.MovedAside = append(rep.MovedAside, a.name+" -> "+name)
		changed = true
	}
	if forward != "" {
		if err := fsys.Rename(forward, p.db); err != nil {
			return rep, wrap(err)
		}
		changed = true
	}
	// In place: the proved log applied and fsynced, then removed; the
	// removal durable (step 8) before Done is recorded.
	if d.applyLog {
		if err := applyInPlaceLog(fsys, p, f.log); err != nil {
			return rep, wrap(err)
		}
	}
	if d.removeLog {
		if err := fsys.Remove(p.wal); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, wrap(err)
		}
		changed = true
	}

	// 7. Remove the leftover copies; keep aside those that could be the
	// only copy of some data.
	for _, t := range remove {
		if err := fsys.Remove(t.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, wrap(err)
		}
		changed = true
	}
	for i, t := range aside {
		name, err := freeName(fsys, p, t.gen)
		if err != nil {
			return rep, wrap(err)
		}
		if err := fsys.Rename(t.name, name); err != nil {
			return rep, wrap(err)
		}
		rep.MovedAside[i] = t.name + " -> " + name
		changed = true
	}

	// 8. fsync the directory before the journal records the outcome: Done
	// must not claim a rename a pull could still undo, and a copy must
	// not outlive the record that says it was discarded.
	if changed {
		if err := fsys.SyncDir(p.dir); err != nil {
			return rep, wrap(err)
		}
	}

	// 9. Record the outcome. A torn or damaged journal is replaced whole
	// (new file id, through a temp file), never appended to: its
	// prefix may understate what happened, and a frame after a torn one
	// would never be read. Otherwise append the record and fsync.
	if rep.Rewrote {
		perm := os.FileMode(0o644)
		if fi, err := fsys.Stat(p.db); err == nil {
			perm = fi.Mode().Perm()
		}
		jf := jfile{fsys: fsys, p: p, perm: perm}
		h := journal.Header{FileID: journal.NewFileID(), BaseGen: maxGen}
		var recs []journal.Record
		switch {
		case record.Kind == journal.Done && !reset:
			h.BaseGen, recs = cp.Gen-1, []journal.Record{cp.Began, cp.Ready, record}
		case record.Kind == journal.Aborted && !reset && !torn:
			// A whole journal with no free slot: carry the checkpoint
			// with its outcome, as an append would have recorded it.
			h.BaseGen, recs = cp.Gen-1, []journal.Record{cp.Began}
			if cp.State == journal.Ready || cp.State == journal.Intent {
				recs = append(recs, cp.Ready)
			}
			recs = append(recs, record)
		}
		err := jf.rebuild(h, recs, DefaultJournalLimit)
		if cerr := jf.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, wrap(err)
		}
	} else if record.Kind != 0 {
		f, err := fsys.Open(p.journal, device.ReadWrite)
		if err != nil {
			return rep, wrap(err)
		}
		jf := jfile{fsys: fsys, p: p, f: f, j: j}
		err = jf.append(record)
		if cerr := jf.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, wrap(err)
		}
	}
	return rep, nil
}

// looksLikeSQLite reports whether the file at name starts with the SQLite
// header string.
func looksLikeSQLite(fsys device.FS, name string) (bool, error) {
	f, err := fsys.Open(name, device.ReadOnly)
	if err != nil {
		return false, err
	}
	defer f.Close() // read-only
	b := make([]byte, len(sqliteMagic))
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return false, err
	}
	return bytes.Equal(b[:n], sqliteMagic), nil
}

// freeName returns an orphan name for a copy of generation gen that is
// not taken.
func freeName(fsys device.FS, p paths, gen uint64) (string, error) {
	for n := 0; ; n++ {
		name := p.orphan(gen, n)
		_, err := fsys.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
	}
}

// Stock SQLite's companion files of a database.
const (
	stockWAL     = layout.WALSuffix
	stockJournal = layout.RollbackSuffix
	stockSHM     = layout.SharedMemorySuffix
)

// stockFiles returns stock SQLite's files beside the database that
// exist, found in names (the directory's listing), with their sizes,
// which of them SQLite would apply to the database (used), and whether the
// -journal is hot and its header says the database had no page before
// its transaction (fromEmpty: played back, it truncates the database to
// nothing).
func stockFiles(fsys device.FS, p paths, names []string) (out []FileSum, used []bool, fromEmpty bool, err error) {
	for _, suf := range []string{stockWAL, stockJournal, stockSHM} {
		if !slices.Contains(names, p.baseName+suf) {
			continue
		}
		name := p.db + suf
		fi, err := fsys.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, false, err
		}
		u := false
		switch suf {
		case stockWAL:
			// Shorter than a WAL header, SQLite ignores it; so it does a
			// retired redo log (a header of zeros, sqlitewal.Retired).
			if fi.Size() >= sqlitewal.HeaderSize {
				f, err := fsys.Open(name, device.ReadOnly)
				if err != nil {
					return nil, nil, false, err
				}
				retired, rerr := sqlitewal.Retired(f, fi.Size())
				f.Close() // read-only
				if rerr != nil {
					return nil, nil, false, rerr
				}
				u = !retired
			}
		case stockJournal:
			// Hot only with SQLite's journal header (a zeroed or
			// truncated journal is ignored). SQLite would not play it
			// into a missing or empty database, but see hasStockData.
			if fi.Size() >= int64(len(rollbackMagic)) {
				f, err := fsys.Open(name, device.ReadOnly)
				if err != nil {
					return nil, nil, false, err
				}
				// Magic, record count, nonce, then the database's size
				// in pages before the transaction (pager.c).
				b := make([]byte, 20)
				n, rerr := f.ReadAt(b, 0)
				f.Close() // read-only
				if rerr != nil && rerr != io.EOF {
					return nil, nil, false, rerr
				}
				u = bytes.Equal(b[:len(rollbackMagic)], rollbackMagic)
				fromEmpty = u && n == len(b) && binary.BigEndian.Uint32(b[16:]) == 0
			}
		}
		out = append(out, FileSum{Name: name, Exists: true, Size: fi.Size()})
		used = append(used, u)
	}
	return out, used, fromEmpty, nil
}

// rollbackMagic starts the header of a rollback journal SQLite would play
// back (pager.c aJournalMagic).
var rollbackMagic = []byte(layout.RollbackMagic)

// hasStockData reports whether one of files (from stockFiles) holds data
// stock SQLite would apply: a -wal, or a -journal with SQLite's header.
// A hot -journal counts even beside a missing or empty database: SQLite
// ignores it there, but a roll forward puts the (non-empty) copy at the
// database's name, and SQLite would then play the journal back into it
// (recoverDB settles one begun on an empty database before asking).
func hasStockData(used []bool) bool {
	return slices.Contains(used, true)
}

// onlyWAL reports whether the -wal is the only one of files (from
// stockFiles) that SQLite would apply.
func onlyWAL(files []FileSum, used []bool) bool {
	n := 0
	for i, f := range files {
		if used[i] {
			if !strings.HasSuffix(f.Name, stockWAL) {
				return false
			}
			n++
		}
	}
	return n == 1
}

// onlyJournal reports whether the -journal is the only one of files
// (from stockFiles) that SQLite would apply.
func onlyJournal(files []FileSum, used []bool) bool {
	n := 0
	for i, f := range files {
		if used[i] {
			if !strings.HasSuffix(f.Name, stockJournal) {
				return false
			}
			n++
		}
	}
	return n == 1
}

// asideFile is a file a person's choice moves out of the way.
type asideFile struct {
	name string
	kind string // "db", "wal", "journal", "shm"
}

// stockKind names a stock file's kind for its aside name.
func stockKind(p paths, name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, p.db), "-")
}

// asideName returns a free name for a file of kind moved aside:
// <db>.ejectsafe-aside-N.<kind>. It never ends in -wal, -journal or -shm,
// so neither SQLite nor the shim takes it for a companion file.
func asideName(fsys device.FS, p paths, kind string) (string, error) {
	for n := 1; ; n++ {
		name := fmt.Sprintf("%s%s%d.%s", p.db, asideInfix, n, kind)
		_, err := fsys.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
	}
}

// ResetJournal moves the journal aside, with every checkpoint copy, so
// that the next Recover starts without one: the way out of a journal
// that Recover refuses (ErrJournal: larger than MaxJournalSize, a newer
// format, a broken record). Without a journal nothing vouches for the
// database, so the caller must first prove that it is a valid SQLite
// file (the CLI's recover --reset-journal runs integrity_check on it).
// Nothing is deleted: the journal goes to <db>.ejectsafe-aside-N.jrnl,
// copies to orphan names. It returns the moves as "from -> to".
func ResetJournal(fsys device.FS, dbPath string) ([]string, error) {
	p := newPaths(dbPath)
	wrap := func(err error) error { return fmt.Errorf("checkpoint reset journal %s: %w", p.db, err) }
	names, err := fsys.List(p.dir)
	if err != nil {
		return nil, wrap(err)
	}
	var moved []string
	move := func(from, to string) error {
		if err := fsys.Rename(from, to); err != nil {
			return err
		}
		moved = append(moved, from+" -> "+to)
		return nil
	}
	// The copies (and the journal temp) go first, and that is made durable
	// before the journal moves: a pull that kept the journal's move but
	// not a copy's would leave a copy under its temp name with no journal,
	// which the next Recover removes as a leftover.
	jname := ""
	for _, n := range names {
		var to string
		switch g, isTemp := journal.ParseTempName(p.baseName, n); {
		case n == filepath.Base(p.journal):
			jname = n
			continue
		case n == filepath.Base(p.jtemp):
			to, err = asideName(fsys, p, "jrnl-tmp")
		case isTemp:
			to, err = freeName(fsys, p, g)
		default:
			continue
		}
		if err == nil {
			err = move(filepath.Join(p.dir, n), to)
		}
		if err != nil {
			return moved, wrap(err)
		}
	}
	if len(moved) > 0 {
		if err := fsys.SyncDir(p.dir); err != nil {
			return moved, wrap(err)
		}
	}
	if jname != "" {
		to, err := asideName(fsys, p, "jrnl")
		if err == nil {
			err = move(p.journal, to)
		}
		if err == nil {
			err = device.SyncDirOf(fsys, p.journal)
		}
		if err != nil {
			return moved, wrap(err)
		}
	}
	return moved, nil
}
