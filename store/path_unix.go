//go:build unix

package store

import (
	"os"
	"syscall"
)

// linkCount returns the number of hard links of a file the OS described.
func linkCount(_ string, fi os.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}
