package main

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

// usersSeen reports whether check and eject can list the processes with
// files open on a volume here (Linux: /proc). Elsewhere they say they
// cannot, and check calls no mounted volume safe: tests that want "safe"
// want that answer instead.
func usersSeen() bool {
	_, _, err := volumeUsers(os.TempDir())
	return !errors.Is(err, errors.ErrUnsupported)
}

// cannotTell is the reason check gives where usersSeen is false.
const cannotTell = "cannot tell which processes use it"

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
