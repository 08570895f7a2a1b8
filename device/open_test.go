package device

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestOS_renameWhileOpen: a file open through OS can be renamed (on
// Windows this needs FILE_SHARE_DELETE on every handle: open_windows.go).
// Renaming another file over an open one is POSIX only: Windows refuses it
// ("access denied") whatever the share mode, so the checkpoint closes a
// file before anything is renamed over it.
func TestOS_renameWhileOpen(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for _, name := range []string{a, c} {
		f, err := OS.Create(name, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(name), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ra, err := OS.Open(a, ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	wc, err := OS.Open(c, ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	// The open a is renamed to b.
	if err := OS.Rename(a, b); err != nil {
		t.Fatalf("rename of an open file: %v", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	// The open c replaces the open b.
	if err := OS.Rename(c, b); err != nil {
		t.Fatalf("rename of an open file over an open file: %v", err)
	}
	got, err := os.ReadFile(b)
	if err != nil || string(got) != c {
		t.Fatalf("b holds %q, %v; want %q", got, err, c)
	}
	// The handles still read what they opened.
	buf := make([]byte, len(a))
	if _, err := ra.ReadAt(buf, 0); err != nil || string(buf) != a {
		t.Errorf("the renamed-over handle reads %q, %v; want %q", buf, err, a)
	}
}
