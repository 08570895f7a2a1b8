//go:build linux

package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestHostLog_Rescue: a log left by a crashed process is listed in
// words; exported onto its database it gives a complete database with
// every commit (read by the stock sqlite3 CLI); exported or applied onto
// another database it is refused and that database is not changed;
// applied onto its own database it replays.
func TestHostLog_Rescue(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	log := leftLog(t, path, hostDir) // 10 commits of 2 rows, not checkpointed
	// Another database, and the log set aside as a person would keep it.
	other := filepath.Join(t.TempDir(), "b.db")
	crashAfterCommits(t, other, hostDir, 0)
	so := openHL(t, other, hostDir, nil)
	if err := commitPair(so.DB(), 7, 1); err != nil {
		t.Fatal(err)
	}
	if err := so.Close(); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(hostDir, "saved"+hlSuffix+hlKeptInfix+"x")
	if err := os.Rename(log, saved); err != nil {
		t.Fatal(err)
	}

	t.Run("list", func(t *testing.T) {
		logs, err := ListHostLogs(hostDir)
		if err != nil || len(logs) != 1 {
			t.Fatalf("ListHostLogs = %v, %v; want the saved log", logs, err)
		}
		l := logs[0]
		if l.Err != nil || !l.Kept || l.DB != path || l.Commits != 10 || l.Frames < l.Commits || l.Level != HostLog {
			t.Errorf("listed %+v; want kept, db %s, 10 commits in at least as many frames, level hostlog", l, path)
		}
		t.Log(l)
	})
	t.Run("export", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "rescued.db")
		if err := ExportHostLog(saved, path, dst); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("exported database: %v, %v; want mode 0600 (it holds the log's pages)", fi, err)
		}
		if got := stockCountTable(t, dst); got != 20 {
			t.Errorf("exported database: %d rows, want 20", got)
		}
		if _, err := os.Stat(saved); err != nil {
			t.Errorf("the log was not kept: %v", err)
		}
		bad := filepath.Join(t.TempDir(), "bad.db")
		if err := ExportHostLog(saved, other, bad); !errors.Is(err, ErrHostLogForeign) {
			t.Errorf("export onto another database: %v, want ErrHostLogForeign", err)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Errorf("a refused export left %s", bad)
		}
	})
	t.Run("apply elsewhere", func(t *testing.T) {
		before, _ := os.ReadFile(other)
		err := ApplyHostLog(saved, other, &Options{HostDir: hostDir})
		if !errors.Is(err, ErrHostLogForeign) {
			t.Fatalf("apply onto another database: %v, want ErrHostLogForeign", err)
		}
		t.Log(err)
		if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
			t.Error("the refused apply changed the other database")
		}
		if got := stockCountTable(t, other); got != 2 {
			t.Errorf("other database: %d rows, want 2", got)
		}
	})
	t.Run("apply", func(t *testing.T) {
		if err := ApplyHostLog(saved, path, &Options{HostDir: hostDir}); err != nil {
			t.Fatal(err)
		}
		if got := stockCountTable(t, path); got != 20 {
			t.Errorf("after apply: %d rows, want 20", got)
		}
	})
}

// TestStore_Rescue: a live Store writes a complete copy with every
// commit, checkpointed or not.
func TestStore_Rescue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := openHL(t, path, filepath.Join(t.TempDir(), "h"), nil)
	defer s.Close()
	mustExec(t, s.DB(), "CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half))")
	for i := 1; i <= 3; i++ {
		if err := commitPair(s.DB(), 0, i); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := s.Rescue(context.Background(), dst); err != nil {
		t.Fatal(err)
	}
	if got := stockCountTable(t, dst); got != 6 {
		t.Errorf("rescued copy: %d rows, want 6", got)
	}
}

func stockCountTable(t *testing.T, path string) int {
	t.Helper()
	return stockCount(t, path)
}
