package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain answers MeasureMemory's children (this binary re-executed
// with ChildCommand) before any test runs.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ChildCommand {
		os.Exit(RunChild(os.Args[2:], os.Stdout))
	}
	os.Exit(m.Run())
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentile(ds, tc.q); got != tc.want {
			t.Errorf("percentile(1..100 us, %g) = %g; want %g", tc.q, got, tc.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %g; want 0", got)
	}
	if got, want := median([]float64{3, 1, 2, 10}), 2.5; got != want {
		t.Errorf("median = %g; want %g", got, want)
	}
}

func TestSplit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ss := []sample{
		{at(0), time.Millisecond},      // idle
		{at(9), 2 * time.Millisecond},  // overlaps the start of [10, 20]
		{at(15), time.Millisecond},     // inside
		{at(21), time.Millisecond},     // idle
		{at(29), 5 * time.Millisecond}, // spans [30, 31]
		{at(40), time.Millisecond},     // idle, after every checkpoint
	}
	ivs := []interval{{at(10), at(20)}, {at(30), at(31)}}
	idle, during := split(ss, ivs)
	if len(idle) != 3 || len(during) != 3 {
		t.Errorf("split: %d idle, %d during; want 3, 3", len(idle), len(during))
	}
}

func TestTarget_Margin(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{target("a", 0.78, 0.85, true, "", ""), "**missed** by 0.07x (8% short)"},
		{target("b", 0.9, 0.85, true, "", ""), "met (0.05x to spare)"},
		{target("c", 1.5, 1.2, false, "", ""), "**missed** by 0.30x (25% over)"},
		{target("d", 1, 2, false, "", ""), "met (1.00x to spare)"},
	} {
		if got := tc.t.Margin(); got != tc.want {
			t.Errorf("%s: Margin() = %q; want %q", tc.t.Name, got, tc.want)
		}
	}
}

func TestGrp(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := grp(in); got != want {
			t.Errorf("grp(%g) = %q; want %q", in, got, want)
		}
	}
}

// sampleReport is a report with one figure of each kind.
func sampleReport() *Report {
	r := &Report{Command: "ejectsafe bench <&>", FS: FSInfo{Type: "exfat"}}
	for i, v := range Variants {
		r.Commit = append(r.Commit, CommitResult{Mode: "autocommit", Variant: v, CommitsPerSec: 1e6 / float64(i+1), StoreRatio: float64(i + 1)})
	}
	r.Checkpoint = []CheckpointResult{
		{DBMiB: 1, DirtyPct: 1, StoreMs: 1, RawMs: 1, VacuumMs: 2, BackupMs: 2, StoreVsRaw: 5, StoreVsVacuum: 5},
		{DBMiB: 16, DirtyPct: 1, StoreMs: 20, RawMs: 15, VacuumMs: 30, BackupMs: 30, StoreVsRaw: 1.33, StoreVsVacuum: 0.66},
		{DBMiB: 16, DirtyPct: 10, StoreMs: 30, RawMs: 15, VacuumMs: 30, BackupMs: 30, StoreVsRaw: 2, StoreVsVacuum: 1},
	}
	r.Latency = []LatencyResult{{Variant: Store, DuringCommits: 10, P99Ratio: 1.5}}
	r.Memory = &MemoryResult{WALBytes: 64 << 20, RSSPerWAL: 1.1}
	r.Open = &OpenResult{SmallMiB: 1, LargeMiB: 256, SmallMs: 1, LargeMs: 1.1, Ratio: 1.1}
	return r
}

func TestEvaluate(t *testing.T) {
	ts := Evaluate(sampleReport())
	got := map[string]Target{}
	for _, tg := range ts {
		got[tg.Name] = tg
	}
	raw := got["checkpoint time vs raw copy floor, databases >= 16 MiB (worst case)"]
	if raw.Measured != 2 || raw.Met || raw.Where != "16 MiB, 10% dirty" {
		t.Errorf("raw floor target: %+v; want the worst case of the 16 MiB ones (2x, missed)", raw)
	}
	mem := got["store commit throughput vs `:memory:`, steady state, autocommit"]
	if mem.Measured != 3 || !mem.Met { // sampleReport: the third variant, ratio 3
		t.Errorf(":memory: target: %+v", mem)
	}
	lim := got["store commit throughput vs the limit arm (SQLite's WAL over malloc'd buffers), steady state, autocommit"]
	if lim.Measured != 2 || !lim.Met || lim.Limit != 0.9 {
		t.Errorf("limit target: %+v", lim)
	}
	if len(ts) != 8 {
		t.Errorf("%d targets; want 8 (no tx100 or autocommit-exec results): %+v", len(ts), ts)
	}
}

func TestWriteSVG(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSVG(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	bars := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "class" && a.Value == "bar" {
					bars++
				}
			}
		}
	}
	if want := len(Variants) + 3*len(CkptMethods); bars != want {
		t.Errorf("%d bars; want %d", bars, want)
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := sampleReport()
	r.Targets = Evaluate(r)
	var b strings.Builder
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## `ejectsafe bench` on exfat", "| autocommit | wal-full: stock WAL, synchronous=FULL |", "**missed** by 0.80x"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}

// TestMeasureMemory re-executes this test binary as the children.
func TestMeasureMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read from /proc/self/status")
	}
	r, err := MeasureMemory(context.Background(), t.TempDir(), 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if r.WALBytes < 3<<20 || r.WALBytes > 4<<20 || r.BaseRSS <= 0 || r.PeakRSS <= r.BaseRSS {
		t.Errorf("MeasureMemory(4 MiB cap) = %+v", r)
	}
}
