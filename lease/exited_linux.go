package lease

import (
	"bytes"
	"fmt"
	"os"
)

// exited reports whether pid has exited but is not yet reaped by its
// parent (a zombie, state Z in /proc/PID/stat) or is being torn down
// (state X). Such a process runs no code and has closed its files: its
// locks are released and its endpoint answers nothing, though its pid
// and start time still read as alive.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false // gone altogether: startTime says so
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses; the state is the first field after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return true
	}
	return false
}
