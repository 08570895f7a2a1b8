package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ejectsafe/ejectsafe/lease"
)

// runEject: ejectsafe eject [--timeout D] [--force] [--no-unmount]
// [--power-off] PATH. Asks every live holder on PATH's volume to
// checkpoint and release, waits, then syncs and unmounts (udisksctl when
// present, else umount(2)) and optionally powers the drive off. Exit 0
// when done; 1 when a holder refused or did not answer (named), or the
// unmount failed (busy is reported, not hidden); 2 on usage or
// operational errors. --force unmounts even when holders did not release,
// after asking them.
func runEject(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("eject", flag.ContinueOnError)
	fl.SetOutput(stderr)
	timeout := fl.Duration("timeout", 30*time.Second, "how long to wait for each holder")
	force := fl.Bool("force", false, "unmount even if holders refuse or do not answer (after asking)")
	noUnmount := fl.Bool("no-unmount", false, "only make the holders release; leave the volume mounted")
	powerOff := fl.Bool("power-off", false, "power the drive off after unmounting (udisksctl)")
	if err := fl.Parse(args); err != nil || fl.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: ejectsafe eject [--timeout D] [--force] [--no-unmount] [--power-off] PATH")
		return 2
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	v, err := gather(fl.Arg(0), 2*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "ejectsafe eject: %v\n", err)
		return 2
	}
	mp := v.Probe.MountPoint
	if !*noUnmount && (mp == "/" || mp == "" || systemVolume(mp)) {
		fmt.Fprintf(stderr, "ejectsafe eject: %s is on the root filesystem; not unmounting it\n", fl.Arg(0))
		return 2
	}

	// 1. Ask each live holder to checkpoint and release.
	var kept []string
	for _, h := range v.Holders {
		if !h.blocks() {
			if h.Invalid == "" {
				say("%s: stale lease (%s); ignored", h.DB, h.Stale)
			} else {
				say("%s: invalid lease, not followed: %s", h.File, h.Invalid)
			}
			continue
		}
		who := fmt.Sprintf("pid %d (%s)", h.Lease.PID, h.DB)
		if h.Lease.Endpoint == "" {
			kept = append(kept, who+": no control endpoint to ask")
			say("%s: cannot be asked: no control endpoint", who)
			continue
		}
		say("asking %s to checkpoint and release...", who)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		resp, err := lease.Ask(ctx, h.Lease.Endpoint, lease.Request{Op: "eject", TimeoutMS: timeout.Milliseconds()})
		cancel()
		switch {
		case err != nil:
			kept = append(kept, fmt.Sprintf("%s: no answer: %v", who, err))
			say("  %s did not answer: %v", who, err)
		case resp.Refused != "":
			kept = append(kept, fmt.Sprintf("%s: refused: %s", who, resp.Refused))
			say("  %s refused: %s", who, resp.Refused)
		case !resp.OK:
			kept = append(kept, fmt.Sprintf("%s: failed: %s", who, resp.Error))
			say("  %s could not release: %s", who, resp.Error)
		default:
			say("  released in %v", time.Since(start).Round(time.Millisecond))
		}
	}
	if len(kept) > 0 && !*force {
		fmt.Fprintf(stderr, "ejectsafe eject: %d holder(s) kept the volume:\n  %s\n", len(kept), strings.Join(kept, "\n  "))
		return 1
	}
	if len(kept) > 0 {
		say("--force: unmounting although %d holder(s) did not release", len(kept))
	}
	if *noUnmount {
		say("all holders released; %s stays mounted (--no-unmount)", mp)
		return 0
	}

	// 2. Sync, unmount, power off.
	syncAll()
	say("unmounting %s...", mp)
	if err := unmount(v.Probe); err != nil {
		fmt.Fprintf(stderr, "ejectsafe eject: unmount %s: %v\n", mp, err)
		return 1
	}
	say("unmounted %s", mp)
	if *powerOff {
		if err := powerOffDrive(v.Probe); err != nil {
			fmt.Fprintf(stderr, "ejectsafe eject: power off %s: %v\n", v.Probe.Device, err)
			return 1
		}
		say("powered off %s", v.Probe.Device)
	}
	if len(kept) > 0 {
		return 1
	}
	return 0
}
