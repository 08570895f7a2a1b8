package checkpoint

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ejectsafe/ejectsafe/journal"
)

// TestDecide has one case per row of the recovery table
// (docs/ARCHITECTURE.md, "Recovery"): each case is the facts of that row,
// and checks the row decide names, what it does, and what it records. A
// row without a case, or with two, fails the test.
func TestDecide(t *testing.T) {
	p := newPaths("/d/app.db")
	decoded := func(recs ...journal.Record) journal.Journal {
		t.Helper()
		j, err := journal.Decode(jbytes(0, recs...))
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	torn := func(j journal.Journal) journal.Journal { j.Torn = true; return j }
	file := func(name string, data []byte) FileSum {
		return FileSum{Name: name, Exists: true, Size: int64(len(data)), Sum: journal.Sum(data), Summed: true}
	}
	var (
		inReady = decoded(began1, ready1)
		base    = file(p.db, stateA)                              // the checkpoint's base
		asCopy  = file(p.db, stateB)                              // the database is the copy
		foreign = file(p.db, stateC)                              // neither
		noDB    = FileSum{Name: p.db}                             // missing
		cpy     = file(p.temp(1), stateB)                         // the copy, whole
		badCopy = FileSum{Name: p.temp(1), Exists: true, Size: 7} // not whole
		wal     = []FileSum{{Name: p.db + "-wal", Exists: true, Size: 4096}}
		empty   = FileSum{Name: p.db, Exists: true, Size: 0, Sum: journal.Sum(nil), Summed: true}
		began0  = journal.Record{Kind: journal.Began, Gen: 1, Size: 0, Sum: journal.Sum(nil)}
		ready0  = rec(journal.Ready, 1, stateB)
		hotJrnl = []FileSum{{Name: p.db + "-journal", Exists: true, Size: 512}}
	)
	// ready is the facts of a Ready checkpoint with database db and copy c.
	ready := func(db, c FileSum) facts {
		return facts{jexists: true, j: inReady, db: db, cpy: c, cpySQLite: c.Exists, dbSQLite: db.Exists}
	}
	with := func(f facts, edit func(*facts)) facts { edit(&f); return f }
	// inPlace is the facts of an in-place checkpoint (Began, Intent{B})
	// with database db and redo log lf.
	intent1 := rec(journal.Intent, 1, stateB)
	inPlace := func(db FileSum, lf logFacts) facts {
		return facts{jexists: true, j: decoded(began1, intent1), db: db, log: lf}
	}
	var (
		ourLog     = logFacts{exists: true, committed: true, proves: true}
		ourLogMore = logFacts{exists: true, committed: true, proves: true, more: true}
		tornLog    = logFacts{exists: true}
		otherLog   = logFacts{exists: true, committed: true}
	)

	cases := []struct {
		row    row
		f      facts
		action Action
		record journal.Kind // the record that resolves the checkpoint, 0 if none
		err    error        // the refusal, nil if none
	}{
		{rowJournalUnusable, facts{jexists: true, jerr: fmt.Errorf("x: %w", journal.ErrVersion)}, ActionRefused, 0, ErrJournal},
		{rowDamagedReset, facts{jexists: true, jerr: journal.ErrBadMagic, db: base, dbSQLite: true}, ActionReset, 0, nil},
		{rowClean, facts{jexists: true, j: decoded(began1, ready1, done1), db: asCopy}, ActionClean, 0, nil},
		{rowBegan, facts{jexists: true, j: decoded(began1), db: base}, ActionRollBack, journal.Aborted, nil},
		{rowFinish, ready(asCopy, FileSum{Name: p.temp(1)}), ActionFinish, journal.Done, nil},
		{rowEmptyBaseJournal, with(ready(empty, cpy), func(f *facts) {
			f.j = decoded(began0, ready0)
			f.stock, f.stockUsed, f.journalFromEmpty = hotJrnl, []bool{true}, true
		}), ActionRollBack, journal.Aborted, nil},
		{rowRollForward, ready(base, cpy), ActionRollForward, journal.Done, nil},
		{rowStockData, with(ready(base, cpy), func(f *facts) { f.stock, f.stockUsed = wal, []bool{true} }), ActionRefused, 0, ErrUnrecoverable},
		{rowForeignDB, ready(foreign, cpy), ActionRefused, 0, ErrUnrecoverable},
		{rowBaseKept, ready(base, badCopy), ActionRollBack, journal.Aborted, nil},
		{rowTornReset, with(ready(foreign, badCopy), func(f *facts) { f.j = torn(inReady) }), ActionReset, 0, nil},
		{rowNoMatch, ready(foreign, badCopy), ActionRefused, 0, ErrUnrecoverable},
		{rowResetNotSQLite, facts{jexists: true, jerr: journal.ErrBadMagic, db: base}, ActionRefused, 0, ErrUnrecoverable},
		{rowKeepDrive, with(ready(foreign, cpy), func(f *facts) { f.choice = ChooseKeepDrive }), ActionRollBack, journal.Aborted, nil},
		{rowKeepDriveNoDB, with(ready(noDB, cpy), func(f *facts) { f.choice = ChooseKeepDrive }), ActionRefused, 0, ErrUnrecoverable},
		{rowChooseForward, with(ready(foreign, cpy), func(f *facts) {
			f.choice, f.stock, f.stockUsed = ChooseRollForward, wal, []bool{true}
		}), ActionRollForward, journal.Done, nil},
		{rowChooseForwardNoCopy, with(ready(foreign, badCopy), func(f *facts) { f.choice = ChooseRollForward }), ActionRefused, 0, ErrUnrecoverable},
		{rowFoldedStock, with(ready(base, cpy), func(f *facts) { f.stock, f.stockUsed, f.log = wal, []bool{true}, ourLog }), ActionRollForward, journal.Done, nil},
		{rowInPlaceFinish, inPlace(asCopy, ourLog), ActionFinish, journal.Done, nil},
		{rowInPlaceForward, inPlace(foreign, ourLog), ActionRollForward, journal.Done, nil},
		{rowInPlaceStockAfter, inPlace(foreign, ourLogMore), ActionRefused, 0, ErrUnrecoverable},
		{rowInPlaceBase, inPlace(base, tornLog), ActionRollBack, journal.Aborted, nil},
		{rowInPlaceNoMatch, inPlace(foreign, otherLog), ActionRefused, 0, ErrUnrecoverable},
		{rowInPlaceKeepDrive, with(inPlace(foreign, otherLog), func(f *facts) { f.choice = ChooseKeepDrive }), ActionRollBack, journal.Aborted, nil},
	}
	seen := map[row]bool{}
	for _, c := range cases {
		if seen[c.row] {
			t.Errorf("row %d has two cases", c.row)
		}
		seen[c.row] = true
		t.Run(fmt.Sprint(c.row), func(t *testing.T) {
			d := decide(p, c.f)
			if d.row != c.row {
				t.Errorf("row = %d, want %d", d.row, c.row)
			}
			if d.action != c.action {
				t.Errorf("action = %v, want %v", d.action, c.action)
			}
			if d.record.Kind != c.record {
				t.Errorf("record = %v, want kind %v", d.record, c.record)
			}
			switch {
			case c.err == nil && d.err != nil:
				t.Errorf("err = %v, want none", d.err)
			case c.err != nil && !errors.Is(d.err, c.err):
				t.Errorf("err = %v, want %v", d.err, c.err)
			}
			// What a decision moves follows from its row.
			switch c.row {
			case rowRollForward, rowChooseForward, rowFoldedStock:
				if d.forward != cpy.Name {
					t.Errorf("forward = %q, want %q", d.forward, cpy.Name)
				}
			default:
				if d.forward != "" {
					t.Errorf("forward = %q, want none", d.forward)
				}
			}
			if c.row == rowChooseForward && (len(d.setAside) != 2 || d.setAside[0].kind != "db") {
				t.Errorf("setAside = %v, want the database first, then the -wal", d.setAside)
			}
			if c.row == rowKeepDrive && d.keepCopy != cpy.Name {
				t.Errorf("keepCopy = %q, want %q", d.keepCopy, cpy.Name)
			}
			// An in-place row applies the log only when it proves, and
			// removes only a log that is exactly the checkpoint's or
			// that SQLite applies nothing of.
			if want := c.row == rowInPlaceForward; d.applyLog != want {
				t.Errorf("applyLog = %v, want %v", d.applyLog, want)
			}
			if want := c.row == rowInPlaceForward || c.row == rowInPlaceFinish || c.row == rowInPlaceBase || c.row == rowFoldedStock; d.removeLog != want {
				t.Errorf("removeLog = %v, want %v", d.removeLog, want)
			}
			if wantReset := c.row == rowDamagedReset || c.row == rowTornReset || c.row == rowResetNotSQLite; d.reset != wantReset {
				t.Errorf("reset = %v, want %v", d.reset, wantReset)
			}
		})
	}
	for r := rowNone + 1; r < rowCount; r++ {
		if !seen[r] {
			t.Errorf("row %d of the recovery table has no case", r)
		}
	}
}
