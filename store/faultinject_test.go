package store

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint/checkpointtest"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

// The store runs on faultinject's FS: every byte SQLite reads or writes on
// the "drive" goes through it, so a real SQLite workload can be crashed at
// any operation.

var caseSeq atomic.Int64

// fiSetup makes a fresh simulated volume with an empty directory of its own,
// so parallel cases never share a database path.
func fiSetup() (*faultinject.FS, error) {
	fsys := faultinject.New(faultinject.Options{})
	dir := vol(fmt.Sprintf("/vol/case%d", caseSeq.Add(1)))
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, err
	}
	// A durable marker names the case's directory in every crash image
	// without an FS operation (Files is a test helper, not traced).
	return fsys, fsys.WriteFile(path.Join(dir, caseMarker), nil, 0o644)
}

const caseMarker = ".case"

// fiDB finds the case's database path on a volume made by fiSetup.
func fiDB(fsys *faultinject.FS) string {
	for name := range fsys.Files() {
		if path.Base(name) == caseMarker {
			return path.Join(path.Dir(name), "app.db")
		}
	}
	panic("fiDB: volume not made by fiSetup")
}

// fiWorkload: open, create, 50 rows, checkpoint, 50 more, checkpoint,
// close. On any error (a crash) it abandons the store, as an app whose
// drive vanished would.
func fiWorkload(fsys *faultinject.FS) error { return fiWorkloadWith(fsys, nil) }

// fiWorkloadInPlace runs the workload with the in-place mainFile.
func fiWorkloadInPlace(fsys *faultinject.FS) error { return fiWorkloadWith(fsys, openInPlace) }

func fiWorkloadWith(fsys *faultinject.FS, newMain mainOpener) error {
	s, err := openWith(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true}, newMain)
	if err != nil {
		return err
	}
	err = func() error {
		db := s.DB()
		if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
			return err
		}
		for round := 0; round < 2; round++ {
			for i := 0; i < 50; i++ {
				if _, err := db.Exec("INSERT INTO t(v) VALUES(?)", strings.Repeat("x", 100)); err != nil {
					return err
				}
			}
			if err := s.Checkpoint(context.Background()); err != nil {
				return err
			}
		}
		return s.Close()
	}()
	if err != nil {
		s.Abandon()
	}
	return err
}

// fiOracle opens a crash image with the store and accepts exactly the
// states of a completed checkpoint: nothing yet, 0, 50 or 100 rows, with
// integrity_check ok.
func fiOracle(img *faultinject.FS) error {
	s, err := Open(fiDB(img), &Options{FS: img, ManualCheckpoint: true})
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer s.Abandon() // the image is thrown away
	db := s.DB()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		return fmt.Errorf("integrity_check: %q, %v", check, err)
	}
	var tables int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE name='t'").Scan(&tables); err != nil {
		return err
	}
	if tables == 0 {
		return nil // no checkpoint completed
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		return err
	}
	if n != 0 && n != 50 && n != 100 {
		return fmt.Errorf("%d rows: not a checkpointed state", n)
	}
	return nil
}

func TestStore_onFaultinject(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	if err := fiWorkload(fsys); err != nil {
		t.Fatalf("workload on a healthy simulated drive: %v", err)
	}
	db := fiDB(fsys)
	// Nothing but the database and the lock is left on the drive.
	for name := range fsys.Files() {
		if name != db && name != db+lockSuffix && name != journal.Name(db) && path.Base(name) != caseMarker {
			// The lease is removed by Close.
			t.Errorf("left on the drive: %s", name)
		}
	}
	if err := fiOracle(fsys.CrashImage(faultinject.DropAll, 0)); err != nil {
		t.Fatalf("after a clean close: %v", err)
	}
	t.Run("ordering", func(t *testing.T) {
		// The two-phase checkpoint: never in place, journal claims only
		// once true, no fsync retried.
		if v := faultinject.Check(fsys.Trace(), checkpointtest.CheckConfig(db)); len(v) != 0 {
			t.Errorf("ordering violations: %v", v)
		}
		// The checker does see in-place writes: run the same workload
		// with the in-place mainFile.
		ip, err := fiSetup()
		if err != nil {
			t.Fatal(err)
		}
		if err := fiWorkloadInPlace(ip); err != nil {
			t.Fatal(err)
		}
		cfg := checkpointtest.CheckConfig(fiDB(ip))
		if v := faultinject.Check(ip.Trace(), cfg); len(v) == 0 {
			t.Errorf("the checker did not flag in-place writes to the database")
		}
		cfg.AllowInPlace = true
		if v := faultinject.Check(ip.Trace(), cfg); len(v) != 0 {
			t.Errorf("in-place run, in-place allowed: %v", v)
		}
	})
}

// TestStore_crashMatrixInPlace crashes the SQLite workload, run with the
// in-place mainFile, at every I/O operation. With only synced data
// surviving (DropAll), every image must be a checkpointed state. Under
// policies that keep some unsynced writes, the in-place checkpoint tears
// the database, and the matrix must say so: that is the failure the
// two-phase checkpoint removes (TestStore_crashMatrix), and seeing it
// proves the harness can fail on real SQLite data.
func TestStore_crashMatrixInPlace(t *testing.T) {
	cfg := faultinject.MatrixConfig{
		Setup:    fiSetup,
		Workload: fiWorkloadInPlace,
		Oracle:   fiOracle,
		Workers:  2,
	}
	cfg.Policies = []faultinject.Policy{faultinject.DropAll}
	sum, err := faultinject.RunMatrix(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	if err := sum.Err(); err != nil {
		t.Errorf("DropAll: %v", err)
	}

	cfg.Policies = []faultinject.Policy{faultinject.KeepAll, faultinject.KeepRandomSubset}
	cfg.Seeds = 2
	sum, err = faultinject.RunMatrix(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	if len(sum.Failures) == 0 {
		t.Fatalf("no torn in-place checkpoint detected under %v", cfg.Policies)
	}
	t.Logf("for example: %v", sum.Failures[0])
}
