package lease

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// startTime reads a process's start time (sysctl kern.proc.pid.PID,
// p_starttime, in microseconds since the epoch): with the pid, it names
// one process across pid reuse. A pid with no process is an error.
func startTime(pid int) (uint64, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return 0, err
	}
	// The kernel answers an empty record for a pid with no process.
	if int(kp.Proc.P_pid) != pid {
		return 0, fmt.Errorf("lease: no process %d", pid)
	}
	tv := kp.Proc.P_starttime
	return uint64(tv.Sec)*1_000_000 + uint64(tv.Usec), nil
}

// bootID is the kernel's boot session UUID, new at every boot.
func bootID() string {
	s, err := unix.Sysctl("kern.bootsessionuuid")
	if err != nil {
		return ""
	}
	return s
}
