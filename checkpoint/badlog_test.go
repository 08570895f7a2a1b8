package checkpoint

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// walOf returns a log in SQLite's WAL format holding the pages of b that
// differ from a (ps-byte pages), committing b's size; salts nil: fresh.
func walOf(t *testing.T, a, b []byte, ps int, salts *[2]uint32) []byte {
	t.Helper()
	var pages []sqlitewal.Page
	for off := 0; off < len(b); off += ps {
		if off+ps > len(a) || !bytes.Equal(a[off:off+ps], b[off:off+ps]) {
			pages = append(pages, sqlitewal.Page{No: uint32(off/ps + 1), Data: b[off : off+ps]})
		}
	}
	var w bytes.Buffer
	if _, err := sqlitewal.Write(&w, pages, sqlitewal.WriteOptions{PageSize: ps, DBPages: uint32(len(b) / ps), Salts: salts}); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// TestRecover_badLog: an in-place checkpoint in flight (Began{a},
// Intent{b}) beside a -wal that is not its whole redo log: torn mid-frame,
// frames under other salts than the header's, another page size, or a
// valid log of another database. Recovery never applies it as ours: the
// database keeps the state it has (the base: rolled back; the new state:
// finished), or, when it is neither, recovery refuses with
// ErrUnrecoverable and modifies nothing. A log SQLite would apply nothing
// of is removed and named in the report; one it would apply is someone's
// data and is kept byte for byte (for Open's fold). The checkpoint's own
// whole log, the control, is applied.
func TestRecover_badLog(t *testing.T) {
	st := sqliteStates3(t, sqlSmall, sqlShrink)
	other := sqliteStates3(t, sqlEvery, sqlTiny) // another database: other rows, same schema
	a, b := st[0], st[1]
	ours := walOf(t, a, b, page, nil)

	// Our frames under another header's salts: the header is valid (its
	// own checksum), the frames are not the header's.
	salted := slices.Clone(walOf(t, a, b, page, &[2]uint32{1, 2}))
	copy(salted, walOf(t, a, b, page, &[2]uint32{3, 4})[:sqlitewal.HeaderSize])

	// Half the pages the checkpoint changes, in place: a pull mid-write.
	mixed := slices.Clone(a)
	for i, w := range pageDiff(a, b) {
		if w.data != nil && w.off+page <= int64(len(a)) && i%2 == 0 {
			copy(mixed[w.off:], w.data)
		}
	}
	if bytes.Equal(mixed, a) || bytes.Equal(mixed, b) {
		t.Fatal("the mixed database is a or b")
	}

	// Logs that commit exactly the checkpoint's size, so that only the
	// checksum proof can tell them from ours: our pages with one byte
	// changed, the same in 1024-byte pages, another database's file cut
	// or grown to that size.
	near := slices.Clone(b)
	for _, w := range pageDiff(a, b) {
		if w.data != nil {
			near[w.off+100] = w.data[100] ^ 0x5a // in the last page the checkpoint changes
		}
	}
	otherSized := make([]byte, len(b))
	copy(otherSized, other[2])
	if bytes.Equal(otherSized, b) {
		t.Fatal("the other database's file is b")
	}

	logs := []struct {
		name      string
		wal       []byte
		committed bool // SQLite would apply some of it: kept
	}{
		{"torn in the commit frame", ours[:len(ours)-page/2], false},
		{"torn in the first frame", ours[:sqlitewal.HeaderSize+100], false},
		{"torn in the header", ours[:sqlitewal.HeaderSize-4], false},
		{"foreign salts", salted, false},
		{"another page size", walOf(t, a[:len(a)/2], b[:len(a)/2], 1024, nil), true},
		{"another database", walOf(t, other[0], other[1], page, nil), true},
		{"another database's whole file", walOf(t, nil, other[2], page, nil), true},
		{"our size, one byte not ours", walOf(t, a, near, page, nil), true},
		{"our size, one byte not ours, 1024-byte pages", walOf(t, a, near, 1024, nil), true},
		{"another database at our size", walOf(t, nil, otherSized, page, nil), true},
	}
	dbs := []struct {
		name string
		db   []byte
		want Action // ActionRefused: ErrUnrecoverable, nothing modified
	}{
		{"base", a, ActionRollBack},
		{"new", b, ActionFinish},
		{"mid-write", mixed, ActionRefused},
	}
	for _, l := range logs {
		for _, d := range dbs {
			t.Run(l.name+"/"+d.name, func(t *testing.T) {
				fs := newFS(t, faultinject.Options{})
				must(t, fs.WriteFile(testDB, d.db, 0o644))
				must(t, fs.WriteFile(testDB+"-wal", l.wal, 0o644))
				must(t, fs.WriteFile(testJournal, jbytes(0, rec(journal.Began, 1, a), rec(journal.Intent, 1, b)), 0o644))
				before := fs.Files()
				rep, err := Recover(fs, testDB)
				if d.want == ActionRefused {
					var ue *UnrecoverableError
					if !errors.Is(err, ErrUnrecoverable) || !errors.As(err, &ue) {
						t.Fatalf("recover: %v, %v; want ErrUnrecoverable", rep, err)
					}
					if !equalFiles(before, fs.Files()) {
						t.Error("a refused recovery modified the drive")
					}
					return
				}
				if err != nil || rep.Action != d.want || rep.State != StateInPlace {
					t.Fatalf("recover: %v, %v; want in place, %v", rep, err, d.want)
				}
				if got := fileOf(fs, testDB); !bytes.Equal(got, d.db) {
					t.Errorf("the database changed: %s", describe(got, map[string][]byte{"base": a, "new": b, "mid-write": mixed}))
				}
				wal := fileOf(fs, testDB+"-wal")
				removed := slices.Contains(rep.Removed, filepath.Clean(testDB+"-wal")) // the report names paths in the OS's form
				switch {
				case l.committed && !bytes.Equal(wal, l.wal):
					t.Errorf("a -wal SQLite would apply was not kept as it was (%d bytes now, removed: %v)", len(wal), removed)
				case !l.committed && (wal != nil || !removed):
					t.Errorf("a -wal SQLite applies nothing of: left %d bytes, reported removed %v; want it removed and reported", len(wal), removed)
				}
				wantLast := journal.Aborted
				if d.want == ActionFinish {
					wantLast = journal.Done
				}
				j, err := journal.Decode(fileOf(fs, testJournal))
				if err != nil {
					t.Fatal(err)
				}
				if last := j.Records[len(j.Records)-1]; last.Kind != wantLast || last.Gen != 1 {
					t.Errorf("journal ends %v, want %v of generation 1", last, wantLast)
				}
			})
		}
	}
	t.Run("control: the checkpoint's own log", func(t *testing.T) {
		fs := newFS(t, faultinject.Options{})
		must(t, fs.WriteFile(testDB, mixed, 0o644))
		must(t, fs.WriteFile(testDB+"-wal", ours, 0o644))
		must(t, fs.WriteFile(testJournal, jbytes(0, rec(journal.Began, 1, a), rec(journal.Intent, 1, b)), 0o644))
		rep, err := Recover(fs, testDB)
		if err != nil || rep.Action != ActionRollForward {
			t.Fatalf("recover: %v, %v; want rolled forward", rep, err)
		}
		if !bytes.Equal(fileOf(fs, testDB), b) || fileOf(fs, testDB+"-wal") != nil {
			t.Error("not the new state, or the log is still there")
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
