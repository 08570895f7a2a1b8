package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// jbytes encodes a journal with file id 42 and, as this package writes
// them, free slots after the records.
func jbytes(baseGen uint64, recs ...journal.Record) []byte {
	b := journal.AppendHeader(nil, journal.Header{FileID: 42, BaseGen: baseGen})
	for _, r := range recs {
		b, _ = journal.AppendRecord(b, 42, r)
	}
	return append(b, make([]byte, checkpointSlots*journal.RecordSize)...)
}

func rec(k journal.Kind, gen uint64, data []byte) journal.Record {
	if k == journal.Aborted {
		return journal.Record{Kind: k, Gen: gen}
	}
	return journal.Record{Kind: k, Gen: gen, Size: int64(len(data)), Sum: journal.Sum(data)}
}

var (
	began1 = rec(journal.Began, 1, stateA)
	ready1 = rec(journal.Ready, 1, stateB)
	done1  = rec(journal.Done, 1, stateB)
)

// Names in /d, relative.
const (
	nDB    = "app.db"
	nJ     = "app.db.ejectsafe-jrnl"
	nJTemp = "app.db.ejectsafe-jrnl.tmp"
	nTemp1 = "app.db.ejectsafe-tmp-1"
	nTemp2 = "app.db.ejectsafe-tmp-2"
)

func TestRecover(t *testing.T) {
	// torn writes extra over the first free slot of a journal from jbytes.
	torn := func(b []byte, extra []byte) []byte {
		b = slices.Clone(b)
		copy(b[len(b)-checkpointSlots*journal.RecordSize:], extra)
		return b
	}
	halfDone, _ := journal.AppendRecord(nil, 42, done1)
	halfReady, _ := journal.AppendRecord(nil, 42, ready1)
	newer := jbytes(0, began1)
	newer[8] = journal.Version + 1 // the version field

	cases := []struct {
		name   string
		files  map[string][]byte // in /d
		action Action
		err    error        // wanted error kind; then nothing may change
		db     []byte       // the database afterwards; nil: missing
		names  []string     // the names in /d afterwards
		last   journal.Kind // the journal's last record afterwards; 0: none
		notes  string       // a substring of the report
	}{
		{name: "nothing",
			files: map[string][]byte{nDB: stateA}, action: ActionNone, db: stateA, names: []string{nDB}},
		{name: "no journal, stray copy",
			files: map[string][]byte{nDB: stateA, nTemp2: []byte("partial")}, action: ActionClean, db: stateA, names: []string{nDB}},
		{name: "last done, stray copy and journal temp",
			files:  map[string][]byte{nDB: stateB, nJ: jbytes(0, began1, ready1, done1), nTemp2: stateC[:100], nJTemp: []byte("x")},
			action: ActionClean, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "last aborted",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1, rec(journal.Aborted, 1, nil)), nTemp1: stateB},
			action: ActionClean, db: stateA, names: []string{nDB, nJ}, last: journal.Aborted},
		{name: "began, not ready",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1), nTemp1: stateB[:5000]},
			action: ActionRollBack, db: stateA, names: []string{nDB, nJ}, last: journal.Aborted},
		{name: "ready, copy present, db old",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1), nTemp1: stateB},
			action: ActionRollForward, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "ready, db matches, no copy",
			files:  map[string][]byte{nDB: stateB, nJ: jbytes(0, began1, ready1)},
			action: ActionFinish, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "ready, both names",
			files:  map[string][]byte{nDB: stateB, nJ: jbytes(0, began1, ready1), nTemp1: stateB},
			action: ActionFinish, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "ready, only the copy",
			files:  map[string][]byte{nJ: jbytes(0, began1, ready1), nTemp1: stateB},
			action: ActionRollForward, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "ready, neither name holds the copy",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1)},
			action: ActionRollBack, db: stateA, names: []string{nDB, nJ}, last: journal.Aborted},
		{name: "ready, copy torn, db old",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1), nTemp1: stateB[:len(stateB)-1]},
			action: ActionRollBack, db: stateA, names: []string{nDB, nJ}, last: journal.Aborted},
		{name: "ready, nothing matches",
			files: map[string][]byte{nDB: stateC, nJ: jbytes(0, began1, ready1), nTemp1: stateA},
			err:   ErrUnrecoverable, notes: "tmp-1 size=65536"},
		{name: "fresh database, ready, copy present",
			files:  map[string][]byte{nJ: jbytes(0, rec(journal.Began, 1, nil), ready1), nTemp1: stateB},
			action: ActionRollForward, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "torn ready",
			files:  map[string][]byte{nDB: stateA, nJ: torn(jbytes(0, began1), halfReady[:40]), nTemp1: stateB},
			action: ActionRollBack, db: stateA, names: []string{nDB, nJ}},
		{name: "torn done",
			files:  map[string][]byte{nDB: stateB, nJ: torn(jbytes(0, began1, ready1), halfDone[:63])},
			action: ActionFinish, db: stateB, names: []string{nDB, nJ}, last: journal.Done},
		{name: "torn sector lost later records",
			files:  map[string][]byte{nDB: stateC, nJ: torn(jbytes(0, began1, ready1), bytes.Repeat([]byte{0xa5}, 200))},
			action: ActionReset, db: stateC, names: []string{nDB, nJ}, notes: "torn journal lost later records"},
		{name: "damaged header, database and copy",
			files:  map[string][]byte{nDB: stateB, nJ: bytes.Repeat([]byte{7}, 512), nTemp2: stateC},
			action: ActionReset, db: stateB, names: []string{nDB, nJ}},
		{name: "empty journal",
			files:  map[string][]byte{nDB: stateA, nJ: {}},
			action: ActionReset, db: stateA, names: []string{nDB, nJ}},
		{name: "damaged header, database not SQLite",
			files: map[string][]byte{nDB: []byte("not a database"), nJ: bytes.Repeat([]byte{7}, 128)},
			err:   ErrUnrecoverable},
		{name: "damaged header, no database, copy with data",
			files:  map[string][]byte{nJ: bytes.Repeat([]byte{7}, 128), nTemp2: stateC, nTemp1: {}},
			action: ActionReset, names: []string{nJ, "app.db.ejectsafe-orphan-2"}},
		{name: "newer version",
			files: map[string][]byte{nDB: stateA, nJ: newer, nTemp1: stateB},
			err:   ErrJournal},
		// Issue 17: roll forward only over the proven base, with nothing
		// stock SQLite wrote on top of it.
		{name: "ready, copy present, db written elsewhere",
			files: map[string][]byte{nDB: stateC, nJ: jbytes(0, began1, ready1), nTemp1: stateB},
			err:   ErrUnrecoverable, notes: "neither the checkpoint's base nor its copy"},
		{name: "ready, copy present, stock -wal beside the base",
			files: map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1), nTemp1: stateB, "app.db-wal": walMagic(4096)},
			err:   ErrUnrecoverable, notes: "app.db-wal size=4096"},
		// A retired redo log (a header of zeros: what an in-place
		// checkpoint leaves for the next) is empty to SQLite: kept, and
		// nothing to refuse.
		{name: "ready, copy present, retired -wal beside the base",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1), nTemp1: stateB, "app.db-wal": make([]byte, 4096)},
			action: ActionRollForward, db: stateB, names: []string{nDB, "app.db-wal", nJ}, last: journal.Done},
		{name: "ready, copy present, hot -journal beside the base",
			files: map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1), nTemp1: stateB, "app.db-journal": append(slices.Clone(rollbackMagic), make([]byte, 504)...)},
			err:   ErrUnrecoverable, notes: "app.db-journal size=512"},
		// Review finding 2: SQLite ignores a hot -journal beside a missing
		// or empty database, but not beside the copy rolled forward. One
		// whose transaction began on an empty database (a new database
		// entering WAL mode) would leave nothing of the copy: the empty
		// database is kept. Any other refuses.
		{name: "fresh database, ready, copy present, hot -journal from an empty database",
			files:  map[string][]byte{nJ: jbytes(0, rec(journal.Began, 1, nil), ready1), nTemp1: stateB, "app.db-journal": hotJournal(0)},
			action: ActionRollBack, names: []string{"app.db-journal", nJ}, last: journal.Aborted, notes: "kept the empty database"},
		{name: "empty database, ready, copy present, hot -journal from an empty database",
			files:  map[string][]byte{nDB: {}, nJ: jbytes(0, rec(journal.Began, 1, nil), ready1), nTemp1: stateB, "app.db-journal": hotJournal(0)},
			action: ActionRollBack, db: []byte{}, names: []string{nDB, "app.db-journal", nJ}, last: journal.Aborted},
		{name: "fresh database, ready, copy present, hot -journal from a database of 1 page",
			files: map[string][]byte{nJ: jbytes(0, rec(journal.Began, 1, nil), ready1), nTemp1: stateB, "app.db-journal": hotJournal(1)},
			err:   ErrUnrecoverable, notes: "--roll-forward (the stock files are kept aside)"},
		{name: "empty database, ready, copy present, hot -journal from a database of 1 page",
			files: map[string][]byte{nDB: {}, nJ: jbytes(0, rec(journal.Began, 1, nil), ready1), nTemp1: stateB, "app.db-journal": hotJournal(1)},
			err:   ErrUnrecoverable, notes: "app.db-journal size=512"},
		{name: "fresh database, ready, copy present, hot -journal from an empty database and a -wal",
			files: map[string][]byte{nJ: jbytes(0, rec(journal.Began, 1, nil), ready1), nTemp1: stateB, "app.db-journal": hotJournal(0), "app.db-wal": walMagic(4096)},
			err:   ErrUnrecoverable, notes: "app.db-wal size=4096"},
		{name: "ready, copy present, zeroed -journal beside the base",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, ready1), nTemp1: stateB, "app.db-journal": make([]byte, 512)},
			action: ActionRollForward, db: stateB, names: []string{nDB, "app.db-journal", nJ}, last: journal.Done},
		{name: "ready, copy matches Ready but is not SQLite",
			files:  map[string][]byte{nDB: stateA, nJ: jbytes(0, began1, rec(journal.Ready, 1, bytes.Repeat([]byte("x"), 8192))), nTemp1: bytes.Repeat([]byte("x"), 8192)},
			action: ActionRollBack, db: stateA, names: []string{nDB, nJ}, last: journal.Aborted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			for n, b := range c.files {
				if err := fs.WriteFile(path.Join(testDir, n), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := fs.Files()
			vrep, verr := Verify(fs, testDB)
			if !equalFiles(before, fs.Files()) || len(fs.Trace()) != countReads(fs.Trace()) {
				t.Fatal("Verify modified something")
			}
			rep, err := Recover(fs, testDB)
			t.Log(rep)
			if c.notes != "" && !strings.Contains(rep.String()+errString(err), c.notes) {
				t.Errorf("report %q, error %v: want %q", rep, err, c.notes)
			}
			if c.err != nil {
				if !errors.Is(err, c.err) || !errors.Is(verr, c.err) {
					t.Fatalf("Recover = %v, Verify = %v; want %v", err, verr, c.err)
				}
				if !equalFiles(before, fs.Files()) {
					t.Fatal("a refused recovery modified files")
				}
				return
			}
			if err != nil || verr != nil {
				t.Fatalf("Recover = %v, Verify = %v", err, verr)
			}
			if rep.Action != c.action || vrep.Action != c.action {
				t.Fatalf("action %v (Verify: %v), want %v", rep.Action, vrep.Action, c.action)
			}
			if got := fileOf(fs, testDB); !bytes.Equal(got, c.db) {
				t.Errorf("database is %s, want %s", describe(got, map[string][]byte{"A": stateA, "B": stateB, "C": stateC}),
					describe(c.db, map[string][]byte{"A": stateA, "B": stateB, "C": stateC}))
			}
			if names, _ := fs.List(testDir); !slices.Equal(names, c.names) {
				t.Errorf("names %v, want %v", names, c.names)
			}
			if data, err := fs.ReadFile(testJournal); err == nil {
				j, err := journal.Decode(data)
				last, _ := j.Last()
				if err != nil || j.Torn || last.Kind != c.last {
					t.Errorf("journal after: last %v, torn %v, %v; want last %v", last, j.Torn, err, c.last)
				}
			}
			for _, v := range violations(fs.Trace()) {
				if v.Kind != faultinject.RenameBeforeReady { // Ready predates the trace
					t.Errorf("violation: %v", v)
				}
			}

			// Idempotent: the next Recover finds nothing to do.
			after := fs.Files()
			if rep, err := Recover(fs, testDB); err != nil || rep.Action != ActionNone {
				t.Errorf("second Recover: %v, %v", rep, err)
			}
			if !equalFiles(after, fs.Files()) {
				t.Error("second Recover changed files")
			}
			m, err := Open(fs, testDB, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := readMain(t, m); !bytes.Equal(got, c.db) {
				t.Error("Open after Recover serves other bytes")
			}
		})
	}
}

// hotJournal is a rollback journal header SQLite would play back, of a
// transaction begun on a database of pages pages, padded to 512 bytes.
func hotJournal(pages uint32) []byte {
	b := make([]byte, 512)
	copy(b, rollbackMagic)
	binary.BigEndian.PutUint32(b[16:], pages)
	binary.BigEndian.PutUint32(b[20:], 512)
	binary.BigEndian.PutUint32(b[24:], 4096)
	return b
}

func countReads(trace []faultinject.Event) int {
	n := 0
	for _, ev := range trace {
		switch ev.Kind {
		case faultinject.OpList, faultinject.OpOpen, faultinject.OpReadAt, faultinject.OpSize,
			faultinject.OpClose, faultinject.OpStat:
			if ev.Kind != faultinject.OpOpen || ev.Mode == 0 {
				n++
			}
		}
	}
	return n
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestVerify_Checksum: Verify compares a clean database with the
// journal's checksum.
func TestVerify_Checksum(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, stateB, 0o644)
	fs.WriteFile(testJournal, jbytes(0, began1, ready1, done1), 0o644)
	rep, err := Verify(fs, testDB)
	if err != nil || !strings.Contains(rep.String(), "matches the journal") {
		t.Errorf("Verify = %v, %v", rep, err)
	}
	c := slices.Clone(stateB)
	c[9000]++
	fs.WriteFile(testDB, c, 0o644)
	rep, err = Verify(fs, testDB)
	if err != nil || !strings.Contains(rep.String(), "differs") {
		t.Errorf("Verify of a changed database = %v, %v", rep, err)
	}
}

func TestReport_JSON(t *testing.T) {
	b, err := json.Marshal(Report{State: StateReady, Action: ActionRollForward, Last: ready1})
	if err != nil || !strings.Contains(string(b), `"State":"ready","Action":"roll_forward"`) {
		t.Errorf("JSON %s, %v", b, err)
	}
}

// TestRecover_FreeSlots: recovery appends its record into a free slot of
// the journal, in place (not rewritten, not extended); a journal with no
// free slot (not written by this version) is replaced instead; and a
// clean journal with free slots is used as is by Open and Commit.
func TestRecover_FreeSlots(t *testing.T) {
	for _, tc := range []struct {
		name    string
		j       []byte
		rewrote bool
	}{
		{"free slots", append(jbytes(0, began1), make([]byte, 8*journal.RecordSize)...), false},
		{"no free slot", jbytes(0, began1)[:journal.HeaderSize+journal.RecordSize], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			fs.WriteFile(testDB, stateA, 0o644)
			fs.WriteFile(testJournal, tc.j, 0o644)
			rep, err := Recover(fs, testDB)
			if err != nil || rep.Action != ActionRollBack || rep.Rewrote != tc.rewrote {
				t.Fatalf("Recover = %v, %v; want a roll back, rewrote %v", rep, err, tc.rewrote)
			}
			data, _ := fs.ReadFile(testJournal)
			j, err := journal.Decode(data)
			last, _ := j.Last()
			if err != nil || j.Torn || last.Kind != journal.Aborted || j.Free == 0 {
				t.Fatalf("journal after: last %v, torn %v, free %d, %v", last, j.Torn, j.Free, err)
			}
			if !tc.rewrote && len(data) != len(tc.j) {
				t.Errorf("journal %d bytes, was %d", len(data), len(tc.j))
			}
			m := mustOpenMain(t, fs, Options{})
			defer m.Close()
			if err := applyMain(m, writesB()); err != nil {
				t.Fatal(err)
			}
			mustCommit(t, m)
			if s := m.Stats(); s.Rewrites != 0 {
				t.Errorf("%d journal rewrites after recovery; want 0", s.Rewrites)
			}
		})
	}
}

// walMagic returns n bytes that start with a WAL's magic: a -wal that is
// not retired (sqlitewal.Retired), whatever else SQLite thinks of it.
func walMagic(n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, sqlitewal.MagicLE)
	return b
}
