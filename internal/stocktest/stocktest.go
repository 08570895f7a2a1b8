// Package stocktest finds the stock sqlite3 shell for tests that use it as
// the independent reader of what ejectsafe wrote, with one policy for every
// package: present, it is used; missing in CI, the test fails; missing under
// Wine (.ci/wine/exec sets EJECTSAFE_UNDER_WINE: there is no Windows sqlite3
// shell, the host's is a Linux binary) or on a developer's machine, the test
// skips with a loud line. Test helper only.
package stocktest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// ErrMissing is returned by Lookup when no sqlite3 shell can be run.
var ErrMissing = errors.New("the stock sqlite3 CLI is not installed (apt-get install sqlite3)")

// UnderWine reports whether this test binary runs under Wine in CI.
func UnderWine() bool { return os.Getenv("EJECTSAFE_UNDER_WINE") != "" }

// Lookup returns the sqlite3 shell's path. Missing, it returns ErrMissing
// (wrapped), and fatal says whether that is a failure here: in CI on Linux
// it is; under Wine or outside CI it is a loud skip.
func Lookup() (bin string, fatal bool, err error) {
	bin, err = exec.LookPath("sqlite3")
	if err == nil {
		return bin, false, nil
	}
	err = fmt.Errorf("%w: %v", ErrMissing, err)
	return "", os.Getenv("CI") != "" && !UnderWine(), err
}

// Bin returns the sqlite3 shell's path, or fails (CI) or skips loudly;
// what names the check that is not run.
func Bin(t testing.TB, what string) string {
	t.Helper()
	bin, fatal, err := Lookup()
	if err == nil {
		return bin
	}
	if fatal {
		t.Fatalf("sqlite3 CLI missing in CI: %v", err)
	}
	where := "on this machine"
	if UnderWine() {
		where = "under Wine (no Windows sqlite3 shell)"
	}
	t.Skipf("SKIP LOUDLY: %s not checked %s: %v", what, where, err)
	return ""
}
