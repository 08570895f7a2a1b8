package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/internal/stocktest"
	"github.com/ejectsafe/ejectsafe/journal"
)

// stock runs the stock sqlite3 shell on path with script (its own -wal).
func stock(t *testing.T, path, script string) {
	t.Helper()
	cmd := exec.Command(stocktest.Bin(t, "recovery beside a stock -wal"), path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
}

// interrupted leaves at path a checkpoint interrupted after Ready (base:
// 10 rows; copy: 20), then stock SQLite's row in a -wal beside it.
func interrupted(t *testing.T, path string) (cpy []byte) {
	t.Helper()
	stock(t, path, "PRAGMA journal_mode=WAL; CREATE TABLE t(v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<10) INSERT INTO t SELECT 'base' FROM c;\n")
	base, _ := os.ReadFile(path)
	build := path + ".build"
	os.WriteFile(build, base, 0o644)
	stock(t, build, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<10) INSERT INTO t SELECT 'copy' FROM c;\n")
	cpy, _ = os.ReadFile(build)
	os.Remove(build)
	os.WriteFile(journal.TempName(path, 1), cpy, 0o644)
	j := journal.AppendHeader(nil, journal.Header{FileID: 7})
	j, _ = journal.AppendRecord(j, 7, journal.Record{Kind: journal.Began, Gen: 1, Size: int64(len(base)), Sum: journal.Sum(base)})
	j, _ = journal.AppendRecord(j, 7, journal.Record{Kind: journal.Ready, Gen: 1, Size: int64(len(cpy)), Sum: journal.Sum(cpy)})
	j = append(j, make([]byte, 3*journal.RecordSize)...)
	os.WriteFile(journal.Name(path), j, 0o644)
	stock(t, path, ".dbconfig no_ckpt_on_close on\nINSERT INTO t VALUES ('stock');\n")
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no -wal left: %v", err)
	}
	return cpy
}

func sqliteOut(t *testing.T, path, sql string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", path, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRecover_choices (issue 17, finding 1): recover refuses, exit 1,
// naming the files; --keep-drive and --roll-forward settle it, keeping
// every file.
func TestRecover_choices(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "a.db")
		interrupted(t, db)
		code, out, errs := runCmd(t, "recover", db)
		if code != 1 || !strings.Contains(errs, db+"-wal") || !strings.Contains(errs, "--keep-drive") {
			t.Fatalf("recover = %d:\n%s%s", code, out, errs)
		}
		code, out, errs = runCmd(t, "verify", db)
		if code != 1 || !strings.Contains(out+errs, db+"-wal") {
			t.Fatalf("verify = %d:\n%s%s", code, out, errs)
		}
		if code, _, errs := runCmd(t, "recover", "--keep-drive", "--roll-forward", db); code != 2 {
			t.Fatalf("both choices = %d: %s", code, errs)
		}
	})
	t.Run("keep drive", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "a.db")
		cpy := interrupted(t, db)
		code, out, errs := runCmd(t, "recover", "--keep-drive", db)
		if code != 0 || !strings.Contains(out, "kept aside") {
			t.Fatalf("recover --keep-drive = %d:\n%s%s", code, out, errs)
		}
		if got := sqliteOut(t, db, "SELECT count(*) FROM t WHERE v='stock'; PRAGMA integrity_check"); got != "1\nok" {
			t.Fatalf("after --keep-drive: %q", got)
		}
		matches, _ := filepath.Glob(db + ".ejectsafe-orphan-1*")
		if len(matches) != 1 {
			t.Fatalf("copy aside: %v", matches)
		}
		if b, _ := os.ReadFile(matches[0]); string(b) != string(cpy) {
			t.Fatal("the copy aside is not the copy")
		}
	})
	t.Run("roll forward", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "a.db")
		interrupted(t, db)
		code, out, errs := runCmd(t, "recover", "--roll-forward", db)
		if code != 0 {
			t.Fatalf("recover --roll-forward = %d:\n%s%s", code, out, errs)
		}
		if got := sqliteOut(t, db, "SELECT count(*), count(*) FILTER (WHERE v='stock') FROM t; PRAGMA integrity_check"); got != "20|0\nok" {
			t.Fatalf("after --roll-forward: %q", got)
		}
		// The old database with its -wal, aside, still holds the stock row.
		walAside, _ := filepath.Glob(db + ".ejectsafe-aside-*.wal")
		dbAside, _ := filepath.Glob(db + ".ejectsafe-aside-*.db")
		if len(walAside) != 1 || len(dbAside) != 1 {
			t.Fatalf("aside: %v %v", walAside, dbAside)
		}
		dir := t.TempDir()
		old := filepath.Join(dir, "old.db")
		b, _ := os.ReadFile(dbAside[0])
		w, _ := os.ReadFile(walAside[0])
		os.WriteFile(old, b, 0o644)
		os.WriteFile(old+"-wal", w, 0o644)
		if got := sqliteOut(t, old, "SELECT count(*) FROM t WHERE v='stock'"); got != "1" {
			t.Fatalf("the old database aside: %q", got)
		}
	})
}

// TestRecover_hugeJournal (issue 17, finding 6): 100 MB of junk as the
// journal is refused unread with exit 1 and a way out; --reset-journal
// moves it aside once the database passes integrity_check.
func TestRecover_hugeJournal(t *testing.T) {
	db := demoDB(t)
	f, err := os.Create(journal.Name(db))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 100 MB the refusal must not read.
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("junk"), 0)
	f.Close()
	for _, c := range []string{"recover", "verify"} {
		code, out, errs := runCmd(t, c, db)
		if code != 1 || !strings.Contains(out+errs, "--reset-journal") {
			t.Fatalf("%s = %d:\n%s%s", c, code, out, errs)
		}
	}
	code, out, errs := runCmd(t, "recover", "--reset-journal", db)
	if code != 0 || !strings.Contains(out, ".ejectsafe-aside-1.jrnl") {
		t.Fatalf("recover --reset-journal = %d:\n%s%s", code, out, errs)
	}
	if fi, err := os.Stat(db + ".ejectsafe-aside-1.jrnl"); err != nil || fi.Size() != 100<<20 {
		t.Fatalf("the journal aside: %v", err)
	}
	if code, out, errs := runCmd(t, "verify", db); code != 0 {
		t.Fatalf("verify after reset = %d:\n%s%s", code, out, errs)
	}
}
