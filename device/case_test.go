package device

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCanonicalName on the test's own directory, which is case-sensitive
// (Linux) or not (Windows, macOS by default). Case-sensitive: names are
// kept as given, a file differing only by case is not taken for another,
// and a missing tail is kept. Case-insensitive: a name is spelled as the
// directory holds it. (Real exFAT and FAT: store's
// TestOpen_caseInsensitive.)
func TestCanonicalName(t *testing.T) {
	dir := t.TempDir()
	upper := filepath.Join(dir, "Case.db")
	if err := os.WriteFile(upper, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := os.Lstat(filepath.Join(dir, "case.db"))
	folds := err == nil
	if !folds {
		if err := os.WriteFile(filepath.Join(dir, "case.db"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{
		upper: upper,
		filepath.Join(dir, "Missing", "Sub", "x"): filepath.Join(dir, "Missing", "Sub", "x"), // missing: kept
		filepath.Join(dir, "123"):                 filepath.Join(dir, "123"),
	}
	if folds {
		t.Logf("%s compares names without case", dir)
		want[filepath.Join(dir, "case.db")] = upper
		want[filepath.Join(dir, "CASE.DB")] = upper
	} else {
		want[filepath.Join(dir, "case.db")] = filepath.Join(dir, "case.db")
		want[filepath.Join(dir, "CASE.DB")] = filepath.Join(dir, "CASE.DB") // missing here: kept
	}
	for p, w := range want {
		if got, err := CanonicalName(p); err != nil || got != w {
			t.Errorf("CanonicalName(%s) = %s, %v; want %s", p, got, err, w)
		}
	}
}
