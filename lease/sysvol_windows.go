package lease

import (
	"path/filepath"
	"strings"

	"golang.org/x/sys/windows"
)

// systemVolume: the volume Windows runs from (as "/" on unix): never
// ejected, so no lease directory on it.
func systemVolume(mountPoint string) bool {
	dir, err := windows.GetWindowsDirectory()
	if err != nil {
		return true
	}
	return strings.EqualFold(filepath.VolumeName(mountPoint), filepath.VolumeName(dir))
}
