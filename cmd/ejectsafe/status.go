package main

import (
	"fmt"
	"time"
)

// runStatus describes the volume, every lease on it with holder, state
// and uncheckpointed bytes, and every other process using it.
func runStatus(in *invocation) error {
	v, err := gather(in.pos[0], statusTimeout)
	if err != nil {
		return err
	}
	stdout := in.stdout
	if in.json {
		writeJSON(stdout, statusJSON("status", exitOK, v))
		return nil
	}
	p := v.Probe
	fmt.Fprintf(stdout, "volume:     %s (%s, %s on %s)\n", p.MountPoint, p.FSType, p.Class, p.Device)
	fmt.Fprintf(stdout, "mounted:    %s, removable: %s, usb: %s\n", yesNo(v.Mounted), yesNo(p.Removable), yesNo(p.USB))
	if len(v.Holders) == 0 {
		fmt.Fprintln(stdout, "leases:     none")
	}
	for _, h := range v.Holders {
		fmt.Fprintln(stdout, describe(h))
	}
	for _, u := range v.Users {
		fmt.Fprintln(stdout, describeUser(u))
	}
	if v.Mounted && v.UsersErr != nil {
		fmt.Fprintf(stdout, "processes:  cannot tell: %v\n", v.UsersErr)
	}
	return nil
}

// describe renders one holder on one line.
func describe(h holder) string {
	switch {
	case h.Unreadable != "":
		return fmt.Sprintf("unreadable: %s: %s (counted as live)", h.File, h.Unreadable)
	case h.Invalid != "":
		return fmt.Sprintf("invalid:    %s: %s (not followed)", h.File, h.Invalid)
	case h.Stale != "" && h.Lease == nil:
		return fmt.Sprintf("stale:      %s: %s", h.File, h.Stale)
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
