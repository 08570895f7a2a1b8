package lease

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Self describes this process as a lease holder.
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

// startTime reads a process's start time (clock ticks since boot, field 22
// of /proc/PID/stat): with the pid, it names one process across pid reuse.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("lease: malformed /proc stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, errors.New("lease: short /proc stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Stale reports whether l's holder is gone, and why.
func (l Lease) Stale() (bool, string) {
	me, err := Me()
	if err != nil {
		return false, "" // cannot tell: treat as live
	}
	switch {
	case l.Host != me.Host:
		return true, fmt.Sprintf("held by host %q, the drive is on %q now", l.Host, me.Host)
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
