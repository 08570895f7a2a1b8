package store

import (
	"path/filepath"
	"runtime"
)

// vol makes p, a slash path on a faultinject volume ("/vol/x"), absolute
// for this platform: Windows has no absolute path without a drive, and
// Open would put the current drive in front.
func vol(p string) string {
	if runtime.GOOS == "windows" {
		return `C:` + filepath.FromSlash(p)
	}
	return p
}
