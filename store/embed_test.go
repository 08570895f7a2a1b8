package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// conns takes n distinct connections from the pool at once.
func conns(t *testing.T, db *sql.DB, n int) []*sql.Conn {
	t.Helper()
	var cs []*sql.Conn
	for range n {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// orphansRefused checks, on n pooled connections at once, that a child
// row without a parent is refused.
func orphansRefused(t *testing.T, s *Store, n int) {
	t.Helper()
	mustExec(t, s.DB(), "CREATE TABLE parent(id INTEGER PRIMARY KEY)")
	mustExec(t, s.DB(), "CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES parent(id))")
	for i, c := range conns(t, s.DB(), n) {
		var fk int
		if err := c.QueryRowContext(context.Background(), "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		_, err := c.ExecContext(context.Background(), "INSERT INTO child(p) VALUES(?)", 1000+i)
		if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Errorf("connection %d (foreign_keys=%d): orphan insert: err = %v, want a FOREIGN KEY failure", i, fk, err)
		}
	}
	var orphans int
	if err := s.DB().QueryRow("SELECT count(*) FROM child").Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d orphan rows stored (err %v)", orphans, err)
	}
}

func TestParams_ForeignKeysOnEveryConnection(t *testing.T) {
	s, _ := openT(t, &Options{Params: url.Values{"_foreign_keys": {"on"}}})
	orphansRefused(t, s, 4)
}

func TestConnectHook_EveryConnection(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	s, _ := openT(t, &Options{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		mu.Lock()
		calls++
		mu.Unlock()
		if _, err := c.Exec("PRAGMA foreign_keys=ON", nil); err != nil {
			return err
		}
		return c.RegisterFunc("twice", func(x int64) int64 { return 2 * x }, true)
	}})
	orphansRefused(t, s, 4)
	for i, c := range conns(t, s.DB(), 4) {
		var got int64
		if err := c.QueryRowContext(context.Background(), "SELECT twice(21)").Scan(&got); err != nil || got != 42 {
			t.Errorf("connection %d: twice(21) = %d, %v", i, got, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 4 {
		t.Errorf("ConnectHook ran %d times for at least 4 connections", calls)
	}
}

func TestConnectHook_Error(t *testing.T) {
	boom := errors.New("boom")
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "a.db"), &Options{ConnectHook: func(*sqlite3.SQLiteConn) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Open: %v, want the hook's error", err)
	}
	// Nothing held: a second Open works.
	s, err := Open(filepath.Join(dir, "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// The Store's own setup cannot be undone by a hook.
func TestConnectHook_CannotUndoSetup(t *testing.T) {
	for _, tc := range []struct{ pragma, name string }{
		{"PRAGMA journal_mode=DELETE", "journal_mode"},
		{"PRAGMA locking_mode=EXCLUSIVE", "locking_mode"},
		{"PRAGMA wal_autocheckpoint=1000", "wal_autocheckpoint"},
		{"PRAGMA synchronous=OFF", "synchronous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.db")
			s, err := Open(path, &Options{ConnectHook: func(c *sqlite3.SQLiteConn) error {
				_, err := c.Exec(tc.pragma, nil)
				return err
			}})
			if err == nil {
				s.Close()
				t.Fatalf("Open with a hook running %q succeeded", tc.pragma)
			}
			if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("Open: %v, want ErrBadOptions naming %s", err, tc.name)
			}
		})
	}
}

func TestParams_Refused(t *testing.T) {
	for _, p := range []url.Values{
		{"_journal_mode": {"DELETE"}},
		{"_journal": {"DELETE"}},
		{"_locking_mode": {"EXCLUSIVE"}},
		{"_sync": {"OFF"}},
		{"vfs": {"unix"}},
		{"mode": {"rwc"}},
		{"cache": {"shared"}},
		{"_foreign_key": {"on"}}, // a typo
		{"_fk": {"on", "off"}},
		{"_busy_timeout": {"soon"}},
	} {
		_, err := Open(filepath.Join(t.TempDir(), "a.db"), &Options{Params: p})
		if !errors.Is(err, ErrBadOptions) {
			t.Errorf("Params %v: Open: %v, want ErrBadOptions", p, err)
		}
	}
	_, err := Open(filepath.Join(t.TempDir(), "a.db"), &Options{Params: url.Values{"_busy_timeout": {"100"}}, BusyTimeout: time.Second})
	if !errors.Is(err, ErrBadOptions) {
		t.Errorf("conflicting busy timeouts: Open: %v, want ErrBadOptions", err)
	}
	for _, ps := range []int{1000, 256, 131072} {
		if _, err := Open(filepath.Join(t.TempDir(), "a.db"), &Options{PageSize: ps}); !errors.Is(err, ErrBadOptions) {
			t.Errorf("PageSize %d: Open: %v, want ErrBadOptions", ps, err)
		}
	}
}

func TestParams_BusyTimeout(t *testing.T) {
	s, _ := openT(t, &Options{Params: url.Values{"_busy_timeout": {"1234"}}})
	if s.opts.BusyTimeout != 1234*time.Millisecond {
		t.Errorf("BusyTimeout = %v, want 1.234s", s.opts.BusyTimeout)
	}
	for i, c := range conns(t, s.DB(), 3) {
		var ms int
		if err := c.QueryRowContext(context.Background(), "PRAGMA busy_timeout").Scan(&ms); err != nil || ms != 1234 {
			t.Errorf("connection %d: busy_timeout = %d, %v", i, ms, err)
		}
	}
}

// PageSize sets the page size of a new database, as the stock sqlite3
// reads it; an existing database keeps its own.
func TestOptions_PageSize(t *testing.T) {
	for _, ps := range []int{512, 8192, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			s, path := openT(t, &Options{PageSize: ps})
			mustExec(t, s.DB(), "CREATE TABLE t(x)")
			for i := range 50 {
				mustExec(t, s.DB(), "INSERT INTO t VALUES(?)", strings.Repeat("x", 100+i))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := sqlite3CLI(t, path, "PRAGMA page_size"); got != fmt.Sprint(ps) {
				t.Errorf("sqlite3: page_size = %s, want %d", got, ps)
			}
			if got := sqlite3CLI(t, path, "PRAGMA integrity_check; SELECT count(*) FROM t"); got != "ok\n50" {
				t.Errorf("sqlite3: %q", got)
			}
			// Reopened with another PageSize: the database keeps its own,
			// and the application is told.
			var logged strings.Builder
			s, err := Open(path, &Options{PageSize: 4096, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			if err != nil {
				t.Fatal(err)
			}
			var got int
			if err := s.DB().QueryRow("PRAGMA page_size").Scan(&got); err != nil || got != ps {
				t.Errorf("reopened: page_size = %d, %v; want %d", got, err, ps)
			}
			if !strings.Contains(logged.String(), "PageSize applies to new databases only") {
				t.Errorf("no warning for the PageSize that could not apply; log:\n%s", logged.String())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// readThenWrite runs n read-then-write transactions in each of g
// goroutines and returns how many failed with "database is locked".
func readThenWrite(t *testing.T, s *Store, g, n int) (locked int) {
	mustExec(t, s.DB(), "CREATE TABLE IF NOT EXISTS c(id INTEGER PRIMARY KEY, v INTEGER)")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				err := func() error {
					tx, err := s.DB().Begin()
					if err != nil {
						return err
					}
					defer tx.Rollback()
					var m int
					if err := tx.QueryRow("SELECT coalesce(max(v), 0) FROM c").Scan(&m); err != nil {
						return err
					}
					if _, err := tx.Exec("INSERT INTO c(v) VALUES(?)", m+1); err != nil {
						return err
					}
					return tx.Commit()
				}()
				var se sqlite3.Error
				switch {
				case err == nil:
				case errors.As(err, &se) && se.Code == sqlite3.ErrBusy:
					mu.Lock()
					locked++
					mu.Unlock()
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return locked
}

// With _txlock=immediate, concurrent read-then-write transactions wait
// their turn instead of failing with "database is locked".
func TestParams_TxLockImmediate(t *testing.T) {
	const g, n = 4, 200
	s, _ := openT(t, &Options{Params: url.Values{"_txlock": {"immediate"}}})
	if locked := readThenWrite(t, s, g, n); locked != 0 {
		t.Errorf("_txlock=immediate: %d of %d transactions failed with database is locked", locked, g*n)
	}
	var rows, distinct int
	if err := s.DB().QueryRow("SELECT count(*), count(DISTINCT v) FROM c").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != g*n || distinct != g*n {
		t.Errorf("%d rows, %d distinct values; want %d of each (transactions serialized)", rows, distinct, g*n)
	}
	// The default, deferred, for the record: SQLite cannot wait for a
	// read transaction to upgrade while another connection writes.
	d, _ := openT(t, nil)
	t.Logf("deferred transactions: %d of %d failed with database is locked", readThenWrite(t, d, g, n), g*n)
}

// writeOps are the faultinject kinds that change the drive.
const writeOps = faultinject.OpCreate | faultinject.OpWriteAt | faultinject.OpTruncate | faultinject.OpSync |
	faultinject.OpRename | faultinject.OpRemove | faultinject.OpSyncDir | faultinject.OpLock

// A read-only Store writes nothing at all: no lock file, no lease, no
// recovery, no checkpoint, and its connections refuse writes.
func TestReadOnly_WritesNothing(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	path := fiDB(fsys)
	w, err := Open(path, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, w.DB(), "CREATE TABLE t(x)")
	for i := range 100 {
		mustExec(t, w.DB(), "INSERT INTO t VALUES(?)", i)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before := fsys.Files()
	// The write-protected card: every change fails.
	if err := fsys.Inject(faultinject.Fail(syscall.EROFS).On(writeOps).Always()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, &Options{FS: fsys}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("writable Open on a write-protected drive: %v, want ErrReadOnly", err)
	}
	start2 := fsys.OpCount()
	s, err := Open(path, &Options{FS: fsys, ReadOnly: true})
	if err != nil {
		t.Fatalf("ReadOnly Open: %v", err)
	}
	var n, sum int
	if err := s.DB().QueryRow("SELECT count(*), sum(x) FROM t").Scan(&n, &sum); err != nil || n != 100 || sum != 4950 {
		t.Fatalf("read: %d rows, sum %d, %v", n, sum, err)
	}
	for i, c := range conns(t, s.DB(), 3) {
		if _, err := c.ExecContext(context.Background(), "INSERT INTO t VALUES(1)"); err == nil {
			t.Errorf("connection %d: insert into a read-only Store succeeded", i)
		}
	}
	if _, err := s.DB().Exec("CREATE TABLE u(x)"); err == nil {
		t.Error("CREATE TABLE in a read-only Store succeeded")
	}
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Errorf("Checkpoint: %v", err)
	}
	if got := s.Recovery().Action; got != "skipped" {
		t.Errorf("Recovery().Action = %q", got)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, ev := range fsys.Trace()[start2:] {
		if ev.Kind&writeOps != 0 || (ev.Kind == faultinject.OpOpen && ev.Mode != device.ReadOnly) {
			t.Errorf("read-only Store: %v", ev)
		}
	}
	after := fsys.Files()
	if !sameFileSet(before, after) {
		t.Errorf("files changed:\nbefore %v\nafter  %v", keys(before), keys(after))
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func sameFileSet(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

func TestReadOnly_Refusals(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.db"), &Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing database was created")
	}
	if _, err := Open(dir, &Options{ReadOnly: true}); !errors.Is(err, ErrIsDirectory) {
		t.Errorf("directory: %v", err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not a database, not at all"), 0o644)
	if _, err := Open(junk, &Options{ReadOnly: true}); !errors.Is(err, ErrNotDatabase) {
		t.Errorf("junk: %v", err)
	}
	// A database stock SQLite wrote in rollback mode and closed cleanly.
	plain := filepath.Join(dir, "plain.db")
	stockSQLite(t, plain, "CREATE TABLE t(x); INSERT INTO t VALUES('stock');")
	if r, err := Open(plain, &Options{ReadOnly: true}); err != nil {
		t.Errorf("stock rollback-mode database: %v", err)
	} else {
		var x string
		if err := r.DB().QueryRow("SELECT x FROM t").Scan(&x); err != nil || x != "stock" {
			t.Errorf("stock rollback-mode database: read %q, %v", x, err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if got := sqlite3CLI(t, plain, "PRAGMA journal_mode"); got != "delete" {
			t.Errorf("journal_mode after a read-only Store: %s (changed)", got)
		}
	}
	// A -wal stock SQLite left: committed data only a writable Open folds in.
	db := filepath.Join(dir, "stock.db")
	stockSQLite(t, db, ".dbconfig no_ckpt_on_close on\nPRAGMA journal_mode=WAL;\nCREATE TABLE t(x);\nINSERT INTO t VALUES(1);\n")
	mustExist(t, db+walSuffix, true)
	if _, err := Open(db, &Options{ReadOnly: true}); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "-wal") {
		t.Errorf("stock -wal: %v, want ErrReadOnly naming it", err)
	}
	for _, l := range []string{lockSuffix, ".ejectsafe-lease"} {
		if _, err := os.Stat(db + l); err == nil {
			t.Errorf("%s created", db+l)
		}
	}
}

// A read-only bind mount: the real filesystem refuses writes with EROFS.
func TestReadOnly_Mount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP LOUDLY: a read-only bind mount needs root; TestReadOnly_WritesNothing covers the store's side")
	}
	src := t.TempDir()
	path := filepath.Join(src, "card.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES('on the card')")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := t.TempDir()
	if out, err := exec.Command("mount", "--bind", src, ro).CombinedOutput(); err != nil {
		t.Skipf("SKIP LOUDLY: bind mount: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ro).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", ro, err, out)
		}
	})
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", ro).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	before, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	rpath := filepath.Join(ro, "card.db")
	if _, err := Open(rpath, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("writable Open on a read-only mount: %v, want ErrReadOnly", err)
	}
	r, err := Open(rpath, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("ReadOnly Open: %v", err)
	}
	var got string
	if err := r.DB().QueryRow("SELECT x FROM t").Scan(&got); err != nil || got != "on the card" {
		t.Errorf("read: %q, %v", got, err)
	}
	if _, err := r.DB().Exec("INSERT INTO t VALUES(2)"); err == nil {
		t.Error("insert succeeded")
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	after, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names(before)) != fmt.Sprint(names(after)) {
		t.Errorf("directory changed: %v -> %v", names(before), names(after))
	}
}

func names(es []os.DirEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

// CloseContext returns at its deadline when the drive hangs in fsync; the
// data stays in memory, Abandon does not hang either, and once the drive
// answers the close completes with nothing lost.
func TestCloseContext_HungDrive(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	path := fiDB(fsys)
	s, err := Open(path, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	for i := range 100 {
		mustExec(t, s.DB(), "INSERT INTO t VALUES(?)", i)
	}
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	if err := fsys.Inject(faultinject.Hang(release).On(faultinject.OpSync | faultinject.OpSyncDir).Always()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- s.CloseContext(ctx) }()
	select {
	case err = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("CloseContext did not return while the drive hangs")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CloseContext: %v, want DeadlineExceeded", err)
	}
	// Abandon must not wait for the hung fsync either.
	ab := make(chan error, 1)
	go func() { ab <- s.Abandon() }()
	select {
	case err := <-ab:
		if err != nil {
			t.Errorf("Abandon: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Abandon did not return while the drive hangs")
	}
	// The drive answers again: the close in flight completes.
	fsys.ClearRules()
	close(release)
	released = true
	var r *Store
	for deadline := time.Now().Add(30 * time.Second); ; {
		r, err = Open(path, &Options{FS: fsys, ManualCheckpoint: true})
		if !errors.Is(err, ErrAlreadyOpen) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("reopen after the drive answered: %v", err)
	}
	defer r.Close()
	var n int
	if err := r.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 100 {
		t.Errorf("after the close completed: %d rows, %v; want 100", n, err)
	}
}

// When the hung drive answers with an error, the close stops: the Store
// stays open with everything in memory, and a later Close succeeds.
func TestCloseContext_HungThenFails(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	path := fiDB(fsys)
	s, err := Open(path, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	for i := range 50 {
		mustExec(t, s.DB(), "INSERT INTO t VALUES(?)", i)
	}
	release := make(chan struct{})
	if err := fsys.Inject(faultinject.Hang(release).WithErr(syscall.EIO).On(faultinject.OpSync)); err != nil {
		close(release)
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.CloseContext(ctx)
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CloseContext: %v, want DeadlineExceeded", err)
	}
	// Close waits for the close in flight, which failed: the Store is
	// open, and this Close checkpoints (the once-rule has fired).
	if err := s.Close(); err != nil {
		t.Fatalf("Close after the drive came back: %v", err)
	}
	r, err := Open(path, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	if err := r.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 50 {
		t.Errorf("reopened: %d rows, %v; want 50", n, err)
	}
}

func TestCloseContext_Healthy(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES(1)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.CloseContext(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != "1" {
		t.Errorf("sqlite3: %s rows", got)
	}
	if err := s.CloseContext(ctx); err != nil {
		t.Errorf("second CloseContext: %v", err)
	}
}

// Abandon writes nothing to the drive but the removal of its lease: the
// checkpoint SQLite runs when the last connection closes is refused, so
// the commits since the last checkpoint are dropped, as documented.
func TestAbandon_WritesNothing(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	path := fiDB(fsys)
	s, err := Open(path, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES(1)")
	mustCheckpoint(t, s)
	mustExec(t, s.DB(), "INSERT INTO t VALUES(2)")
	leasePath := s.lease.Path
	start := fsys.OpCount()
	if err := s.Abandon(); err != nil {
		t.Errorf("Abandon: %v", err)
	}
	for _, ev := range fsys.Trace()[start:] {
		// faultinject traces slash paths (C:/vol/... on Windows).
		lease := (ev.Kind == faultinject.OpRemove && ev.Path == filepath.ToSlash(leasePath)) ||
			(ev.Kind == faultinject.OpSyncDir && ev.Path == filepath.ToSlash(filepath.Dir(leasePath)))
		if ev.Kind&writeOps != 0 && !lease {
			t.Errorf("Abandon wrote: %v", ev)
		}
	}
	r, err := Open(path, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	if err := r.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Errorf("after Abandon: %d rows, %v; want 1 (the checkpointed one)", n, err)
	}
}
