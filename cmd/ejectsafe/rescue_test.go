//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/store"
)

// TestRescue_cli: list names an abandoned store's host log and its
// transactions; export writes a database with them (stock sqlite3 reads
// it); apply onto another database exits 1 and leaves it unchanged;
// apply onto its own database replays it.
func TestRescue_cli(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	db := filepath.Join(t.TempDir(), "a.db")
	other := filepath.Join(t.TempDir(), "b.db")
	for _, p := range []string{other, db} {
		s, err := store.Open(p, &store.Options{HostDir: hostDir, ManualCheckpoint: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().Exec("CREATE TABLE t(v)"); err != nil {
			t.Fatal(err)
		}
		if err := s.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := s.DB().Exec("INSERT INTO t VALUES(?)", i); err != nil {
				t.Fatal(err)
			}
		}
		if p == other {
			err = s.Close()
		} else {
			err = s.Abandon() // the drive "gone": the log stays
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(hostDir, "*.eslog"))
	if len(logs) != 1 {
		t.Fatalf("logs: %v", logs)
	}
	saved := filepath.Join(t.TempDir(), "saved.eslog")
	if err := os.Rename(logs[0], saved); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := lookup("rescue").exec(args, &out, &errb)
		return code, out.String() + errb.String()
	}
	if err := os.Rename(saved, logs[0]); err != nil { // listed where it lives
		t.Fatal(err)
	}
	code, out := run("--host-dir", hostDir, "list")
	if code != 0 || !strings.Contains(out, db) || !strings.Contains(out, "3 committed transactions") {
		t.Errorf("rescue list: exit %d:\n%s", code, out)
	}
	if err := os.Rename(logs[0], saved); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "rescued.db")
	if code, out := run("export", saved, db, dst); code != 0 {
		t.Fatalf("rescue export: exit %d: %s", code, out)
	}
	if got, err := exec.Command("sqlite3", dst, "SELECT count(*) FROM t").Output(); err != nil || strings.TrimSpace(string(got)) != "3" {
		t.Errorf("exported database: %q, %v; want 3 rows", got, err)
	}
	before, _ := os.ReadFile(other)
	if code, out := run("--host-dir", hostDir, "apply", saved, other); code != 1 || !strings.Contains(out, "another database") {
		t.Errorf("rescue apply onto another database: exit %d: %s", code, out)
	}
	if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
		t.Error("the refused apply changed the other database")
	}
	if code, out := run("--host-dir", hostDir, "apply", saved, db); code != 0 {
		t.Fatalf("rescue apply: exit %d: %s", code, out)
	}
	if got, err := exec.Command("sqlite3", db, "SELECT count(*) FROM t").Output(); err != nil || strings.TrimSpace(string(got)) != "3" {
		t.Errorf("after apply: %q, %v; want 3 rows", got, err)
	}
}
