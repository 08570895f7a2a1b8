package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
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

// symlink is os.Symlink, skipping the test under Wine, whose
// CreateSymbolicLinkW (8.0) is a stub: it reports success and makes no
// link, so a test of links would test nothing there.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); os.Getenv("EJECTSAFE_UNDER_WINE") != "" && (err != nil || fi.Mode()&fs.ModeSymlink == 0) { // set by .ci/wine/exec
		t.Skipf("SKIP LOUDLY: Wine's CreateSymbolicLinkW made no link at %s (a stub in Wine 8.0): symlinks are untested under Wine", link)
	}
}
