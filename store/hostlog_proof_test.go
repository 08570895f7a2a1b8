//go:build linux

package store

import (
	"context"
	"errors"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/journal"
)

// stockWALDB makes path with the stock sqlite3 CLI, in WAL mode (so the
// store's Open writes nothing to it and no checkpoint journal exists),
// with the host-log children's table and rows rows in it.
func stockWALDB(t *testing.T, path string, rows int) {
	t.Helper()
	q := "PRAGMA journal_mode=WAL; CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half));"
	for i := 0; i < rows; i++ {
		q += "INSERT INTO t VALUES(9, " + string(rune('0'+i)) + ", 0, randomblob(300));"
	}
	if out, err := exec.Command("sqlite3", path, q).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
}

// TestHostLog_StockBase: a crash before the first checkpoint of a
// database stock SQLite made (no checkpoint journal, so no checksum on
// the drive): the log recorded the base's checksum at Open, so the next
// Open replays it (DESIGN invariant 9) and rescue export accepts it; a
// change by stock SQLite that keeps the file's size is still told apart
// (kept aside). Fails without the fix: kept aside, "the log's base has
// no checksum".
func TestHostLog_StockBase(t *testing.T) {
	t.Run("replayed", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		path := filepath.Join(t.TempDir(), "a.db")
		stockWALDB(t, path, 1)
		log := leftLog(t, path, hostDir)
		if _, err := os.Stat(journal.Name(path)); err == nil {
			t.Fatal("a checkpoint journal exists: the crash was not before the first checkpoint")
		}
		// Rescue export first (it reads the log and the base only).
		dst := filepath.Join(t.TempDir(), "x.db")
		if err := ExportHostLog(log, path, dst); err != nil {
			t.Errorf("export: %v", err)
		} else if got := stockCountTable(t, dst); got != 21 {
			t.Errorf("exported: %d rows, want 21", got)
		}
		s := openHL(t, path, hostDir, nil)
		defer s.Close()
		if rep := s.Recovery(); rep.HostLog != "replayed" {
			t.Fatalf("Recovery().HostLog = %q (%v), want replayed", rep.HostLog, rep.HostLogErr)
		}
		if got := countT(t, s); got != 21 {
			t.Errorf("%d rows, want 21 (1 stock, 20 committed through the store)", got)
		}
	})
	t.Run("changed same size", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		path := filepath.Join(t.TempDir(), "a.db")
		stockWALDB(t, path, 1)
		leftLog(t, path, hostDir)
		before, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sqlite3", path, "UPDATE t SET pad = randomblob(300)").CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v: %s", err, out)
		}
		if after, _ := os.Stat(path); after.Size() != before.Size() {
			t.Fatalf("stock change grew the file (%d to %d bytes): the test needs one of the same size", before.Size(), after.Size())
		}
		reopenKept(t, path, hostDir, ErrHostLogGeneration, 1)
	})
}

// TestHostLog_EarlierReady: a checkpoint of the log's process failed
// after its Ready (say an undecided rename that a later attempt settled
// forward), and the process died inside a later attempt before that
// attempt's Ready reached the header: the drive holds the failed
// attempt's generation, past the header's base. The header keeps that
// Ready as earlier, so the log is replayed. Fails without the fix (kept
// aside: ErrHostLogGeneration).
func TestHostLog_EarlierReady(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	s := openHL(t, path, hostDir, nil)
	mustExec(t, s.DB(), "CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half))")
	mustCheckpoint(t, s)
	for i := 1; i <= 5; i++ {
		if err := commitPair(s.DB(), 0, i); err != nil {
			t.Fatal(err)
		}
	}
	mustCheckpoint(t, s) // generation G: 10 rows
	for i := 6; i <= 10; i++ {
		if err := commitPair(s.DB(), 0, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(hostDir, hostLogName(path))
	// The drive's journal: Done of G and of G-1 (the earlier base).
	jb, err := os.ReadFile(journal.Name(path))
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Decode(jb)
	if err != nil {
		t.Fatal(err)
	}
	var dones []journal.Record
	for _, r := range j.Records {
		if r.Kind == journal.Done {
			dones = append(dones, r)
		}
	}
	if len(dones) < 2 {
		t.Fatalf("journal holds %d Done records, want 2", len(dones))
	}
	prev, last := dones[len(dones)-2], dones[len(dones)-1]
	// The header as a crash in the later attempt leaves it: base G-1, a
	// commit in flight with no Ready of its own yet, G's Ready earlier.
	rewriteHead(t, log, 1, func(h *hlHead) {
		h.id.Gen, h.id.Size, h.id.Sum, h.id.SumKnown = prev.Gen, prev.Size, prev.Sum, true
		h.inflight = 2
		h.pending = journal.Record{}
		h.earlier = journal.Record{Kind: journal.Ready, Gen: last.Gen, Size: last.Size, Sum: last.Sum}
	})
	s = openHL(t, path, hostDir, nil)
	if rep := s.Recovery(); rep.HostLog != "replayed" {
		s.Close()
		t.Fatalf("Recovery().HostLog = %q (%v), want replayed", rep.HostLog, rep.HostLogErr)
	}
	if got := countT(t, s); got != 20 {
		t.Errorf("%d rows, want 20", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the earlier Ready the same log is not this drive's state.
	t.Run("without earlier", func(t *testing.T) {
		hostDir := filepath.Join(t.TempDir(), "h")
		path := filepath.Join(t.TempDir(), "a.db")
		log := leftLog(t, path, hostDir)
		rewriteHead(t, log, 1, func(h *hlHead) {
			h.id.Gen, h.id.Sum = h.id.Gen-1, h.id.Sum+1
			h.inflight = 2
		})
		reopenKept(t, path, hostDir, ErrHostLogGeneration, 0)
	})
}

// TestHostLog_AbandonRename: Abandon of a Store whose WAL is wholly
// backfilled into the main file's memory but not committed to the drive:
// SQLite's close-time checkpoint then has nothing to write, succeeds, and
// deletes the WAL (the shim removes the host log with it). Abandon keeps
// the log out of its way (<log>.abandoning) and puts it back: the log is
// in place afterwards and the next Open replays it. The state is made
// with the gate's deferred sync (a backfill whose drive commit comes
// after). Fails without the rename: the log is gone, 0 rows after Open.
func TestHostLog_AbandonRename(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	s := openHL(t, path, hostDir, nil)
	mustExec(t, s.DB(), "CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half))")
	mustCheckpoint(t, s)
	for i := 1; i <= 3; i++ {
		if err := commitPair(s.DB(), 0, i); err != nil {
			t.Fatal(err)
		}
	}
	s.state.deferSync.Store(true)
	var busy, frames, done int
	if err := s.pin.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil || frames == 0 || done != frames {
		t.Fatalf("backfill: busy %d, %d of %d frames, %v; want all", busy, done, frames, err)
	}
	s.state.deferSync.Store(false)
	log := filepath.Join(hostDir, hostLogName(path))
	fi0, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	fi1, err := os.Stat(log)
	if err != nil {
		t.Fatalf("the log is gone after Abandon: %v", err)
	}
	if !os.SameFile(fi0, fi1) {
		t.Error("Abandon left another file under the log's name")
	}
	if _, err := os.Lstat(log + hlAbandoning); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after Abandon: %v", log+hlAbandoning, err)
	}
	s = openHL(t, path, hostDir, nil)
	defer s.Close()
	if got := countT(t, s); got != 6 || s.Recovery().HostLog != "replayed" {
		t.Errorf("%d rows, HostLog %q; want 6, replayed", got, s.Recovery().HostLog)
	}
}

// TestHostLog_FlushFails: at HostSync a failed flush of the log fails the
// commit in progress (IsHostLogFlush) and is never retried on that file:
// the log moves to a new file, later commits succeed and are flushed
// there, and a crash afterwards (Abandon) replays every commit that
// returned. When the move fails too (its own flush fails), that commit
// fails and the next one moves. A failed flush of the header fails that
// checkpoint; the next succeeds. Fails before the fix: every commit after
// the first failure failed (the Store was wedged).
func TestHostLog_FlushFails(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	path := filepath.Join(t.TempDir(), "a.db")
	s := openHL(t, path, hostDir, &Options{Durability: HostSync})
	defer testFailHostLogSync(0, 0)
	mustExec(t, s.DB(), "CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half))")
	mustCheckpoint(t, s)
	log := filepath.Join(hostDir, hostLogName(path))
	inode := func() os.FileInfo {
		t.Helper()
		fi, err := os.Stat(log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(log + hlMoving); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", log+hlMoving, err)
		}
		return fi
	}
	ok := 0
	commit := func(n int, wantFail bool) {
		t.Helper()
		err := commitPair(s.DB(), 0, n)
		switch {
		case wantFail && !IsHostLogFlush(err):
			t.Fatalf("commit %d: %v, want a failed flush", n, err)
		case !wantFail && err != nil:
			t.Fatalf("commit %d: %v", n, err)
		case !wantFail:
			ok++
		}
	}
	for n := 1; n <= 3; n++ {
		commit(n, false)
	}
	fi0 := inode()
	testFailHostLogSync(syscall.EIO, 1)
	commit(4, true)
	fi1 := inode()
	if os.SameFile(fi0, fi1) {
		t.Error("the log was not moved to a new file after its flush failed")
	}
	for n := 5; n <= 7; n++ {
		commit(n, false)
	}
	// The move's own flush fails too: no move, that commit fails; the next
	// commit moves and fails; the one after succeeds.
	testFailHostLogSync(syscall.EIO, 2)
	commit(8, true)
	if !os.SameFile(fi1, inode()) {
		t.Error("the log moved though the new file's flush failed")
	}
	commit(9, true)
	if os.SameFile(fi1, inode()) {
		t.Error("the log was not moved on the next flush")
	}
	commit(10, false)
	// The header's flush in a checkpoint.
	commit(11, false)
	testFailHostLogSync(syscall.EIO, 1)
	if err := s.Checkpoint(context.Background()); !errors.Is(err, ErrHostLogFlush) || !errors.Is(err, ErrCheckpoint) || !IsHostLogFlush(err) {
		t.Errorf("Checkpoint with a failed flush: %v, want ErrCheckpoint and ErrHostLogFlush", err)
	}
	commit(12, false)
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	s = openHL(t, path, hostDir, &Options{Durability: HostSync})
	if got := countT(t, s); got != 2*ok {
		t.Errorf("%d rows after the crash, want %d (every commit that returned nil, none that failed)", got, 2*ok)
	}
	mustCheckpoint(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if logs, _ := filepath.Glob(filepath.Join(hostDir, "*")); len(logs) != 0 {
		t.Errorf("left after Close: %v", logs)
	}
}

// TestHostLog_UnsureThenFailed: a checkpoint whose rename happened but
// whose directory fsync failed (ErrUnsure: the drive holds generation
// G+1), then a checkpoint that settles it and fails before its own Ready
// (no room for its copy), then a crash (Abandon): the drive is at G+1,
// which the log's header names (the failed commit rebases on the
// generation the main file knows durable; the unsure Ready is kept as
// earlier), so the next Open replays every commit. Fails without the
// fix: kept aside (the header still named G and no Ready).
func TestHostLog_UnsureThenFailed(t *testing.T) {
	fsys := faultinject.New(faultinject.Options{})
	dir := vol("/vol/unsure")
	if err := fsys.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	fsys.WriteFile(path.Join(dir, caseMarker), nil, 0o644)
	hostDir := filepath.Join(t.TempDir(), "h")
	o := &Options{FS: fsys, ManualCheckpoint: true, HostDir: hostDir}
	s, err := Open(fiDB(fsys), o)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(g INTEGER, n INTEGER, half INTEGER, pad BLOB, PRIMARY KEY(g, n, half))")
	mustCheckpoint(t, s)
	for n := 1; n <= 5; n++ {
		if err := commitPair(s.DB(), 0, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpSyncDir)); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(context.Background()); !errors.Is(err, ErrUnsure) {
		t.Fatalf("checkpoint with a failing directory fsync: %v, want ErrUnsure", err)
	}
	for n := 6; n <= 10; n++ {
		if err := commitPair(s.DB(), 0, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Inject(faultinject.Fail(syscall.ENOSPC).On(faultinject.OpCreate)); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(context.Background()); err == nil {
		t.Fatal("a checkpoint whose copy cannot be created succeeded")
	}
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(fiDB(fsys), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rep := s.Recovery(); rep.HostLog != "replayed" {
		t.Fatalf("Recovery().HostLog = %q (%v), want replayed", rep.HostLog, rep.HostLogErr)
	}
	if got := countT(t, s); got != 20 {
		t.Errorf("%d rows, want 20", got)
	}
}
