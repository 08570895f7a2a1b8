// Package bench measures the store against stock SQLite on one filesystem:
// commit throughput and latency, commit latency while a checkpoint runs,
// checkpoint time and bytes written, memory at the WAL cap, and open time.
// Every figure comes with its baseline measured in the same run, in the
// same directory, through the same driver (github.com/mattn/go-sqlite3),
// with the variants interleaved so that drift and noise from other work on
// the machine hit all of them alike.
//
// It backs `ejectsafe bench` (Run, WriteMarkdown, WriteSVG) and the
// store's go test benchmarks (CommitSet, CkptDB, StoreLatency, ...).
//
// The memory measurement runs in a fresh process, so that earlier work
// does not pollute its peak RSS: the program re-executed with the hidden
// subcommand ChildCommand, which it must hand to RunChild (ejectsafe's
// main does; so do the TestMains of the test binaries that measure).
package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver for the baselines

	"github.com/ejectsafe/ejectsafe/probe"
	"github.com/ejectsafe/ejectsafe/store"
)

// Config says where and how much to measure.
type Config struct {
	// Dir is the directory whose filesystem is measured. Run works in a
	// fresh subdirectory of it and removes it at the end. Empty means a
	// temporary directory.
	Dir string
	// Quick uses small databases and few iterations (under a minute).
	Quick bool
	// Progress receives one line per measurement as it starts and ends.
	// Nil discards them.
	Progress io.Writer
	// Command is the command line, recorded in the report.
	Command string
	// Wear, when not nil, makes Run measure the wear section (wear.go)
	// with this workload, and nothing else but Modes.
	Wear *WearPlan
	// Modes, when not nil, makes Run measure the checkpoint-modes table
	// (modes.go) with this plan, and nothing else but Wear.
	Modes *ModesPlan
}

// Plan is the sizes and counts of one run.
type Plan struct {
	CommitRounds   int           // timed rounds per commit mode
	CommitPerRound int           // single-row commits per round (fsync-bound variants: /FsyncDivisor)
	TxPerRound     int           // 100-row transactions per round
	FsyncDivisor   int           // fsync-bound variants commit this many times fewer per round
	LatencyMiB     int           // database size for the latency-during-checkpoint runs
	LatencyDur     time.Duration // how long each latency run commits
	LatencyRate    int           // commits per second the latency writer paces itself to
	CkptSizes      []int         // MiB
	CkptDirty      []float64     // percent of pages
	CkptIters      func(mib int) int
	MemCap         int64 // the WAL cap for the memory measurement
	OpenSizes      [2]int
	OpenIters      int
	ReadRounds     int
	// Modes is the checkpoint-modes table of the full run (small sizes;
	// --modes-table measures the big ones); nil in the quick plan.
	Modes *ModesPlan
}

// PlanFor returns the full plan or the quick one.
func PlanFor(quick bool) Plan {
	if quick {
		return Plan{
			CommitRounds: 10, CommitPerRound: 500, TxPerRound: 10, FsyncDivisor: 50,
			LatencyMiB: 4, LatencyDur: time.Second, LatencyRate: 10000,
			CkptSizes: []int{1, 16}, CkptDirty: []float64{0.1, 10},
			CkptIters: func(int) int { return 3 },
			MemCap:    16 << 20,
			OpenSizes: [2]int{1, 16}, OpenIters: 5,
			ReadRounds: 2,
		}
	}
	return Plan{
		CommitRounds: 30, CommitPerRound: 4000, TxPerRound: 40, FsyncDivisor: 50,
		LatencyMiB: 16, LatencyDur: 3 * time.Second, LatencyRate: 10000,
		CkptSizes: []int{1, 16, 256}, CkptDirty: []float64{0.1, 1, 10},
		CkptIters: func(mib int) int {
			if mib >= 256 {
				return 5
			}
			return 7
		},
		MemCap:    64 << 20,
		OpenSizes: [2]int{1, 256}, OpenIters: 9,
		ReadRounds: 20,
		Modes:      &ModesPlan{Sizes: []int{16}, Dirty: DefaultModesDirty, Iters: 3},
	}
}

// Report is everything one run measured. Durations are in the unit their
// field name says; ratios are plain numbers.
type Report struct {
	Command    string             `json:"command"`
	Quick      bool               `json:"quick"`
	Started    time.Time          `json:"started"`
	Seconds    float64            `json:"seconds"`
	Machine    Machine            `json:"machine"`
	FS         FSInfo             `json:"filesystem"`
	Commit     []CommitResult     `json:"commit"`
	Latency    []LatencyResult    `json:"latency"`
	Checkpoint []CheckpointResult `json:"checkpoint"`
	Memory     *MemoryResult      `json:"memory"`
	Open       *OpenResult        `json:"open"`
	Read       *ReadResult        `json:"read"`
	Wear       *WearReport        `json:"wear,omitempty"`
	Modes      *ModesReport       `json:"modes,omitempty"`
	Targets    []Target           `json:"targets"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMiB int64  `json:"memory_mib"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel"`
	VM        string `json:"vm"`
	Go        string `json:"go"`
	SQLite    string `json:"sqlite"`
	Driver    string `json:"driver"`
}

// FSInfo describes the filesystem measured.
type FSInfo struct {
	Dir        string   `json:"dir"`
	Type       string   `json:"type"`
	Device     string   `json:"device"`
	MountPoint string   `json:"mount_point"`
	Options    []string `json:"options"`
	// StoreNotes is what store.Open logged about the filesystem.
	StoreNotes []string `json:"store_notes"`
}

// Run measures everything the plan for cfg.Quick lists and evaluates the
// targets. It removes every file it made, even on error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	p := PlanFor(cfg.Quick)
	prog := cfg.Progress
	if prog == nil {
		prog = io.Discard
	}
	base, err := workDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	r := &Report{Command: cfg.Command, Quick: cfg.Quick, Started: time.Now().UTC().Truncate(time.Second)}
	r.Machine = machine()
	r.FS = fsInfo(base)
	r.FS.StoreNotes = storeNotes(base)
	fmt.Fprintf(prog, "bench: %s (%s), %s\n", base, r.FS.Type, r.Machine.summary())

	type step struct {
		name string
		run  func(dir string, log func(string, ...any)) error
	}
	if cfg.Wear != nil || cfg.Modes != nil {
		return runSections(ctx, r, base, cfg, prog)
	}
	steps := []step{
		{"commit throughput, single-row autocommit", func(dir string, log func(string, ...any)) error {
			res, err := MeasureCommits(ctx, dir, 1, p, log)
			r.Commit = append(r.Commit, res...)
			return err
		}},
		{"commit throughput, single-row autocommit, unprepared SQL through Exec", func(dir string, log func(string, ...any)) error {
			res, err := MeasureUnprepared(ctx, dir, p, log)
			r.Commit = append(r.Commit, res...)
			return err
		}},
		{"commit throughput, 100-row transactions", func(dir string, log func(string, ...any)) error {
			res, err := MeasureCommits(ctx, dir, 100, p, log)
			r.Commit = append(r.Commit, res...)
			return err
		}},
		{fmt.Sprintf("commit latency during a checkpoint, store, %d MiB database", p.LatencyMiB), func(dir string, log func(string, ...any)) error {
			res, err := StoreLatency(ctx, dir, p.LatencyMiB, p.LatencyDur, p.LatencyRate)
			if err == nil {
				r.Latency = append(r.Latency, res)
				log("p99 idle %.1f us, during a checkpoint %.1f us (%.2fx), %d checkpoints", res.IdleP99us, res.DuringP99us, res.P99Ratio, res.Checkpoints)
			}
			return err
		}},
		{fmt.Sprintf("commit latency during a checkpoint, stock WAL auto-checkpoint, %d MiB database", p.LatencyMiB), func(dir string, log func(string, ...any)) error {
			res, err := StockLatency(ctx, dir, p.LatencyMiB, p.LatencyDur, p.LatencyRate)
			if err == nil {
				r.Latency = append(r.Latency, res)
				log("p99 idle %.1f us, commits that ran a checkpoint %.1f us (%.2fx), %d checkpoints", res.IdleP99us, res.DuringP99us, res.P99Ratio, res.Checkpoints)
			}
			return err
		}},
	}
	for _, mib := range p.CkptSizes {
		steps = append(steps, step{fmt.Sprintf("checkpoint, %d MiB database", mib), func(dir string, log func(string, ...any)) error {
			res, err := MeasureCheckpoints(ctx, dir, mib, p.CkptDirty, p.CkptIters(mib), log)
			r.Checkpoint = append(r.Checkpoint, res...)
			return err
		}})
	}
	if p.Modes != nil {
		steps = append(steps, step{fmt.Sprintf("checkpoint modes, %v MiB databases", p.Modes.Sizes), func(dir string, log func(string, ...any)) error {
			res, err := MeasureModes(ctx, dir, *p.Modes, log)
			r.Modes = res
			return err
		}})
	}
	steps = append(steps,
		step{fmt.Sprintf("memory at a %s WAL cap (child processes)", mibStr(p.MemCap)), func(dir string, log func(string, ...any)) error {
			res, err := MeasureMemory(ctx, dir, p.MemCap)
			if err == nil {
				r.Memory = &res
				log("peak RSS %s over a base of %s for %s of WAL: %.2fx", mibStr(res.PeakRSS), mibStr(res.BaseRSS), mibStr(res.WALBytes), res.RSSPerWAL)
			}
			return err
		}},
		step{"reads: point reads and range scans, store vs stock WAL NORMAL", func(dir string, log func(string, ...any)) error {
			res, err := MeasureReads(ctx, dir, p.ReadRounds)
			if err == nil {
				r.Read = &res
				log("%.1f MiB database: store %.0f us/round, stock %.0f us/round: %.2fx", res.DBMiB, res.StoreUsRound, res.StockUsRound, res.Ratio)
			}
			return err
		}},
		step{fmt.Sprintf("open time, %d MiB vs %d MiB database", p.OpenSizes[0], p.OpenSizes[1]), func(dir string, log func(string, ...any)) error {
			res, err := MeasureOpen(ctx, dir, p.OpenSizes, p.OpenIters)
			if err == nil {
				r.Open = &res
				log("%.2f ms vs %.2f ms: %.2fx", res.SmallMs, res.LargeMs, res.Ratio)
			}
			return err
		}},
	)

	start := time.Now()
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		tag := fmt.Sprintf("bench [%d/%d]", i+1, len(steps))
		fmt.Fprintf(prog, "%s %s ...\n", tag, st.name)
		dir := filepath.Join(base, fmt.Sprintf("step%d", i+1))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return r, err
		}
		t0 := time.Now()
		log := func(format string, a ...any) { fmt.Fprintf(prog, "%s   %s\n", tag, fmt.Sprintf(format, a...)) }
		err := st.run(dir, log)
		os.RemoveAll(dir)
		if err != nil {
			fmt.Fprintf(prog, "%s %s: failed after %s: %v\n", tag, st.name, roundDur(time.Since(t0)), err)
			return r, fmt.Errorf("bench: %s: %w", st.name, err)
		}
		fmt.Fprintf(prog, "%s done in %s\n", tag, roundDur(time.Since(t0)))
	}
	r.Seconds = time.Since(start).Seconds()
	r.Targets = Evaluate(r)
	return r, nil
}

// runSections is Run for the wear section and the checkpoint-modes
// table alone (each when asked for), in that order.
func runSections(ctx context.Context, r *Report, base string, cfg Config, prog io.Writer) (*Report, error) {
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	if p := cfg.Wear; p != nil {
		fmt.Fprintf(prog, "bench wear: %d MiB database, %d commits/s for %s per mode\n", p.MiB, p.Rate, p.Duration)
		log := func(format string, a ...any) { fmt.Fprintf(prog, "bench wear   %s\n", fmt.Sprintf(format, a...)) }
		w, err := MeasureWear(ctx, base, *p, log)
		r.Wear = w
		r.Targets = append(r.Targets, EvaluateWear(w)...)
		if err != nil {
			return r, fmt.Errorf("bench: wear: %w", err)
		}
	}
	if p := cfg.Modes; p != nil {
		fmt.Fprintf(prog, "bench modes: %v MiB databases at %v%% dirty, %d iterations per mode\n", p.Sizes, p.Dirty, p.Iters)
		log := func(format string, a ...any) { fmt.Fprintf(prog, "bench modes   %s\n", fmt.Sprintf(format, a...)) }
		m, err := MeasureModes(ctx, base, *p, log)
		r.Modes = m
		r.Targets = append(r.Targets, EvaluateModes(m)...)
		if err != nil {
			return r, fmt.Errorf("bench: modes: %w", err)
		}
	}
	return r, nil
}

// openStore opens a store for a measurement. Its filesystem warnings
// (FUSE, VM, container: logged at every Open) are dropped here; Run
// records them once in the report (storeNotes).
func openStore(path string, o store.Options) (*store.Store, error) {
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return store.Open(path, &o)
}

// storeNotes opens and drops a store in dir and returns what it logged
// about the filesystem.
func storeNotes(dir string) []string {
	var buf strings.Builder
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.MessageKey {
			return a
		}
		return slog.Attr{} // time, level; path, fstype, mount are in the report already
	}})
	path := filepath.Join(dir, "probe.db")
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, Logger: slog.New(h)})
	if err != nil {
		return []string{"store.Open: " + err.Error()}
	}
	s.Abandon()
	os.Remove(path)
	var notes []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		msg, err := strconv.Unquote(strings.TrimPrefix(l, "msg="))
		if err != nil {
			msg = strings.TrimPrefix(l, "msg=")
		}
		if msg = strings.TrimPrefix(msg, "ejectsafe: "); msg != "" {
			notes = append(notes, msg)
		}
	}
	return notes
}

// workDir makes the directory a run works in.
func workDir(dir string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("bench: %s is not a directory", dir)
	}
	d, err := os.MkdirTemp(dir, "ejectsafe-bench-")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return d, nil
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func mibStr(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// machine describes this machine; what cannot be found stays empty.
func machine() Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Go:        runtime.Version(),
		CPU:       cpuModel(),
		MemoryMiB: memTotal() >> 20,
		Kernel:    kernelRelease(),
	}
	if db, err := sql.Open("sqlite3", ":memory:"); err == nil {
		db.QueryRow("SELECT sqlite_version()").Scan(&m.SQLite)
		db.Close()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/mattn/go-sqlite3" {
				m.Driver = d.Path + " " + d.Version
			}
		}
	}
	if m.Driver == "" {
		m.Driver = "github.com/mattn/go-sqlite3"
	}
	if p, err := probe.Path(os.TempDir()); err == nil {
		m.VM = p.VM
	}
	return m
}

func (m Machine) summary() string {
	s := fmt.Sprintf("%d cores", m.Cores)
	if m.CPU != "" {
		s += " (" + m.CPU + ")"
	}
	if m.MemoryMiB > 0 {
		s += fmt.Sprintf(", %d GiB", (m.MemoryMiB+512)>>10)
	}
	s += ", " + m.OS
	if m.Kernel != "" {
		s += " " + m.Kernel
	}
	if m.VM != "" {
		s += ", " + strings.ToUpper(m.VM) + " guest"
	}
	s += "; " + m.Go + "; SQLite " + m.SQLite + " (" + strings.TrimPrefix(m.Driver, "github.com/") + ")"
	return s
}

// fsInfo probes the filesystem holding dir.
func fsInfo(dir string) FSInfo {
	f := FSInfo{Dir: dir}
	if p, err := probe.Path(dir); err == nil {
		f.Type, f.Device, f.MountPoint, f.Options = p.FSType, p.Device, p.MountPoint, p.MountOptions
	}
	if f.Type == "" {
		f.Type = "unknown"
	}
	if f.Type == "fuseblk" {
		if t := blockFSType(f.Device); t != "" {
			f.Type += " (" + t + ")"
		}
	}
	return f
}

// blockFSType names the filesystem on a block device from its boot
// sector, for FUSE mounts, which the kernel reports only as "fuseblk".
// Empty when the device cannot be read (reading needs permission) or the
// signature is not known.
func blockFSType(dev string) string {
	if !strings.HasPrefix(dev, "/dev/") {
		return ""
	}
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b [11]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return ""
	}
	switch string(b[3:11]) {
	case "EXFAT   ":
		return "exfat"
	case "NTFS    ":
		return "ntfs"
	}
	return ""
}
