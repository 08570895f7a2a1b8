package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// realPath makes path absolute with its symlinks resolved, as store.Open
// does, so that every name derived from it (lock, journal, lease, volume)
// is the one the Store uses (on FAT and exFAT, spelled as the directory
// holds it). A missing last element resolves through its
// directory.
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	p, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) {
		dir, derr := filepath.EvalSymlinks(filepath.Dir(abs))
		if derr != nil {
			return "", derr
		}
		p, err = filepath.Join(dir, filepath.Base(abs)), nil
	}
	if err != nil {
		return "", err
	}
	// Spelled as the directory holds it on FAT and exFAT, as store.Open
	// does (device.CanonicalName).
	return device.CanonicalName(p)
}

// orphaned says why a holder whose lease looks live (its pid runs) but
// that did not answer holds nothing on this host, or "": its OS lock
// (<db>.ejectsafe-lock), tried without blocking, is free. A Store holds
// that lock for as long as it has the database open, so nobody on this
// host has the database, whatever the endpoint does: it may be gone, or
// accept and never answer (a planted lease naming a silent socket, issue
// 17: such leases kept a volume "not safe to remove" for ever). Only asked
// for holders that did not answer; trying the lock for an instant is what
// lease.LockFree warns of, and a holder that does not answer is suspect.
func orphaned(h holder) string {
	if h.Lease == nil {
		return ""
	}
	free, err := lease.LockFree(h.DB)
	if err != nil || !free {
		return ""
	}
	if h.Lease.Endpoint == "" || lease.EndpointGone(h.Lease.Endpoint) {
		return fmt.Sprintf("process %d does not hold the database: its lock is free and its control endpoint is gone", h.Lease.PID)
	}
	return fmt.Sprintf("process %d does not hold the database: its lock is free and its control endpoint does not answer", h.Lease.PID)
}

// removeDead removes the lease of a stale holder when it is proven gone
// from this host (lease.Dead with its OS lock free, or orphaned), and
// says so; a lease from another host or an invalid file is kept.
func removeDead(h holder, say func(string, ...any)) {
	if h.Lease == nil || h.Invalid != "" {
		return
	}
	dead, _ := h.Lease.Dead()
	if !dead && h.Orphaned == "" {
		return
	}
	if free, err := lease.LockFree(h.DB); !free || err != nil {
		return
	}
	if err := lease.Remove(device.OS, h.File); err != nil {
		say("%s: could not remove the dead lease %s: %v", h.DB, h.File, err)
		return
	}
	say("%s: removed the dead lease %s", h.DB, h.File)
}
