package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

const childEnv = "EJECTSAFE_STORE_TEST_CHILD"

// ChildCommands are hidden subcommands of this test binary, run by
// TestMain in place of the tests: the external test package adds
// bench.ChildCommand (package bench re-executes the binary to measure
// memory; this package cannot import bench, which imports it).
var ChildCommands = map[string]func(args []string, stdout io.Writer) int{}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && ChildCommands[os.Args[1]] != nil {
		os.Exit(ChildCommands[os.Args[1]](os.Args[2:], os.Stdout))
	}
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(childOpen(path))
	}
	if path := os.Getenv(killChildEnv); path != "" {
		os.Exit(killChild(path))
	}
	if path := os.Getenv(replugChildEnv); path != "" {
		os.Exit(replugChild(path))
	}
	if path := os.Getenv(sharedOpenEnv); path != "" {
		os.Exit(sharedOpen(path))
	}
	if path := os.Getenv(hostLogChildEnv); path != "" {
		os.Exit(hostLogChild(path))
	}
	// Host logs of the tests' stores (and their children's) in a
	// directory of this run, not the user's cache.
	if os.Getenv(HostDirEnv) == "" {
		if dir, err := os.MkdirTemp("", "ejectsafe-hostlogs-"); err == nil {
			os.Setenv(HostDirEnv, dir)
			code := m.Run()
			os.RemoveAll(dir)
			os.Exit(code)
		}
	}
	os.Exit(m.Run())
}

// childOpen is the second process of TestOpen_secondProcess.
func childOpen(path string) int {
	s, err := Open(path, nil)
	if err == nil {
		s.Close()
		fmt.Println("opened")
		return 1
	}
	fmt.Println(err)
	if !errors.Is(err, ErrLocked) {
		return 2
	}
	return 0
}

// TestStore_ConcurrentReadersAndWriter runs readers, a writer and
// automatic checkpoints together, in each checkpoint mode. No -shm ever
// appears on the drive; in copy mode no -wal either, and in place the
// redo log (-wal) is gone once the Store is closed (noSidecars).
func TestStore_ConcurrentReadersAndWriter(t *testing.T) {
	for _, mode := range []CheckpointMode{CheckpointCopy, CheckpointInPlace} {
		t.Run(mode.String(), func(t *testing.T) { concurrentReadersAndWriter(t, mode) })
	}
}

func concurrentReadersAndWriter(t *testing.T, mode CheckpointMode) {
	// Automatic checkpoints on short timers, so they interleave with the
	// readers and the writer.
	s, path := openT(t, &Options{CheckpointIdle: 5 * time.Millisecond, CheckpointInterval: 20 * time.Millisecond, CheckpointMode: mode})
	db := s.DB()
	db.SetMaxIdleConns(2) // connections come and go, as in a real pool
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")

	const rows, readers = 2000, 8
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		reads   atomic.Int64
		errs    = make(chan error, readers+2)
		watched atomic.Int64
	)
	// Watch the directory: no -shm may ever appear, nor a -wal in copy
	// mode (in place, the redo log lives for part of each checkpoint).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			names, _ := os.ReadDir(filepath.Dir(path))
			for _, n := range names {
				if (mode == CheckpointCopy && strings.HasSuffix(n.Name(), walSuffix)) || strings.HasSuffix(n.Name(), shmSuffix) {
					errs <- fmt.Errorf("%s appeared on disk", n.Name())
					return
				}
			}
			watched.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for !stop.Load() {
				var n, sum, maxv int64
				if err := db.QueryRow("SELECT count(*), coalesce(sum(v),0), coalesce(max(v),0) FROM t").Scan(&n, &sum, &maxv); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				// Rows 1..n, each v == id: a consistent snapshot has
				// sum n(n+1)/2 and max n; snapshots never go back.
				if sum != n*(n+1)/2 || maxv != n || n < last {
					errs <- fmt.Errorf("reader saw n=%d sum=%d max=%d after n=%d", n, sum, maxv, last)
					return
				}
				last = n
				reads.Add(1)
			}
		}()
	}
	for i := 1; i <= rows; i++ {
		if _, err := db.Exec("INSERT INTO t(id, v) VALUES(?, ?)", i, i); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if i%250 == 0 { // explicit checkpoints too, whatever the timers do
			if err := s.Checkpoint(context.Background()); err != nil {
				t.Fatalf("Checkpoint at row %d: %v", i, err)
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // let readers see the end and a checkpoint run
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != rows {
		t.Fatalf("count = %d, %v; want %d", n, err, rows)
	}
	st := s.Stats()
	t.Logf("%d reads, %d directory scans, %d automatic checkpoints, %d failed (last: %v)", reads.Load(), watched.Load(), st.Checkpoints, st.CheckpointFailures, st.LastCheckpointError)
	t.Logf("last checkpoint took %v", st.LastCheckpointDuration)
	if reads.Load() < readers || watched.Load() == 0 {
		t.Fatalf("readers or watcher did not run: %d reads, %d scans", reads.Load(), watched.Load())
	}
	if st.Checkpoints < rows/250 || st.CheckpointFailures != 0 {
		t.Errorf("Stats = %+v; want at least %d checkpoints, no failure", st, rows/250)
	}
	if inPlace := st.InPlaceCheckpoints > 0; inPlace != (mode == CheckpointInPlace) {
		t.Errorf("%d of %d checkpoints in place in mode %v", st.InPlaceCheckpoints, st.Checkpoints, mode)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	noSidecars(t, path)
	if got := sqlite3CLI(t, path, "SELECT count(*), sum(v) FROM t"); got != fmt.Sprintf("%d|%d", rows, rows*(rows+1)/2) {
		t.Errorf("sqlite3 CLI read %q", got)
	}
}

func TestStore_MainFileUnchangedUntilCheckpoint(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	mustCheckpoint(t, s)
	before, fi0 := fileSum(t, path), stat(t, path)
	// Invariant quiet-between-checkpoints: between checkpoints no byte of the
	// database, its directory entry or the journal changes: so nothing in
	// the directory (journal, lease and lock included) and no entry of it.
	dir := filepath.Dir(path)
	dir0, dirFI0 := dirState(t, dir), stat(t, dir)

	const commits = 5000
	for i := 1; i <= commits; i++ {
		mustExec(t, db, "INSERT INTO t(v) VALUES(?)", fmt.Sprintf("row %d", i))
	}
	if got := fileSum(t, path); got != before {
		t.Fatalf("database file changed during %d commits without a checkpoint", commits)
	}
	if got := dirState(t, dir); got != dir0 {
		t.Fatalf("the directory's files changed during commits:\nbefore %s\nafter  %s", dir0, got)
	}
	if fi := stat(t, dir); fi.ModTime() != dirFI0.ModTime() {
		t.Fatalf("the directory's entries changed during commits (mtime %v -> %v)", dirFI0.ModTime(), fi.ModTime())
	}
	if fi := stat(t, path); fi.ModTime() != fi0.ModTime() || fi.Size() != fi0.Size() {
		t.Fatalf("database file metadata changed: %v %d -> %v %d", fi0.ModTime(), fi0.Size(), fi.ModTime(), fi.Size())
	}
	noSidecars(t, path)
	if st := s.Stats(); st.WALBytes == 0 || st.DirtyBytes == 0 {
		t.Fatalf("Stats after %d commits: %+v; want WAL and dirty bytes", commits, st)
	}
	mustCheckpoint(t, s)
	if got := fileSum(t, path); got == before {
		t.Fatalf("database file unchanged after Checkpoint")
	}
	if d := s.Stats().DirtyBytes; d != 0 {
		t.Errorf("DirtyBytes = %d after Checkpoint, want 0", d)
	}
	// The stock sqlite3 reads every committed row from the file alone,
	// while the store is still open.
	if got, want := sqlite3CLI(t, path, "SELECT count(*), max(v) FROM t"), fmt.Sprintf("%d|row 999", commits); got != want {
		t.Errorf("sqlite3 CLI: got %q, want %q", got, want)
	}
	if got := sqlite3CLI(t, path, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check: %q", got)
	}
	noSidecars(t, path)
}

func stat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestStore_HookOrder(t *testing.T) {
	rec := &recorder{}
	s, _ := openTWith(t, &Options{ManualCheckpoint: true}, withRecorder(rec))
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	mustCheckpoint(t, s)
	rec.take()

	for i := 0; i < 2000; i++ { // enough pages that the file must grow
		mustExec(t, db, "INSERT INTO t VALUES(randomblob(300))")
	}
	if ops := rec.take(); len(ops) != 0 {
		t.Fatalf("commits reached the main file: %v", ops)
	}
	mustCheckpoint(t, s)
	ops := rec.take()
	// SQLite's documented order: CKPT_START, SIZE_HINT, pages, CKPT_DONE,
	// truncate, sync.
	got := compact(ops)
	if want := "start hint write* done truncate sync"; got != want {
		t.Fatalf("hook order:\n got %s\nwant %s\nraw %v", got, want, ops)
	}
}

// compact folds runs of "write" into "write*".
func compact(ops []string) string {
	var out []string
	for i, op := range ops {
		if op == "write" && i > 0 && ops[i-1] == "write" {
			continue
		}
		if op == "write" {
			op = "write*"
		}
		out = append(out, op)
	}
	return strings.Join(out, " ")
}

// TestStore_CheckpointDurableUnderWrites checkpoints while a writer
// commits steadily. SQLite then often backfills without issuing xSync (the
// WAL grew past the frame it backfilled to); Checkpoint must still leave
// no unsynced write to the database file when it returns nil.
func TestStore_CheckpointDurableUnderWrites(t *testing.T) {
	rec := &recorder{}
	s, _ := openTWith(t, &Options{ManualCheckpoint: true}, withRecorder(rec))
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		var err error
		for !stop.Load() && err == nil {
			_, err = db.Exec("INSERT INTO t VALUES(randomblob(200))")
		}
		done <- err
	}()
	for i := 0; i < 200; i++ {
		mustCheckpoint(t, s)
		if n := rec.unsyncedWrites(); n != 0 {
			stop.Store(true)
			t.Fatalf("checkpoint %d returned with %d unsynced writes to the database file", i, n)
		}
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStore_ManualCheckpointHoldsWriters: with ManualCheckpoint, a writer
// that never pauses waits at the gate while a Checkpoint runs, instead of
// filling the WAL while the checkpoint copies and failing (under a 2 MiB
// cap it fills in a few milliseconds, less than a checkpoint takes).
// Between the application's checkpoints nothing holds it back: a commit
// that began before the checkpoint armed the mark, or after it disarmed it
// on its way out, may find the WAL full (the test goroutine descheduled
// for a few milliseconds is enough), and without any checkpoint the WAL
// runs into the cap and commits get IsWALFull at once.
func TestStore_ManualCheckpointHoldsWriters(t *testing.T) {
	const capBytes = 2 << 20
	s, path := openT(t, &Options{ManualCheckpoint: true, MaxWALBytes: capBytes})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	var seq atomic.Int64 // odd while the test is inside Checkpoint
	var stopW atomic.Bool
	var inside, outside, fullOutside atomic.Int64
	done := make(chan error, 1)
	go func() {
		for !stopW.Load() {
			// The mark as the shim holds it, not the Store's decision to
			// arm it: between the two a commit passes an open gate.
			s1, armed := seq.Load(), gateMark(s.path) > 0
			_, err := db.Exec("INSERT INTO t VALUES(randomblob(200))")
			// Began inside a Checkpoint with the mark armed, and ended
			// inside the same Checkpoint call.
			within := armed && s1%2 == 1 && seq.Load() == s1
			switch {
			case err == nil && within:
				inside.Add(1)
			case err == nil:
				outside.Add(1)
			case IsWALFull(err) && !within:
				fullOutside.Add(1)
			default:
				done <- fmt.Errorf("a commit inside Checkpoint failed: %w (IsWALFull %v)", err, IsWALFull(err))
				return
			}
		}
		done <- nil
	}()
	for inside.Load()+outside.Load() < 100 { // the writer runs
		time.Sleep(time.Millisecond)
	}
	// Inside each checkpoint, before its rewind and its copy (the long
	// part), the mark is armed: unless a rewind that could not get in
	// disarmed it, which this test does not provoke.
	var unarmed atomic.Int64
	testHookBeforeRewind = func(context.Context) {
		if gateMark(s.path) <= 0 && s.rewindMissed.IsZero() { // the hook runs under s.mu
			unarmed.Add(1)
		}
	}
	defer func() { testHookBeforeRewind = nil }()
	stop := make(chan struct{})
	peak := walWatch(path, stop)
	// At least 50 checkpoints, and on until the writer has waited at the
	// gate and committed inside them (a checkpoint with nothing to do
	// takes microseconds).
	i := 0
	for ; i < 5000 && (i < 50 || inside.Load() < 1000 || s.Stats().LongestGateWait == 0); i++ {
		seq.Add(1)
		err := s.Checkpoint(context.Background())
		seq.Add(1)
		if err != nil {
			stopW.Store(true)
			<-done
			t.Fatalf("checkpoint %d: %v", i, err)
		}
	}
	stopW.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(stop)
	maxWAL := <-peak
	st := s.Stats()
	t.Logf("%d commits inside %d checkpoints, %d outside (%d of those WAL full); WAL peak %d (cap %d); %d rewinds; longest wait at the gate %v",
		inside.Load(), i, outside.Load(), fullOutside.Load(), maxWAL, capBytes, st.Rewinds, st.LongestGateWait)
	if maxWAL > capBytes {
		t.Fatalf("WAL reached %d bytes; cap %d", maxWAL, capBytes)
	}
	if n := unarmed.Load(); n > 0 {
		t.Fatalf("%d checkpoints reached their rewind with the high-water mark off", n)
	}
	if inside.Load() < 1000 || st.Rewinds == 0 || st.LongestGateWait == 0 {
		t.Fatalf("%d commits inside checkpoints, %d rewinds, longest wait %v: the test did not exercise the gate", inside.Load(), st.Rewinds, st.LongestGateWait)
	}
	// No checkpoint: nothing holds the writer back, and the WAL fills.
	var err error
	n := 0
	for ; n < 10*capBytes/4096 && err == nil; n++ {
		_, err = db.Exec("INSERT INTO t VALUES(randomblob(200))")
	}
	if !IsWALFull(err) {
		t.Fatalf("after %d commits with no checkpoint: err = %v; want IsWALFull", n, err)
	}
}

func TestStore_CheckpointFailureKeepsWAL(t *testing.T) {
	rec := &recorder{}
	s, path := openTWith(t, &Options{ManualCheckpoint: true}, withRecorder(rec))
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	mustCheckpoint(t, s)
	for i := 0; i < 100; i++ {
		mustExec(t, db, "INSERT INTO t VALUES(?)", i)
	}
	rec.setFailSync(&os.PathError{Op: "sync", Path: path, Err: syscall.EIO})

	err := s.Checkpoint(context.Background())
	if !errors.Is(err, ErrCheckpoint) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Checkpoint error = %v; want ErrCheckpoint wrapping EIO", err)
	}
	if err := s.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close error = %v; want EIO", err)
	}
	if st := s.Stats(); st.WALBytes == 0 || st.DirtyBytes == 0 {
		t.Fatalf("WAL dropped after a failed checkpoint: %+v", st)
	}
	// Still serving reads; writes stopped when Close began (the clean
	// cut, issue 17): nothing commits that Close's retry would not cover.
	if _, err := db.Exec("INSERT INTO t VALUES(100)"); err == nil {
		t.Fatal("an insert after a failed Close succeeded")
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 100 {
		t.Fatalf("count = %d, %v; want 100", n, err)
	}
	if st := s.Stats(); st.CheckpointFailures != 2 || st.LastCheckpointError == nil {
		t.Errorf("Stats = %+v; want 2 failures and the last error", st)
	}
	// The fault clears: Close makes everything durable.
	rec.setFailSync(nil)
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the fault cleared: %v", err)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != "100" {
		t.Fatalf("sqlite3 CLI count = %s; want 100", got)
	}
	if err := s.Checkpoint(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close = %v; want ErrClosed", err)
	}
}

func TestStore_WALCap(t *testing.T) {
	const capBytes = 512 << 10
	s, _ := openT(t, &Options{ManualCheckpoint: true, MaxWALBytes: capBytes})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	var err error
	i := 0
	for ; i < 1000 && err == nil; i++ {
		_, err = db.Exec("INSERT INTO t VALUES(randomblob(2000))")
	}
	var se sqlite3.Error
	if !errors.As(err, &se) || se.Code != sqlite3.ErrFull {
		t.Fatalf("after %d commits: err = %v; want SQLITE_FULL", i, err)
	}
	if w := s.Stats().WALBytes; w > capBytes {
		t.Fatalf("WALBytes %d above the cap %d", w, capBytes)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != i-1 {
		t.Fatalf("count = %d, %v; want %d (the failed commit changed nothing)", n, err, i-1)
	}
	mustCheckpoint(t, s)
	mustExec(t, db, "INSERT INTO t VALUES(randomblob(2000))")
}

func TestStore_WALMemoryRetained(t *testing.T) {
	const retain = 2 << 20
	s, _ := openT(t, &Options{ManualCheckpoint: true, RetainWALBytes: retain})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	for i := 0; i < 2000; i++ {
		mustExec(t, db, "INSERT INTO t VALUES(randomblob(3000))")
	}
	if a := s.Stats().WALAllocated; a <= retain {
		t.Fatalf("WALAllocated = %d; want above %d before the checkpoint", a, retain)
	}
	mustCheckpoint(t, s)
	// The next writer restarts the WAL and trims it to journal_size_limit.
	mustExec(t, db, "INSERT INTO t VALUES(1)")
	if a := s.Stats().WALAllocated; a != retain {
		t.Fatalf("WALAllocated = %d after checkpoint; want exactly the retained %d", a, retain)
	}
}

// TestStore_LocksReleasedOnClose churns connections and checks that the
// in-process lock table holds exactly the open connections' SHARED locks:
// a connection that closed holding a lock would block the others.
func TestStore_LocksReleasedOnClose(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	mustCheckpoint(t, s) // the pinned connection reads too
	db.SetMaxIdleConns(1)
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		// Hold 8 connections at once, use each, give them back: the pool
		// keeps one and closes seven.
		var conns []*sql.Conn
		for i := 0; i < 8; i++ {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := c.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES(?)", i); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}
	mustCheckpoint(t, s)
	// Every open connection has read the database, so each holds one
	// SHARED lock (SQLite keeps it between transactions in WAL mode).
	open := db.Stats().OpenConnections // the pinned one included
	if closed := db.Stats().MaxIdleClosed; closed == 0 {
		t.Fatalf("no connection was closed; the test did not churn")
	}
	nShared, eLock, nShm, ok := lockState(path)
	if !ok || nShared != open || eLock != 1 || nShm != open {
		t.Fatalf("lock table: %d SHARED, level %d, %d wal-index users (found %v); want %d, 1 (SHARED), %d",
			nShared, eLock, nShm, ok, open, open)
	}
}

func TestOpen_secondProcess(t *testing.T) {
	_, path := openT(t, nil)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	msg := string(out)
	if !strings.Contains(msg, "is locked by") {
		t.Fatalf("child was not refused as locked: %s", msg)
	}
	if runtime.GOOS != "linux" {
		t.Logf("holder not named (only Linux can tell, from /proc/locks): %s", msg)
		return
	}
	if !strings.Contains(msg, "locked by process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("child's error does not name this process (%d): %s", os.Getpid(), msg)
	}
}

func TestOpen_alreadyOpenInProcess(t *testing.T) {
	_, path := openT(t, nil)
	if _, err := Open(path, nil); !errors.Is(err, ErrAlreadyOpen) {
		t.Fatalf("second Open = %v; want ErrAlreadyOpen", err)
	}
}

func TestOpen_badInput(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	writeFile(t, notDB, "hello, not a database", 0o644)
	roFile := filepath.Join(dir, "ro.db")
	writeFile(t, roFile, "", 0o444)
	roDir := filepath.Join(dir, "rodir")
	if err := os.Mkdir(roDir, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"directory", dir, ErrIsDirectory},
		{"not sqlite", notDB, ErrNotDatabase},
		{"read-only file", roFile, ErrReadOnly},
		{"read-only directory", filepath.Join(roDir, "x.db"), ErrReadOnly},
		{"missing parent", filepath.Join(dir, "missing", "x.db"), os.ErrNotExist},
		{"NUL byte", "a\x00b", ErrBadOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "read-only directory" && runtime.GOOS == "windows" {
				t.Skip("SKIP LOUDLY: Windows: a directory's read-only attribute does not stop creating files in it (only ACLs do)")
			}
			before := dirState(t, dir)
			s, err := Open(tc.path, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open(%q) = %v; want %v", tc.path, err, tc.want)
			}
			if after := dirState(t, dir); after != before {
				t.Fatalf("Open modified the directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Run("bad options", func(t *testing.T) {
		if _, err := Open(filepath.Join(dir, "x.db"), &Options{MaxWALBytes: -1}); !errors.Is(err, ErrBadOptions) {
			t.Fatalf("err = %v; want ErrBadOptions", err)
		}
	})
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// dirState lists every file below dir with its size, mode and content hash.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d", p, fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			fmt.Fprintf(&b, " %x", fileSum(t, p))
		}
		b.WriteString("; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestStore_otherDatabases: VACUUM INTO targets and ATTACHed databases
// belong to no Store; the shim hands them to SQLite's default VFS.
func TestStore_otherDatabases(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x)")
	mustExec(t, db, "INSERT INTO t VALUES (1), (2)")
	copyPath := filepath.Join(filepath.Dir(path), "copy.db")
	mustExec(t, db, "VACUUM INTO ?", copyPath)
	if got := sqlite3CLI(t, copyPath, "SELECT count(*) FROM t"); got != "2" {
		t.Fatalf("VACUUM INTO copy holds %q rows; want 2", got)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, "ATTACH ? AS other", copyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO other.t VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM other.t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("attached count = %d, %v; want 3", n, err)
	}
}

// TestStore_checkpointUnreadableDB: when SQLite cannot read the database,
// Checkpoint must fail, never report a checkpoint it could not make.
// SQLite answers wal_checkpoint with -1, -1 and no error then; an earlier
// version took that for success (found by the compound crash matrix).
func TestStore_checkpointUnreadableDB(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	// The table is made through a pool connection; the pinned connection,
	// which runs checkpoints, has not read the database yet and must.
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES (1)")
	// The copy is prepared first, so the only reads of the database file
	// left are SQLite's own, and they fail.
	if err := s.state.main.(interface{ Prepare() error }).Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpReadAt).Matching(fiDB(fsys)).Always()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Checkpoint(context.Background()); !errors.Is(err, ErrCheckpoint) {
			t.Fatalf("Checkpoint %d with the database unreadable = %v; want ErrCheckpoint", i, err)
		}
	}
	if st := s.Stats(); st.Checkpoints != 0 || st.CheckpointFailures != 3 {
		t.Fatalf("Stats = %+v; want no checkpoint, 3 failures", st)
	}
	// The fault clears: everything becomes durable.
	fsys.ClearRules()
	mustCheckpoint(t, s)
	img := fsys.CrashImage(faultinject.DropAll, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := imageRows(t, img); n != 1 {
		t.Fatalf("after the fault cleared and a pull: %d rows; want 1", n)
	}
}

// TestStore_inPlaceOtherPageSize: a database whose page size is not 4096
// checkpoints in place too (the overlay's blocks are its pages, so the
// redo log is in the page size SQLite reads it in), both when Open
// creates it with Options.PageSize and when an existing database names
// its page size in its header; the stock CLI reads every row afterwards.
func TestStore_inPlaceOtherPageSize(t *testing.T) {
	for _, ps := range []int{1024, 8192, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.db")
			rows := 0
			for round := 0; round < 2; round++ {
				opts := &Options{ManualCheckpoint: true, CheckpointMode: CheckpointInPlace}
				if round == 0 {
					opts.PageSize = ps // created with it; the second Open reads the header
				}
				s, err := Open(path, opts)
				if err != nil {
					t.Fatal(err)
				}
				db := s.DB()
				mustExec(t, db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
				mustCheckpoint(t, s) // the first checkpoint of a new file copies (nothing to write into)
				for i := 0; i < 3; i++ {
					for j := 0; j < 50; j++ {
						rows++
						mustExec(t, db, "INSERT INTO t(id, v) VALUES(?, randomblob(200))", rows)
					}
					mustExec(t, db, "UPDATE t SET v = randomblob(200) WHERE id % 7 = ?", i)
					before := s.Stats().InPlaceCheckpoints
					mustCheckpoint(t, s)
					if st := s.Stats(); st.InPlaceCheckpoints != before+1 || st.LastCheckpointMode != CheckpointInPlace {
						t.Fatalf("round %d, checkpoint %d: %d in place (was %d), last %v; want one more, in place", round, i, st.InPlaceCheckpoints, before, st.LastCheckpointMode)
					}
				}
				var got int
				if err := db.QueryRow("PRAGMA page_size").Scan(&got); err != nil || got != ps {
					t.Fatalf("page_size = %d, %v; want %d", got, err, ps)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if got := sqlite3CLI(t, path, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != fmt.Sprintf("%d\nok", rows) {
				t.Errorf("sqlite3 CLI read %q, want %d rows and ok", got, rows)
			}
		})
	}
}

// TestStore_retiredLogAfterPull: an in-place checkpoint leaves its redo
// log retired beside the database (a header of zeros, kept for the next
// log); a process that ends without Close (a crash, a pull) leaves it
// there. Every reader takes it for no log: the stock shell, a read-only
// Open, InspectStock (verify), a writable Open that replays the host log
// beside it, whose next in-place checkpoint writes into it; the Close
// after that removes it.
func TestStore_retiredLogAfterPull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	opts := &Options{ManualCheckpoint: true, CheckpointMode: CheckpointInPlace, HostDir: filepath.Join(t.TempDir(), "h")}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	mustExec(t, db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400) INSERT INTO t SELECT i, randomblob(500) FROM n")
	mustCheckpoint(t, s)
	mustExec(t, db, "UPDATE t SET v = randomblob(500) WHERE id = 7")
	mustCheckpoint(t, s)
	if st := s.Stats(); st.InPlaceCheckpoints == 0 {
		t.Fatalf("no checkpoint in place: %+v", st)
	}
	want := sqlite3CLI(t, path, "SELECT count(*), sum(length(v)) FROM t")
	// Committed, not checkpointed: in the host log only (where there is
	// one: elsewhere the default level is Checkpoint, and the commit is
	// lost with the process, as documented).
	mustExec(t, db, "UPDATE t SET v = zeroblob(123) WHERE id = 8")
	replayed := want
	if hlSupported() {
		if err := db.QueryRow("SELECT count(*) || '|' || sum(length(v)) FROM t").Scan(&replayed); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Logf("LOUD: no host log on %s: the commit after the checkpoint is not replayed", runtime.GOOS)
	}
	if err := s.Abandon(); err != nil { // the process ends without Close
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + walSuffix)
	if err != nil || len(b) < 32 || !sqlitewal.RetiredHeader(b) {
		t.Fatalf("after an in-place checkpoint the -wal is %d bytes (%v), want a retired log", len(b), err)
	}

	if bin, _, err := stocktest.Lookup(); err == nil {
		cp := filepath.Join(t.TempDir(), "test.db")
		for _, suf := range []string{"", walSuffix} {
			data, err := os.ReadFile(path + suf)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cp+suf, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(bin, cp, "PRAGMA integrity_check; SELECT count(*), sum(length(v)) FROM t").CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "ok\n"+want {
			t.Fatalf("stock shell beside the retired log: %q, %v; want ok and %s", got, err, want)
		}
	}
	if found, err := InspectStock(path); err != nil || len(found) != 0 {
		t.Errorf("InspectStock beside a retired log: %v, %v; want nothing", found, err)
	}
	ro, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open beside a retired log: %v", err)
	}
	var got string
	if err := ro.DB().QueryRow("SELECT count(*) || '|' || sum(length(v)) FROM t").Scan(&got); err != nil || got != want {
		t.Errorf("read-only Open reads %q, %v; want %s", got, err, want)
	}
	ro.Close()

	s, err = Open(path, opts)
	if err != nil {
		t.Fatalf("Open beside a retired log: %v", err)
	}
	if err := s.DB().QueryRow("SELECT count(*) || '|' || sum(length(v)) FROM t").Scan(&got); err != nil || got != replayed {
		t.Errorf("Open reads %q, %v; want the host log replayed: %s", got, err, replayed)
	}
	mustExec(t, s.DB(), "UPDATE t SET v = randomblob(500) WHERE id = 9")
	mustCheckpoint(t, s)
	if st := s.Stats(); st.InPlaceCheckpoints == 0 || st.CheckpointFailures != 0 {
		t.Fatalf("the checkpoint beside the retired log: %+v; want in place", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	noSidecars(t, path)
}
