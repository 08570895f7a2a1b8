//go:build linux

package store

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

var hostLogBig = flag.Int("hostlog.bigmib", 256, "TestHostLog_BigTransaction: MiB in the one transaction (issue 13 asks 1024)")

// vmRSS is this process's resident memory, from /proc/self/status.
func vmRSS(t *testing.T) int64 { return procStatus(t, "VmRSS:") }

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("SKIP: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Skip("SKIP: no VmRSS")
	return 0
}

// TestHostLog_BigTransaction: with the host log the default WAL cap comes
// from the host disk's free space, so one transaction four times the old
// 64 MiB cap (1 GiB with -hostlog.bigmib=1024) commits through the store
// with default options; the process's resident memory grows by far less
// than the transaction; after the checkpoint the stock sqlite3 CLI reads
// every row back.
func TestHostLog_BigTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	const rowBytes = 4000
	mib := int64(*hostLogBig)
	rows := mib << 20 / rowBytes
	path := filepath.Join(t.TempDir(), "big.db")
	hostDir := filepath.Join(t.TempDir(), "h")
	s := openHL(t, path, hostDir, nil)
	defer s.Close()
	if s.opts.MaxWALBytes <= DefaultMaxWALBytes {
		t.Fatalf("MaxWALBytes %d: not raised from the host disk's free space", s.opts.MaxWALBytes)
	}
	mustExec(t, s.DB(), "CREATE TABLE big(i INTEGER PRIMARY KEY, v BLOB)")
	before := vmRSS(t)
	_, err := s.DB().Exec(fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO big SELECT i, randomblob(%d) FROM c", rows, rowBytes))
	if err != nil {
		t.Fatalf("a %d MiB transaction: %v (IsWALFull %v)", mib, err, IsWALFull(err))
	}
	after := vmRSS(t)
	wal := s.Stats().WALBytes
	t.Logf("%d MiB transaction: WAL %d MiB; RSS %d MiB before, %d MiB after the commit", mib, wal>>20, before>>20, after>>20)
	if grew := after - before; grew > wal/2 {
		t.Errorf("RSS grew by %d MiB for a %d MiB WAL: the log's pages stay resident", grew>>20, wal>>20)
	}
	// The checkpoint's peak: VmHWM from here (writing 5 to clear_refs
	// resets it). SQLite reads the frames past the retained chunks with
	// pread (shim_wal.c), and the overlay spills past its limit beside
	// the host log (checkpoint/spill.go): what the checkpoint adds is
	// bounded by that limit and a margin for Go's heap and SQLite's page
	// cache, whatever the transaction's size.
	// Garbage of the commit (and of earlier tests in this process) out of
	// the way first, so that the peak is the checkpoint's own.
	runtime.GC()
	debug.FreeOSMemory()
	after = vmRSS(t)
	resetErr := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	peak := procStatus(t, "VmHWM:")
	st := s.state.main.(checkpointer).Stats()
	t.Logf("checkpoint: RSS %d MiB before it (after a GC), peak %d MiB, %d MiB after; %d MiB written to the drive", after>>20, peak>>20, vmRSS(t)>>20, st.LastWritten>>20)
	if resetErr != nil {
		t.Logf("SKIP the checkpoint's peak: cannot reset it: %v", resetErr)
	} else {
		// The overlay's 64 MiB in memory and 64 MiB for Go's heap and
		// SQLite's page cache. Under -race three times that: its shadow
		// memory follows the heap (measured: a checkpoint that grows RSS
		// by about 75 MiB grows it by about 210 MiB under -race).
		// Without the bound's two fixes it grows by the transaction's
		// size at least twice (819 MiB at 256 MiB under -race).
		extra := checkpoint.DefaultSpillAbove + int64(64<<20)
		if raceOn {
			extra *= 3
		}
		if peak > after+extra {
			t.Errorf("the checkpoint of a %d MiB WAL peaked at %d MiB RSS: more than the %d MiB before it + %d MiB", wal>>20, peak>>20, after>>20, extra>>20)
		}
	}
	out, err := exec.Command("sqlite3", "file:"+path+"?immutable=1", "SELECT count(*), sum(length(v)) FROM big").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("%d|%d", rows, rows*rowBytes); got != want {
		t.Errorf("stock sqlite3 reads %q, want %q", got, want)
	}
}

// TestHostLog_LongReader: a read transaction held open keeps SQLite from
// rewinding the WAL. In memory the WAL then hits its 64 MiB cap and
// commits fail (TestStore_LongReader); with the host log at default
// options it grows on the host disk, as stock SQLite's does, and no
// commit fails.
func TestHostLog_LongReader(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(path, &Options{HostDir: filepath.Join(t.TempDir(), "h")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, db, "INSERT INTO t VALUES(1, randomblob(4000))")
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	const txs = 400 // of 256 KiB: 100 MiB, past the in-memory cap
	for i := 0; i < txs; i++ {
		if _, err := db.Exec("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 63) INSERT INTO t(v) SELECT randomblob(4000) FROM n"); err != nil {
			t.Fatalf("transaction %d of %d beside a long reader: %v (IsWALFull %v)", i+1, txs, err, IsWALFull(err))
		}
	}
	if w := s.Stats().WALBytes; w <= DefaultMaxWALBytes {
		t.Errorf("WAL %d MiB: the reader should have kept it from rewinding past %d MiB", w>>20, DefaultMaxWALBytes>>20)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestHostLog_AbandonNothingPending: Abandon of a Store whose commits
// are all on the drive leaves no host log behind.
func TestHostLog_AbandonNothingPending(t *testing.T) {
	hostDir := filepath.Join(t.TempDir(), "h")
	s := openHL(t, filepath.Join(t.TempDir(), "a.db"), hostDir, nil)
	mustExec(t, s.DB(), "CREATE TABLE t(v)")
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	if logs, _ := filepath.Glob(filepath.Join(hostDir, "*")); len(logs) != 0 {
		t.Errorf("left after Abandon with nothing pending: %v", logs)
	}
}

// TestHostLog_AbandonFailingDrive: a drive that refuses the checkpoint
// (full), then Abandon: the commits since the last checkpoint stay in the
// host log, and the next Open, once the drive has room, replays them.
func TestHostLog_AbandonFailingDrive(t *testing.T) {
	fsys := faultinject.New(faultinject.Options{Capacity: 1 << 20})
	dir := vol("/vol/full")
	if err := fsys.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	fsys.WriteFile(path.Join(dir, caseMarker), nil, 0o644)
	hostDir := filepath.Join(t.TempDir(), "h")
	s, err := Open(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true, HostDir: hostDir})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200) SELECT i FROM c)")
	mustCheckpoint(t, s)
	free, err := fsys.FreeSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	filler := path.Join(dir, "filler")
	if err := fsys.WriteFile(filler, make([]byte, free-64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100) SELECT i FROM c)")
	if err := s.Checkpoint(context.Background()); err == nil {
		t.Fatal("a checkpoint on a full drive succeeded")
	}
	if err := s.Abandon(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s, err = Open(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true, HostDir: hostDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := countRowsT(t, s); n != 300 || s.Recovery().HostLog != "replayed" {
		t.Errorf("%d rows, host log %q; want 300, replayed", n, s.Recovery().HostLog)
	}
}

func countRowsT(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
