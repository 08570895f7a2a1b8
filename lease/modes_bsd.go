//go:build unix && !linux

package lease

import "golang.org/x/sys/unix"

// modesMadeUp: see modes_linux.go. Here, by the filesystem's type name.
func modesMadeUp(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false
	}
	switch unix.ByteSliceToString(st.Fstypename[:]) {
	case "msdos", "exfat", "ntfs", "macfuse", "osxfuse", "fusefs":
		return true
	}
	return false
}
