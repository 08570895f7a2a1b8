package checkpoint

import (
	"errors"
	"fmt"

	"github.com/ejectsafe/ejectsafe/journal"
)

// row names one row of the recovery table (docs/ARCHITECTURE.md,
// "Recovery"): decide returns the row it applied, and its table test has
// one case per row.
type row int

const (
	rowNone row = iota
	// The journal cannot be used: a newer format, a record no torn write
	// produces, or larger than MaxJournalSize. Refuse (ErrJournal).
	rowJournalUnusable
	// The journal's header is damaged and the database starts like an
	// SQLite file (or is empty or missing): keep it, new journal.
	rowDamagedReset
	// No checkpoint in flight (no journal, or the last one is done or
	// aborted): remove leftovers.
	rowClean
	// Began, not Ready: the copy was never complete. Roll back.
	rowBegan
	// Ready, and the database is the copy: record Done.
	rowFinish
	// Ready, copy whole, database missing or empty, the only stock data a
	// hot -journal begun on an empty database: keep the empty database.
	rowEmptyBaseJournal
	// Ready, copy whole, database the base or missing, no stock data:
	// roll forward.
	rowRollForward
	// Ready, copy whole, stock data beside the database (or its name):
	// refuse.
	rowStockData
	// Ready, copy whole, the database neither base nor copy: refuse.
	rowForeignDB
	// Ready, copy not whole, the database is the base: roll back.
	rowBaseKept
	// Ready, journal torn, neither file matches: keep the database (a
	// later committed state), new journal.
	rowTornReset
	// Ready, nothing matches, journal whole: refuse.
	rowNoMatch
	// A reset (damaged header, or torn journal) over a database that does
	// not start like an SQLite file: refuse.
	rowResetNotSQLite
	// A person's --keep-drive: keep the database, copy aside, Aborted.
	rowKeepDrive
	// --keep-drive with no database to keep: refuse.
	rowKeepDriveNoDB
	// A person's --roll-forward with the copy whole: the database and
	// stock files aside, the copy renamed over the name.
	rowChooseForward
	// --roll-forward with the copy not whole: refuse.
	rowChooseForwardNoCopy
	// In place (the checkpoint ends in Intent; recover_inplace.go):
	// the database is the new state: record Done, remove a log that is
	// exactly this checkpoint's.
	rowInPlaceFinish
	// The log proves (its first transaction over the database gives
	// Intent) and holds nothing else: apply it, remove it, record Done.
	rowInPlaceForward
	// The log proves, and stock SQLite wrote more after it: refuse.
	rowInPlaceStockAfter
	// No proving log, the database is the base: roll back.
	rowInPlaceBase
	// No proving log, the database neither base nor new: refuse.
	rowInPlaceNoMatch
	// A person's --keep-drive over an in-place checkpoint: keep the
	// database and the -wal, Aborted.
	rowInPlaceKeepDrive
	// Ready, copy whole, database the base, and the stock -wal beside
	// it is exactly what the copy folded in (Open's fold of a stock
	// -wal, cut before its rename): roll forward, remove the -wal.
	rowFoldedStock
	rowCount // not a row: the number of rows plus one
)

// facts is everything recovery reads from the drive before it decides:
// decide is a function of them alone.
type facts struct {
	choice Choice

	jexists  bool
	jreadErr error // readJournal's ErrJournal (too large); nil otherwise
	jerr     error // journal.Decode's error
	j        journal.Journal

	// db is the database, summed when its size could match the
	// checkpoint in flight (wantDBSum).
	db FileSum
	// dbSQLite: the database starts like an SQLite file. Read only when
	// a reset is possible (damaged or torn journal) and it has bytes.
	dbSQLite bool
	// cpy is the checkpoint in flight's copy, read only when the
	// database is not already its Ready state; cpySQLite: it starts like
	// an SQLite file (read only when cpy matches Ready with bytes).
	cpy       FileSum
	cpySQLite bool

	// Stock SQLite's files beside the database (stockFiles).
	stock            []FileSum
	stockUsed        []bool
	journalFromEmpty bool

	// log is the -wal beside an in-place checkpoint in flight, or, for
	// a copy whose database is its base, the stock -wal proved against
	// the copy (readStockWAL).
	log logFacts
}

// inFlight returns the journal's last checkpoint when it is unresolved
// and the header can be trusted.
func (f *facts) inFlight() (journal.Checkpoint, bool) {
	cp, ok := f.j.Latest()
	return cp, ok && cp.InFlight()
}

// wantDBSum says whether the database of size must be summed: only
// where it could match the checkpoint in flight, which has to be Ready.
func (f *facts) wantDBSum(size int64) bool {
	cp, ok := f.inFlight()
	return ok && f.jerr == nil && (cp.State == journal.Ready || cp.State == journal.Intent) && (size == cp.Began.Size || size == cp.Ready.Size)
}

// decision is what recovery does: a row of the recovery table, with what
// applying it takes.
type decision struct {
	row     row
	journal string // Report.Journal
	state   State
	action  Action
	gen     uint64
	notes   []string
	// err refuses: an *UnrecoverableError, or ErrJournal (row
	// rowJournalUnusable). Nothing is modified.
	err error

	record    journal.Record // the record that resolves the checkpoint; Kind 0 if none
	forward   string         // the copy to rename over the database
	keepCopy  string         // the copy to keep aside (--keep-drive)
	setAside  []asideFile    // files moved aside before the roll forward (--roll-forward)
	reset     bool           // the journal cannot vouch for anything: keep the database, new journal
	applyLog  bool           // in place: apply the -wal (facts.log) to the database
	removeLog bool           // in place: remove the -wal
}

// decide picks the row of the recovery table that f falls in. It reads
// nothing: every check it rests on was made by the caller (recoverDB), so
// Recover applies, and Verify reports, the very same decision.
//
// The argument the decisions rest on: the protocol (package doc) writes
// the journal only at moments when the database name holds a committed
// state, and fsyncs each write before the next step. Between a rename and
// the directory fsync that settles it, the journal is quiet and ends with
// a synced Ready. So a journal damaged by a pull (a torn append, or a torn
// sector that also wiped records synced before it) means the database
// name holds a committed state. And a copy's name survives only while its
// checkpoint was never reported committed (Done follows the directory
// fsync that makes the rename, which removes that name, durable), so
// removing a copy never loses a commit that Commit reported.
func decide(p paths, f facts) decision {
	var d decision
	if f.jreadErr != nil {
		// Larger than any journal: refused unread.
		d.row, d.journal, d.action, d.err = rowJournalUnusable, "unusable: too large", ActionRefused, f.jreadErr
		return d
	}
	if errors.Is(f.jerr, journal.ErrVersion) || errors.Is(f.jerr, journal.ErrRecord) {
		// Not ours to overwrite: a newer format, or a broken writer.
		d.row, d.journal, d.action = rowJournalUnusable, "unusable: "+f.jerr.Error(), ActionRefused
		d.err = fmt.Errorf("%w: %s: %w", ErrJournal, p.journal, f.jerr)
		return d
	}
	damaged := f.jerr != nil        // the header: nothing in the journal can be trusted
	torn := f.j.Torn || f.j.Damaged // the tail: a pull during an append; the torn record is dropped
	switch {
	case !f.jexists:
		d.journal = "missing"
	case damaged:
		d.journal = "damaged: " + f.jerr.Error()
	case torn:
		d.journal = "torn"
	default:
		d.journal = "ok"
	}
	cp, inFlight := f.inFlight()
	db, cpy := f.db, f.cpy
	refuse := func(r row, reason string, files ...FileSum) decision {
		d.row, d.action = r, ActionRefused
		d.err = &UnrecoverableError{DB: p.db, Reason: reason, Began: cp.Began, Ready: cp.Ready, Files: files}
		return d
	}
	aborted := journal.Record{Kind: journal.Aborted, Gen: cp.Gen}
	done := journal.Record{Kind: journal.Done, Gen: cp.Gen, Size: cp.Ready.Size, Sum: cp.Ready.Sum}
	switch {
	case damaged:
		// By the argument above the database holds a committed state;
		// it must look like a database (below), and gets a new journal.
		d.row, d.state, d.reset = rowDamagedReset, StateDamaged, true
	case !inFlight:
		d.row, d.state, d.action = rowClean, StateClean, ActionClean
	case cp.State == journal.Began:
		d.row, d.state, d.action, d.gen, d.record = rowBegan, StateBegan, ActionRollBack, cp.Gen, aborted
	case cp.InPlace:
		d = decideInPlace(p, f, cp, d, torn)
	default:
		// Ready: decide by checksums, never by names. The copy was
		// fsynced before Ready, so a match means it is whole.
		d.state, d.gen = StateReady, cp.Gen
		ready := cp.Ready
		// The copy is the intended file: the bytes Ready recorded,
		// starting like an SQLite database.
		copyOK := cpy.Exists && cpy.matches(ready.Size, ready.Sum) && (ready.Size == 0 || f.cpySQLite)
		// The database is the checkpoint's base only by a checksum
		// computed over it just now, never by its size; a missing
		// database is FAT's rename caught halfway.
		isBase := db.matches(cp.Began.Size, cp.Began.Sum)
		stockData := hasStockData(f.stockUsed)
		files := append([]FileSum{db, cpy}, f.stock...)
		switch {
		case db.matches(ready.Size, ready.Sum):
			// Whatever stock SQLite left beside it was written on top
			// of this very file (FAT's "both names" too).
			d.row, d.action, d.record = rowFinish, ActionFinish, done
		case f.choice == ChooseKeepDrive && !db.Exists:
			// Nothing to keep: aborting would leave no database, and
			// the next Open would fold a -wal into an empty one.
			return refuse(rowKeepDriveNoDB, "--keep-drive needs a database on the drive, and there is none", files...)
		case f.choice == ChooseKeepDrive:
			d.row, d.action, d.record = rowKeepDrive, ActionRollBack, aborted
			if cpy.Exists {
				d.keepCopy = cpy.Name
			}
			d.notes = append(d.notes, "kept the database as it is on the drive (--keep-drive)")
		case f.choice == ChooseRollForward && copyOK:
			d.row, d.action, d.forward, d.record = rowChooseForward, ActionRollForward, cpy.Name, done
			// The database first (recoverDB's roll forward says why).
			if db.Exists {
				d.setAside = append(d.setAside, asideFile{p.db, "db"})
			}
			for _, s := range f.stock {
				d.setAside = append(d.setAside, asideFile{s.Name, stockKind(p, s.Name)})
			}
			d.notes = append(d.notes, "took the checkpoint's copy (--roll-forward)")
		case f.choice == ChooseRollForward:
			return refuse(rowChooseForwardNoCopy, "--roll-forward needs the checkpoint's copy whole, and it is not", files...)
		case copyOK && cp.Began.Size == 0 && (!db.Exists || db.Size == 0) && f.journalFromEmpty && onlyJournal(f.stock, f.stockUsed):
			// A new database entering WAL mode writes its first page
			// through a rollback journal, and the checkpoint of it runs
			// before SQLite deletes the journal. Beside an empty base,
			// a hot journal of a transaction begun on an empty database
			// says that transaction never committed: played back into
			// the copy it would leave nothing, so keep the empty
			// database, as SQLite itself would (it drops a journal
			// beside an empty database).
			d.row, d.action, d.record = rowEmptyBaseJournal, ActionRollBack, aborted
			d.notes = append(d.notes, "a rollback journal of a transaction begun on the empty database was not finished: kept the empty database")
		case copyOK && (isBase || !db.Exists) && !stockData:
			d.row, d.action, d.forward, d.record = rowRollForward, ActionRollForward, cpy.Name, done
		case copyOK && isBase && f.log.proves && onlyWAL(f.stock, f.stockUsed):
			// The copy is the base with this very -wal applied: the
			// checkpoint folding it in. Its replay over the copy would
			// change nothing, and it is removed after the rename.
			d.row, d.action, d.forward, d.record = rowFoldedStock, ActionRollForward, cpy.Name, done
			d.removeLog = true
			d.notes = append(d.notes, "the stock -wal beside the database is the one the checkpoint folded in: finished the fold")
		case copyOK && stockData:
			// Stock SQLite wrote on top of the database after the pull:
			// rolling forward would either drop those writes or apply
			// them to a file they do not belong to.
			if !db.Exists {
				return refuse(rowStockData, "stock SQLite left a -wal or -journal beside a checkpoint that was not finished, and no database; take the copy with ejectsafe recover --roll-forward (the stock files are kept aside)", files...)
			}
			return refuse(rowStockData, "stock SQLite left a -wal or -journal beside a checkpoint that was not finished; choose with ejectsafe recover --keep-drive or --roll-forward", files...)
		case copyOK:
			return refuse(rowForeignDB, "the database is neither the checkpoint's base nor its copy (written outside ejectsafe?); choose with ejectsafe recover --keep-drive or --roll-forward", files...)
		case isBase:
			// The rename never landed (FAT may lose the copy's name).
			d.row, d.action, d.record = rowBaseKept, ActionRollBack, aborted
		case torn:
			// A torn write after Ready may have wiped later records: the
			// database is a later committed state (argument above).
			d.row, d.reset = rowTornReset, true
			d.notes = append(d.notes, fmt.Sprintf("database matches neither checkpoint %d nor its base; the torn journal lost later records", cp.Gen))
		default:
			return refuse(rowNoMatch, "no file matches the checkpoint in flight or its base", files...)
		}
	}
	if d.reset {
		d.action = ActionReset
		if db.Exists && db.Size > 0 && !f.dbSQLite {
			return refuse(rowResetNotSQLite, "the journal is damaged and the database does not start like an SQLite database", db)
		}
	}
	return d
}
