package store

import (
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// sweepDead removes, once this Store holds its lease, the leases on its
// volume (and beside its database) whose holders are proven gone from
// this host, and the control sockets of this user whose servers are gone:
// a holder killed with SIGKILL leaves both behind, and they would be
// reported by status for ever. A lease is removed only when its holder is
// dead (lease.Dead: this host, pid gone, reused or a zombie, or an earlier
// boot) and its OS lock is free (lease.LockFree). Best effort: a failure
// is logged, never returned; the lease files are informative and the OS
// lock, not they, keeps a second process out.
func (s *Store) sweepDead() {
	if !device.IsNative(s.opts.FS) {
		return
	}
	log := s.opts.Logger
	if _, err := lease.SweepEndpoints(); err != nil {
		log.Debug("ejectsafe: sweeping dead control sockets", "err", err)
	}
	if s.opts.ReadOnly {
		return // removing a lease is a write to the drive
	}
	for _, f := range lease.FindNear(s.lease, s.path) {
		if f.Err != nil || f.File == s.lease.Path {
			continue // invalid: not ours to judge; ours: live
		}
		dead, why := f.Lease.Dead()
		if !dead {
			continue
		}
		if free, err := lease.LockFree(f.DBPath()); !free || err != nil {
			continue
		}
		if err := lease.Remove(device.OS, f.File); err != nil {
			log.Warn("ejectsafe: removing a dead lease", "lease", f.File, "err", err)
			continue
		}
		log.Info("ejectsafe: removed a dead lease", "lease", f.File, "db", f.DBPath(), "why", why)
	}
}
