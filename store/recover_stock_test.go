package store

import (
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
)

// Issue 17, findings 1 and 2: a checkpoint interrupted after Ready (its
// copy complete on the drive), then the drive used by stock SQLite on
// another computer. Recovery must act only on what it has proven.

// interruptedCheckpoint builds at path what a pull after checkpoint 1's
// Ready leaves: the database (the base: 100 rows, written by the stock
// sqlite3 shell in WAL mode), the copy (the base plus 100 rows) and a
// journal saying Began (the base's size and checksum) and Ready (the
// copy's). It returns the base's and the copy's bytes.
func interruptedCheckpoint(t *testing.T, path string) (base, cpy []byte) {
	t.Helper()
	stockSQLite(t, path, `PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100)
INSERT INTO t(v) SELECT 'base ' || i FROM c;
`)
	base = readFile(t, path)
	build := path + ".build"
	if err := os.WriteFile(build, base, 0o644); err != nil {
		t.Fatal(err)
	}
	stockSQLite(t, build, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100)
INSERT INTO t(v) SELECT 'copy ' || i FROM c;
`)
	cpy = readFile(t, build)
	os.Remove(build)
	if err := os.WriteFile(journal.TempName(path, 1), cpy, 0o644); err != nil {
		t.Fatal(err)
	}
	const id = 42
	j := journal.AppendHeader(nil, journal.Header{FileID: id})
	for _, r := range []journal.Record{
		{Kind: journal.Began, Gen: 1, Size: int64(len(base)), Sum: journal.Sum(base)},
		{Kind: journal.Ready, Gen: 1, Size: int64(len(cpy)), Sum: journal.Sum(cpy)},
	} {
		var err error
		if j, err = journal.AppendRecord(j, id, r); err != nil {
			t.Fatal(err)
		}
	}
	j = append(j, make([]byte, 3*journal.RecordSize)...)
	if err := os.WriteFile(journal.Name(path), j, 0o644); err != nil {
		t.Fatal(err)
	}
	return base, cpy
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirSums returns the checksum of every file in dir but the lock file
// (Open creates it before recovery; it holds nothing).
func dirSums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][32]byte{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), lockSuffix) || e.IsDir() {
			continue
		}
		m[e.Name()] = sha256.Sum256(readFile(t, filepath.Join(dir, e.Name())))
	}
	return m
}

func sameSums(t *testing.T, what string, got, want map[string][32]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: files %v, want %v", what, sumKeys(got), sumKeys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s changed or missing", what, k)
		}
	}
}

func sumKeys(m map[string][32]byte) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return s
}

// stockCLI runs the stock sqlite3 shell on path as an application would
// (its own -wal and -shm), and returns its output.
func stockCLI(t *testing.T, path, sql string) string {
	t.Helper()
	out, err := execOutput(sqlite3Bin(t), path, sql)
	if err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(out)
}

// refuses checks that both Recover and Open refuse with ErrUnrecoverable,
// naming the files, and that neither changed a byte.
func refuses(t *testing.T, path string, names ...string) {
	t.Helper()
	dir := filepath.Dir(path)
	before := dirSums(t, dir)
	_, err := checkpoint.Recover(device.OS, path)
	if !errors.Is(err, checkpoint.ErrUnrecoverable) {
		t.Fatalf("Recover: %v; want ErrUnrecoverable", err)
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("Recover's error does not name %s: %v", n, err)
		}
	}
	sameSums(t, "after Recover", dirSums(t, dir), before)
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err == nil {
		s.Close()
		t.Fatalf("Open succeeded; want ErrUnrecoverable")
	}
	if !errors.Is(err, ErrUnrecoverable) {
		t.Fatalf("Open: %v; want ErrUnrecoverable", err)
	}
	sameSums(t, "after Open", dirSums(t, dir), before)
}

func TestRecover_stockWALBesideInterruptedCheckpoint(t *testing.T) {
	setup := func(t *testing.T) (path string, base, cpy, wal []byte) {
		path = filepath.Join(t.TempDir(), "a.db")
		base, cpy = interruptedCheckpoint(t, path)
		// The drive on another computer: stock SQLite commits a row and
		// leaves it in its -wal.
		stockSQLite(t, path, `.dbconfig no_ckpt_on_close on
INSERT INTO t(v) VALUES ('stock');
`)
		mustExist(t, path+walSuffix, true)
		if got := readFile(t, path); string(got) != string(base) {
			t.Fatal("stock SQLite changed the database file itself: the scenario needs the row in the -wal only")
		}
		return path, base, cpy, readFile(t, path+walSuffix)
	}

	t.Run("refused", func(t *testing.T) {
		path, _, _, _ := setup(t)
		refuses(t, path, path+walSuffix, journal.TempName(path, 1))
	})

	t.Run("keep drive", func(t *testing.T) {
		path, _, cpy, _ := setup(t)
		rep, err := checkpoint.RecoverWith(device.OS, path, checkpoint.ChooseKeepDrive)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.MovedAside) != 1 || !strings.Contains(rep.MovedAside[0], journal.TempName(path, 1)+" -> ") {
			t.Fatalf("moved aside: %q; want the copy", rep.MovedAside)
		}
		aside := strings.SplitN(rep.MovedAside[0], " -> ", 2)[1]
		if string(readFile(t, aside)) != string(cpy) {
			t.Error("the copy kept aside differs from the copy")
		}
		// The stock row is there (through the -wal), and the store folds
		// it in.
		s, err := Open(path, &Options{ManualCheckpoint: true})
		if err != nil {
			t.Fatal(err)
		}
		var n, stock int
		if err := s.DB().QueryRow("SELECT count(*), count(*) FILTER (WHERE v='stock') FROM t").Scan(&n, &stock); err != nil || n != 101 || stock != 1 {
			t.Fatalf("store sees %d rows, %d stock, %v; want 101 with the stock row", n, stock, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := sqlite3CLI(t, path, "SELECT count(*) FROM t WHERE v='stock'; PRAGMA integrity_check"); got != "1\nok" {
			t.Fatalf("the database file alone: %q", got)
		}
	})

	t.Run("roll forward", func(t *testing.T) {
		path, base, cpy, wal := setup(t)
		rep, err := checkpoint.RecoverWith(device.OS, path, checkpoint.ChooseRollForward)
		if err != nil {
			t.Fatal(err)
		}
		if string(readFile(t, path)) != string(cpy) {
			t.Fatal("the database is not the copy")
		}
		// Nothing deleted: the old database and the -wal are aside.
		found := map[string]bool{}
		for _, m := range rep.MovedAside {
			from, to, _ := strings.Cut(m, " -> ")
			b := string(readFile(t, to))
			switch {
			case from == path && b == string(base):
				found["db"] = true
			case from == path+walSuffix && b == string(wal):
				found["wal"] = true
			}
		}
		if !found["db"] || !found["wal"] {
			t.Fatalf("moved aside: %q; want the database and its -wal, intact", rep.MovedAside)
		}
		if _, err := os.Stat(path + walSuffix); err == nil {
			t.Fatal("the -wal is still beside the rolled-forward database")
		}
		if got := stockCLI(t, path, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != "200\nok" {
			t.Fatalf("after roll forward: %q", got)
		}
	})
}

func TestRecover_databaseWrittenElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	base, _ := interruptedCheckpoint(t, path)
	// Stock SQLite commits a row and closes cleanly: the row is in the
	// database file, which is now neither the base nor the copy.
	stockSQLite(t, path, "INSERT INTO t(v) VALUES ('stock');\n")
	mustExist(t, path+walSuffix, false)
	if string(readFile(t, path)) == string(base) {
		t.Fatal("stock SQLite left the database unchanged: the scenario needs it rewritten")
	}
	refuses(t, path, path, journal.TempName(path, 1))
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t WHERE v='stock'"); got != "1" {
		t.Fatalf("the stock row: %q", got)
	}

	// The person keeps the drive's database.
	if _, err := checkpoint.RecoverWith(device.OS, path, checkpoint.ChooseKeepDrive); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec("INSERT INTO t(v) VALUES ('after')"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t WHERE v IN ('stock','after'); PRAGMA integrity_check"); got != "2\nok" {
		t.Fatalf("the database file alone: %q", got)
	}
}

func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// TestOpen_hugeJournal (issue 17, finding 6): a 100 MB file as the
// checkpoint journal is refused with ErrJournal, unread (it is sparse:
// reading it would take the page cache, not the drive), and nothing is
// modified.
func TestOpen_hugeJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	stockSQLite(t, path, "CREATE TABLE t(v); INSERT INTO t VALUES (1);\n")
	f, err := os.Create(journal.Name(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := dirSums(t, filepath.Dir(path))
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), "--reset-journal") {
		t.Fatalf("Open: %v; want ErrJournal and the way out", err)
	}
	sameSums(t, "after Open", dirSums(t, filepath.Dir(path)), before)
}
