package store

import (
	"context"
	"flag"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/probe"
)

var busyDur = flag.Duration("busy.dur", 8*time.Second, "how long TestStore_BusyWriters writes back to back (the issue's acceptance run: 60s)")

// walWatch samples the in-memory WAL every 200 µs until stop is closed and
// returns the largest size seen.
func walWatch(path string, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if w, ok := walStats(path); ok {
				peak = max(peak, int64(w.size))
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// TestStore_BusyWriters is the acceptance test: write transactions
// of 1-8 MiB back to back, no pause, under the default options: no commit
// fails, the WAL never passes its cap, and the longest commit stall is
// reported. The rows are replaced within a bounded key range, so the
// database stays about 40 MiB and each checkpoint copies that much.
// -busy.dur sets the duration (default 8 s; the acceptance run is 60 s).
func TestStore_BusyWriters(t *testing.T) {
	s, path := openT(t, nil)
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	const rowBytes = 4000 // one row a page: about 4 KiB of WAL a row
	const keys = 10000

	stop := make(chan struct{})
	peak := walWatch(path, stop)
	rng := rand.New(rand.NewPCG(1, 2))
	var txs, errs int
	var bytes int64
	var worst, total time.Duration
	var firstErr error
	end := time.Now().Add(*busyDur)
	for time.Now().Before(end) {
		rows := (1 + rng.IntN(8)) << 20 / rowBytes // 1-8 MiB
		first := rng.IntN(keys)
		t0 := time.Now()
		_, err := db.Exec(`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i+1 < ?)
			REPLACE INTO t(id, v) SELECT (? + i) % ?, randomblob(?) FROM n`, rows, first, keys, rowBytes)
		d := time.Since(t0)
		total += d
		worst = max(worst, d)
		txs++
		bytes += int64(rows) * rowBytes
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	close(stop)
	maxWAL := <-peak
	st := s.Stats()
	t.Logf("%v of back-to-back transactions: %d transactions (%.0f MiB of rows), %d errors; WAL peak %.1f MiB (cap %d MiB); longest commit %v, mean %v; %d checkpoints, %d rewinds, %d missed, longest gate hold %v, longest wait at the gate %v",
		*busyDur, txs, float64(bytes)/(1<<20), errs, float64(maxWAL)/(1<<20), DefaultMaxWALBytes>>20,
		worst.Round(time.Microsecond), (total / time.Duration(max(txs, 1))).Round(time.Microsecond),
		st.Checkpoints, st.Rewinds, st.RewindsMissed, st.LongestGateHold.Round(time.Microsecond), st.LongestGateWait)
	if errs > 0 {
		t.Fatalf("%d of %d transactions failed; first: %v (IsWALFull %v)", errs, txs, firstErr, IsWALFull(firstErr))
	}
	if maxWAL > DefaultMaxWALBytes {
		t.Fatalf("WAL reached %d bytes; cap %d", maxWAL, DefaultMaxWALBytes)
	}
	if st.Rewinds == 0 {
		t.Fatalf("no rewind in %v of writes: the test did not exercise the gate", *busyDur)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestStore_WALFullTyped: a single transaction larger than the cap fails,
// IsWALFull recognizes it, it changes nothing, and the next one commits.
func TestStore_WALFullTyped(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(map[bool]string{true: "manual", false: "auto"}[manual], func(t *testing.T) {
			s, _ := openT(t, &Options{ManualCheckpoint: manual, MaxWALBytes: 2 << 20})
			db := s.DB()
			mustExec(t, db, "CREATE TABLE t(x)")
			_, err := db.Exec("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 1000) INSERT INTO t SELECT randomblob(4000) FROM n")
			if !IsWALFull(err) {
				t.Fatalf("a 4 MiB transaction under a 2 MiB cap: err = %v; want IsWALFull", err)
			}
			var n int
			if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
				t.Fatalf("count = %d, %v; want 0: the failed transaction changed nothing", n, err)
			}
			mustExec(t, db, "INSERT INTO t VALUES(randomblob(4000))")
		})
	}
	if IsWALFull(nil) {
		t.Fatal("IsWALFull(nil) = true")
	}
}

// TestStore_LongReader says what a read transaction held open beside a
// writer does. SQLite cannot restart the WAL under a reader's snapshot:
// the rewinds miss, the Store stops holding writers back at the high-water
// mark, the WAL grows, and at the cap commits fail with IsWALFull and
// change nothing. Once the reader ends, the next checkpoint rewinds and
// writes succeed again.
func TestStore_LongReader(t *testing.T) {
	const capBytes = 8 << 20
	s, path := openT(t, &Options{MaxWALBytes: capBytes})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, db, "INSERT INTO t VALUES(1, randomblob(4000))")

	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	peak := walWatch(path, stop)
	var full, other atomic.Int64
	var otherErr atomic.Value
	var worst time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 400 && full.Load() < 5; i++ { // up to 400 transactions of 256 KiB, past the cap
			t0 := time.Now()
			_, err := db.Exec("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 63) INSERT INTO t(v) SELECT randomblob(4000) FROM n")
			worst = max(worst, time.Since(t0))
			switch {
			case err == nil:
			case IsWALFull(err):
				full.Add(1)
			default:
				other.Add(1)
				otherErr.Store(err)
			}
		}
	}()
	wg.Wait()
	close(stop)
	maxWAL := <-peak
	st := s.Stats()
	t.Logf("reader held: %d commits failed WAL full, WAL peak %.1f MiB (cap %d MiB), longest commit %v, %d rewinds missed",
		full.Load(), float64(maxWAL)/(1<<20), capBytes>>20, worst.Round(time.Microsecond), st.RewindsMissed)
	if other.Load() > 0 {
		t.Fatalf("%d commits failed otherwise: %v", other.Load(), otherErr.Load())
	}
	if full.Load() == 0 {
		t.Fatalf("no commit failed with the WAL full beside a reader held open; WAL peak %d", maxWAL)
	}
	if err := tx.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the reader's snapshot: count = %d, %v; want 1", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// The reader is gone: a checkpoint rewinds, and writes succeed again.
	mustCheckpoint(t, s)
	if w := s.Stats().WALBytes; w > capBytes/4 {
		t.Fatalf("WAL %d bytes after the reader ended and a checkpoint; want it rewound", w)
	}
	for i := 0; i < 100; i++ {
		mustExec(t, db, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 63) INSERT INTO t(v) SELECT randomblob(4000) FROM n")
	}
}

// TestReadBackFor: checkpoints read their copies back through FUSE
// drivers and on filesystems not known, never on kernel filesystems,
// where the read comes from the page cache.
func TestReadBackFor(t *testing.T) {
	for c, want := range map[probe.Class]checkpoint.ReadBack{
		probe.Local:   checkpoint.ReadBackNever,
		probe.Overlay: checkpoint.ReadBackNever,
		probe.Memory:  checkpoint.ReadBackNever,
		probe.FUSE:    checkpoint.ReadBackAlways,
		probe.Network: checkpoint.ReadBackAlways,
		probe.Unknown: checkpoint.ReadBackAlways,
	} {
		if got := readBackFor(c); got != want {
			t.Errorf("readBackFor(%v) = %v; want %v", c, got, want)
		}
	}
}

// TestPatchAfterCopyFor: a copy is patched after a kernel copy only on
// kernel filesystems; never through FUSE, also where the type's name
// puts a FUSE driver in a kernel class (fuse-overlayfs).
func TestPatchAfterCopyFor(t *testing.T) {
	for _, c := range []struct {
		class  probe.Class
		fstype string
		want   bool
	}{
		{probe.Local, "ext4", true},
		{probe.Local, "vfat", true},
		{probe.Memory, "tmpfs", true},
		{probe.Overlay, "overlay", true},
		{probe.Overlay, "fuse.fuse-overlayfs", false},
		{probe.FUSE, "fuseblk", false},
		{probe.FUSE, "fuse.fusefat", false},
		{probe.Network, "nfs4", false},
		{probe.Unknown, "zfs", false},
	} {
		if got := patchAfterCopyFor(c.class, c.fstype); got != c.want {
			t.Errorf("patchAfterCopyFor(%v, %q) = %v; want %v", c.class, c.fstype, got, c.want)
		}
	}
}

// TestStore_WALMemoryReusedByDefault: under the defaults the WAL's memory
// outlives a checkpoint, so the next cycle writes into pages already
// touched (at the former 8 MiB default, a WAL of 16 MiB between
// checkpoints gave half of its memory back every cycle and faulted it in
// again).
func TestStore_WALMemoryReusedByDefault(t *testing.T) {
	s, _ := openT(t, &Options{ManualCheckpoint: true})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	fill := func() {
		for i := 0; i < 4000; i++ { // about 16 MiB of WAL, as in the rounds
			mustExec(t, db, "INSERT INTO t VALUES(randomblob(100))")
		}
	}
	fill()
	reached := s.Stats().WALAllocated
	if reached < 12<<20 {
		t.Fatalf("WALAllocated %d after 4,000 commits; want the WAL past 12 MiB", reached)
	}
	mustCheckpoint(t, s)
	fill()
	if a := s.Stats().WALAllocated; a != reached {
		t.Fatalf("WALAllocated %d after a checkpoint and the same writes again; want %d kept and reused", a, reached)
	}
	mustCheckpoint(t, s)
	if a := s.Stats().WALAllocated; a < reached {
		t.Fatalf("WALAllocated %d after a checkpoint; want the %d touched kept", a, reached)
	}
}

// TestStore_GateWhileCheckpointsFail: with a drive that refuses every
// commit, the gate stops holding writers back (they would wait for a
// rewind that cannot help), the WAL fills to its cap as before, commits
// then fail with IsWALFull and change nothing, and the MainFile's memory
// holds no more than two WALs' worth. Once the drive works, a checkpoint
// succeeds and writes go on.
func TestStore_GateWhileCheckpointsFail(t *testing.T) {
	const capBytes = 8 << 20
	rec := &recorder{}
	s, path := openTWith(t, &Options{MaxWALBytes: capBytes}, withRecorder(rec))
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	rec.setFailSync(syscall.EIO)
	const tx = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 63) INSERT INTO t SELECT randomblob(4000) FROM n"
	var full int
	var worst time.Duration
	for i := 0; i < 200 && full < 3; i++ {
		t0 := time.Now()
		_, err := db.Exec(tx)
		worst = max(worst, time.Since(t0))
		switch {
		case err == nil:
		case IsWALFull(err):
			full++
		default:
			t.Fatalf("commit %d: %v; want success or IsWALFull", i, err)
		}
	}
	st := s.Stats()
	overlay := rec.mainFile.(*checkpoint.Main).Stats().Overlay
	t.Logf("drive failing: %d commits WAL full, longest commit %v, %d checkpoint failures, MainFile overlay %d bytes; %d rewinds, %d missed, longest gate hold %v",
		full, worst.Round(time.Microsecond), st.CheckpointFailures, overlay, st.Rewinds, st.RewindsMissed, st.LongestGateHold)
	if full == 0 {
		t.Fatal("the WAL never filled while every checkpoint failed")
	}
	if st.CheckpointFailures == 0 {
		t.Fatal("no checkpoint failed: the test did not exercise a failing drive")
	}
	// The first failing checkpoint may have rewound one WAL into the
	// MainFile (its commit failed after the rewind); later ones do not
	// rewind, and their backfill copies at most the WAL again: two WALs.
	if overlay > 2*capBytes {
		t.Fatalf("MainFile holds %d bytes of overlay with every commit failing; want at most two WALs (%d)", overlay, 2*capBytes)
	}
	rec.setFailSync(nil)
	mustCheckpoint(t, s)
	if w, _ := walStats(path); int64(w.size) > capBytes/4 {
		t.Fatalf("WAL %d bytes after a successful checkpoint; want it rewound", int64(w.size))
	}
	mustExec(t, db, tx)
}
