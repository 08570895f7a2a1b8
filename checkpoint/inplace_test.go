package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

// stockCLI returns the stock sqlite3 shell, or skips loudly (fails in CI).
func stockCLI(t *testing.T) string {
	t.Helper()
	return stocktest.Bin(t, "in-place interop")
}

// runSQL runs sql on the database at path with the stock shell.
func runSQL(t *testing.T, bin, path, sql string) string {
	t.Helper()
	out, err := exec.Command(bin, path, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v\n%s", path, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// sqliteStates returns two states of one real SQLite database in WAL
// mode, made by the stock shell: a, then b after change (SQL run on a
// copy, checkpointed by the shell's close).
func sqliteStates(t *testing.T, bin, change string) (a, b []byte) {
	t.Helper()
	dir := t.TempDir()
	pa := filepath.Join(dir, "a.db")
	runSQL(t, bin, pa, `PRAGMA page_size=4096; PRAGMA journal_mode=WAL;
		CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 600)
		INSERT INTO t SELECT i, randomblob(300) FROM n;`)
	a, err := os.ReadFile(pa)
	if err != nil {
		t.Fatal(err)
	}
	pb := filepath.Join(dir, "b.db")
	if err := os.WriteFile(pb, a, 0o644); err != nil {
		t.Fatal(err)
	}
	runSQL(t, bin, pb, change)
	if b, err = os.ReadFile(pb); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pb + "-wal"); err == nil {
		t.Fatal("the shell left a -wal: state b is not in the file")
	}
	return a, b
}

// writeDiff makes m's view go from a to b: the 4 KiB blocks of b that
// differ from a, and the size. It returns the bytes of blocks written.
func writeDiff(t *testing.T, m *Main, a, b []byte) int64 {
	t.Helper()
	var n int64
	for off := 0; off < len(b); off += 4096 {
		blk := b[off : off+4096]
		if off+4096 <= len(a) && bytes.Equal(a[off:off+4096], blk) {
			continue
		}
		if err := m.WriteAt(blk, int64(off)); err != nil {
			t.Fatal(err)
		}
		n += 4096
	}
	if len(b) < len(a) {
		if err := m.Truncate(int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// openInPlace writes a as a database in a new directory and opens it
// in place; the Main is closed at the end of the test.
func openInPlace(t *testing.T, a []byte) (*Main, string) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(db, a, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(device.OS, db, Options{Mode: ModeInPlace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, db
}

// walState says what is at db's -wal: "absent", "retired" (empty, or
// a header of zeros: sqlitewal.Retired) or "live".
func walState(t *testing.T, db string) string {
	t.Helper()
	b, err := os.ReadFile(db + "-wal")
	switch {
	case os.IsNotExist(err):
		return "absent"
	case err != nil:
		t.Fatal(err)
	}
	if len(b) == 0 || sqlitewal.RetiredHeader(b) {
		return "retired"
	}
	return "live"
}

// lastRecords returns the journal's records.
func lastRecords(t *testing.T, db string) []journal.Record {
	t.Helper()
	data, err := os.ReadFile(journal.Name(db))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return j.Records
}

// contentQuery fingerprints table t's rows.
const contentQuery = "SELECT (SELECT count(*) FROM t), hex(sha3_query('SELECT * FROM t ORDER BY id'))"

var inPlaceChanges = []struct{ name, sql string }{
	{"update", `UPDATE t SET v = randomblob(300) WHERE id % 50 = 0;`},
	{"grow", `UPDATE t SET v = randomblob(300) WHERE id % 90 = 0; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200) INSERT INTO t SELECT 1000+i, randomblob(300) FROM n;`},
	{"shrink", `DELETE FROM t WHERE id > 300; VACUUM;`},
}

// TestInPlace_commit: a commit in place leaves exactly the new state in
// the database file, no -wal, Began/Intent/Done in the journal, and
// wrote about twice the changed pages (the target: at most 2.1x
// + 64 KiB); the stock shell reads the result as a whole database.
func TestInPlace_commit(t *testing.T) {
	bin := stockCLI(t)
	for _, c := range inPlaceChanges {
		t.Run(c.name, func(t *testing.T) {
			a, b := sqliteStates(t, bin, c.sql)
			m, db := openInPlace(t, a)
			dirty := writeDiff(t, m, a, b)
			if err := m.Commit(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("database after the commit: %d bytes, not the new state (%d bytes)", len(got), len(b))
			}
			if st := walState(t, db); st != "retired" {
				t.Errorf("the redo log after the commit: %s; want it retired, kept for the next", st)
			}
			st := m.Stats()
			if st.LastMode != ModeInPlace || st.InPlace != 1 {
				t.Errorf("stats: last mode %v, in place %d; want in place, 1", st.LastMode, st.InPlace)
			}
			if limit := dirty*21/10 + 64<<10; st.LastWritten > limit || st.LastWritten < dirty {
				t.Errorf("wrote %d bytes for %d changed: want between the changed bytes and 2.1x + 64 KiB (%d)", st.LastWritten, dirty, limit)
			}
			recs := lastRecords(t, db)
			if n := len(recs); n < 3 || recs[n-3].Kind != journal.Began || recs[n-2].Kind != journal.Intent || recs[n-1].Kind != journal.Done ||
				recs[n-1].Sum != journal.Sum(b) || recs[n-3].Sum != journal.Sum(a) {
				t.Errorf("journal: %v; want Began{a}, Intent{b}, Done{b}", recs)
			}
			if out := runSQL(t, bin, "file:"+db+"?immutable=1", "PRAGMA integrity_check"); out != "ok" {
				t.Errorf("stock integrity_check: %s", out)
			}
		})
	}
}

// inPlaceCut runs an in-place commit from a to b on a real directory
// whose database writes fail, so that it stops with its redo log durable
// and the database untouched: what a pull at the start of step 6 leaves;
// with half, it then writes the first half of the changed pages into the
// database by hand: a pull in the middle of step 6. It returns the Main
// (its commit failed, unsure) and the database's path.
func inPlaceCut(t *testing.T, a, b []byte, half bool) (*Main, string) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(db, a, 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := faultinject.Wrap(device.OS, 1)
	m, err := Open(fsys, db, Options{Mode: ModeInPlace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	writeDiff(t, m, a, b)
	fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpWriteAt).Matching("app.db"))
	err = m.Commit()
	if err == nil || !strings.Contains(err.Error(), "write in place") {
		t.Fatalf("commit with the database's writes failing: %v, want a failed write in place", err)
	}
	if !m.Stats().Unsure {
		t.Error("Stats.Unsure is false after a failed write in place")
	}
	if !half {
		return m, db
	}
	// Half the changed pages, as a pull mid-write leaves them.
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var changed []int
	for off := 0; off < len(b); off += 4096 {
		if off+4096 > len(a) || !bytes.Equal(a[off:off+4096], b[off:off+4096]) {
			changed = append(changed, off)
		}
	}
	for _, off := range changed[:len(changed)/2] {
		if _, err := f.WriteAt(b[off:off+4096], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return m, db
}

// TestInPlace_pullMidWrite: a database pulled before or in the middle of
// writing in place, beside its durable redo log, is read by the stock
// shell as the new state with integrity ok (SQLite's own WAL recovery
// applies our log), and Recover rolls it forward to exactly the new
// bytes.
func TestInPlace_pullMidWrite(t *testing.T) {
	bin := stockCLI(t)
	for _, c := range inPlaceChanges {
		for _, half := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/half=%v", c.name, half), func(t *testing.T) { pullMidWrite(t, bin, c.sql, half) })
		}
	}
}

func pullMidWrite(t *testing.T, bin, change string, half bool) {
	{
		{
			a, b := sqliteStates(t, bin, change)
			wantDump := runSQL(t, bin, "file:"+writeTemp(t, b)+"?immutable=1", contentQuery)
			_, db := inPlaceCut(t, a, b, half)

			// The stock shell first, on a copy of the files as they are.
			dir := t.TempDir()
			copyFile(t, db, filepath.Join(dir, "app.db"))
			copyFile(t, db+"-wal", filepath.Join(dir, "app.db-wal"))
			stock := filepath.Join(dir, "app.db")
			if out := runSQL(t, bin, stock, "PRAGMA integrity_check"); out != "ok" {
				t.Fatalf("stock integrity_check on the pulled drive: %s", out)
			}
			if got := runSQL(t, bin, stock, contentQuery); got != wantDump {
				t.Fatalf("stock shell sees %q, want the new state %q", got, wantDump)
			}

			rep, err := Recover(device.OS, db)
			if err != nil {
				t.Fatal(err)
			}
			if rep.State != StateInPlace || rep.Action != ActionRollForward {
				t.Errorf("recover: %v; want an in-place checkpoint rolled forward", rep)
			}
			got, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("database after recovery is not the new state")
			}
			if _, err := os.Stat(db + "-wal"); !os.IsNotExist(err) {
				t.Errorf("the redo log survived recovery (%v)", err)
			}
			if rep, err := Recover(device.OS, db); err != nil || rep.Action != ActionNone {
				t.Errorf("second recover: %v, %v; want nothing to do", rep, err)
			}
		}
	}
}

// TestInPlace_settle: after a write in place fails with its log durable,
// the overlay serves the new state, and the next Commit finishes the
// checkpoint from memory before anything else: the new bytes, the log
// gone, Done recorded.
func TestInPlace_settle(t *testing.T) {
	bin := stockCLI(t)
	a, b := sqliteStates(t, bin, inPlaceChanges[1].sql)
	m, db := inPlaceCut(t, a, b, true)
	view := make([]byte, len(b))
	if _, err := m.ReadAt(view, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(view, b) {
		t.Fatal("after the failed write in place, reads do not show the new state")
	}
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatal("database after the settling commit is not the new state")
	}
	if st := walState(t, db); st == "live" {
		t.Errorf("the redo log survived the settling commit (%s)", st)
	}
	recs := lastRecords(t, db)
	if last := recs[len(recs)-1]; last.Kind != journal.Done || last.Sum != journal.Sum(b) {
		t.Errorf("journal ends %v, want Done of the new state", last)
	}
	if m.Stats().Unsure {
		t.Error("Stats.Unsure still set after settling")
	}
}

// TestInPlace_foreignLogKept: a -wal already beside the database (not
// ours) is never overwritten: the in-place commit fails, the database
// and that file are untouched, and the checkpoint is recorded aborted.
func TestInPlace_foreignLogKept(t *testing.T) {
	bin := stockCLI(t)
	a, b := sqliteStates(t, bin, inPlaceChanges[0].sql)
	db := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(db, a, 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := []byte("someone else's -wal")
	if err := os.WriteFile(db+"-wal", foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(device.OS, db, Options{Mode: ModeInPlace})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	writeDiff(t, m, a, b)
	if err := m.Commit(); err == nil {
		t.Fatal("commit in place over an existing -wal succeeded")
	}
	if got, _ := os.ReadFile(db + "-wal"); !bytes.Equal(got, foreign) {
		t.Errorf("the existing -wal was changed: %q", got)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, a) {
		t.Error("the database changed")
	}
	recs := lastRecords(t, db)
	if last := recs[len(recs)-1]; last.Kind != journal.Aborted {
		t.Errorf("journal ends %v, want the checkpoint aborted", last)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInPlace_verifyFindsScribble: an in-place commit reads only the
// pages it rewrites, so a change made behind it elsewhere in the file is
// not seen by the commit; the checksum it records is folded from the
// base's, so Verify (a whole read) reports the database as differing
// from the journal's last checkpoint.
func TestInPlace_verifyFindsScribble(t *testing.T) {
	bin := stockCLI(t)
	a, b := sqliteStates(t, bin, inPlaceChanges[0].sql)
	m, db := openInPlace(t, a)
	writeDiff(t, m, a, b)
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(device.OS, db); err != nil || rep.Mismatch {
		t.Fatalf("verify after the commit: %v, %v; want a match", rep, err)
	}
	// Someone else writes a byte the commit did not touch.
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(len(b) - 100)
	if _, err := f.WriteAt([]byte{b[off] ^ 0xff}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rep, err := Verify(device.OS, db)
	if err != nil || !rep.Mismatch {
		t.Fatalf("verify after a scribble: %v, %v; want a mismatch reported", rep, err)
	}
}

// TestOpen_generationAfterAbort: a checkpoint rolled back (Aborted)
// leaves the database at the last done checkpoint, and Open names that
// generation: the host log proves itself against it (an in-place commit
// records its Intent before its log, so a crash there often aborts).
func TestOpen_generationAfterAbort(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	if err := fs.WriteFile(testDB, stateB, 0o644); err != nil {
		t.Fatal(err)
	}
	began2 := journal.Record{Kind: journal.Began, Gen: 2, Size: int64(len(stateB)), Sum: journal.Sum(stateB)}
	if err := fs.WriteFile(testJournal, jbytes(0, began1, ready1, done1, began2, journal.Record{Kind: journal.Aborted, Gen: 2}), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(fs, testDB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if id := m.Identity(); id.Gen != 1 || id.Size != int64(len(stateB)) || id.Sum != journal.Sum(stateB) {
		t.Errorf("identity after an aborted checkpoint: %v; want generation 1 of the database", id)
	}
}

// TestRecover_foldedStockWAL: Open's fold of a stock -wal is a copy-mode
// checkpoint whose copy is the database with that -wal applied; a crash
// after its Ready and before its rename leaves the base, the copy and the
// -wal. Recovery proves the -wal over the base gives the copy, renames
// the copy over the database and removes the -wal (it refused before:
// "stock SQLite left a -wal"), and the stock shell agrees.
func TestRecover_foldedStockWAL(t *testing.T) {
	bin := stockCLI(t)
	a, b := sqliteStates(t, bin, inPlaceChanges[1].sql)
	db := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(db, a, 0o644); err != nil {
		t.Fatal(err)
	}
	var pages []sqlitewal.Page
	for off := 0; off < len(b); off += 4096 {
		if off+4096 > len(a) || !bytes.Equal(a[off:off+4096], b[off:off+4096]) {
			pages = append(pages, sqlitewal.Page{No: uint32(off/4096 + 1), Data: b[off : off+4096]})
		}
	}
	var wal bytes.Buffer
	if _, err := sqlitewal.Write(&wal, pages, sqlitewal.WriteOptions{PageSize: 4096, DBPages: uint32(len(b) / 4096)}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db+"-wal", wal.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal.TempName(db, 1), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal.Name(db), jbytes(0, rec(journal.Began, 1, a), rec(journal.Ready, 1, b)), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Recover(device.OS, db)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if rep.Action != ActionRollForward {
		t.Errorf("recover: %v; want rolled forward", rep)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, b) {
		t.Error("the database is not the copy after recovery")
	}
	if _, err := os.Stat(db + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the folded -wal survived recovery (%v)", err)
	}
	if out := runSQL(t, bin, db, "PRAGMA integrity_check"); out != "ok" {
		t.Errorf("stock integrity_check: %s", out)
	}

	// A -wal that is not what the copy folded in is still refused.
	if err := os.WriteFile(db, a, 0o644); err != nil {
		t.Fatal(err)
	}
	wal.Bytes()[len(wal.Bytes())-1] ^= 1 // the commit frame's last byte: the transaction no longer applies
	os.WriteFile(db+"-wal", wal.Bytes(), 0o644)
	os.WriteFile(journal.TempName(db, 1), b, 0o644)
	os.WriteFile(journal.Name(db), jbytes(0, rec(journal.Began, 1, a), rec(journal.Ready, 1, b)), 0o644)
	if _, err := Recover(device.OS, db); !errors.Is(err, ErrUnrecoverable) {
		t.Errorf("recover beside a damaged -wal: %v; want ErrUnrecoverable", err)
	}
}

// TestInPlace_proveCutCommit: the full proof accepts the Main's own
// in-place commit cut mid-write (the database partly written beside its
// proving log): a re-plug then reattaches, and recovery rolls it forward
// (TestYank_replug refused such a drive as changed elsewhere). Someone
// else's change to it is still refused.
func TestInPlace_proveCutCommit(t *testing.T) {
	bin := stockCLI(t)
	a, b := sqliteStates(t, bin, inPlaceChanges[1].sql)
	m, db := inPlaceCut(t, a, b, true)
	if err := m.Prove(true); err != nil {
		t.Fatalf("prove over the Main's own cut in-place commit: %v", err)
	}
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := -1 // a page the commit does not change
	for o := 4096; o+4096 <= len(a) && o+4096 <= len(b); o += 4096 {
		if bytes.Equal(a[o:o+4096], b[o:o+4096]) {
			off = o
			break
		}
	}
	if off < 0 {
		t.Fatal("every page changes")
	}
	if _, err := f.WriteAt([]byte("scribble"), int64(off+100)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := m.Prove(true); !errors.Is(err, ErrChanged) {
		t.Fatalf("prove after a scribble beside the cut commit: %v; want ErrChanged", err)
	}
}

// TestInPlace_otherPageSize: a database whose page size is not the block
// size is never written in place (its redo log would have the block
// size's pages, and stock SQLite cannot read a pulled drive with such a
// -wal beside the database: "malformed database schema"): the commit
// copies, and the result is the new state.
func TestInPlace_otherPageSize(t *testing.T) {
	for _, ps := range []int{8192, 16384} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			st := sqliteStatesPS(t, ps, sqlTiny, sqlTiny)
			a, b := st[0], st[1]
			m, db := openInPlace(t, a)
			writeDiff(t, m, a, b)
			if err := m.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := m.Stats().LastMode; got != ModeCopy {
				t.Errorf("a database of %d-byte pages was checkpointed %v with %d-byte blocks; want a copy", ps, got, DefaultBlockSize)
			}
			if got, _ := os.ReadFile(db); !bytes.Equal(got, b) {
				t.Error("the database is not the new state")
			}
		})
	}
}

// TestInPlace_blockIsPageSize: with the block size set to the database's
// page size (as the store sets it), a database of other pages than 4096
// is checkpointed in place, and one pulled in the middle of writing in
// place is read by the stock shell as the new state (SQLite replays a log
// only in its database's page size) and rolled forward by Recover.
func TestInPlace_blockIsPageSize(t *testing.T) {
	bin := stockCLI(t)
	for _, ps := range []int{1024, 8192, 16384} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			st := sqliteStatesPS(t, ps, sqlTiny, sqlTiny)
			a, b := st[0], st[1]
			var changed []int
			for off := 0; off < len(b); off += ps {
				if off+ps > len(a) || !bytes.Equal(a[off:off+ps], b[off:off+ps]) {
					changed = append(changed, off)
				}
			}
			open := func(fsys device.FS) (*Main, string) {
				db := filepath.Join(t.TempDir(), "app.db")
				if err := os.WriteFile(db, a, 0o644); err != nil {
					t.Fatal(err)
				}
				m, err := Open(fsys, db, Options{Mode: ModeInPlace, BlockSize: ps})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close() })
				for _, off := range changed {
					if err := m.WriteAt(b[off:off+ps], int64(off)); err != nil {
						t.Fatal(err)
					}
				}
				return m, db
			}

			// A commit that runs to its end goes in place.
			m, db := open(device.OS)
			if err := m.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := m.Stats().LastMode; got != ModeInPlace {
				t.Fatalf("a database of %d-byte pages with %d-byte blocks was checkpointed %v; want in place", ps, ps, got)
			}
			if got, _ := os.ReadFile(db); !bytes.Equal(got, b) {
				t.Fatal("the database is not the new state")
			}

			// One cut with its log durable and half its pages written.
			fsys := faultinject.Wrap(device.OS, 1)
			m, db = open(fsys)
			fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpWriteAt).Matching("app.db"))
			if err := m.Commit(); err == nil || !strings.Contains(err.Error(), "write in place") {
				t.Fatalf("commit with the database's writes failing: %v", err)
			}
			f, err := os.OpenFile(db, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, off := range changed[:len(changed)/2] {
				if _, err := f.WriteAt(b[off:off+ps], int64(off)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			copyFile(t, db, filepath.Join(dir, "app.db"))
			copyFile(t, db+"-wal", filepath.Join(dir, "app.db-wal"))
			stock := filepath.Join(dir, "app.db")
			want := runSQL(t, bin, "file:"+writeTemp(t, b)+"?immutable=1", contentQuery)
			if out := runSQL(t, bin, stock, "PRAGMA integrity_check"); out != "ok" {
				t.Fatalf("stock integrity_check on the pulled drive: %s", out)
			}
			if got := runSQL(t, bin, stock, contentQuery); got != want {
				t.Fatalf("stock shell sees %q, want the new state %q", got, want)
			}
			m.Close()
			rep, err := Recover(device.OS, db)
			if err != nil {
				t.Fatal(err)
			}
			if rep.State != StateInPlace || rep.Action != ActionRollForward {
				t.Errorf("recover: %v; want an in-place checkpoint rolled forward", rep)
			}
			if got, _ := os.ReadFile(db); !bytes.Equal(got, b) {
				t.Fatal("database after recovery is not the new state")
			}
		})
	}
}

// TestInPlace_logReused: a commit retires its redo log by zeroing its
// header and keeps the file; the next commit writes its log into the
// same file (no directory change), stock SQLite reads the database
// beside a retired log as it is, and RemoveRetiredLog takes the file
// away. On NoGrowInPlace a retired file too small for the next log is
// replaced by a new one (fusefat corrupts a file extended through a
// handle opened on it); elsewhere it grows.
func TestInPlace_logReused(t *testing.T) {
	bin := stockCLI(t)
	a, _ := sqliteStates(t, bin, inPlaceChanges[0].sql)
	// b rewrites one page of a, c three others: c's log is larger.
	b := bytes.Clone(a)
	for i := range 100 {
		b[4096+2000+i] ^= 0xff
	}
	c := bytes.Clone(b)
	for _, pg := range []int{3, 4, 5} {
		for i := range 100 {
			c[pg*4096+2000+i] ^= 0xff
		}
	}
	for _, noGrow := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoGrowInPlace=%v", noGrow), func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "app.db")
			if err := os.WriteFile(db, a, 0o644); err != nil {
				t.Fatal(err)
			}
			faulty := faultinject.Wrap(device.OS, 1)
			fsys := &entryCounter{FS: faulty, name: db + "-wal"}
			m, err := Open(fsys, db, Options{Mode: ModeInPlace, NoGrowInPlace: noGrow})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var entries int        // the -wal's creations and removals so far
			fresh := func() bool { // the last commit made the file anew
				t.Helper()
				n := fsys.n
				defer func() { entries = n }()
				return n != entries
			}
			commit := func(from, to []byte) os.FileInfo {
				t.Helper()
				writeDiff(t, m, from, to)
				if err := m.Commit(); err != nil {
					t.Fatal(err)
				}
				if st := m.Stats(); st.LastMode != ModeInPlace {
					t.Fatalf("last mode %v, want in place", st.LastMode)
				}
				if got, _ := os.ReadFile(db); !bytes.Equal(got, to) {
					t.Fatal("the database is not the new state")
				}
				if st := walState(t, db); st != "retired" {
					t.Fatalf("the redo log after the commit: %s; want retired", st)
				}
				fi, err := os.Stat(db + "-wal")
				if err != nil {
					t.Fatal(err)
				}
				return fi
			}
			first := commit(a, b)
			if !fresh() {
				t.Fatal("the first commit did not create its log")
			}
			// The stock shell beside the retired log: the database as
			// it is, integrity ok (on a copy: the shell removes the -wal
			// at close).
			stockReads(t, bin, db, b, "beside the retired log")

			second := commit(b, a) // the page back: the same log size
			if fresh() || second.Size() != first.Size() {
				t.Fatalf("a log that fits the retired file did not reuse it (size %d, was %d)", second.Size(), first.Size())
			}
			third := commit(a, c) // four pages: a larger log
			if third.Size() <= first.Size() {
				t.Fatalf("log of 4 pages (%d bytes) not larger than that of 1 (%d)", third.Size(), first.Size())
			}
			if made := fresh(); made != noGrow {
				t.Errorf("the larger log made a new file: %v; want %v", made, noGrow)
			}
			fourth := commit(c, b) // three pages back: fits the file
			if fresh() || fourth.Size() != third.Size() {
				t.Errorf("a log that fits the retired file did not reuse it (size %d, was %d)", fourth.Size(), third.Size())
			}
			if err := m.RemoveRetiredLog(); err != nil {
				t.Fatal(err)
			}
			if st := walState(t, db); st != "absent" {
				t.Errorf("after RemoveRetiredLog the -wal is %s", st)
			}

			// A log of 3 pages written over the retired log of 4 (its
			// stale frame carries other salts), then the pull: the
			// database written in place fails, the log is durable.
			commit(b, a)
			if big := commit(a, c); big.Size() != third.Size() {
				t.Fatalf("log of 4 pages: %d bytes, want %d", big.Size(), third.Size())
			}
			writeDiff(t, m, c, b)
			faulty.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpWriteAt).Matching("app.db"))
			if err := m.Commit(); err == nil || !strings.Contains(err.Error(), "write in place") {
				t.Fatalf("commit with the database's first write failing: %v", err)
			}
			if st := walState(t, db); st != "live" {
				t.Fatalf("the redo log after a failed write in place: %s, want live", st)
			}
			stockReads(t, bin, db, b, "beside the log over stale frames")
			m.Close()
			rep, err := Recover(device.OS, db)
			if err != nil || rep.Action != ActionRollForward {
				t.Fatalf("recover: %v, %v; want rolled forward", rep, err)
			}
			if got, _ := os.ReadFile(db); !bytes.Equal(got, b) {
				t.Fatal("recovery did not apply exactly the new log over the stale frames")
			}
		})
	}
}

// entryCounter counts the creations and removals of one name.
type entryCounter struct {
	device.FS
	name string
	n    int
}

func (e *entryCounter) Create(name string, perm os.FileMode) (device.File, error) {
	if name == e.name {
		e.n++
	}
	return e.FS.Create(name, perm)
}

func (e *entryCounter) Remove(name string) error {
	if name == e.name {
		e.n++
	}
	return e.FS.Remove(name)
}

// TestInPlace_bigLogRemoved: a redo log larger than keepLogMax is not
// kept for the next commit: step 8 removes it, so its space on the drive
// is free again.
func TestInPlace_bigLogRemoved(t *testing.T) {
	bin := stockCLI(t)
	a, _ := sqliteStates(t, bin, inPlaceChanges[0].sql)
	pages := int(keepLogMax/4096) + 64
	base := make([]byte, pages*4096)
	copy(base, a)
	b := bytes.Clone(base)
	for pg := 1; pg < pages; pg++ {
		b[pg*4096+100] ^= 0xff
	}
	db := filepath.Join(t.TempDir(), "app.db")
	if err := os.WriteFile(db, base, 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := &entryCounter{FS: device.OS, name: db + "-wal"}
	m, err := Open(fsys, db, Options{Mode: ModeInPlace})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	writeDiff(t, m, base, b)
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.LastMode != ModeInPlace || st.LastWritten < keepLogMax {
		t.Fatalf("last mode %v, %d bytes written; want in place, a log over %d", st.LastMode, st.LastWritten, keepLogMax)
	}
	if got, _ := os.ReadFile(db); !bytes.Equal(got, b) {
		t.Fatal("the database is not the new state")
	}
	if st := walState(t, db); st != "absent" || fsys.n != 2 {
		t.Errorf("after a log of %d pages the -wal is %s (%d creations and removals); want it removed", pages-1, st, fsys.n)
	}
}

// stockReads runs the stock shell's integrity_check on a copy of db and
// its -wal (the shell applies the -wal and removes it at close), which
// must pass and leave exactly want in the copy.
func stockReads(t *testing.T, bin, db string, want []byte, where string) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "app.db")
	copyFile(t, db, cp)
	copyFile(t, db+"-wal", cp+"-wal")
	if got := runSQL(t, bin, cp, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("stock shell %s: %s", where, got)
	}
	if got, _ := os.ReadFile(cp); !bytes.Equal(got, want) {
		t.Fatalf("stock shell %s: the database is not the state wanted", where)
	}
}
