package main

import (
	"fmt"
	"strings"
)

// runCheck succeeds only when pulling the volume holding PATH now would
// lose nothing anyone wrote: it is not mounted, or no live holder has it,
// no process has a file open on it, and sync(2) has flushed the kernel's
// cached writes. Otherwise its finding names every holder and process.
// Stale and invalid leases are reported and do not block.
func runCheck(in *invocation) error {
	v, err := gather(in.pos[0], statusTimeout)
	if err != nil {
		return err
	}
	stdout := in.stdout
	reasons := verdict(v)
	synced := false
	if len(reasons) == 0 && v.Mounted {
		// Nobody has anything open: make what they wrote durable, so
		// that "safe" is true of the drive and not of the page cache.
		syncAll()
		synced = true
	}
	var found error
	if len(reasons) > 0 {
		found = said(problem(errFound))
	}
	code := codeOf(found)
	if in.json {
		writeJSON(stdout, checkOut{statusOut: statusJSON("check", code, v), Safe: found == nil, Synced: synced, Reasons: nonNil(reasons)})
		return found
	}
	for _, h := range v.Holders {
		fmt.Fprintln(stdout, describe(h))
	}
	for _, u := range v.Users {
		fmt.Fprintln(stdout, describeUser(u))
	}
	switch {
	case found != nil:
		fmt.Fprintf(stdout, "not safe to remove: %s: %s\n", v.Probe.MountPoint, strings.Join(reasons, "; "))
	case !v.Mounted && v.Probe.MountPoint == "":
		fmt.Fprintf(stdout, "safe to remove: %s is not mounted\n", v.Probe.Device)
	case !v.Mounted:
		fmt.Fprintf(stdout, "safe to remove: no volume is mounted at %s (it is on the root filesystem)\n", in.pos[0])
	default:
		fmt.Fprintf(stdout, "safe to remove: %s (nothing open on it; cached writes flushed)\n", v.Probe.MountPoint)
	}
	if v.Uninspected > 0 {
		fmt.Fprintf(stdout, "note: %d processes of other users could not be inspected (run as root to see them)\n", v.Uninspected)
	}
	return found
}

// verdict lists why the volume is not safe to remove now; none when it
// is.
func verdict(v volume) []string {
	var reasons []string
	live := 0
	for _, h := range v.Holders {
		if h.blocks() {
			live++
		}
	}
	if live > 0 {
		reasons = append(reasons, fmt.Sprintf("%d live holder(s)", live))
	}
	if len(v.Users) > 0 {
		var names []string
		for _, u := range v.Users {
			names = append(names, fmt.Sprintf("pid %d (%s)", u.PID, u.Command))
		}
		reasons = append(reasons, fmt.Sprintf("%d process(es) with files open on it: %s", len(v.Users), strings.Join(names, ", ")))
	}
	if v.Mounted && v.UsersErr != nil {
		reasons = append(reasons, fmt.Sprintf("cannot tell which processes use it: %v", v.UsersErr))
	}
	return reasons
}

// describeUser renders one process using the volume on one line.
func describeUser(u user) string {
	what := "open:      "
	if u.Holder {
		what = "open (holder):"
	}
	return fmt.Sprintf("%s pid %d (%s): %s", what, u.PID, u.Command, strings.Join(u.Files, ", "))
}
