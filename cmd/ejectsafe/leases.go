package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
	"github.com/ejectsafe/ejectsafe/probe"
)

// holder is one lease on a volume, with what its holder said when asked.
type holder struct {
	File     string        `json:"file"`
	DB       string        `json:"db,omitempty"`
	Lease    *lease.Lease  `json:"lease,omitempty"`
	Invalid  string        `json:"invalid,omitempty"` // why the lease file is refused
	Stale    string        `json:"stale,omitempty"`   // why its holder is gone
	Live     *lease.Status `json:"live,omitempty"`    // the holder's answer to status
	NoAnswer string        `json:"no_answer,omitempty"`
	// Unreadable: the lease file exists but this user may not read it
	// (another user's lease, mode 0600): a holder that cannot be seen or
	// asked, counted as live.
	Unreadable string `json:"unreadable,omitempty"`
	Orphaned   string `json:"-"` // why a lease with a running pid holds nothing (see orphaned)
	// dbVol is the volume of the lease's database's directory, as this
	// process sees it (askStatus); Dev 0 when unknown. An eject request
	// names it, and the holder checks it against its own.
	dbVol device.VolumeID
	// owner is the lease file's owner uid (-1: unknown): the holder's
	// server may be that user's (lease.AskHolder).
	owner int
}

// blocks reports whether the holder keeps the volume from being removed:
// a valid lease whose holder is alive, or another user's lease this user
// cannot read and whose holder is not proven gone (Lease is nil then).
func (h holder) blocks() bool {
	if h.Invalid != "" || h.Stale != "" {
		return false
	}
	return h.Unreadable != "" || h.Lease != nil
}

// volume is what status, check and eject know of PATH's volume.
type volume struct {
	Probe probe.Result
	// Mounted: PATH is on a mounted volume other than the root
	// filesystem (which is never ejected or pulled).
	Mounted bool
	Holders []holder
	// Users are the processes with files open on the volume, apart from
	// the files lease holders keep for their stores (eject makes them
	// release those); empty when not Mounted.
	Users []user
	// Uninspected counts processes that could not be inspected (another
	// user's, without root); UsersErr is why none could be.
	Uninspected int
	UsersErr    error
}

// statusTimeout bounds, in all, the status questions status, check and
// eject ask the holders (all at once): they answer in about a second
// whatever the leases on the volume say.
const statusTimeout = time.Second

// gather finds the leases on PATH's volume, asks live holders for
// their status, and finds the processes using the volume.
func gather(path string, timeout time.Duration) (volume, error) {
	var v volume
	path, err := realPath(path)
	if err != nil {
		return v, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return v, err
	}
	if fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		// A block device: the volume is where it is mounted, if anywhere.
		dev, mp, err := deviceMount(path)
		if err != nil {
			return v, err
		}
		if mp == "" {
			v.Probe = probe.Result{Path: dev, Device: dev, MountOptions: []string{}, Notes: []string{}}
			return v, nil
		}
		path = mp
	}
	p, err := probe.Path(path)
	if err != nil {
		return v, err
	}
	v.Probe = p
	v.Mounted = p.MountPoint != "" && p.MountPoint != "/"
	root, found, err := lease.Find(path)
	if err != nil {
		return v, err
	}
	for _, f := range found {
		h := holder{File: f.File, owner: f.Owner}
		switch {
		case f.Unreadable:
			// Judged by its name, or its database's lock, without
			// reading it (lease.Found): stale, invalid, or live.
			who := "another user's lease"
			if f.Owner >= 0 {
				who = fmt.Sprintf("another user's lease (owner uid %d)", f.Owner)
			}
			switch {
			case f.Err != nil && !errors.Is(f.Err, fs.ErrPermission):
				h.Invalid = who + ", unreadable: " + f.Err.Error()
			case f.Stale:
				h.Stale = who + ", unreadable: " + f.Why
			default:
				h.Unreadable = who + ": not readable by this user"
			}
		case f.Err != nil:
			h.Invalid = f.Err.Error()
		default:
			l := f.Lease
			h.Lease, h.DB = &l, f.DBPath()
			h.Stale = f.Why
			if f.Stale && h.Stale == "" {
				h.Stale = "holder gone"
			}
		}
		v.Holders = append(v.Holders, h)
	}
	askStatus(v.Holders, root, timeout)
	if v.Mounted {
		v.Users, v.Uninspected, v.UsersErr = otherUsers(p.MountPoint, root, v.Holders)
	}
	return v, nil
}

// otherUsers lists the processes using the volume at mp, leaving out the
// files each live holder keeps for its own store.
func otherUsers(mp, root string, holders []holder) ([]user, int, error) {
	all, skipped, err := volumeUsers(mp)
	if err != nil {
		return nil, 0, err
	}
	var out []user
	for _, u := range all {
		var dbs []string
		for _, h := range holders {
			if h.blocks() && h.Lease != nil && h.Lease.PID == u.PID {
				dbs = append(dbs, h.DB)
			}
		}
		if len(dbs) > 0 {
			u.Holder = true
			var rest []string
			for _, f := range u.Files {
				mine := false
				for _, db := range dbs {
					mine = mine || storeFile(strings.TrimPrefix(f, "mapped: "), db, root)
				}
				if !mine {
					rest = append(rest, f)
				}
			}
			u.Files = rest
		}
		if len(u.Files) > 0 {
			out = append(out, u)
		}
	}
	return out, skipped, nil
}

// askStatus asks every holder whose lease looks live for its status, all
// at once under one deadline: a holder that never answers (a socket that
// accepts and stays silent) costs the deadline once, not once per lease.
// A holder that answers must prove it holds the lease's database on this
// volume (proveHolder); one that does not is marked invalid: its lease
// was copied from another drive or planted, and it is not asked for
// anything else. One that does not answer is checked for being orphaned.
func askStatus(holders []holder, root string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rootVol, rootErr := device.VolumeOf(device.OS, root, false)
	var wg sync.WaitGroup
	for i := range holders {
		h := &holders[i]
		if !h.blocks() || h.Lease == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The database's own directory, not the volume root: on
			// btrfs a subvolume has a device number of its own under
			// the same mount, and the holder identified its volume from
			// the database's directory.
			dbVol, dbErr := device.VolumeOf(device.OS, filepath.Dir(h.DB), false)
			if dbErr == nil {
				h.dbVol = dbVol
			}
			h.Live, h.NoAnswer = ask(ctx, h.Lease.Endpoint, h.owner)
			if h.Live != nil {
				if why := proveHolder(*h, h.Live, rootVol, rootErr, dbVol, dbErr); why != "" {
					h.Live, h.Invalid = nil, why
				}
				return
			}
			h.Orphaned = orphaned(*h)
			h.Stale = h.Orphaned
		}()
	}
	wg.Wait()
}

// proveHolder says why a holder's answer does not prove it holds the
// database its lease names on this volume, or "": its database's real
// path must be the lease's; that database's directory must be on the
// mount being looked at (rootVol: same mount id; a volume mounted below
// it is another), and the volume the holder identified when it opened the
// database (device number, mount id, from the database's directory) must
// be the one that directory is on now (dbVol). Volumes that cannot be
// identified are not compared.
func proveHolder(h holder, st *lease.Status, rootVol device.VolumeID, rootErr error, dbVol device.VolumeID, dbErr error) string {
	if !lease.SamePath(st.DB, h.DB) {
		return fmt.Sprintf("names a holder of another database (pid %d holds %q, not %q); not followed", h.Lease.PID, st.DB, h.DB)
	}
	if rootErr == nil && dbErr == nil && rootVol.Mount != 0 && dbVol.Mount != 0 && rootVol.Mount != dbVol.Mount {
		return fmt.Sprintf("names a holder of %q, on a volume mounted below this one (pid %d); not followed", st.DB, h.Lease.PID)
	}
	if dbErr == nil && st.VolumeDev != 0 && dbVol.Dev != 0 && !dbVol.SameMount(device.VolumeID{Dev: st.VolumeDev, Mount: st.VolumeMount}) {
		return fmt.Sprintf("names a holder of %q on another volume (pid %d); not followed", st.DB, h.Lease.PID)
	}
	return ""
}

func ask(ctx context.Context, endpoint string, owner int) (*lease.Status, string) {
	if endpoint == "" {
		return nil, "the holder has no control endpoint"
	}
	resp, err := lease.AskHolder(ctx, endpoint, lease.Request{Op: "status"}, owner)
	switch {
	case err != nil:
		return nil, err.Error()
	case !resp.OK:
		return nil, resp.Error
	case resp.Status == nil:
		return nil, "an answer without a status"
	}
	return resp.Status, ""
}
