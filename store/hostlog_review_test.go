//go:build linux

package store

import (
	"os"
	"path/filepath"
	"testing"
)

// rewriteHead rewrites a log's header through edit, with a seq above both
// slots' (bump more than 1 leaves the other slot stale but valid).
func rewriteHead(t *testing.T, log string, bump uint64, edit func(*hlHead)) {
	t.Helper()
	f, err := os.OpenFile(log, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHead(f)
	if err != nil {
		t.Fatal(err)
	}
	edit(&h)
	for i := uint64(1); i <= bump; i++ {
		h.seq++
		if _, err := f.WriteAt(h.encode(), int64(h.seq%2)*hlSlot); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostLog_InflightOtherCommit: a log whose process died with a drive
// commit in flight (inflight 1) is not replayed over a generation another
// Store committed afterwards (the reviewer's scenario): that Store's work
// would be lost. Fails before the fix (the log was replayed: 20 rows in t,
// table other gone).
func TestHostLog_InflightOtherCommit(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	log := leftLog(t, path, hostDir)
	rewriteHead(t, log, 1, func(h *hlHead) { h.inflight = 1 })
	// Another Store (no host log) commits generation G+1 meanwhile.
	o, err := Open(path, &Options{Durability: Checkpoint, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, o.DB(), "DELETE FROM t")
	mustExec(t, o.DB(), "CREATE TABLE other(i INTEGER PRIMARY KEY)")
	mustExec(t, o.DB(), "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200) INSERT INTO other SELECT i FROM c")
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	reopenKept(t, path, hostDir, ErrHostLogGeneration, 0)
	s := openHL(t, path, hostDir, nil)
	defer s.Close()
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM other").Scan(&n); err != nil || n != 200 {
		t.Errorf("other: %d rows, %v; want 200", n, err)
	}
}

// TestHostLog_ReuseSeq: a reused log (its WAL empty) whose old slots
// carry a higher seq than a new writer's first header: the new header
// must be the one read back. Fails before the fix (the stale slot won).
func TestHostLog_ReuseSeq(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	log := leftLog(t, path, hostDir)
	if err := os.Truncate(log, hlHeader); err != nil { // no WAL: reused
		t.Fatal(err)
	}
	rewriteHead(t, log, 6, func(h *hlHead) { h.db = "stale" })
	s := openHL(t, path, hostDir, nil)
	defer s.Close()
	if s.Recovery().HostLog != "" {
		t.Fatalf("Recovery().HostLog = %q, want a reuse", s.Recovery().HostLog)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHead(f)
	if err != nil {
		t.Fatal(err)
	}
	if h.db != path {
		t.Errorf("header read back names %q, want %q (a stale slot won)", h.db, path)
	}
}

// TestHostLog_HardLinkRefused: a log name that is a second link to a file
// is refused (fstat of the opened fd, one link): fails without the fix.
func TestHostLog_HardLinkRefused(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "other")
	if err := os.WriteFile(orig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "x"+hlSuffix)
	if err := os.Link(orig, log); err != nil {
		t.Fatal(err)
	}
	if f, err := openPrivate(log, false); err == nil {
		f.Close()
		t.Fatal("openPrivate accepted a file with 2 links")
	}
}

// TestHostLog_AbandoningLeft: a process that died inside Abandon's
// rename window left <log>.abandoning: rescue lists it and the next Open
// replays it. Fails without the fix (not listed; 0 rows after Open).
func TestHostLog_AbandoningLeft(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	log := leftLog(t, path, hostDir)
	if err := os.Rename(log, log+hlAbandoning); err != nil {
		t.Fatal(err)
	}
	infos, err := ListHostLogs(hostDir)
	if err != nil || len(infos) != 1 || infos[0].Path != log+hlAbandoning {
		t.Errorf("ListHostLogs = %+v, %v; want the .abandoning log", infos, err)
	}
	s := openHL(t, path, hostDir, nil)
	defer s.Close()
	if got := countT(t, s); got != 20 || s.Recovery().HostLog != "replayed" {
		t.Errorf("%d rows, Recovery().HostLog %q; want 20, replayed", got, s.Recovery().HostLog)
	}
}
