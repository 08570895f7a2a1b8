package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// TestClose_cleanCut (issue 17, finding 3): goroutines insert while Close
// runs. Every insert acknowledged must be on the drive after Close
// returned nil (read by the stock sqlite3 alone); no insert may succeed
// once Close has returned; a Close that fails leaves a Store that can be
// closed again.
func TestClose_cleanCut(t *testing.T) {
	for round := 0; round < 5; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) { closeCutRound(t) })
	}
}

func closeCutRound(t *testing.T) {
	s, path := openT(t, nil)
	db := s.DB()
	db.SetMaxOpenConns(16)
	mustExec(t, db, "CREATE TABLE t(g INTEGER, n INTEGER, PRIMARY KEY (g, n))")

	const workers = 8
	var closed atomic.Bool // Close has returned
	var stop atomic.Bool
	var wg sync.WaitGroup
	acked := make([][]int, workers)
	var late atomic.Int64 // inserts begun after Close returned that succeeded
	var started atomic.Int64
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				after := closed.Load()
				_, err := db.Exec("INSERT INTO t(g, n) VALUES (?, ?)", g, n)
				started.Add(1)
				if err != nil {
					if after {
						time.Sleep(time.Millisecond)
					}
					continue
				}
				acked[g] = append(acked[g], n)
				if after {
					late.Add(1)
				}
			}
		}(g)
	}
	for started.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	var err error
	for try := 0; try < 5; try++ {
		if err = s.Close(); err == nil {
			break
		}
		t.Logf("Close: %v (retrying)", err)
		if !errors.Is(err, ErrWALRetained) && !errors.Is(err, ErrCheckpoint) {
			break
		}
	}
	closed.Store(true)
	time.Sleep(20 * time.Millisecond) // inserts keep trying after Close returned
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := late.Load(); n > 0 {
		t.Errorf("%d inserts begun after Close returned succeeded", n)
	}

	out := sqlite3CLI(t, path, "SELECT g || ' ' || n FROM t")
	onDrive := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		onDrive[l] = true
	}
	total, lost := 0, 0
	for g, ns := range acked {
		for _, n := range ns {
			total++
			if !onDrive[fmt.Sprintf("%d %d", g, n)] {
				lost++
			}
		}
	}
	t.Logf("%d inserts acknowledged, %d on the drive", total, len(onDrive))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged inserts are not on the drive", lost, total)
	}
}

// TestClose_failedThenRetry (issue 17, finding 3): Close fails (the drive
// refuses every fsync) while goroutines insert; the Store stays open and
// takes no more commits; once the drive answers, Close again succeeds,
// and a pull after it shows every acknowledged insert.
func TestClose_failedThenRetry(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(fiDB(fsys), &Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(g INTEGER, n INTEGER, PRIMARY KEY (g, n))")
	mustCheckpoint(t, s)

	const workers = 4
	var failedClose, stop atomic.Bool
	var wg sync.WaitGroup
	acked := make([][]int, workers)
	var late, started atomic.Int64
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				after := failedClose.Load()
				_, err := db.Exec("INSERT INTO t(g, n) VALUES (?, ?)", g, n)
				started.Add(1)
				if err != nil {

					time.Sleep(100 * time.Microsecond)
					continue
				}
				acked[g] = append(acked[g], n)
				if after {
					late.Add(1)
				}
			}
		}(g)
	}
	for started.Load() < 500 {
		time.Sleep(time.Millisecond)
	}
	if err := fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpSync).Always()); err != nil {
		t.Fatal(err)
	}
	err = s.Close()
	failedClose.Store(true)
	if !errors.Is(err, ErrCheckpoint) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close with every fsync failing = %v; want ErrCheckpoint wrapping EIO", err)
	}
	time.Sleep(20 * time.Millisecond) // inserts keep trying after the failed Close
	stop.Store(true)
	wg.Wait()
	if n := late.Load(); n > 0 {
		t.Errorf("%d inserts begun after Close began succeeded", n)
	}
	// Still open: reads are served.
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("a read after the failed Close: %v", err)
	}
	fsys.ClearRules()
	if err := s.Close(); err != nil {
		t.Fatalf("Close again, the drive answering: %v", err)
	}

	img := fsys.CrashImage(faultinject.DropAll, 0)
	if err := crashRecover(img); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(fiDB(img), &Options{FS: img, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Abandon()
	rows, err := s2.DB().Query("SELECT g, n FROM t")
	if err != nil {
		t.Fatal(err)
	}
	onDrive := map[[2]int]bool{}
	for rows.Next() {
		var g, n int
		if err := rows.Scan(&g, &n); err != nil {
			t.Fatal(err)
		}
		onDrive[[2]int{g, n}] = true
	}
	rows.Close()
	total, lost := 0, 0
	for g, ns := range acked {
		for _, n := range ns {
			total++
			if !onDrive[[2]int{g, n}] {
				lost++
			}
		}
	}
	t.Logf("%d inserts acknowledged, %d on the drive after a pull", total, len(onDrive))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged inserts lost", lost, total)
	}
}

// openWithHeldTx opens a Store whose table t holds the committed row 1,
// and begins a write transaction that inserted row 2 and is held open.
func openWithHeldTx(t *testing.T) (*Store, string, *sql.Tx) {
	t.Helper()
	s, path := openT(t, &Options{BusyTimeout: 50 * time.Millisecond})
	mustExec(t, s.DB(), "CREATE TABLE t(n INTEGER)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES (1)")
	tx, err := s.DB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (2)"); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	return s, path, tx
}

// TestClose_openTransaction (review finding 4): Close while a write
// transaction is held open. Everything committed is backfilled, so Close
// succeeds (after waiting out the busy timeout for the transaction) and
// the Store is closed; the open transaction cannot commit. Close used to
// report ErrWALRetained from the size of the WAL the open connection kept
// alive, with the Store already closed, contradicting ErrWALRetained's
// contract (Store still open).
func TestClose_openTransaction(t *testing.T) {
	s, path, tx := openWithHeldTx(t)
	db := s.DB()
	defer tx.Rollback()
	if err := s.Close(); err != nil {
		t.Fatalf("Close with a transaction held open, everything committed backfilled: %v", err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("a transaction committed after Close returned")
	}
	if _, err := db.Exec("INSERT INTO t VALUES (3)"); err == nil {
		t.Fatal("an insert succeeded after Close returned")
	}
	if got := sqlite3CLI(t, path, "SELECT group_concat(n) FROM t"); got != "1" {
		t.Fatalf("on the drive: %q; want the committed row only", got)
	}
	// Closed for good: the next Open of the database in this process
	// works and finds the same.
	s2, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	var got string
	if err := s2.DB().QueryRow("SELECT group_concat(n) FROM t").Scan(&got); err != nil || got != "1" {
		t.Fatalf("after reopening: %q, %v", got, err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestClose_cutSurvivesFailedOpen: an Open of the same path that fails
// (here at the OS lock) must not undo an earlier Close's cut. A
// transaction of the closed Store still in progress must then fail to
// commit, as it does without the failed Open: a commit it let through
// would be acknowledged into a WAL no Store checkpoints.
func TestClose_cutSurvivesFailedOpen(t *testing.T) {
	s, path, tx := openWithHeldTx(t)
	defer tx.Rollback()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lk, err := device.OS.Lock(path + lockSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(path, nil); err == nil {
		s2.Close()
		lk.Close()
		t.Fatal("Open succeeded while another holder had the lock")
	}
	lk.Close()
	if err := tx.Commit(); err == nil {
		t.Fatal("a transaction of a closed Store committed after a failed Open of its path")
	}
}
