package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/checkpoint/checkpointtest"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// errRows are committed before the checkpoint under test; errMore after
// the fault, while the store must keep serving.
const errRows, errMore = 30, 5

// errSetup opens a store on a fresh simulated drive with a checkpointed
// table and errRows uncheckpointed rows: the state every case starts from.
func errSetup(t *testing.T) (*faultinject.FS, *Store) {
	t.Helper()
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	mustCheckpoint(t, s)
	for i := 0; i < errRows; i++ {
		mustExec(t, s.DB(), "INSERT INTO t(v) VALUES(?)", fmt.Sprintf("row %d", i))
	}
	return fsys, s
}

var tmpGen = regexp.MustCompile(`-tmp-[0-9]+$`)

// TestStore_checkpointErrors fails each I/O operation of a checkpoint, in
// turn, with EIO, ENOSPC, EROFS and ENODEV, once or persistently (every
// later operation of that kind on that file, any generation's copy), and
// checks: Checkpoint fails with a typed error wrapping the errno, or
// succeeds; no panic; the store keeps serving reads and writes from
// memory; once the fault clears, a checkpoint makes every row durable (a
// pull then shows them all); no ordering violation.
func TestStore_checkpointErrors(t *testing.T) {
	// The reference run: which operations does a checkpoint make?
	fsys, s := errSetup(t)
	from := fsys.OpCount()
	mustCheckpoint(t, s)
	ops := fsys.Trace()[from:]
	s.Close()
	if len(ops) < 5 {
		t.Fatalf("the checkpoint made %d operations; the test would prove little", len(ops))
	}

	errnos := []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EROFS, syscall.ENODEV}
	cases, failed := 0, 0
	for off, op := range ops {
		for _, errno := range errnos {
			for _, persistent := range []bool{false, true} {
				name := fmt.Sprintf("op%d_%v_%s_%s", off, op.Kind, errno, map[bool]string{false: "once", true: "persistent"}[persistent])
				cases++
				t.Run(name, func(t *testing.T) {
					fsys, s := errSetup(t)
					defer s.Abandon()
					rule := faultinject.Fail(errno).At(fsys.OpCount() + off)
					if persistent {
						rule = faultinject.Fail(errno).On(op.Kind).Matching(tmpGen.ReplaceAllString(op.Path, "-tmp-*")).Always()
					}
					if err := fsys.Inject(rule); err != nil {
						t.Fatal(err)
					}
					err := s.Checkpoint(context.Background())
					if err != nil {
						failed++
						if !errors.Is(err, ErrCheckpoint) || !errors.Is(err, errno) {
							t.Fatalf("Checkpoint = %v; want ErrCheckpoint wrapping %v", err, errno)
						}
					}
					// Still serving from memory, reads and writes.
					for i := 0; i < errMore; i++ {
						mustExec(t, s.DB(), "INSERT INTO t(v) VALUES('more')")
					}
					var n int
					if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != errRows+errMore {
						t.Fatalf("count = %d, %v; want %d", n, err, errRows+errMore)
					}
					// The fault clears; the next checkpoint makes it all durable.
					fsys.ClearRules()
					if err := s.Checkpoint(context.Background()); err != nil {
						t.Fatalf("Checkpoint after the fault cleared: %v", err)
					}
					for _, v := range faultinject.Check(fsys.Trace(), checkpointtest.CheckConfig(fiDB(fsys))) {
						t.Errorf("ordering violation: %v", v)
					}
					img := fsys.CrashImage(faultinject.DropAll, 0)
					// Close may report the injected fault met while
					// releasing files (closing a replaced base file), but
					// not a failed checkpoint: everything is durable.
					if err := s.Close(); err != nil && (errors.Is(err, ErrCheckpoint) || !errors.Is(err, errno)) {
						t.Fatalf("Close = %v", err)
					}
					if err := s.Checkpoint(context.Background()); !errors.Is(err, ErrClosed) {
						t.Fatalf("Checkpoint after Close = %v; want ErrClosed", err)
					}
					if n := imageRows(t, img); n != errRows+errMore {
						t.Fatalf("after a pull: %d rows; want %d", n, errRows+errMore)
					}
				})
			}
		}
	}
	t.Logf("error injection: %d operations x %d errnos x once/persistent = %d cases; Checkpoint failed in %d, succeeded durably in the rest", len(ops), len(errnos), cases, failed)
}

// TestStore_checkpointDriveFull: a checkpoint on a full drive fails with a
// clear error (ENOSPC, checkpoint.ErrNoSpace) before copying, nothing is
// lost, the store keeps serving, and once space is freed the next
// checkpoint succeeds.
func TestStore_checkpointDriveFull(t *testing.T) {
	fsys := faultinject.New(faultinject.Options{Capacity: 1 << 20})
	dir := vol("/vol/full")
	if err := fsys.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	fsys.WriteFile(path.Join(dir, caseMarker), nil, 0o644)
	s, err := Open(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200) SELECT i FROM c)")
	mustCheckpoint(t, s)
	// Another file takes most of what is left.
	free, err := fsys.FreeSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	filler := path.Join(dir, "filler")
	if err := fsys.WriteFile(filler, make([]byte, free-64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100) SELECT i FROM c)")
	err = s.Checkpoint(context.Background())
	if !errors.Is(err, ErrCheckpoint) || !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, checkpoint.ErrNoSpace) {
		t.Fatalf("Checkpoint on a full drive = %v; want ErrCheckpoint wrapping ENOSPC and checkpoint.ErrNoSpace", err)
	}
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 300 {
		t.Fatalf("count = %d, %v; want 300", n, err)
	}
	if err := fsys.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mustCheckpoint(t, s)
	for _, v := range faultinject.Check(fsys.Trace(), checkpointtest.CheckConfig(fiDB(fsys))) {
		t.Errorf("ordering violation: %v", v)
	}
}

// imageRows recovers a crash image, opens it with the store and counts the
// rows of t.
func imageRows(t *testing.T, img *faultinject.FS) int {
	t.Helper()
	if err := crashRecover(img); err != nil {
		t.Fatal(err)
	}
	s, err := Open(fiDB(img), &Options{FS: img, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
