package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"
)

// runStatus: ejectsafe status [--json] PATH: the volume and every lease on
// it, with holder, state and uncheckpointed bytes. Exit 0, or 2 on error.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("status", flag.ContinueOnError)
	fl.SetOutput(stderr)
	asJSON := fl.Bool("json", false, "print a JSON object")
	if err := fl.Parse(args); err != nil || fl.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: ejectsafe status [--json] PATH")
		return 2
	}
	v, err := gather(fl.Arg(0), 2*time.Second)
	if err != nil {
		if deadMount("status", fl.Arg(0), err, *asJSON, stdout, stderr) {
			return 2
		}
		fmt.Fprintf(stderr, "ejectsafe status: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return 0
	}
	p := v.Probe
	fmt.Fprintf(stdout, "volume:     %s (%s, %s on %s)\n", p.MountPoint, p.FSType, p.Class, p.Device)
	fmt.Fprintf(stdout, "removable:  %s, usb: %s\n", yesNo(p.Removable), yesNo(p.USB))
	if len(v.Holders) == 0 {
		fmt.Fprintln(stdout, "leases:     none")
	}
	for _, h := range v.Holders {
		fmt.Fprintln(stdout, describe(h))
	}
	return 0
}

// describe renders one holder on one line.
func describe(h holder) string {
	switch {
	case h.Invalid != "":
		return fmt.Sprintf("invalid:    %s: %s (not followed)", h.File, h.Invalid)
	case h.Stale != "":
		return fmt.Sprintf("stale:      %s: was pid %d on %s: %s", h.DB, h.Lease.PID, h.Lease.Host, h.Stale)
	case h.Live != nil:
		return fmt.Sprintf("held:       %s by pid %d on %s, %s, %s not checkpointed (last checkpoint %s)",
			h.DB, h.Lease.PID, h.Lease.Host, h.Live.State, bytesStr(h.Live.DirtyBytes), when(h.Live.LastCheckpoint))
	}
	return fmt.Sprintf("held:       %s by pid %d on %s, %s (no answer: %s)", h.DB, h.Lease.PID, h.Lease.Host, h.Lease.State, h.NoAnswer)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}
