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
