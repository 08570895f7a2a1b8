package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// foreignWAL makes database a.db (stock SQLite, WAL mode, checkpointed)
// and, beside it, the -wal another database left (b.db: its own schema
// and rows, page size bPageSize, rows only in its -wal). It returns a.db's
// path.
func foreignWAL(t *testing.T, bPageSize string, aMore ...string) string {
	t.Helper()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	stockSQLite(t, a, `PRAGMA journal_mode=WAL;
CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)
INSERT INTO a(v) SELECT printf('a row %d', i) FROM c;
`)
	for _, sql := range aMore {
		stockSQLite(t, a, sql)
	}
	stockSQLite(t, b, `PRAGMA page_size=`+bPageSize+`;
PRAGMA journal_mode=WAL;
CREATE TABLE b1(x);
CREATE TABLE b2(y);
INSERT INTO b1 VALUES (1);
`)
	stockSQLite(t, b, `.dbconfig no_ckpt_on_close on
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200)
INSERT INTO b2 SELECT randomblob(300) FROM c;
CREATE TABLE b3(z);
`)
	w := readFile(t, b+walSuffix)
	if err := os.WriteFile(a+walSuffix, w, 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestOpen_foreignWAL (issue 17, finding 12): a -wal from another
// database beside the database is refused by Open with ErrForeignLog,
// nothing modified (the stock sqlite3 shell, folding it in, would report
// a damaged database).
func TestOpen_foreignWAL(t *testing.T) {
	for _, tc := range []struct {
		name, ps string
		aMore    []string
		want     string
	}{
		{"same page size", "4096", nil, "quick_check"},
		{"other page size", "1024", nil, "page size is 1024"},
		{"other history", "4096", []string{"CREATE TABLE a2(v);\n", "CREATE TABLE a3(v);\n", "CREATE TABLE a4(v);\n"}, "another database's history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := foreignWAL(t, tc.ps, tc.aMore...)
			before := dirSums(t, filepath.Dir(a))
			s, err := Open(a, &Options{ManualCheckpoint: true})
			if err == nil {
				s.Close()
				t.Fatal("Open folded in another database's -wal")
			}
			if !errors.Is(err, ErrForeignLog) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want ErrForeignLog saying %q", err, tc.want)
			}
			t.Logf("Open: %v", err)
			sameSums(t, "after Open", dirSums(t, filepath.Dir(a)), before)
			if got := sqlite3CLI(t, a, "SELECT count(*) FROM a; PRAGMA integrity_check"); got != "300\nok" {
				t.Fatalf("the database file alone: %q", got)
			}
		})
	}
}

// TestOpen_damagedDatabaseOwnWAL (review finding 5): the database itself
// is damaged (a page the -wal does not touch), and the -wal beside it is
// its own. Open refuses, nothing modified, but says the database is
// damaged (ErrDamaged), not that the -wal is foreign, and how to keep the
// -wal's data with the stock tool. verify's note on the -wal says the
// same. A -wal that is foreign beside a sound database stays ErrForeignLog
// (TestOpen_foreignWAL).
func TestOpen_damagedDatabaseOwnWAL(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	stockSQLite(t, a, `PRAGMA journal_mode=WAL;
CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)
INSERT INTO a(v) SELECT printf('a row %d', i) FROM c;
CREATE TABLE b(x);
`)
	root, err := strconv.Atoi(sqlite3CLI(t, a, "SELECT rootpage FROM sqlite_master WHERE name='a'"))
	if err != nil || root < 2 {
		t.Fatalf("root page of a: %d, %v", root, err)
	}
	stockSQLite(t, a, `.dbconfig no_ckpt_on_close on
INSERT INTO b VALUES ('only in the -wal');
`)
	if fi, err := os.Stat(a + walSuffix); err != nil || fi.Size() == 0 {
		t.Fatalf("no -wal: %v", err)
	}
	// Damage table a's root page in the database file (the -wal does not
	// hold it): its page type byte.
	f, err := os.OpenFile(a, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x42}, int64(root-1)*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	before := dirSums(t, dir)
	s, err := Open(a, &Options{ManualCheckpoint: true})
	if err == nil {
		s.Close()
		t.Fatal("Open folded a -wal into a damaged database")
	}
	t.Logf("Open: %v", err)
	if errors.Is(err, ErrForeignLog) || !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open: %v; want ErrDamaged, not ErrForeignLog", err)
	}
	if !strings.Contains(err.Error(), "PRAGMA wal_checkpoint") {
		t.Errorf("Open: %v; want the way to keep the -wal's data", err)
	}
	sameSums(t, "after Open", dirSums(t, dir), before)

	found, err := InspectStock(a)
	if err != nil {
		t.Fatal(err)
	}
	var note string
	for _, f := range found {
		if f.Path == a+walSuffix {
			note = f.Note
			if f.Foreign {
				t.Errorf("verify calls the database's own -wal foreign: %s", f.Note)
			}
		}
	}
	t.Logf("InspectStock: %s", note)
	if !strings.Contains(note, "database alone") || !strings.Contains(note, "PRAGMA wal_checkpoint") {
		t.Errorf("InspectStock's note on the -wal: %q; want the database alone named damaged and the way to keep the -wal's data", note)
	}
	sameSums(t, "after InspectStock", dirSums(t, dir), before)
}

// TestInspectStock_foldBounded (review finding 7): verify's trial fold
// copies the database and -wal to the host's temporary directory only up
// to a bound, reporting the -wal unchecked beyond it, and leaves nothing
// in that directory either way.
func TestInspectStock_foldBounded(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	stockSQLite(t, a, `PRAGMA journal_mode=WAL;
CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
`)
	stockSQLite(t, a, `.dbconfig no_ckpt_on_close on
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300)
INSERT INTO a(v) SELECT printf('a row %d', i) FROM c;
`)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	walNote := func(want string, unchecked bool) {
		t.Helper()
		found, err := InspectStock(a)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].Path != a+walSuffix || found[0].Foreign || found[0].Unchecked != unchecked || !strings.Contains(found[0].Note, want) {
			t.Fatalf("InspectStock: %+v; want the -wal, unchecked %v, %q", found, unchecked, want)
		}
		t.Logf("InspectStock: %s", found[0].Note)
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Fatalf("left in the temporary directory: %v", left)
		}
	}
	walNote("they fit the database", false)

	defer func(old int64) { maxFoldCopy = old }(maxFoldCopy)
	maxFoldCopy = 4096
	walNote("not checked: the database and -wal", true)
}
