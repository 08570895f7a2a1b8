package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestShim_commitPathNoGoCall: steady-state commits make no call from
// the shim into Go (ARCHITECTURE, "The commit path makes no Go call"):
// WAL frames, wal-index reads and lock slots stay in C. A checkpoint,
// whose main-file I/O is Go's, shows that the count moves at all.
func TestShim_commitPathNoGoCall(t *testing.T) {
	s, _ := openT(t, &Options{ManualCheckpoint: true})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
	mustExec(t, db, "INSERT INTO t(id, v) VALUES (1, 0)")
	stmt, err := db.Prepare("UPDATE t SET v = ? WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	commit := func(i int) {
		t.Helper()
		if _, err := stmt.Exec(i); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	for i := 0; i < 100; i++ { // warm: pages cached, connections open
		commit(i)
	}
	before := goCallbacks.Load()
	for i := 0; i < 3000; i++ {
		commit(i)
	}
	if got := goCallbacks.Load() - before; got != 0 {
		t.Errorf("3,000 steady-state commits made %d calls into Go; want 0", got)
	}
	mustCheckpoint(t, s)
	if goCallbacks.Load() == before {
		t.Errorf("a checkpoint made no call into Go: the count counts nothing")
	}
}

// TestShim_lockSlots: the wal-index lock slots (shim_shm.c) follow
// SQLite's os_unix.c: SHARED beside SHARED, EXCLUSIVE alone, a range
// taken whole or not at all, the one SHARED holder upgraded, everything a
// connection holds given up when it unmaps. The checks run in C on a
// database state of their own (es_shm_selftest).
func TestShim_lockSlots(t *testing.T) {
	if n := shmSelftest(); n != 0 {
		t.Fatalf("es_shm_selftest: check %d failed (store/shim_selftest.c)", n)
	}
}

// TestShim_writersTakeTurns: writers on several connections read a
// counter and write it back plus one, each in its own IMMEDIATE
// transaction, while readers check that two counters written together
// always agree. Two writers inside the writer slot at once would lose
// increments; a reader let in beside a rewind would see them disagree.
func TestShim_writersTakeTurns(t *testing.T) {
	s, _ := openT(t, &Options{CheckpointIdle: 2 * time.Millisecond, CheckpointInterval: 10 * time.Millisecond})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE c(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
	mustExec(t, db, "INSERT INTO c(id, n) VALUES (1, 0), (2, 0)")
	const writers, each = 4, 150
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		errs = make(chan error, writers+2)
	)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				var a, b int64
				if err := db.QueryRow("SELECT (SELECT n FROM c WHERE id = 1), (SELECT n FROM c WHERE id = 2)").Scan(&a, &b); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				if a != b {
					errs <- fmt.Errorf("reader saw the counters apart: %d and %d", a, b)
					return
				}
			}
		}()
	}
	var ww sync.WaitGroup
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func() {
			defer ww.Done()
			conn, err := db.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for i := 0; i < each; i++ {
				if err := incrementBoth(ctx, conn); err != nil {
					errs <- fmt.Errorf("writer: %w", err)
					return
				}
			}
		}()
	}
	ww.Wait()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var a, b int64
	if err := db.QueryRow("SELECT (SELECT n FROM c WHERE id = 1), (SELECT n FROM c WHERE id = 2)").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a != writers*each || b != a {
		t.Fatalf("counters %d and %d after %d increments", a, b, writers*each)
	}
}

// incrementBoth reads counter 1 and writes it plus one into both
// counters, in one IMMEDIATE transaction.
func incrementBoth(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	var n int64
	err := conn.QueryRowContext(ctx, "SELECT n FROM c WHERE id = 1").Scan(&n)
	if err == nil {
		_, err = conn.ExecContext(ctx, "UPDATE c SET n = ? WHERE id IN (1, 2)", n+1)
	}
	if err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
