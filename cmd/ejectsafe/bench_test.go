package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/bench"
)

func TestRun_benchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("bench --quick runs for several seconds")
	}
	if os.Getenv("EJECTSAFE_UNDER_WINE") != "" { // set by .ci/wine/exec
		t.Skip("SKIP LOUDLY: under Wine: every fsync is Wine's emulation (ms each), so bench --quick runs past its one-minute budget and measures Wine, not Windows")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	// How long --quick takes is measured, not asserted (a wall-clock bound
	// fails on a loaded machine and proves nothing); that it ran the quick
	// plan is checked below.
	if code := run([]string{"bench", "--quick", "--json", "--dir", dir, "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("bench exit %d\nstderr:\n%s", code, stderr.String())
	}

	t.Run("json", func(t *testing.T) {
		var wrapped struct {
			header
			Report bench.Report `json:"report"`
		}
		dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wrapped); err != nil {
			t.Fatalf("stdout is not a report: %v\n%s", err, stdout.String())
		}
		if wrapped.Schema != schemaVersion || wrapped.Command != "bench" || wrapped.ExitCode != 0 {
			t.Errorf("JSON header %+v", wrapped.header)
		}
		r := wrapped.Report
		if !r.Quick || r.Command != "ejectsafe bench --quick --json --dir "+dir+" --out "+out || r.Machine.Cores == 0 || r.FS.Type == "" {
			t.Errorf("header: quick %v, command %q, machine %+v, fs %+v", r.Quick, r.Command, r.Machine, r.FS)
		}
		for _, mode := range []string{"autocommit", "tx100"} {
			for _, v := range bench.Variants {
				found := false
				for _, c := range r.Commit {
					if c.Mode == mode && c.Variant == v {
						found = true
						if c.CommitsPerSec <= 0 || c.P50us <= 0 || c.P99us < c.P50us || (v != bench.Store && c.StoreRatio <= 0) {
							t.Errorf("commit %s %s: %+v", mode, v, c)
						}
					}
				}
				if !found {
					t.Errorf("no commit result for %s %s", mode, v)
				}
			}
		}
		if len(r.Latency) != 2 || r.Latency[0].Variant != bench.Store || r.Latency[1].Variant != bench.WALNormal {
			t.Errorf("latency: %+v", r.Latency)
		}
		for _, l := range r.Latency {
			if l.IdleCommits == 0 || l.DuringCommits == 0 || l.Checkpoints == 0 || l.P99Ratio <= 0 {
				t.Errorf("latency %s: %+v", l.Variant, l)
			}
		}
		if len(r.Checkpoint) != 4 {
			t.Errorf("%d checkpoint cases; want 4 (1 and 16 MiB, 2 dirty shares)", len(r.Checkpoint))
		}
		for _, c := range r.Checkpoint {
			if c.StoreMs <= 0 || c.RawMs <= 0 || c.VacuumMs <= 0 || c.BackupMs <= 0 || c.DirtyPages <= 0 || c.StoreBytes < c.DBBytes {
				t.Errorf("checkpoint %d MiB %g%%: %+v", c.DBMiB, c.DirtyPct, c)
			}
		}
		if m := r.Memory; m == nil || m.WALBytes < m.CapBytes/2 || m.PeakRSS <= m.BaseRSS {
			t.Errorf("memory: %+v", m)
		}
		if o := r.Open; o == nil || o.SmallMs <= 0 || o.LargeMs <= 0 || o.LargeMiB != 16 {
			t.Errorf("open: %+v", o)
		}
		if len(r.Targets) < 7 {
			t.Errorf("%d targets evaluated; want all: %+v", len(r.Targets), r.Targets)
		}
		file, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(file, stdout.Bytes()) {
			t.Errorf("--out %s differs from stdout (err %v)", out, err)
		}
	})

	t.Run("table", func(t *testing.T) {
		for _, want := range []string{
			"bench [1/10] commit throughput, single-row autocommit ...",
			"bench [10/10] done in ",
			"## `ejectsafe bench` on ",
			"- Command: `ejectsafe bench --quick --json",
			"### 1. Commit throughput",
			"| autocommit | store: ejectsafe store |",
			"| tx100 | rollback-full: rollback journal, synchronous=FULL |",
			"| autocommit-exec | limit: ",
			"| tx100 | limit: ",
			"store commit throughput vs the limit arm",
			"### 2. Commit latency while a checkpoint runs",
			"### 3. Checkpoint time and bytes written",
			"| 16.",
			"### 4. Memory at the WAL cap",
			"### 5. Open time",
			"### 6. Reads",
			"read-heavy workload time vs stock WAL NORMAL",
			"### Targets (issues #7, #11; reported, not asserted)",
			"store commit throughput vs `:memory:`",
		} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
		}
	})

	t.Run("svg", func(t *testing.T) {
		f, err := os.Open(filepath.Join(dir, "report.svg"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		series := map[string]map[string]bool{"throughput": {}, "checkpoint": {}}
		root := ""
		dec := xml.NewDecoder(f)
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("report.svg is not XML: %v", err)
			}
			se, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			if root == "" {
				root = se.Name.Local
			}
			attr := map[string]string{}
			for _, a := range se.Attr {
				attr[a.Name.Local] = a.Value
			}
			if se.Name.Local == "rect" && series[attr["data-chart"]] != nil {
				series[attr["data-chart"]][attr["data-series"]] = true
			}
		}
		if root != "svg" {
			t.Errorf("root element %q; want svg", root)
		}
		for chart, want := range map[string][]string{"throughput": bench.Variants, "checkpoint": bench.CkptMethods} {
			for _, s := range want {
				if !series[chart][s] {
					t.Errorf("chart %s has no bars of series %s (has %v)", chart, s, series[chart])
				}
			}
		}
	})
}

func TestRun_benchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "extra"},
		{"bench", "--frobnicate"},
		{"bench", "--out", filepath.Join(t.TempDir(), "missing", "r.md")},
		{"bench", "--modes-table", "--modes-mib", "16,x"},
		{"bench", "--modes-table", "--modes-mib", "0"},
		{"bench", "--modes-table", "--modes-iters", "0"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d; want 2\n%s", args, code, errb.String())
		}
	}
}

// TestRun_benchModesTable: --modes-table measures the checkpoint-modes
// table alone, at the sizes --modes-mib lists, each of the dirty
// shares, and reports its targets.
func TestRun_benchModesTable(t *testing.T) {
	if testing.Short() {
		t.Skip("bench --modes-table runs for seconds")
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--modes-table", "--modes-mib", "1", "--modes-iters", "1", "--json", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("bench exit %d\nstderr:\n%s", code, stderr.String())
	}
	var wrapped struct {
		Report bench.Report `json:"report"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &wrapped); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, stdout.String())
	}
	r := wrapped.Report
	if r.Modes == nil || len(r.Commit) != 0 || r.Wear != nil {
		t.Fatalf("modes %v, %d commit rows, wear %v: want the modes table alone", r.Modes, len(r.Commit), r.Wear)
	}
	if got, want := len(r.Modes.Rows), len(bench.DefaultModesDirty); got != want {
		t.Errorf("%d rows, want %d (one per dirty share)", got, want)
	}
	for _, row := range r.Modes.Rows {
		if row.DBMiB != 1 || len(row.Cells) != 3 || row.Iterations != 1 {
			t.Errorf("row %+v", row)
		}
	}
	if len(r.Targets) != 3 {
		t.Errorf("%d targets, want the table's 3: %+v", len(r.Targets), r.Targets)
	}
	for _, want := range []string{"### Checkpoint modes", "in-place checkpoint", "checkpoint-modes table only"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
