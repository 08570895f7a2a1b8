package store

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestInspectStock_foldFreeSpace (review finding 7): verify's trial fold
// does not copy the database to a temporary directory without room for
// it (here a 16 KiB tmpfs): the -wal is reported unchecked, and nothing
// is left there.
func TestInspectStock_foldFreeSpace(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	stockSQLite(t, a, `PRAGMA journal_mode=WAL;
CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
`)
	stockSQLite(t, a, `.dbconfig no_ckpt_on_close on
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2000)
INSERT INTO a(v) SELECT printf('a row %d', i) FROM c;
`)
	tmp := t.TempDir()
	if err := syscall.Mount("tmpfs", tmp, "tmpfs", 0, "size=16k"); err != nil {
		t.Skipf("SKIP LOUDLY: mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(tmp, syscall.MNT_DETACH) })
	t.Setenv("TMPDIR", tmp)
	found, err := InspectStock(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || !found[0].Unchecked || !strings.Contains(found[0].Note, "do not fit in "+tmp) {
		t.Fatalf("InspectStock: %+v; want the -wal unchecked, not fitting in %s", found, tmp)
	}
	t.Logf("InspectStock: %s", found[0].Note)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in the temporary directory: %v", left)
	}
}
