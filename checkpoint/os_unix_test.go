//go:build unix

package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
)

// TestMain_OS commits on the real filesystem: the database file is
// replaced (a new inode each commit, its mode kept), with and without
// Prepare, and nothing is left over.
func TestMain_OS(t *testing.T) {
	{
		dir := t.TempDir()
		db := filepath.Join(dir, "app.db")
		if err := os.WriteFile(db, stateA, 0o600); err != nil {
			t.Fatal(err)
		}
		inode := func() uint64 {
			fi, err := os.Stat(db)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode())
			}
			return fi.Sys().(*syscall.Stat_t).Ino
		}
		if _, err := Recover(device.OS, db); err != nil {
			t.Fatal(err)
		}
		m, err := Open(device.OS, db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := stateA
		inodes := []uint64{inode()}
		for i, ws := range [][]write{writesB(), writesC(), {{7, []byte("D")}}} {
			if i == 1 {
				if err := m.Prepare(); err != nil {
					t.Fatal(err)
				}
			}
			if err := applyMain(m, ws); err != nil {
				t.Fatal(err)
			}
			for _, w := range ws {
				want = apply(slices.Clone(want), w)
			}
			mustCommit(t, m)
			got, err := os.ReadFile(db)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("commit %d: file differs (%d vs %d bytes), %v", i, len(got), len(want), err)
			}
			// Inode numbers are reused once freed: compare with the file
			// that was live while the copy was created.
			if ino := inode(); ino == inodes[len(inodes)-1] {
				t.Errorf("commit %d: the database was not replaced (inode %d)", i, ino)
			} else {
				inodes = append(inodes, ino)
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		names, _ := device.OS.List(dir)
		if !slices.Equal(names, []string{"app.db", "app.db.ejectsafe-jrnl"}) {
			t.Errorf("files: %v", names)
		}
		rep, err := Verify(device.OS, db)
		if err != nil || rep.Action != ActionNone || !strings.Contains(rep.String(), "matches the journal") {
			t.Errorf("Verify: %v, %v", rep, err)
		}
	}
}
