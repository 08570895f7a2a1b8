package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ejectsafe/ejectsafe/bench"
)

// runBench measures the store against stock SQLite on one filesystem
// (package bench): progress on stderr, the Markdown tables on stdout (with
// --json: the JSON report on stdout, the tables on stderr).
func runBench(in *invocation) error {
	stdout, stderr := in.stdout, in.stderr
	dir, quick, asJSON, out := in.str("dir"), in.bool("quick"), in.bool("json"), in.str("out")
	if out != "" {
		// Refuse a report that could not be written before measuring.
		if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--out %s: no such directory %s", out, filepath.Dir(out))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := bench.Config{
		Dir: dir, Quick: quick, Progress: stderr,
		Command: strings.TrimSpace("ejectsafe bench " + strings.Join(in.args, " ")),
	}
	if in.bool("wear") {
		mib, _ := strconv.Atoi(in.str("wear-mib"))
		rate, _ := strconv.Atoi(in.str("wear-rate"))
		mbps, _ := strconv.ParseFloat(in.str("throttle"), 64)
		if mib <= 0 || rate <= 0 || in.dur("wear-for") <= 0 || mbps < 0 {
			return usagef("--wear-mib, --wear-rate and --wear-for must be positive, --throttle not negative")
		}
		cfg.Wear = &bench.WearPlan{MiB: mib, Rate: rate, Duration: in.dur("wear-for"), ThrottleMBps: mbps}
	}
	if in.bool("modes-table") {
		sizes, err := parseMiBList(in.str("modes-mib"))
		iters, _ := strconv.Atoi(in.str("modes-iters"))
		mbps, _ := strconv.ParseFloat(in.str("throttle"), 64)
		if err != nil {
			return usagef("--modes-mib: %v (want a comma-separated list of sizes in MiB)", err)
		}
		if iters <= 0 || mbps < 0 {
			return usagef("--modes-iters must be positive, --throttle not negative")
		}
		cfg.Modes = &bench.ModesPlan{Sizes: sizes, Dirty: bench.DefaultModesDirty, Iters: iters, ThrottleMBps: mbps}
	}
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var md bytes.Buffer
	if err := bench.WriteMarkdown(&md, r); err != nil {
		return err
	}
	// The JSON report: the common header, the measurements under
	// "report" (bench.Report has a "command" of its own: the command line).
	js, err := json.MarshalIndent(struct {
		header
		Report *bench.Report `json:"report"`
	}{newHeader("bench", exitOK), r}, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	report := md.Bytes()
	if asJSON {
		report = js
		stderr.Write(md.Bytes())
	}
	stdout.Write(report)
	if out != "" {
		if err := writeBenchFiles(out, report, r); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "ejectsafe bench: wrote %s and %s\n", out, svgPath(out))
	}
	return nil
}

// parseMiBList parses --modes-mib: "16,64,256".
func parseMiBList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive size", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// svgPath is where the chart goes: next to the report, named after it.
func svgPath(out string) string {
	if p := strings.TrimSuffix(out, filepath.Ext(out)) + ".svg"; p != out {
		return p
	}
	return out + ".svg"
}

func writeBenchFiles(out string, report []byte, r *bench.Report) error {
	if err := os.WriteFile(out, report, 0o644); err != nil {
		return err
	}
	var svg bytes.Buffer
	if err := bench.WriteSVG(&svg, r); err != nil {
		return err
	}
	return os.WriteFile(svgPath(out), svg.Bytes(), 0o644)
}
