package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerify_reports (issue 17, finding 12): verify exits 1 with a report
// for anything not clean, and 2 only for usage or operational errors.
func TestVerify_reports(t *testing.T) {
	corrupt := func(t *testing.T, off int, b []byte) string {
		db := demoDB(t)
		f, err := os.OpenFile(db, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, int64(off)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return db
	}
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) string
		want string // in the report on stdout
	}{
		{"page size field garbage", func(t *testing.T) string { return corrupt(t, 16, []byte{0, 3}) }, "integrity_check: file is not a database"},
		{"header wiped", func(t *testing.T) string { return corrupt(t, 0, make([]byte, 100)) }, "integrity_check: file is not a database"},
		{"schema page scribbled", func(t *testing.T) string {
			return corrupt(t, 100, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}, "integrity_check: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db(t)
			code, out, errs := runCmd(t, "verify", db)
			if code != 1 || !strings.Contains(out, tc.want) || !strings.Contains(out, "verify "+db) {
				t.Fatalf("verify = %d; want 1 and a report with %q:\n%s%s", code, tc.want, out, errs)
			}
			code, out, _ = runCmd(t, "verify", "--json", db)
			var v struct {
				OK        bool   `json:"ok"`
				Integrity string `json:"integrity"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || v.OK || v.Integrity == "" || v.Integrity == "ok" {
				t.Fatalf("verify --json = %d, %+v, %v:\n%s", code, v, err, out)
			}
		})
	}

	for _, tc := range []struct {
		name string
		a    []string // stock sqlite3 sessions making a.db
		want string
	}{
		// Folded in, the database fails integrity_check.
		{"foreign -wal, damaging", []string{"PRAGMA journal_mode=WAL; CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<300) INSERT INTO a(v) SELECT printf('row %d', i) FROM c;\n"},
			"integrity_check says"},
		// Folded in, the database would be consistent (b.db's schema
		// over a.db's pages), but the -wal continues another history.
		{"foreign -wal, other history", []string{"PRAGMA journal_mode=WAL; CREATE TABLE a(v);\n", "INSERT INTO a VALUES (1);\n", "CREATE TABLE a2(v);\n", "CREATE TABLE a3(v);\n", "CREATE TABLE a4(v);\n"},
			"continues another database's history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
			for _, sql := range tc.a {
				stock(t, a, sql)
			}
			stock(t, b, "PRAGMA journal_mode=WAL; CREATE TABLE b1(x); CREATE TABLE b2(y); INSERT INTO b1 VALUES (1);\n")
			stock(t, b, ".dbconfig no_ckpt_on_close on\nWITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200) INSERT INTO b2 SELECT randomblob(300) FROM c; CREATE TABLE b3(z);\n")
			w, err := os.ReadFile(b + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(a+"-wal", w, 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd(t, "verify", a)
			if code != 1 || !strings.Contains(out, a+"-wal: does not belong to the database") || !strings.Contains(out, tc.want) {
				t.Fatalf("verify beside a foreign -wal = %d; want 1 and %q:\n%s%s", code, tc.want, out, errs)
			}
			if got, _ := os.ReadFile(a + "-wal"); string(got) != string(w) {
				t.Fatal("verify modified the -wal")
			}
		})
	}

	t.Run("own -wal", func(t *testing.T) {
		a := filepath.Join(t.TempDir(), "a.db")
		stock(t, a, "PRAGMA journal_mode=WAL; CREATE TABLE a(v); INSERT INTO a VALUES (1);\n")
		stock(t, a, ".dbconfig no_ckpt_on_close on\nINSERT INTO a VALUES (2);\n")
		code, out, errs := runCmd(t, "verify", a)
		if code != 0 || !strings.Contains(out, "they fit the database") {
			t.Fatalf("verify beside its own -wal = %d:\n%s%s", code, out, errs)
		}
	})
}
