//go:build unix

package lease

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"syscall"
)

func ownerOf(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// processOwner is the uid pid runs as, where the platform tells (Linux:
// the owner of /proc/PID).
func processOwner(pid int) (int, bool) {
	if runtime.GOOS != "linux" {
		return 0, false
	}
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return 0, false
	}
	return ownerOf(fi), true
}
