package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/ejectsafe/ejectsafe/bench"
)

// runBench measures the store against stock SQLite on one filesystem
// (package bench): progress on stderr, the Markdown tables on stdout (with
// --json: the JSON report on stdout, the tables on stderr).
func runBench(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", "", "measure on `DIR`'s filesystem (default: a temporary directory)")
	quick := fl.Bool("quick", false, "small databases and few iterations: under a minute")
	asJSON := fl.Bool("json", false, "print the report as JSON on stdout (the tables go to stderr)")
	out := fl.String("out", "", "also write the report to `FILE`, and an SVG chart next to it (FILE's name with .svg)")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: ejectsafe bench [--dir DIR] [--quick] [--json] [--out FILE]\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "ejectsafe bench: unexpected argument %q\n", fl.Arg(0))
		fl.Usage()
		return 2
	}
	if *out != "" {
		// Refuse a report that could not be written before measuring.
		if fi, err := os.Stat(filepath.Dir(*out)); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "ejectsafe bench: --out %s: no such directory %s\n", *out, filepath.Dir(*out))
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := bench.Run(ctx, bench.Config{
		Dir: *dir, Quick: *quick, Progress: stderr,
		Command: strings.TrimSpace("ejectsafe bench " + strings.Join(args, " ")),
	})
	if err != nil {
		fmt.Fprintf(stderr, "ejectsafe bench: %v\n", err)
		return 2
	}
	var md bytes.Buffer
	if err := bench.WriteMarkdown(&md, r); err != nil {
		fmt.Fprintf(stderr, "ejectsafe bench: %v\n", err)
		return 2
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "ejectsafe bench: %v\n", err)
		return 2
	}
	js = append(js, '\n')
	report := md.Bytes()
	if *asJSON {
		report = js
		stderr.Write(md.Bytes())
	}
	stdout.Write(report)
	if *out != "" {
		if err := writeBenchFiles(*out, report, r); err != nil {
			fmt.Fprintf(stderr, "ejectsafe bench: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "ejectsafe bench: wrote %s and %s\n", *out, svgPath(*out))
	}
	return 0
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
