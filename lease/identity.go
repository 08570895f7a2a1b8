package lease

import (
	"fmt"
	"os"
	"sync"
)

// Self describes this process as a lease holder.
//
// Start and Boot come from the platform (identity_linux.go,
// identity_darwin.go, identity_windows.go); they are only ever compared
// with values read on the same host, so their units differ by platform:
//
//   - Linux: Start in clock ticks since boot (/proc/PID/stat), Boot the
//     kernel's boot_id;
//   - macOS: Start in microseconds since the epoch (sysctl kern.proc.pid),
//     Boot the kernel's kern.bootsessionuuid;
//   - Windows: Start the process creation time in 100 ns units since 1601
//     (GetProcessTimes), Boot empty: see identity_windows.go.
type Self struct {
	PID   int
	Start uint64
	Host  string
	Boot  string
}

var selfOnce = sync.OnceValues(func() (Self, error) {
	s := Self{PID: os.Getpid()}
	var err error
	if s.Start, err = startTime(s.PID); err != nil {
		return s, err
	}
	if s.Host, err = os.Hostname(); err != nil {
		return s, err
	}
	s.Boot = bootID()
	return s, nil
})

// Me returns this process's identity.
func Me() (Self, error) { return selfOnce() }

// Stale reports whether l's holder is gone, and why.
func (l Lease) Stale() (bool, string) {
	me, err := Me()
	if err != nil {
		return false, "" // cannot tell: treat as live
	}
	switch {
	case l.Host != me.Host:
		// The lease's host is not quoted: a message never quotes a file
		// read from the drive (status shows a valid lease's fields).
		return true, fmt.Sprintf("held by another host; the drive is on %s now", me.Host)
	case l.Boot != "" && me.Boot != "" && l.Boot != me.Boot:
		return true, "held before this host's last boot"
	}
	start, err := startTime(l.PID)
	switch {
	case err != nil:
		return true, fmt.Sprintf("process %d is not running", l.PID)
	case start != l.Start:
		return true, fmt.Sprintf("process %d is another process now (pid reused)", l.PID)
	case exited(l.PID):
		return true, fmt.Sprintf("process %d has exited (a zombie its parent has not reaped)", l.PID)
	}
	return false, ""
}
