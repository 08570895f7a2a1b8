package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

// TestMain_claimedSumNotTrusted (issue 17, finding 2): the journal's last
// Done names a file of the database's size, but the file was rewritten
// in place since (stock SQLite on another computer, same page count).
// Open may take the journal's checksum to name the database, but the next
// checkpoint's Began must carry the checksum of the file it actually
// copies: recovery decides by it whether the database is the base.
func TestMain_claimedSumNotTrusted(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	old := pattern(8192, 'A')
	fs.WriteFile(testDB, old, 0o600)
	m := mustOpenMain(t, fs, Options{})
	mustWriteAt(t, m, []byte("first"), 100)
	mustCommit(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// Rewritten elsewhere, same size.
	db, _ := fs.ReadFile(testDB)
	db = bytes.Clone(db)
	copy(db[5000:], "written by stock sqlite3")
	fs.WriteFile(testDB, db, 0o600)

	m = mustOpenMain(t, fs, Options{})
	defer m.Close()
	mustWriteAt(t, m, []byte("second"), 200)
	mustCommit(t, m)
	data, _ := fs.ReadFile(testJournal)
	j, err := journal.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var began journal.Record
	for _, r := range j.Records {
		if r.Kind == journal.Began {
			began = r
		}
	}
	if began.Gen != 2 {
		t.Fatalf("last Began %v; want generation 2", began)
	}
	if want := journal.Sum(db); began.Sum != want {
		t.Errorf("Began of generation 2 claims checksum %#016x; the base it copied has %#016x", began.Sum, want)
	}
	// The checkpoint kept the outside writes it copied from.
	got, _ := fs.ReadFile(testDB)
	if !bytes.Contains(got, []byte("written by stock sqlite3")) || !bytes.Contains(got, []byte("second")) {
		t.Error("the new database lost bytes of its base or the write")
	}
}

// TestRecoverWith_crash: a person's --roll-forward or --keep-drive, cut
// by a pull at each of its operations under every crash policy, then run
// again: the outcome is the one chosen, and no byte of the database, the
// copy or the -wal is lost (each is at its name or aside). From the same
// cut, the other choice and a plain Recover either refuse or leave a
// database at its name, with the -wal beside it only if it is the -wal's
// own database (review finding 3: moving the database aside first left a
// -wal with no database, which --keep-drive then accepted).
func TestRecoverWith_crash(t *testing.T) {
	wal := bytes.Repeat([]byte{0x37}, 4096) // a stand-in: recovery only names it
	files := map[string][]byte{"app.db": stateA, "app.db.ejectsafe-jrnl": jbytes(0, began1, ready1),
		"app.db.ejectsafe-tmp-1": stateB, "app.db-wal": wal}
	setup := func() *faultinject.FS {
		fs := newFS(t, faultinject.Options{})
		for n, b := range files {
			fs.WriteFile(testDir+"/"+n, b, 0o644)
			fs.SyncDir(testDir)
		}
		return fs
	}
	kept := func(img *faultinject.FS, what string) {
		t.Helper()
		all := img.Files()
		for name, b := range map[string][]byte{"database": stateA, "copy": stateB, "-wal": wal} {
			found := false
			for _, v := range all {
				found = found || bytes.Equal(v, b)
			}
			if !found {
				t.Fatalf("%s: the %s is gone", what, name)
			}
		}
	}
	// safe: after a recovery that did not refuse, a committed database is
	// at its name, and a -wal beside it only if it is the base.
	safe := func(img *faultinject.FS, err error, what string) {
		t.Helper()
		if err != nil && !errors.Is(err, ErrUnrecoverable) {
			t.Fatalf("%s: %v", what, err)
		}
		kept(img, what)
		if err != nil {
			return
		}
		db := fileOf(img, testDB)
		if !bytes.Equal(db, stateA) && !bytes.Equal(db, stateB) {
			t.Fatalf("%s: succeeded, and the database is %s", what, describe(db, map[string][]byte{"A": stateA, "B": stateB}))
		}
		if _, ok := img.Files()[testDB+"-wal"]; ok && !bytes.Equal(db, stateA) {
			t.Fatalf("%s: succeeded with a -wal beside a database it does not belong to", what)
		}
	}
	clone := func(fs *faultinject.FS) *faultinject.FS { return fs.CrashImage(faultinject.KeepAll, 0) }
	for _, choice := range []Choice{ChooseRollForward, ChooseKeepDrive} {
		want, other := stateB, ChooseKeepDrive
		if choice == ChooseKeepDrive {
			want, other = stateA, ChooseRollForward
		}
		// The run without a cut, to count its operations.
		fs := setup()
		start := fs.OpCount()
		if _, err := RecoverWith(fs, testDB, choice); err != nil {
			t.Fatal(err)
		}
		n := fs.OpCount() - start
		for at := 0; at <= n; at++ {
			for _, pol := range faultinject.AllPolicies() {
				seeds := 1
				if pol.Random() {
					seeds = 4
				}
				for seed := 0; seed < seeds; seed++ {
					fs := setup()
					fs.CrashAt(fs.OpCount()+at, pol, int64(at*10+seed))
					RecoverWith(fs, testDB, choice) // cut somewhere: its error is the pull's
					cut := fs.CrashedImage()
					if cut == nil {
						cut = fs.CrashImage(faultinject.DropAll, 0)
					}
					what := fmt.Sprintf("choice %d, cut at %d (%v, seed %d)", choice, at, pol, seed)

					img := clone(cut)
					if _, err := RecoverWith(img, testDB, choice); err != nil {
						t.Fatalf("%s: run again: %v", what, err)
					}
					if got := fileOf(img, testDB); !bytes.Equal(got, want) {
						t.Fatalf("%s: the database is not the one chosen", what)
					}
					kept(img, what)
					if choice == ChooseRollForward {
						if _, ok := img.Files()[testDB+"-wal"]; ok {
							t.Fatalf("%s: a -wal beside the rolled-forward database", what)
						}
					}
					if _, err := Recover(img, testDB); err != nil && choice == ChooseRollForward {
						t.Fatalf("%s: Recover after the choice: %v", what, err)
					}

					img = clone(cut)
					_, err := RecoverWith(img, testDB, other)
					safe(img, err, what+", then the other choice")
					img = clone(cut)
					_, err = Recover(img, testDB)
					safe(img, err, what+", then Recover")
				}
			}
		}
	}
}

// TestRecoverWith_keepDriveNoDatabase (review finding 3): --keep-drive
// with no database, a -wal and a whole copy refuses and modifies nothing;
// it used to record Aborted and orphan the copy, leaving the -wal for the
// next Open to fold into an empty database.
func TestRecoverWith_keepDriveNoDatabase(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDir+"/app.db.ejectsafe-jrnl", jbytes(0, began1, ready1), 0o644)
	fs.WriteFile(testDir+"/app.db.ejectsafe-tmp-1", stateB, 0o644)
	fs.WriteFile(testDir+"/app.db-wal", bytes.Repeat([]byte{0x37}, 4096), 0o644)
	fs.SyncDir(testDir)
	before := fs.Files()
	rep, err := RecoverWith(fs, testDB, ChooseKeepDrive)
	if !errors.Is(err, ErrUnrecoverable) || !strings.Contains(err.Error(), "--keep-drive needs a database") {
		t.Fatalf("RecoverWith(ChooseKeepDrive) = %v, %v; want ErrUnrecoverable (no database to keep)", rep, err)
	}
	if !equalFiles(before, fs.Files()) {
		t.Fatal("a refused --keep-drive modified files")
	}
	// The other choice takes the copy and keeps the -wal aside.
	if rep, err := RecoverWith(fs, testDB, ChooseRollForward); err != nil || !bytes.Equal(fileOf(fs, testDB), stateB) {
		t.Fatalf("RecoverWith(ChooseRollForward) = %v, %v", rep, err)
	}
	if _, ok := fs.Files()[testDB+"-wal"]; ok {
		t.Fatal("a -wal beside the rolled-forward database")
	}
}
