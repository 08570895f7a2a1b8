package device

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCanonicalName on a case-sensitive directory: names are kept as
// given, a file differing only by case is not taken for another, and a
// missing tail is kept. (Case-insensitive volumes: store's
// TestOpen_caseInsensitive on real exFAT and FAT.)
func TestCanonicalName(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"Case.db", "case.db"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{
		filepath.Join(dir, "Case.db"),
		filepath.Join(dir, "case.db"),
		filepath.Join(dir, "CASE.DB"),             // missing here: kept
		filepath.Join(dir, "Missing", "Sub", "x"), // missing directory and below: kept
		filepath.Join(dir, "123"),
	} {
		got, err := CanonicalName(p)
		if err != nil || got != p {
			t.Errorf("CanonicalName(%s) = %s, %v; want it unchanged", p, got, err)
		}
	}
}
