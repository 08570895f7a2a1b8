package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/ejectsafe/ejectsafe/store"
)

// Target is one of issue #7's targets, evaluated on a report. Targets are
// reported, never asserted.
type Target struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	AtLeast  bool    `json:"at_least"` // the measured figure must be >= Limit; otherwise <=
	Met      bool    `json:"met"`
	Where    string  `json:"where,omitempty"` // which case the figure is (the worst of several)
	Note     string  `json:"note,omitempty"`
}

// Margin says by how much the target is met or missed.
func (t Target) Margin() string {
	d := math.Abs(t.Measured - t.Limit)
	pct := 100 * d / t.Limit
	if t.Met {
		return fmt.Sprintf("met (%.2fx to spare)", d)
	}
	if t.AtLeast {
		return fmt.Sprintf("**missed** by %.2fx (%.0f%% short)", d, pct)
	}
	return fmt.Sprintf("**missed** by %.2fx (%.0f%% over)", d, pct)
}

func target(name string, measured, limit float64, atLeast bool, where, note string) Target {
	met := measured <= limit
	if atLeast {
		met = measured >= limit
	}
	return Target{Name: name, Measured: measured, Limit: limit, AtLeast: atLeast, Met: met, Where: where, Note: note}
}

// Evaluate computes the targets the report has figures for.
func Evaluate(r *Report) []Target {
	var ts []Target
	ratio := func(mode, variant string) (float64, bool) {
		for _, c := range r.Commit {
			if c.Mode == mode && c.Variant == variant {
				return c.StoreRatio, true
			}
		}
		return 0, false
	}
	for _, mode := range []string{"autocommit", Unprepared} {
		if v, ok := ratio(mode, Limit); ok {
			ts = append(ts, target("store commit throughput vs the limit arm (SQLite's WAL over malloc'd buffers), steady state, "+mode, v, 0.9, true, "", "issue #12"))
		}
	}
	for _, mode := range []string{"autocommit", "tx100"} {
		if v, ok := ratio(mode, Memory); ok {
			ts = append(ts, target("store commit throughput vs `:memory:`, steady state, "+mode, v, 0.85, true, "", ""))
		}
	}
	for _, mode := range []string{"autocommit", "tx100"} {
		if v, ok := ratio(mode, WALFull); ok {
			ts = append(ts, target("store commit throughput vs stock WAL synchronous=FULL, "+mode, v, 20, true, "",
				"the issue sets this target for the exFAT mount"))
		}
	}
	worst := func(f func(CheckpointResult) float64) (float64, string, bool) {
		w, where, ok := 0.0, "", false
		for _, c := range r.Checkpoint {
			if c.DBMiB < 16 {
				continue
			}
			if v := f(c); !ok || v > w {
				w, where, ok = v, fmt.Sprintf("%d MiB, %g%% dirty", c.DBMiB, c.DirtyPct), true
			}
		}
		return w, where, ok
	}
	if v, where, ok := worst(func(c CheckpointResult) float64 { return c.StoreVsRaw }); ok {
		ts = append(ts, target("checkpoint time vs raw copy floor, databases >= 16 MiB (worst case)", v, 1.2, false, where, ""))
	}
	if v, where, ok := worst(func(c CheckpointResult) float64 { return c.StoreVsVacuum }); ok {
		ts = append(ts, target("checkpoint time vs `VACUUM INTO`, databases >= 16 MiB (worst case)", v, 0.5, false, where, ""))
	}
	for _, l := range r.Latency {
		if l.Variant == Store && l.DuringCommits > 0 {
			ts = append(ts, target("store commit p99 during a checkpoint vs idle", l.P99Ratio, 2, false,
				fmt.Sprintf("%d MiB database", l.DBMiB), ""))
		}
	}
	if m := r.Memory; m != nil && m.WALBytes > 0 {
		ts = append(ts, target("peak RSS above a fixed base vs WAL bytes, at the WAL cap", m.RSSPerWAL, 1.2, false,
			fmt.Sprintf("%s WAL, base %s", mibStr(m.WALBytes), mibStr(m.BaseRSS)), ""))
	}
	if rd := r.Read; rd != nil && rd.Ratio > 0 {
		ts = append(ts, target("read-heavy workload time vs stock WAL NORMAL (point reads, range scans, database 4x the page cache)", rd.Ratio, 1.1, false,
			fmt.Sprintf("%.1f MiB database", rd.DBMiB), "issue #12"))
	}
	if o := r.Open; o != nil && o.SmallMs > 0 {
		ts = append(ts, target(fmt.Sprintf("open time flat in database size: %d MiB vs %d MiB", o.LargeMiB, o.SmallMiB), o.Ratio, 1.5, false, "",
			"\"flat\" taken as within 1.5x"))
	}
	ts = append(ts, EvaluateModes(r.Modes)...)
	ts = append(ts, EvaluateWear(r.Wear)...)
	return ts
}

// WriteMarkdown writes the report as Markdown: the run's machine,
// filesystem and command, one table per measurement, then the targets.
// Headings start at level 2, so a report pastes into BENCHMARKS.md.
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	plan := "full plan"
	switch {
	case r.Wear != nil && r.Modes != nil:
		plan = "wear section and checkpoint-modes table only"
	case r.Wear != nil:
		plan = "wear section only"
	case r.Modes != nil && r.Commit == nil:
		plan = "checkpoint-modes table only"
	case r.Quick:
		plan = "quick plan"
	}
	p("## `ejectsafe bench` on %s", r.FS.Type)
	p("")
	p("- Command: `%s`", r.Command)
	p("- Machine: %s", r.Machine.summary())
	fs := r.FS.Type
	if r.FS.Device != "" {
		fs += " on " + r.FS.Device
	}
	if r.FS.MountPoint != "" {
		fs += ", mounted at " + r.FS.MountPoint
	}
	if len(r.FS.Options) > 0 {
		fs += " (" + strings.Join(r.FS.Options, ",") + ")"
	}
	p("- Filesystem: %s; directory %s", fs, r.FS.Dir)
	for _, n := range r.FS.StoreNotes {
		p("  - store.Open logged: %s", n)
	}
	p("- Date: %s; measuring took %.0f s (%s)", r.Started.Format("2006-01-02 15:04 UTC"), r.Seconds, plan)

	if len(r.Commit) > 0 {
		p("")
		p("### 1. Commit throughput")
		p("")
		c0 := r.Commit[0]
		p("Single-row autocommit INSERTs (a %d-byte blob, prepared statement) and 100-row", RowBytes)
		p("transactions, same schema, same driver, one process, in alternating rounds")
		p("(%d timed rounds; %d commits per round, fsync-bound variants fewer). The store", c0.Rounds, c0.PerRound)
		p("checkpoints between rounds, untimed (steady state); stock WAL runs its own")
		p("auto-checkpoint inside its commits. Mode autocommit-exec: the same INSERT")
		p("through Exec with its SQL text (prepared and finalized on every call), for")
		p("store, limit and `:memory:`. limit: SQLite's own WAL code over malloc'd")
		p("buffers (bench/limitvfs.c), exclusive locking mode, no I/O, checkpointed")
		p("between rounds like the store: the most a WAL commit can do through this")
		p("driver. Last column: the store's throughput relative to the variant's,")
		p("median of the per-round ratios (range).")
		p("")
		p("| mode | variant | commits/s | rows/s | p50 µs | p99 µs | store relative to it |")
		p("|---|---|---:|---:|---:|---:|---|")
		for _, c := range r.Commit {
			rel := "1"
			if c.Variant != Store {
				rel = fmt.Sprintf("**%sx** (%s-%s)", ratioStr(c.StoreRatio), ratioStr(c.StoreRatioMin), ratioStr(c.StoreRatioMax))
			}
			p("| %s | %s: %s | %s | %s | %.1f | %.1f | %s |", c.Mode, c.Variant, VariantDesc[c.Variant],
				grp(c.CommitsPerSec), grp(c.RowsPerSec), c.P50us, c.P99us, rel)
		}
	}

	if len(r.Latency) > 0 {
		p("")
		p("### 2. Commit latency while a checkpoint runs")
		p("")
		p("Single-row autocommit INSERTs paced at %d/s into a database of %d MiB.", r.Latency[0].Rate, r.Latency[0].DBMiB)
		for _, l := range r.Latency {
			p("%s: %s.", l.Variant, l.How)
		}
		p("")
		p("| variant | checkpoints (mean ms) | idle commits | idle p50 µs | idle p99 µs | idle max µs | during commits | during p50 µs | during p99 µs | during max µs | p99 during/idle |")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, l := range r.Latency {
			p("| %s | %d (%.1f) | %d | %.1f | %.1f | %.0f | %d | %.1f | %.1f | %.0f | **%.2fx** |", l.Variant, l.Checkpoints, l.CheckpointMs,
				l.IdleCommits, l.IdleP50us, l.IdleP99us, l.IdleMaxUs, l.DuringCommits, l.DuringP50us, l.DuringP99us, l.DuringMaxUs, l.P99Ratio)
		}
	}

	if len(r.Checkpoint) > 0 {
		p("")
		p("### 3. Checkpoint time and bytes written")
		p("")
		p("A database of 1000-byte rows, an untimed UPDATE dirtying the share of pages")
		p("given, then in rotating order: the store's `Checkpoint` (copy, apply the")
		p("pages, fsync, journal, rename, directory fsync); `raw`, copy + fsync +")
		p("rename over the previous copy + directory fsync of the same file (the floor")
		p("for a copy on this filesystem); `VACUUM INTO` a new file; the backup API into")
		p("a new file. Medians; ratios are medians of per-iteration ratios (below 1: the")
		p("store is faster). Written: bytes passed to write, pwrite and copy_file_range")
		p("(/proc/self/io wchar), MiB.")
		p("")
		p("| database | dirty (pages) | n | store ms | raw ms | VACUUM INTO ms | backup ms | store/raw | store/VACUUM | store/backup | written store / raw / VACUUM / backup |")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
		for _, c := range r.Checkpoint {
			p("| %s | %g%% (%d) | %d | %s | %s | %s | %s | **%s** | **%s** | %s | %s / %s / %s / %s |",
				mibStr(c.DBBytes), c.DirtyPct, c.DirtyPages, c.Iterations, msStr(c.StoreMs), msStr(c.RawMs), msStr(c.VacuumMs), msStr(c.BackupMs),
				ratioStr(c.StoreVsRaw), ratioStr(c.StoreVsVacuum), ratioStr(c.StoreVsBackup),
				mibNum(c.StoreBytes), mibNum(c.RawBytes), mibNum(c.VacuumBytes), mibNum(c.BackupBytes))
		}
	}

	if m := r.Memory; m != nil {
		p("")
		p("### 4. Memory at the WAL cap")
		p("")
		p("Peak RSS (VmHWM) of a fresh child process that filled the WAL to its cap")
		p("(commits until SQLITE_FULL), over the peak RSS of one that opened an empty store.")
		p("")
		p("| WAL cap | WAL bytes | WAL allocated | base RSS | peak RSS | peak - base | (peak - base) / WAL bytes |")
		p("|---:|---:|---:|---:|---:|---:|---:|")
		p("| %s | %s | %s | %s | %s | %s | **%.2fx** |", mibStr(m.CapBytes), mibStr(m.WALBytes), mibStr(m.WALAllocated),
			mibStr(m.BaseRSS), mibStr(m.PeakRSS), mibStr(m.ExtraRSS), m.RSSPerWAL)
	}

	if o := r.Open; o != nil {
		p("")
		p("### 5. Open time")
		p("")
		cache := "the database's pages dropped from the page cache first (fadvise DONTNEED)"
		if !o.ColdCache {
			cache = "warm page cache (dropping it is not available here)"
		}
		p("`store.Open` plus a first query (one row by key) on a clean database,")
		p("checkpointed and closed; %s. Median of %d, alternating.", cache, o.Iterations)
		p("")
		p("| database | open + first query, ms |")
		p("|---|---:|")
		p("| %d MiB | %s |", o.SmallMiB, msStr(o.SmallMs))
		p("| %d MiB | %s |", o.LargeMiB, msStr(o.LargeMs))
		p("| ratio | **%sx** |", ratioStr(o.Ratio))
	}

	if rd := r.Read; rd != nil {
		p("")
		p("### 6. Reads")
		p("")
		p("Random point reads by key (%d a round) and 100-row range scans (%d a round),", rd.PointPerRnd, rd.ScanPerRnd)
		p("prepared, one connection, on a %.1f MiB database (four times SQLite's default", rd.DBMiB)
		p("page cache of 2,000 KiB), checkpointed, in the same directory: the store")
		p("(defaults) vs stock WAL, synchronous=NORMAL. %d timed rounds, alternating.", rd.Rounds)
		p("")
		p("| store µs/round | stock WAL µs/round | store/stock time |")
		p("|---:|---:|---|")
		p("| %s | %s | **%sx** (%s-%s) |", grp(rd.StoreUsRound), grp(rd.StockUsRound), ratioStr(rd.Ratio), ratioStr(rd.RatioMin), ratioStr(rd.RatioMax))
	}

	if wr := r.Wear; wr != nil {
		writeWear(p, wr)
	}

	if m := r.Modes; m != nil {
		writeModes(p, m)
	}

	if len(r.Targets) > 0 {
		p("")
		p("### Targets (issues #7, #11; reported, not asserted)")
		p("")
		p("| target | measured | target | result |")
		p("|---|---:|---:|---|")
		for _, t := range r.Targets {
			cmp := "<="
			if t.AtLeast {
				cmp = ">="
			}
			name := t.Name
			if t.Where != "" {
				name += " [" + t.Where + "]"
			}
			if t.Note != "" {
				name += " (" + t.Note + ")"
			}
			p("| %s | %sx | %s %gx | %s |", name, ratioStr(t.Measured), cmp, t.Limit, t.Margin())
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// grp formats a count with thousands separators.
func grp(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func ratioStr(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func msStr(ms float64) string {
	if ms >= 100 {
		return fmt.Sprintf("%.0f", ms)
	}
	return fmt.Sprintf("%.1f", ms)
}

func mibNum(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", float64(n)/(1<<20))
}

// writeWear writes the wear section's table (wear.go says what each
// column measures).
func writeWear(p func(string, ...any), wr *WearReport) {
	pl := wr.Plan
	p("")
	p("### Wear: a realistic application, device bytes written per mode")
	p("")
	p("A %d MiB database (1000-byte rows) takes random single-row UPDATEs at %d commits/s", pl.MiB, pl.Rate)
	p("for %s per mode, each mode with its defaults.", pl.Duration)
	dev := wr.Device
	if dev == "" {
		dev = "not measured (not on a block device this can read)"
	} else {
		dev = "/sys/class/block/" + dev + "/stat, from after the database is in place to after close and a flush of the device"
	}
	p("Device bytes: %s (every writer of that device counts: measure on a device of its own, such as a loop device).", dev)
	if wr.Throttle != "" {
		p("Throttle: %s.", wr.Throttle)
	}
	p("Wait for durability: from a commit's return to the end of the first fsync that made it")
	p("durable on the drive (0: fsynced before returning; the store: the end of the first checkpoint")
	p("that started after the commit returned; stock WAL NORMAL: the next auto-checkpoint, or the")
	p("close-time checkpoint for the last commits).")
	p("")
	p("| mode | commits | device bytes | bytes/commit | checkpoints (in place) | checkpoint mean / max ms | longest wait for durability ms | commit p99 / max ms |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|")
	var normal int64
	for _, x := range wr.Results {
		ck := fmt.Sprint(x.Checkpoints)
		if isStoreWear(x.Mode) {
			ck += fmt.Sprintf(" (%d)", x.InPlace)
		}
		p("| %s | %d | %s | %s | %s | %s / %s | %s | %s / %s |", x.Mode, x.Commits, bytesStr(x.DeviceBytes),
			bytesStr(int64(x.BytesPerCommit)), ck, msStr(x.CkptMeanMs), msStr(x.CkptMaxMs),
			msStr(x.MaxDurableWaitMs), msStr(x.CommitP99Ms), msStr(x.CommitMaxMs))
		if x.Mode == WearWALNormal {
			normal = x.DeviceBytes
		}
	}
	if normal > 0 {
		p("")
		for _, x := range wr.Results {
			if isStoreWear(x.Mode) && x.DeviceBytes >= 0 {
				p("- %s wrote **%.2fx** the device bytes of %s.", x.Mode, float64(x.DeviceBytes)/float64(normal), WearWALNormal)
			}
		}
	}
}

func isStoreWear(mode string) bool {
	return mode == WearStoreAuto || mode == WearStoreInPlace || mode == WearStoreCopy
}

// EvaluateWear is issue 11's targets for the wear workload: the store in
// Auto writes no more device bytes than stock WAL NORMAL for the same
// commits, and no commit waits longer than CheckpointInterval + 1 s to
// be durable. Reported, never asserted.
func EvaluateWear(wr *WearReport) []Target {
	if wr == nil {
		return nil
	}
	var auto, normal *WearResult
	for i := range wr.Results {
		switch wr.Results[i].Mode {
		case WearStoreAuto:
			auto = &wr.Results[i]
		case WearWALNormal:
			normal = &wr.Results[i]
		}
	}
	if auto == nil {
		return nil
	}
	var ts []Target
	if normal != nil && auto.DeviceBytes >= 0 && normal.DeviceBytes > 0 {
		ts = append(ts, target("wear: store (Auto) device bytes vs stock WAL NORMAL's", float64(auto.DeviceBytes)/float64(normal.DeviceBytes), 1, false,
			fmt.Sprintf("%s vs %s", bytesStr(auto.DeviceBytes), bytesStr(normal.DeviceBytes)), "issue 11"))
	}
	limit := ms(store.DefaultCheckpointInterval + time.Second)
	ts = append(ts, target("wear: store (Auto) longest wait for durability vs CheckpointInterval + 1 s", auto.MaxDurableWaitMs/limit, 1, false,
		fmt.Sprintf("%s ms vs %s ms", msStr(auto.MaxDurableWaitMs), msStr(limit)), "issue 11"))
	return ts
}

// writeModes writes the checkpoint-modes table (modes.go says what each
// column measures).
func writeModes(p func(string, ...any), m *ModesReport) {
	p("")
	p("### Checkpoint modes: time and bytes per `CheckpointMode`")
	p("")
	p("One database per mode (1000-byte rows, copied from one seed), each a store with")
	p("`ManualCheckpoint` and its `CheckpointMode`, open for the whole size; per iteration")
	p("an untimed UPDATE dirties the same rows in each, then each checkpoints, in rotating")
	p("order, after one untimed checkpoint each (the first makes the store's journal).")
	p("Medians of %d iterations.", m.Plan.Iters)
	if m.Device == "" {
		p("Device bytes: not measured (not on a block device this can read); the ratios use file bytes.")
	} else {
		p("Device bytes: /sys/class/block/%s/stat around each checkpoint, the device flushed before and after", m.Device)
		p("(every writer of that device counts: measure on a device of its own, such as a loop device).")
	}
	p("File bytes: bytes this process passed to write-type system calls (/proc/self/io wchar).")
	if m.Throttle != "" {
		p("Throttle: %s.", m.Throttle)
	}
	p("In place / bound: InPlace's bytes over %.1f x the dirty pages + 64 KiB (issue 11: <= 1).", InPlaceFactor)
	p("Auto / best: Auto's median over the smaller of Copy's and InPlace's (issue 11: <= 1.1);")
	p("Auto's cell says how many of its checkpoints went in place.")
	p("")
	p("| database | dirty (pages) | Copy ms | InPlace ms | Auto ms | Copy device / file bytes | InPlace device / file bytes | Auto device / file bytes (in place) | in place / bound | Auto / best, time | Auto / best, bytes |")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range m.Rows {
		cp, ip, au := r.Cell(ModeCopy), r.Cell(ModeInPlace), r.Cell(ModeAuto)
		p("| %s | %g%% (%d) | %s | %s | %s | %s / %s | %s / %s | %s / %s (%d/%d) | **%.2fx** | **%.2fx** | **%.2fx** |",
			mibStr(r.DBBytes), r.DirtyPct, r.DirtyPages, msStr(cp.Ms), msStr(ip.Ms), msStr(au.Ms),
			bytesStr(cp.DeviceBytes), bytesStr(cp.FileBytes), bytesStr(ip.DeviceBytes), bytesStr(ip.FileBytes),
			bytesStr(au.DeviceBytes), bytesStr(au.FileBytes), au.InPlace, r.Iterations,
			r.InPlaceVsBound, r.AutoVsBestMs, r.AutoVsBestBytes)
	}
}
