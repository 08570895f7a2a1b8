package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// ejectHolderOut is one holder's answer to eject, in JSON. Result:
// "released", "refused" (the application declined), "no_answer" (did not
// answer its status or the eject within --timeout, or the endpoint
// failed; a holder that did not answer its status is not asked to
// eject), "failed" (it could
// not checkpoint or release), "no_endpoint" (it cannot be asked),
// "unreadable" (another user's lease: it cannot be asked by this user;
// root can), "stale" or "invalid" (not asked: the lease is not followed).
type ejectHolderOut struct {
	PID       int    `json:"pid"`
	DB        string `json:"db"`
	File      string `json:"file"`
	Result    string `json:"result"`
	Message   string `json:"message"`
	ElapsedMS int64  `json:"elapsed_ms"`
}

// ejectOut is `eject --json`.
type ejectOut struct {
	header
	Volume  volumeOut        `json:"volume"`
	Busy    []userOut        `json:"busy"` // processes with files open on the volume
	Holders []ejectHolderOut `json:"holders"`
	Synced  bool             `json:"synced"`
	// Unmounted: the volume was unmounted; UnmountMethod says how
	// ("udisksctl", "umount", "fusermount"), "" when it was not.
	Unmounted     bool   `json:"unmounted"`
	UnmountMethod string `json:"unmount_method"`
	PoweredOff    bool   `json:"powered_off"`
}

// runEject makes the volume holding PATH safe to remove. In order, doing
// nothing before a refusal:
// refuse what cannot or must not be ejected (the root filesystem, a
// volume the kernel does not call removable unless PATH is its mount
// point, --power-off without udisksctl); refuse when other processes
// have files open on the volume (named); ask every live holder at once
// to checkpoint and release, within one --timeout; sync; unmount
// (udisksctl, falling back to umount(2) and fusermount -u); power off.
// It succeeds when unmounted (with --no-unmount: when every holder
// released); busy processes, a holder that kept the volume, or a failed
// unmount or power-off are its findings (all named, exit 1); refusals
// are errors (exit 2).
// --force goes on past busy processes, holders that keep the volume and a
// volume that is not removable; it exits 0 when the unmount succeeds.
func runEject(in *invocation) error {
	stdout, stderr := in.stdout, in.stderr
	timeout, force, noUnmount, powerOff := in.dur("timeout"), in.bool("force"), in.bool("no-unmount"), in.bool("power-off")
	if noUnmount && powerOff {
		return usagef("--power-off needs the unmount that --no-unmount skips")
	}
	if timeout <= 0 {
		return usagef("--timeout must be positive, got %v", timeout)
	}
	out := ejectOut{Busy: []userOut{}, Holders: []ejectHolderOut{}}
	say := func(format string, a ...any) {
		if !in.json {
			fmt.Fprintf(stdout, format+"\n", a...)
		}
	}
	// finish prints the JSON object and returns err, shown: on stderr
	// and in the object.
	finish := func(err error) error {
		out.header = newHeader("eject", codeOf(err))
		if err != nil {
			out.Error = err.Error()
			fmt.Fprintf(stderr, "ejectsafe eject: %v\n", err)
		}
		if in.json {
			writeJSON(stdout, out)
		}
		return said(err)
	}

	path := in.pos[0]
	v, err := gather(path, statusTimeout)
	if err != nil {
		if deadMount("eject", path, err, in.json, stdout, stderr) {
			return said(err) // a vanished drive: one message saying what to do
		}
		return finish(err)
	}
	p := v.Probe
	mp := p.MountPoint
	out.Volume = volumeJSON(p, v.Mounted)

	if !v.Mounted && mp == "" { // a block device, not mounted
		say("%s is not mounted: nothing to unmount", p.Device)
		if powerOff {
			if err := canPowerOff(); err != nil {
				return finish(err)
			}
			if err := powerOffDrive(p); err != nil {
				return finish(problem(fmt.Errorf("power off %s: %w", p.Device, err)))
			}
			out.PoweredOff = true
			say("powered off %s", p.Device)
		}
		return finish(nil)
	}

	// 1. Refusals, before anything is asked or done.
	if !noUnmount {
		if !v.Mounted {
			return finish(fmt.Errorf("%s is on the root filesystem, not on a volume that can be ejected", path))
		}
		abs, _ := filepath.Abs(path)
		if !p.Removable && !p.USB && !force && filepath.Clean(abs) != mp && p.Path != mp {
			return finish(fmt.Errorf("%s is on %s (%s on %s), which the kernel does not report as removable; "+
				"give its mount point %s to eject it anyway, or --force", path, mp, p.FSType, p.Device, mp))
		}
		if powerOff {
			if err := canPowerOff(); err != nil {
				return finish(err)
			}
		}
		// Busy processes first: asking holders to release a volume that
		// cannot be unmounted would cost them their databases for
		// nothing.
		out.Busy = usersJSON(v.Users)
		if v.UsersErr != nil && !force {
			return finish(fmt.Errorf("cannot tell which processes use %s: %v (--force goes on)", mp, v.UsersErr))
		}
		if len(v.Users) > 0 {
			for _, u := range v.Users {
				say("busy: %s", describeUser(u))
			}
			if !force {
				return finish(problem(fmt.Errorf("%s is busy: %s; close them and eject again (nothing was asked or unmounted)",
					mp, names(v.Users))))
			}
			say("--force: going on although %d process(es) have files open on %s", len(v.Users), mp)
		}
	}

	// 2. Ask every live holder, all at once, within one timeout. Sockets
	// and leases of holders proven gone are removed (best effort).
	lease.SweepEndpoints()
	for _, h := range v.Holders {
		if !h.blocks() && h.Invalid == "" {
			removeDead(h, say)
		}
	}
	out.Holders = askHolders(v.Holders, timeout, say)
	var kept []string
	for _, h := range out.Holders {
		switch h.Result {
		case "released", "stale", "invalid":
		case "unreadable": // no pid or database to name: the file and its owner
			kept = append(kept, fmt.Sprintf("unreadable lease %s: %s", h.File, h.Message))
		default:
			kept = append(kept, fmt.Sprintf("pid %d (%s): %s: %s", h.PID, h.DB, h.Result, h.Message))
		}
	}
	if len(kept) > 0 && !force {
		return finish(problem(fmt.Errorf("%d holder(s) kept the volume:\n  %s", len(kept), strings.Join(kept, "\n  "))))
	}
	if noUnmount {
		if len(kept) > 0 {
			return finish(problem(fmt.Errorf("%d holder(s) did not release; %s stays mounted (--no-unmount)", len(kept), mp)))
		}
		say("all holders released; %s stays mounted (--no-unmount)", mp)
		return finish(nil)
	}
	if len(kept) > 0 {
		say("--force: unmounting although %d holder(s) did not release", len(kept))
	}

	// 3. Sync, unmount, power off.
	syncAll()
	out.Synced = true
	say("unmounting %s...", mp)
	method, err := unmount(p)
	if err != nil {
		if isBusy(err) {
			if users, _, uerr := volumeUsers(mp); uerr == nil && len(users) > 0 {
				out.Busy = usersJSON(users)
				err = fmt.Errorf("%w; busy: %s", err, names(users))
			}
		}
		return finish(problem(fmt.Errorf("unmount %s: %w", mp, err)))
	}
	out.Unmounted, out.UnmountMethod = true, method
	say("unmounted %s (%s)", mp, method)
	if powerOff {
		if err := powerOffDrive(p); err != nil {
			return finish(problem(fmt.Errorf("power off %s: %w", p.Device, err)))
		}
		out.PoweredOff = true
		say("powered off %s", p.Device)
	}
	return finish(nil)
}

// names lists processes for a message: "pid 12 (vim), pid 40 (sh)".
func names(us []user) string {
	var s []string
	for _, u := range us {
		s = append(s, fmt.Sprintf("pid %d (%s)", u.PID, u.Command))
	}
	return strings.Join(s, ", ")
}

// askHolders asks every live holder to checkpoint and release, all at
// once, waiting at most timeout in all. Results are in holders' order.
func askHolders(holders []holder, timeout time.Duration, sayOnce func(string, ...any)) []ejectHolderOut {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]ejectHolderOut, len(holders))
	var wg sync.WaitGroup
	var mu sync.Mutex
	say := func(format string, a ...any) { // from several goroutines
		mu.Lock()
		defer mu.Unlock()
		sayOnce(format, a...)
	}
	for i, h := range holders {
		r := &out[i]
		r.File, r.DB = h.File, h.DB
		if h.Lease != nil {
			r.PID = h.Lease.PID
		}
		switch {
		case h.Unreadable != "":
			r.Result, r.Message = "unreadable", h.Unreadable
			say("%s: %s; it cannot be asked by this user (root can)", h.File, h.Unreadable)
			continue
		case h.Invalid != "":
			r.Result, r.Message = "invalid", h.Invalid
			say("%s: invalid lease, not followed: %s", h.File, h.Invalid)
			continue
		case h.Stale != "":
			r.Result, r.Message = "stale", h.Stale
			name := h.DB
			if h.Lease == nil {
				name = h.File
			}
			say("%s: stale lease (%s); ignored", name, h.Stale)
			continue
		case h.Lease.Endpoint == "":
			r.Result, r.Message = "no_endpoint", "the holder has no control endpoint to ask"
			say("pid %d (%s): cannot be asked: no control endpoint", r.PID, r.DB)
			continue
		case h.Live == nil:
			// Only a holder that proved, in its status answer, that it
			// holds this lease's database on this volume is asked to
			// release: one that did not answer in time proved nothing
			// (a planted lease naming a slow endpoint).
			r.Result, r.Message = "no_answer", "did not answer its status, so it is not asked to eject: "+h.NoAnswer
			say("pid %d (%s): did not answer its status (%s); not asked to eject", r.PID, r.DB, h.NoAnswer)
			continue
		}
		say("asking pid %d (%s) to checkpoint and release...", r.PID, r.DB)
		wg.Add(1)
		go func(endpoint, db string, vol device.VolumeID, owner int) {
			defer wg.Done()
			start := time.Now()
			// The database is named: an endpoint that does not hold it
			// releases nothing (lease.Server checks).
			resp, err := lease.AskHolder(ctx, endpoint, lease.Request{Op: "eject", DB: db, TimeoutMS: timeout.Milliseconds(),
				VolumeDev: vol.Dev, VolumeMount: vol.Mount}, owner)
			r.ElapsedMS = time.Since(start).Milliseconds()
			switch {
			case err != nil:
				r.Result, r.Message = "no_answer", err.Error()
			case resp.Refused != "":
				r.Result, r.Message = "refused", resp.Refused
			case !resp.OK:
				r.Result, r.Message = "failed", resp.Error
			default:
				r.Result, r.Message = "released", "checkpointed and released"
			}
			switch r.Result {
			case "released":
				say("  pid %d released in %v", r.PID, time.Duration(r.ElapsedMS)*time.Millisecond)
			case "refused":
				say("  pid %d refused: %s", r.PID, r.Message)
			case "failed":
				say("  pid %d could not release: %s", r.PID, r.Message)
			default:
				say("  pid %d did not answer: %s", r.PID, r.Message)
			}
		}(h.Lease.Endpoint, h.DB, h.dbVol, h.owner)
	}
	wg.Wait()
	return out
}

// udisksctl is the udisks client's name; tests put a stand-in on PATH.
const udisksctl = "udisksctl"
