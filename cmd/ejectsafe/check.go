package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"
)

// runCheck: ejectsafe check [--json] PATH. Exit 0 when the volume holding
// PATH is safe to remove (no live holder), 1 when a live holder has it
// (named), 2 on error. Stale and invalid leases are reported and do not
// block.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("check", flag.ContinueOnError)
	fl.SetOutput(stderr)
	asJSON := fl.Bool("json", false, "print a JSON object")
	if err := fl.Parse(args); err != nil || fl.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: ejectsafe check [--json] PATH")
		return 2
	}
	v, err := gather(fl.Arg(0), 2*time.Second)
	if err != nil {
		if deadMount("check", fl.Arg(0), err, *asJSON, stdout, stderr) {
			return 2
		}
		fmt.Fprintf(stderr, "ejectsafe check: %v\n", err)
		return 2
	}
	live := 0
	for _, h := range v.Holders {
		if h.blocks() {
			live++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Safe bool `json:"safe"`
			volume
		}{live == 0, v})
	} else {
		for _, h := range v.Holders {
			fmt.Fprintln(stdout, describe(h))
		}
		if live == 0 {
			fmt.Fprintf(stdout, "safe to remove: %s\n", v.Probe.MountPoint)
		} else {
			fmt.Fprintf(stdout, "not safe to remove: %s: %d live holder(s)\n", v.Probe.MountPoint, live)
		}
	}
	if live > 0 {
		return 1
	}
	return 0
}
