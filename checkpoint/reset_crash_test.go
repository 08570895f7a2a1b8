package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

// TestResetJournal_crash: ResetJournal cut by a pull at each of its
// operations under every crash policy (several seeds for the random
// ones), then Recover, then ResetJournal and Recover again: the database
// is untouched and no checkpoint copy is lost. A copy left under its temp
// name once the journal has moved would be removed by Recover as a
// leftover (review finding 1: the journal was moved first, the copies
// after, with one directory fsync at the end).
func TestResetJournal_crash(t *testing.T) {
	newer := jbytes(0, began1, ready1)
	newer[8] = journal.Version + 1 // a journal Recover refuses (ErrJournal)
	files := map[string][]byte{nDB: stateA, nJ: newer, nTemp1: stateB, nTemp2: stateC, nJTemp: []byte("history")}
	setup := func() *faultinject.FS {
		fs := newFS(t, faultinject.Options{})
		for n, b := range files {
			fs.WriteFile(testDir+"/"+n, b, 0o644)
		}
		fs.SyncDir(testDir)
		return fs
	}
	check := func(img *faultinject.FS, what string) {
		t.Helper()
		if got := fileOf(img, testDB); !bytes.Equal(got, stateA) {
			t.Fatalf("%s: the database changed", what)
		}
		all := img.Files()
		for name, b := range map[string][]byte{"copy 1": stateB, "copy 2": stateC, "journal": newer} {
			found := false
			for _, v := range all {
				found = found || bytes.Equal(v, b)
			}
			if !found {
				t.Fatalf("%s: the %s is gone (files: %v)", what, name, names(all))
			}
		}
	}

	fs := setup()
	start := fs.OpCount()
	if _, err := ResetJournal(fs, testDB); err != nil {
		t.Fatal(err)
	}
	n := fs.OpCount() - start
	if rep, err := Recover(fs, testDB); err != nil {
		t.Fatalf("Recover after ResetJournal: %v, %v", rep, err)
	}
	check(fs, "no cut")

	for at := 0; at <= n; at++ {
		for _, pol := range faultinject.AllPolicies() {
			seeds := 1
			if pol.Random() {
				seeds = 8
			}
			for seed := 0; seed < seeds; seed++ {
				fs := setup()
				fs.CrashAt(fs.OpCount()+at, pol, int64(seed))
				ResetJournal(fs, testDB) // cut somewhere: its error is the pull's
				img := fs.CrashedImage()
				if img == nil {
					img = fs.CrashImage(faultinject.DropAll, 0)
				}
				what := func(s string) string {
					return fmt.Sprintf("%s after a cut at %d (%v, seed %d)", s, at, pol, seed)
				}
				if _, err := Recover(img, testDB); err != nil && !errors.Is(err, ErrJournal) {
					t.Fatalf("%s: %v", what("Recover"), err)
				}
				check(img, what("Recover"))
				if _, err := ResetJournal(img, testDB); err != nil {
					t.Fatalf("%s: %v", what("ResetJournal again"), err)
				}
				if _, err := Recover(img, testDB); err != nil {
					t.Fatalf("%s: %v", what("Recover after ResetJournal again"), err)
				}
				check(img, what("ResetJournal again, Recover"))
			}
		}
	}
}

func names(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
