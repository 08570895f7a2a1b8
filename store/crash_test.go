package store

import (
	"context"
	"flag"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/lease"
)

var crashFull = flag.Bool("crash.full", false, "run the whole crash matrices: every point, every policy, more seeds")

// progress records, per case directory, how far the workload got: the last
// checkpoint that returned nil and the one in flight. Written by the
// workload, read by the oracle of the same case.
var progress sync.Map // case dir -> *ckptProgress

type ckptProgress struct {
	mu       sync.Mutex
	done     int // checkpoints that returned nil
	inFlight int // the checkpoint running (done+1), or done when none
}

func progressOf(dir string) *ckptProgress {
	p, _ := progress.LoadOrStore(dir, &ckptProgress{})
	return p.(*ckptProgress)
}

const crashRowsPerRound = 40

// crashWorkload: open, commits, checkpoint, commits, checkpoint, commits,
// close (whose checkpoint is the third). Progress is recorded so the
// oracle knows exactly which states are allowed.
func crashWorkload(fsys *faultinject.FS) error {
	db := fiDB(fsys)
	p := progressOf(path.Dir(db))
	s, err := Open(db, &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		return err
	}
	step := func(k int, run func() error) error {
		p.mu.Lock()
		p.inFlight = k
		p.mu.Unlock()
		if err := run(); err != nil {
			return err
		}
		p.mu.Lock()
		p.done = k
		p.mu.Unlock()
		return nil
	}
	err = func() error {
		if _, err := s.DB().Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
			return err
		}
		for k := 1; k <= 3; k++ {
			for i := 0; i < crashRowsPerRound; i++ {
				if _, err := s.DB().Exec("INSERT INTO t(v) VALUES(?)", strings.Repeat("r", 200)); err != nil {
					return err
				}
			}
			run := func() error { return s.Checkpoint(context.Background()) }
			if k == 3 {
				run = s.Close
			}
			if err := step(k, run); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		s.Abandon()
	}
	return err
}

func crashRecover(img *faultinject.FS) error {
	_, err := checkpoint.Recover(img, fiDB(img))
	return err
}

// crashOracle: after recovery the database holds exactly the rows of the
// last checkpoint that returned nil, or of the one in flight at the cut;
// integrity_check ok; nothing left on the drive but the database, its
// lock, its journal (and the test's marker).
func crashOracle(img *faultinject.FS) error {
	db := fiDB(img)
	p := progressOf(path.Dir(db))
	p.mu.Lock()
	done, inFlight := p.done, p.inFlight
	p.mu.Unlock()
	s, err := Open(db, &Options{FS: img, ManualCheckpoint: true})
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer s.Abandon()
	// After recovery and SQLite's own (a hot rollback journal is rolled
	// back on open), nothing but the database, its lock and its journal.
	for name := range img.Files() {
		switch path.Base(name) {
		case path.Base(db), path.Base(db) + lockSuffix, path.Base(db) + ".ejectsafe-jrnl", path.Base(db) + lease.FallbackSuffix, caseMarker:
		default:
			return fmt.Errorf("left on the drive after recovery and open: %s", name)
		}
	}
	var check string
	if err := s.DB().QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		return fmt.Errorf("integrity_check: %q, %v", check, err)
	}
	var tables, n int
	if err := s.DB().QueryRow("SELECT count(*) FROM sqlite_master WHERE name='t'").Scan(&tables); err != nil {
		return err
	}
	if tables == 1 {
		if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
			return err
		}
	}
	got := n / crashRowsPerRound
	if n%crashRowsPerRound != 0 || (tables == 0 && done > 0) || (got != done && got != inFlight) {
		return fmt.Errorf("%d rows (table present: %v): want the state of checkpoint %d or %d", n, tables == 1, done, inFlight)
	}
	return nil
}

// TestStore_crashMatrix crashes the store's whole life (open, commits,
// checkpoints, close) at every I/O operation, recovers (compound mode:
// crashing the recovery too), and checks exactly the old-or-new state.
// The default slice runs every point under DropAll, KeepAll and CutTail
// with one seed and without compound recovery; -crash.full runs every
// policy with three seeds and compound recovery.
func TestStore_crashMatrix(t *testing.T) {
	cfg := faultinject.MatrixConfig{
		Setup:    fiSetup,
		Workload: crashWorkload,
		Recover:  crashRecover,
		Oracle:   crashOracle,
		Workers:  2,
		Seeds:    1,
		Policies: []faultinject.Policy{faultinject.DropAll, faultinject.KeepAll, faultinject.CutTail},
	}
	if *crashFull {
		cfg.Policies, cfg.Seeds, cfg.Compound = nil, 3, true
	}
	sum, err := faultinject.RunMatrix(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	if err := sum.Err(); err != nil {
		t.Error(err)
	}
}
