package checkpoint

import (
	"bytes"
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
// copy or the -wal is lost (each is at its name or aside).
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
	for _, choice := range []Choice{ChooseRollForward, ChooseKeepDrive} {
		want := stateB
		if choice == ChooseKeepDrive {
			want = stateA
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
				fs := setup()
				fs.CrashAt(fs.OpCount()+at, pol, int64(at))
				RecoverWith(fs, testDB, choice) // cut somewhere: its error is the pull's
				img := fs.CrashedImage()
				if img == nil {
					img = fs.CrashImage(faultinject.DropAll, 0)
				}
				if _, err := RecoverWith(img, testDB, choice); err != nil {
					t.Fatalf("choice %d, cut at %d (%v): run again: %v", choice, at, pol, err)
				}
				if got := fileOf(img, testDB); !bytes.Equal(got, want) {
					t.Fatalf("choice %d, cut at %d (%v): the database is not the one chosen", choice, at, pol)
				}
				all := img.Files()
				for name, b := range map[string][]byte{"database": stateA, "copy": stateB, "-wal": wal} {
					found := false
					for _, v := range all {
						found = found || bytes.Equal(v, b)
					}
					if !found {
						t.Fatalf("choice %d, cut at %d (%v): the %s is gone", choice, at, pol, name)
					}
				}
				if choice == ChooseRollForward {
					if _, ok := all[testDB+"-wal"]; ok {
						t.Fatalf("choice %d, cut at %d (%v): a -wal beside the rolled-forward database", choice, at, pol)
					}
				}
				if _, err := Recover(img, testDB); err != nil && choice == ChooseRollForward {
					t.Fatalf("cut at %d (%v): Recover after the choice: %v", at, pol, err)
				}
			}
		}
	}
}
