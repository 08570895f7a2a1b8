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
