package store

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/internal/stocktest"
)

// stockSQLite runs the stock sqlite3 shell on path (its own VFS, its own
// -wal and -shm) with the given script.
func stockSQLite(t *testing.T, path, script string) {
	t.Helper()
	bin := sqlite3Bin(t)
	cmd := exec.Command(bin, path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
}

func sqlite3Bin(t *testing.T) string {
	t.Helper()
	return stocktest.Bin(t, "the independent reader")
}

func mustExist(t *testing.T, path string, want bool) {
	t.Helper()
	fi, err := os.Stat(path)
	if got := err == nil && fi.Size() > 0; got != want {
		t.Fatalf("%s present and non-empty = %v; want %v (%v)", path, got, want, err)
	}
}

func TestOpen_stockWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stock.db")
	// Stock SQLite in WAL mode, told not to checkpoint on close: its
	// committed rows are only in the -wal file.
	stockSQLite(t, path, `.dbconfig no_ckpt_on_close on
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<500)
INSERT INTO t(v) SELECT 'row ' || i FROM c;
`)
	mustExist(t, path+walSuffix, true)
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM sqlite_master"); got != "0" {
		t.Fatalf("the database file alone already holds the schema (%s): the test would prove nothing", got)
	}

	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 500 {
		t.Fatalf("count = %d, %v; want the 500 rows from the stock WAL", n, err)
	}
	// Folded in and durable before Open returned; the stock files are gone.
	noSidecars(t, path)
	if got := sqlite3CLI(t, path, "SELECT count(*), max(v) FROM t"); got != "500|row 99" {
		t.Fatalf("the database file alone: %q; want 500 rows", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpen_stockWALOverData: a -wal stock SQLite left over a database
// that already holds data, so that the fold's checkpoint could go in
// place: it copies (an in-place redo log would need the -wal's name),
// in every mode, and Open folds it in.
func TestOpen_stockWALOverData(t *testing.T) {
	for _, mode := range []CheckpointMode{CheckpointAuto, CheckpointInPlace} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stock.db")
			stockSQLite(t, path, `PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<3000)
INSERT INTO t(v) SELECT printf('row %d %.200c', i, 'x') FROM c;
`)
			stockSQLite(t, path, `.dbconfig no_ckpt_on_close on
UPDATE t SET v = 'changed' WHERE id = 1500;
`)
			mustExist(t, path+walSuffix, true)
			s, err := Open(path, &Options{ManualCheckpoint: true, CheckpointMode: mode})
			if err != nil {
				t.Fatalf("Open beside a stock -wal: %v", err)
			}
			var v string
			if err := s.DB().QueryRow("SELECT v FROM t WHERE id = 1500").Scan(&v); err != nil || v != "changed" {
				t.Fatalf("row 1500 = %q, %v; want the stock -wal's update", v, err)
			}
			noSidecars(t, path)
			if got := sqlite3CLI(t, path, "SELECT count(*), v FROM t WHERE id = 1500"); got != "1|changed" {
				t.Fatalf("the database file alone: %q; want the update folded in", got)
			}
			if st := s.Stats(); st.InPlaceCheckpoints != 0 {
				t.Errorf("the fold went in place: %+v", st)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpen_hotJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hot.db")
	stockSQLite(t, path, `PRAGMA journal_mode=DELETE;
CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
INSERT INTO t(v) VALUES (1), (2), (3);
`)
	// A transaction big enough to spill pages into the database file in
	// place, then kill -9: the journal left behind is hot.
	cmd := exec.Command(sqlite3Bin(t), path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_, err = stdin.Write([]byte(`PRAGMA cache_size=2;
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<3000)
INSERT INTO t(v) SELECT randomblob(1000) FROM c;
.print spilled
`))
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "spilled" {
		t.Fatalf("sqlite3 said %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	mustExist(t, path+journalSuffix, true)

	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var check string
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("count = %d, %v; want the 3 rows from before the killed transaction", n, err)
	}
	if err := s.DB().QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	noSidecars(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != "3\nok" {
		t.Fatalf("the database file alone: %q", got)
	}
}
