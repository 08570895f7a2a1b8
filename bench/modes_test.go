package bench

import (
	"context"
	"strings"
	"testing"
)

// TestMeasureModes_tiny runs the checkpoint-modes table small, on a
// temporary directory: each arm checkpoints in the mode it names, the
// copy writes at least the whole file every time, the in-place
// checkpoint about twice the dirty pages (file bytes: the redo log and
// the pages), and the row's ratios are the cells' figures.
func TestMeasureModes_tiny(t *testing.T) {
	rep, err := MeasureModes(context.Background(), t.TempDir(), ModesPlan{Sizes: []int{2}, Dirty: []float64{1, 50}, Iters: 2},
		func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Rows), 2; got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	for _, r := range rep.Rows {
		cp, ip, au := r.Cell(ModeCopy), r.Cell(ModeInPlace), r.Cell(ModeAuto)
		if len(r.Cells) != 3 || cp.Ms <= 0 || ip.Ms <= 0 || au.Ms <= 0 {
			t.Fatalf("%g%%: cells %+v", r.DirtyPct, r.Cells)
		}
		dirty := r.DirtyPages * r.PageSize
		if r.DirtyPages < 1 || dirty > r.DBBytes {
			t.Errorf("%g%%: %d dirty pages in a %d-byte database", r.DirtyPct, r.DirtyPages, r.DBBytes)
		}
		if cp.InPlace != 0 || ip.InPlace != r.Iterations {
			t.Errorf("%g%%: in place: Copy %d, InPlace %d of %d", r.DirtyPct, cp.InPlace, ip.InPlace, r.Iterations)
		}
		if cp.FileBytes >= 0 {
			if cp.FileBytes < r.DBBytes {
				t.Errorf("%g%%: Copy wrote %d file bytes, less than the %d-byte database", r.DirtyPct, cp.FileBytes, r.DBBytes)
			}
			if ip.FileBytes < 2*dirty || ip.FileBytes > 3*dirty+InPlaceSlack {
				t.Errorf("%g%%: InPlace wrote %d file bytes for %d dirty bytes; want the log and the pages, about twice", r.DirtyPct, ip.FileBytes, dirty)
			}
		}
		bound := InPlaceFactor*float64(dirty) + InPlaceSlack
		if got, want := r.InPlaceVsBound, float64(ip.Bytes())/bound; got != want {
			t.Errorf("%g%%: in place / bound %g, want %g", r.DirtyPct, got, want)
		}
		if got, want := r.AutoVsBestMs, au.Ms/min(cp.Ms, ip.Ms); got != want {
			t.Errorf("%g%%: Auto / best time %g, want %g", r.DirtyPct, got, want)
		}
	}
	if ts := EvaluateModes(rep); len(ts) != 3 {
		t.Errorf("%d targets, want 3: %+v", len(ts), ts)
	}
}

// TestModesRow_ratios: the bound uses device bytes where measured, else
// file bytes; Auto is compared with the smaller of the fixed modes.
func TestModesRow_ratios(t *testing.T) {
	r := ModesRow{DirtyPages: 10, PageSize: 4096, Cells: []ModeCell{
		{Mode: ModeCopy, Ms: 100, DeviceBytes: 1 << 20, FileBytes: 1 << 20},
		{Mode: ModeInPlace, Ms: 40, DeviceBytes: 150 << 10, FileBytes: 90 << 10},
		{Mode: ModeAuto, Ms: 50, DeviceBytes: 300 << 10, FileBytes: 90 << 10},
	}}
	r.ratios()
	bound := 2.1*10*4096 + 64<<10
	if got, want := r.InPlaceVsBound, float64(150<<10)/bound; got != want {
		t.Errorf("in place / bound = %g, want %g (device bytes)", got, want)
	}
	if got, want := r.AutoVsBestMs, 50.0/40; got != want {
		t.Errorf("Auto / best time = %g, want %g", got, want)
	}
	if got, want := r.AutoVsBestBytes, 2.0; got != want {
		t.Errorf("Auto / best bytes = %g, want %g", got, want)
	}
	for i := range r.Cells {
		r.Cells[i].DeviceBytes = -1
	}
	r.ratios()
	if got, want := r.InPlaceVsBound, float64(90<<10)/bound; got != want {
		t.Errorf("without device bytes: in place / bound = %g, want %g (file bytes)", got, want)
	}
	if got, want := r.AutoVsBestBytes, 1.0; got != want {
		t.Errorf("without device bytes: Auto / best bytes = %g, want %g", got, want)
	}
}

// TestEvaluateModes_worstRow: each target is the worst row's figure.
func TestEvaluateModes_worstRow(t *testing.T) {
	m := &ModesReport{Device: "loop0", Rows: []ModesRow{
		{DBBytes: 16 << 20, DirtyPct: 0.1, InPlaceVsBound: 1.4, AutoVsBestMs: 1.0, AutoVsBestBytes: 1.0},
		{DBBytes: 64 << 20, DirtyPct: 1, InPlaceVsBound: 0.9, AutoVsBestMs: 1.3, AutoVsBestBytes: 1.05},
	}}
	ts := EvaluateModes(m)
	if len(ts) != 3 {
		t.Fatalf("%d targets: %+v", len(ts), ts)
	}
	for i, want := range []struct {
		v     float64
		where string
		met   bool
	}{{1.4, "16.0 MiB, 0.1% dirty", false}, {1.3, "64.0 MiB, 1% dirty", false}, {1.05, "64.0 MiB, 1% dirty", true}} {
		if g := ts[i]; g.Measured != want.v || g.Where != want.where || g.Met != want.met {
			t.Errorf("target %q: %g at %q met %v; want %g at %q met %v", g.Name, g.Measured, g.Where, g.Met, want.v, want.where, want.met)
		}
	}
}

// TestEvaluateWear: Auto's device bytes against WAL NORMAL's, and its
// longest wait against CheckpointInterval + 1 s (6 s).
func TestEvaluateWear(t *testing.T) {
	wr := &WearReport{Results: []WearResult{
		{Mode: WearStoreAuto, DeviceBytes: 10 << 20, MaxDurableWaitMs: 6600},
		{Mode: WearStoreCopy, DeviceBytes: 1000 << 20, MaxDurableWaitMs: 20000},
		{Mode: WearWALNormal, DeviceBytes: 12 << 20, MaxDurableWaitMs: 50000},
	}}
	ts := EvaluateWear(wr)
	if len(ts) != 2 {
		t.Fatalf("%d targets: %+v", len(ts), ts)
	}
	if g := ts[0]; g.Measured != 10.0/12 || !g.Met {
		t.Errorf("bytes target %+v; want 0.83, met", g)
	}
	if g := ts[1]; g.Measured != 1.1 || g.Met {
		t.Errorf("wait target %+v; want 1.1 (6.6 s over 6 s), missed", g)
	}
}

// TestWriteMarkdown_modesAndWear: both sections and their targets are
// in the report.
func TestWriteMarkdown_modesAndWear(t *testing.T) {
	r := &Report{FS: FSInfo{Type: "fuseblk (exfat)"}}
	r.Modes = &ModesReport{Plan: ModesPlan{Iters: 3}, Device: "loop0", Rows: []ModesRow{{DBMiB: 16, DBBytes: 16 << 20, DirtyPct: 0.1, DirtyPages: 9, PageSize: 4096, Iterations: 3,
		Cells: []ModeCell{{Mode: ModeCopy, Ms: 90, DeviceBytes: 17 << 20, FileBytes: 16 << 20}, {Mode: ModeInPlace, Ms: 20, DeviceBytes: 200 << 10, FileBytes: 80 << 10, InPlace: 3},
			{Mode: ModeAuto, Ms: 21, DeviceBytes: 200 << 10, FileBytes: 80 << 10, InPlace: 3}}, InPlaceVsBound: 1.4, AutoVsBestMs: 1.05, AutoVsBestBytes: 1}}}
	r.Wear = &WearReport{Plan: WearPlan{MiB: 128, Rate: 20}, Device: "loop0", Results: []WearResult{
		{Mode: WearStoreAuto, Commits: 1200, DeviceBytes: 10 << 20, Checkpoints: 12, InPlace: 12}, {Mode: WearWALNormal, Commits: 1200, DeviceBytes: 12 << 20}}}
	r.Targets = Evaluate(r)
	var b strings.Builder
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### Checkpoint modes", "| 16.0 MiB | 0.1% (9) | 90.0 | 20.0 | 21.0 | 17.0 MiB / 16.0 MiB | 200.0 KiB / 80.0 KiB | 200.0 KiB / 80.0 KiB (3/3) | **1.40x** | **1.05x** | **1.00x** |",
		"| store, Auto (default) | 1200 | 10.0 MiB |", "| 12 (12) |", "store, Auto (default) wrote **0.83x** the device bytes",
		"in-place checkpoint device bytes vs 2.1x the dirty pages + 64 KiB (worst row) [16.0 MiB, 0.1% dirty]",
		"wear: store (Auto) device bytes vs stock WAL NORMAL's",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}
