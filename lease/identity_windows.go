package lease

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// startTime reads a process's creation time (GetProcessTimes, in 100 ns
// units since 1601): with the pid, it names one process across pid reuse
// and across reboots. A pid with no running process is an error; so is a
// process that has exited but whose handle someone still holds.
func startTime(pid int) (uint64, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return 0, fmt.Errorf("lease: process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return 0, fmt.Errorf("lease: process %d: %w", pid, err)
	}
	if code != uint32(windows.STATUS_PENDING) { // STILL_ACTIVE
		return 0, fmt.Errorf("lease: process %d has exited", pid)
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return 0, fmt.Errorf("lease: process %d: %w", pid, err)
	}
	return uint64(created.HighDateTime)<<32 | uint64(created.LowDateTime), nil
}

// bootID is empty on Windows, on purpose. Windows has no boot id, and the
// kernel's boot time moves when the clock is set; a stamp that moved under
// a live holder would make its lease look stale, and eject would then
// unmount under it. The creation time in Start is absolute, so pid and
// Start already tell a process of an earlier boot from one of this boot.
func bootID() string { return "" }
