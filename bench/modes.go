package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ejectsafe/ejectsafe/store"
)

// The checkpoint-modes table (issue 11, item 5): checkpoint time and
// bytes for each store.Options.CheckpointMode, per database size and
// share of dirty pages. For each size, one database is built and copied
// into a directory per mode, each opened as a store with that mode and
// ManualCheckpoint, and kept open for the whole size (Auto learns the
// drive's speeds across its checkpoints, as it would in use). Each
// iteration dirties the same rows of every mode's database (untimed),
// then checkpoints each mode in an order that rotates with the
// iteration, after one untimed checkpoint each (the first makes the
// store's journal). Measured per checkpoint:
//
//   - time: the Checkpoint call;
//   - device bytes: sectors written to the block device under the
//     directory (wear_linux.go), flushed before and after; -1 where the
//     directory is not on a block device this can read (and noisy on a
//     device shared with anything else: use a loop device of its own);
//   - file bytes: bytes this process passed to write-type system calls
//     (/proc/self/io wchar), -1 where the platform does not say;
//   - whether the checkpoint went in place (Stats.LastCheckpointMode).
//
// Per row, the targets of issue 11: in-place bytes over 2.1 x the dirty
// pages + 64 KiB (<= 1), and Auto over the better fixed mode, in time
// and in bytes (<= 1.1).

// Checkpoint modes of the table, in report order.
const (
	ModeCopy    = "Copy"
	ModeInPlace = "InPlace"
	ModeAuto    = "Auto"
)

// ckptModes maps the table's modes to the store's.
var ckptModes = []struct {
	name string
	mode store.CheckpointMode
}{
	{ModeCopy, store.CheckpointCopy},
	{ModeInPlace, store.CheckpointInPlace},
	{ModeAuto, store.CheckpointAuto},
}

// DefaultModesMiB and DefaultModesDirty are the sizes and dirty shares
// of `ejectsafe bench --modes-table` (issue 11: 16 MiB to 1 GiB at 0.1%,
// 1%, 10%, 50%).
var (
	DefaultModesMiB   = []int{16, 64, 256, 1024}
	DefaultModesDirty = []float64{0.1, 1, 10, 50}
)

// In-place bound of issue 11: bytes per in-place checkpoint <=
// InPlaceFactor x the dirty pages + InPlaceSlack.
const (
	InPlaceFactor = 2.1
	InPlaceSlack  = 64 << 10
)

// ModesPlan is the checkpoint-modes table's plan.
type ModesPlan struct {
	Sizes []int     `json:"sizes_mib"`
	Dirty []float64 `json:"dirty_pct"`
	Iters int       `json:"iterations"`
	// ThrottleMBps, when > 0, caps the FUSE daemon's writes to the loop
	// device (as WearPlan's).
	ThrottleMBps float64 `json:"throttle_mbps"`
}

// ModeCell is one mode's medians on one row.
type ModeCell struct {
	Mode        string  `json:"mode"`
	Ms          float64 `json:"ms"`
	DeviceBytes int64   `json:"device_bytes"` // -1: not measured
	FileBytes   int64   `json:"file_bytes"`   // -1: not measured
	StoreBytes  int64   `json:"store_bytes"`  // what the store says it wrote (Stats.LastCheckpointWritten)
	InPlace     int     `json:"in_place"`     // iterations whose checkpoint went in place
}

// Bytes is the cell's device bytes where measured, else its file bytes.
func (c ModeCell) Bytes() int64 {
	if c.DeviceBytes >= 0 {
		return c.DeviceBytes
	}
	return c.FileBytes
}

// ModesRow is one database size and dirty share.
type ModesRow struct {
	DBMiB      int        `json:"db_mib"`
	DBBytes    int64      `json:"db_bytes"`
	DirtyPct   float64    `json:"dirty_pct"`
	DirtyPages int64      `json:"dirty_pages"` // WAL frames the dirtying UPDATE wrote (median)
	PageSize   int64      `json:"page_size"`
	Iterations int        `json:"iterations"`
	Cells      []ModeCell `json:"cells"` // in ckptModes order
	// InPlaceVsBound is InPlace's bytes (device where measured, else
	// file) over InPlaceFactor x DirtyPages x PageSize + InPlaceSlack.
	InPlaceVsBound float64 `json:"in_place_vs_bound"`
	// AutoVsBestMs and AutoVsBestBytes are Auto's median over the
	// smaller of Copy's and InPlace's.
	AutoVsBestMs    float64 `json:"auto_vs_best_ms"`
	AutoVsBestBytes float64 `json:"auto_vs_best_bytes"`
}

// Cell is the row's cell for mode, or the zero cell.
func (r ModesRow) Cell(mode string) ModeCell {
	for _, c := range r.Cells {
		if c.Mode == mode {
			return c
		}
	}
	return ModeCell{Mode: mode, DeviceBytes: -1, FileBytes: -1}
}

// ModesReport is the checkpoint-modes table.
type ModesReport struct {
	Plan     ModesPlan  `json:"plan"`
	Device   string     `json:"device"`   // the block device counted, or ""
	Throttle string     `json:"throttle"` // what --throttle did, or why not
	Rows     []ModesRow `json:"rows"`
}

// modeSample is one checkpoint of one mode.
type modeSample struct {
	d                   time.Duration
	dev, file, storeSay int64
	inPlace             bool
}

// MeasureModes runs the checkpoint-modes table in dir.
func MeasureModes(ctx context.Context, dir string, p ModesPlan, log func(string, ...any)) (*ModesReport, error) {
	if len(p.Sizes) == 0 || len(p.Dirty) == 0 || p.Iters <= 0 {
		return nil, fmt.Errorf("bench: modes: sizes, dirty shares and iterations must be given (got %v, %v, %d)", p.Sizes, p.Dirty, p.Iters)
	}
	rep := &ModesReport{Plan: p}
	dev, throttled, undo := measureOn(dir, p.ThrottleMBps, "device bytes not measured, file bytes (wchar) used", log)
	defer undo()
	rep.Device, rep.Throttle = dev.name, throttled
	for _, mib := range p.Sizes {
		rows, err := measureModesSize(ctx, dir, dev, mib, p, log)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, fmt.Errorf("%d MiB: %w", mib, err)
		}
	}
	return rep, nil
}

func measureModesSize(ctx context.Context, dir string, dev blockDev, mib int, p ModesPlan, log func(string, ...any)) ([]ModesRow, error) {
	t0 := time.Now()
	seedPath := filepath.Join(dir, "seed.db")
	if err := BuildClean(ctx, seedPath, mib); err != nil {
		return nil, err
	}
	dbs := make([]*CkptDB, len(ckptModes))
	defer func() {
		for i, c := range dbs {
			if c != nil {
				c.Close()
				os.RemoveAll(filepath.Join(dir, ckptModes[i].name))
			}
		}
	}()
	for i, m := range ckptModes {
		d := filepath.Join(dir, m.name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		c := &CkptDB{dir: d, path: filepath.Join(d, "ckpt.db"), mib: mib}
		if err := copyFileSync(seedPath, c.path); err != nil {
			return nil, err
		}
		s, err := openStore(c.path, store.Options{ManualCheckpoint: true, MaxWALBytes: walCapFor(mib), CheckpointMode: m.mode})
		if err != nil {
			return nil, err
		}
		c.s = s
		dbs[i] = c
		// The store's first checkpoint of a database makes its journal
		// (a fixed 256 KiB on the drive): not what a checkpoint costs in
		// use, so done here, untimed.
		if _, err := c.Dirty(ctx, 0.1); err != nil {
			return nil, err
		}
		if err := s.Checkpoint(ctx); err != nil {
			return nil, fmt.Errorf("%s: first checkpoint: %w", m.name, err)
		}
	}
	removeDB(seedPath)
	// CkptDB.Dirty counts frames of 4096-byte pages; the bound needs the
	// real page size.
	var ps int64
	if err := dbs[0].s.DB().QueryRowContext(ctx, "PRAGMA page_size").Scan(&ps); err != nil {
		return nil, err
	}
	if ps != 4096 {
		return nil, fmt.Errorf("page size %d; the dirty-page count assumes 4096", ps)
	}
	size := dbs[0].Size()
	log("%s database, one per mode, built in %s", mibStr(size), roundDur(time.Since(t0)))
	var out []ModesRow
	for _, pct := range p.Dirty {
		samples := make([][]modeSample, len(ckptModes))
		var frames []float64
		for it := 0; it < p.Iters; it++ {
			for k := range ckptModes {
				if err := ctx.Err(); err != nil {
					return out, err
				}
				i := (k + it) % len(ckptModes)
				n, err := dbs[i].Dirty(ctx, pct)
				if err != nil {
					return out, fmt.Errorf("%s: dirty: %w", ckptModes[i].name, err)
				}
				if i == 0 {
					frames = append(frames, float64(n))
				}
				s, err := checkpointOnce(ctx, dbs[i].s, dev)
				if err != nil {
					return out, fmt.Errorf("%s: %w", ckptModes[i].name, err)
				}
				samples[i] = append(samples[i], s)
			}
		}
		row := ModesRow{DBMiB: mib, DBBytes: size, DirtyPct: pct, DirtyPages: int64(median(frames)), PageSize: 4096, Iterations: p.Iters}
		for i, m := range ckptModes {
			row.Cells = append(row.Cells, summarizeMode(m.name, samples[i]))
		}
		row.ratios()
		out = append(out, row)
		ip, auto := row.Cell(ModeInPlace), row.Cell(ModeAuto)
		log("%s, %g%% dirty (%d pages): Copy %s ms %s, InPlace %s ms %s (%.2fx the bound), Auto %s ms %s (in place %d/%d; %.2fx / %.2fx the best fixed mode)",
			mibStr(size), pct, row.DirtyPages,
			msStr(row.Cell(ModeCopy).Ms), bytesStr(row.Cell(ModeCopy).Bytes()),
			msStr(ip.Ms), bytesStr(ip.Bytes()), row.InPlaceVsBound,
			msStr(auto.Ms), bytesStr(auto.Bytes()), auto.InPlace, p.Iters, row.AutoVsBestMs, row.AutoVsBestBytes)
	}
	return out, nil
}

// checkpointOnce times one checkpoint of s and counts what it wrote.
// The device's cache is flushed before and after (dev.written), so the
// bytes are the checkpoint's own.
func checkpointOnce(ctx context.Context, s *store.Store, dev blockDev) (modeSample, error) {
	d0 := dev.written()
	w0 := bytesWritten()
	t0 := time.Now()
	if err := s.Checkpoint(ctx); err != nil {
		return modeSample{}, err
	}
	out := modeSample{d: time.Since(t0), dev: -1, file: -1}
	if w1 := bytesWritten(); w0 >= 0 && w1 >= 0 {
		out.file = w1 - w0
	}
	if d1 := dev.written(); d0 >= 0 && d1 >= 0 {
		out.dev = d1 - d0
	}
	st := s.Stats()
	out.storeSay = st.LastCheckpointWritten
	out.inPlace = st.LastCheckpointMode == store.CheckpointInPlace
	return out, nil
}

func summarizeMode(name string, ss []modeSample) ModeCell {
	c := ModeCell{Mode: name}
	var ms, dev, file, say []float64
	for _, s := range ss {
		ms = append(ms, float64(s.d.Microseconds())/1e3)
		dev = append(dev, float64(s.dev))
		file = append(file, float64(s.file))
		say = append(say, float64(s.storeSay))
		if s.inPlace {
			c.InPlace++
		}
	}
	c.Ms = median(ms)
	c.DeviceBytes, c.FileBytes, c.StoreBytes = medianBytes(dev), medianBytes(file), int64(median(say))
	return c
}

// medianBytes is the median of byte counts, -1 when any is -1.
func medianBytes(xs []float64) int64 {
	for _, x := range xs {
		if x < 0 {
			return -1
		}
	}
	return int64(median(xs))
}

// ratios fills the row's target ratios from its cells.
func (r *ModesRow) ratios() {
	cp, ip, auto := r.Cell(ModeCopy), r.Cell(ModeInPlace), r.Cell(ModeAuto)
	bound := InPlaceFactor*float64(r.DirtyPages*r.PageSize) + InPlaceSlack
	if ip.Bytes() >= 0 {
		r.InPlaceVsBound = float64(ip.Bytes()) / bound
	}
	if best := min(cp.Ms, ip.Ms); best > 0 {
		r.AutoVsBestMs = auto.Ms / best
	}
	if best := min(cp.Bytes(), ip.Bytes()); best > 0 && auto.Bytes() >= 0 {
		r.AutoVsBestBytes = float64(auto.Bytes()) / float64(best)
	}
}

// EvaluateModes is the worst row of the table for each of issue 11's
// checkpoint targets. Reported, never asserted.
func EvaluateModes(m *ModesReport) []Target {
	if m == nil || len(m.Rows) == 0 {
		return nil
	}
	what := "device bytes"
	if m.Device == "" {
		what = "file bytes (wchar; no block device)"
	}
	worst := func(f func(ModesRow) float64) (float64, string) {
		w, where := 0.0, ""
		for i, r := range m.Rows {
			if v := f(r); i == 0 || v > w {
				w, where = v, fmt.Sprintf("%s, %g%% dirty", mibStr(r.DBBytes), r.DirtyPct)
			}
		}
		return w, where
	}
	var ts []Target
	v, where := worst(func(r ModesRow) float64 { return r.InPlaceVsBound })
	ts = append(ts, target(fmt.Sprintf("in-place checkpoint %s vs %.1fx the dirty pages + 64 KiB (worst row)", what, InPlaceFactor), v, 1, false, where, "issue 11"))
	v, where = worst(func(r ModesRow) float64 { return r.AutoVsBestMs })
	ts = append(ts, target("Auto checkpoint time vs the better fixed mode (worst row)", v, 1.1, false, where, "issue 11"))
	v, where = worst(func(r ModesRow) float64 { return r.AutoVsBestBytes })
	ts = append(ts, target("Auto checkpoint "+what+" vs the better fixed mode (worst row)", v, 1.1, false, where, "issue 11"))
	return ts
}
