package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWearStock_seesAutoCheckpoints: at synchronous=NORMAL the wear
// section learns which commits ran SQLite's auto-checkpoint from the
// wal-index. 1,500 single-row commits write at least 1,500 WAL frames,
// so SQLite's 1,000-page auto-checkpoint ran at least once, and every
// commit but those after the last checkpoint is durable at one.
func TestWearStock_seesAutoCheckpoints(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	if err := BuildClean(ctx, path, 1); err != nil {
		t.Fatal(err)
	}
	w, err := openWearStock(path, "WAL", "NORMAL")
	if err != nil {
		t.Fatal(err)
	}
	v := make([]byte, 1000)
	var commits []commitRec
	for i := 0; i < 1500; i++ {
		t0 := time.Now()
		if err := w.exec(ctx, 1+i%1000, v); err != nil {
			t.Fatal(err)
		}
		c := commitRec{end: time.Now(), d: time.Since(t0)}
		commits = append(commits, c)
		w.observe(c)
	}
	ivs, durable, err := w.finish(commits)
	if err != nil {
		t.Fatal(err)
	}
	if len(ivs) < 1 || len(ivs) > 3 {
		t.Fatalf("%d auto-checkpoints seen in 1,500 one-row commits; want 1 to 3 (one per 1,000 frames)", len(ivs))
	}
	first := w.ckptAt[0]
	for i := 0; i <= first; i++ {
		if !durable[i].Equal(ivs[0].end) {
			t.Fatalf("commit %d (before the first checkpoint, at commit %d) durable at %v, want the checkpoint's end %v", i, first, durable[i], ivs[0].end)
		}
	}
	if last := len(commits) - 1; !durable[last].After(commits[last].end) {
		t.Errorf("the last commit is durable at %v, not after it returned (%v): the close-time checkpoint", durable[last], commits[last].end)
	}
}

// TestWearStock_fullIsDurableAtReturn: at synchronous=FULL no commit
// waits after it returned, and no checkpoint is reported for the
// rollback journal.
func TestWearStock_fullIsDurableAtReturn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	if err := BuildClean(ctx, path, 1); err != nil {
		t.Fatal(err)
	}
	w, err := openWearStock(path, "DELETE", "FULL")
	if err != nil {
		t.Fatal(err)
	}
	var commits []commitRec
	for i := 0; i < 20; i++ {
		if err := w.exec(ctx, 1+i, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		c := commitRec{end: time.Now()}
		commits = append(commits, c)
		w.observe(c)
	}
	ivs, durable, err := w.finish(commits)
	if err != nil || len(ivs) != 0 {
		t.Fatalf("finish: %v, %d checkpoints", err, len(ivs))
	}
	for i, c := range commits {
		if !durable[i].Equal(c.end) {
			t.Fatalf("commit %d durable at %v, not at its return %v", i, durable[i], c.end)
		}
	}
}

// TestMeasureWear_tiny runs the whole section on a temporary directory
// at a small size: every mode commits, the store checkpoints and its
// commits wait for it, the fsync-per-commit modes never wait.
func TestMeasureWear_tiny(t *testing.T) {
	var logs []string
	rep, err := MeasureWear(context.Background(), t.TempDir(), WearPlan{MiB: 1, Rate: 50, Duration: time.Second},
		func(f string, a ...any) { logs = append(logs, f) })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Results), len(wearModes); got != want {
		t.Fatalf("%d results, want %d", got, want)
	}
	for _, r := range rep.Results {
		if r.Commits < 10 {
			t.Errorf("%s: %d commits", r.Mode, r.Commits)
		}
		switch r.Mode {
		case WearStoreAuto, WearStoreInPlace, WearStoreCopy:
			if r.Checkpoints < 1 || r.MaxDurableWaitMs <= 0 {
				t.Errorf("%s: %d checkpoints, longest wait %g ms: the store's commits wait for a checkpoint", r.Mode, r.Checkpoints, r.MaxDurableWaitMs)
			}
			// Each arm runs the mode it names: InPlace writes every
			// checkpoint in place (a 1 MiB database that does not grow,
			// on a filesystem that allows it), Copy none.
			want := map[string]int{WearStoreInPlace: r.Checkpoints, WearStoreCopy: 0}
			if w, ok := want[r.Mode]; ok && r.InPlace != w {
				t.Errorf("%s: %d of %d checkpoints in place, want %d", r.Mode, r.InPlace, r.Checkpoints, w)
			}
		case WearWALFull, WearRollback:
			if r.MaxDurableWaitMs != 0 || r.Checkpoints != 0 {
				t.Errorf("%s: waits %g ms, %d checkpoints; want 0, 0", r.Mode, r.MaxDurableWaitMs, r.Checkpoints)
			}
		}
		if (r.DeviceBytes < 0) != (rep.Device == "") {
			t.Errorf("%s: device bytes %d with device %q", r.Mode, r.DeviceBytes, rep.Device)
		}
	}
	if rep.Device == "" && !strings.Contains(strings.Join(logs, "\n"), "SKIP LOUDLY") {
		t.Errorf("no device and no loud note: %q", logs)
	}
}
