package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
)

// openT opens a store in a fresh directory and closes it at test end.
func openT(t *testing.T, opts *Options) (*Store, string) {
	t.Helper()
	return openTWith(t, opts, nil)
}

// openTWith is openT with the mainFile from newMain (openWith).
func openTWith(t *testing.T, opts *Options, newMain mainOpener) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := openWith(path, opts, newMain)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustCheckpoint(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// sqlite3CLI runs the stock sqlite3 shell on the database file alone
// (immutable=1: no locks, no -wal, no -shm), the independent reader of
// what the store put on the drive.
func sqlite3CLI(t *testing.T, path, sql string) string {
	t.Helper()
	if _, _, err := stocktest.Lookup(); err != nil && stocktest.UnderWine() {
		return readAlone(t, path, sql)
	}
	bin := stocktest.Bin(t, "the independent reader's view")
	out, err := exec.Command(bin, FileURI(path, "immutable=1"), sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// noSidecars fails if SQLite's -wal or -shm exists next to path.
func noSidecars(t *testing.T, path string) {
	t.Helper()
	for _, suf := range []string{walSuffix, shmSuffix, journalSuffix} {
		if _, err := os.Stat(path + suf); err == nil {
			t.Errorf("%s exists on disk", path+suf)
		}
	}
}

// recorder is a mainFile that logs the hook calls SQLite makes, in order.
type recorder struct {
	mainFile
	mu  sync.Mutex
	ops []string
	// failSync, when set, makes Sync fail with it.
	failSync error
	// unsynced counts writes since the last successful Sync.
	unsynced int
}

func (r *recorder) log(op string) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

func (r *recorder) WriteAt(p []byte, off int64) error {
	r.mu.Lock()
	r.unsynced++
	r.mu.Unlock()
	r.log("write")
	return r.mainFile.WriteAt(p, off)
}

func (r *recorder) unsyncedWrites() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unsynced
}

func (r *recorder) Truncate(n int64) error { r.log("truncate"); return r.mainFile.Truncate(n) }
func (r *recorder) CheckpointStart() error { r.log("start"); return r.mainFile.CheckpointStart() }
func (r *recorder) CheckpointDone() error  { r.log("done"); return r.mainFile.CheckpointDone() }
func (r *recorder) SizeHint(n int64) error { r.log("hint"); return r.mainFile.SizeHint(n) }
func (r *recorder) Commit() error {
	r.mu.Lock()
	err := r.failSync
	r.mu.Unlock()
	if err != nil {
		return err
	}
	err = r.mainFile.Commit()
	if err == nil {
		r.mu.Lock()
		r.unsynced = 0
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) Sync() error {
	r.log("sync")
	r.mu.Lock()
	err := r.failSync
	r.mu.Unlock()
	if err != nil {
		return err
	}
	err = r.mainFile.Sync()
	if err == nil {
		r.mu.Lock()
		r.unsynced = 0
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) setFailSync(err error) {
	r.mu.Lock()
	r.failSync = err
	r.mu.Unlock()
}

// withRecorder returns a mainOpener whose (two-phase) mainFile is
// wrapped by rec.
func withRecorder(rec *recorder) mainOpener {
	return func(fsys device.FS, path string) (mainFile, error) {
		m, err := twoPhaseWith(checkpoint.Options{ReadBack: checkpoint.ReadBackAlways})(fsys, path)
		rec.mainFile = m
		return rec, err
	}
}
