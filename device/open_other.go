//go:build !windows

package device

import "os"

// openFile is os.OpenFile; os_windows.go has its own, for share modes.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
