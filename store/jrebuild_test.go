package store

import (
	"os"
	"testing"

	"github.com/ejectsafe/ejectsafe/journal"
)

// TestCheckpoint_journalRebuiltOnOS: on the OS's filesystem, enough
// checkpoints to use up the journal's free slots twice, so that it is
// rebuilt (a new file renamed over it) while the Store has it open for
// appends. Windows (and Wine) refuse to rename over a file that is still
// open, so the old journal must be closed first; POSIX does not mind,
// so on Linux this only proves the rebuild path runs on a real file.
func TestCheckpoint_journalRebuiltOnOS(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	fileID := func() uint64 {
		t.Helper()
		b, err := os.ReadFile(journal.Name(path))
		if err != nil {
			t.Fatal(err)
		}
		j, err := journal.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return j.Header.FileID
	}
	// DefaultJournalLimit: 64 slots, 3 records per checkpoint.
	const rounds = 2*64/3 + 3
	ids := map[uint64]bool{}
	for i := 0; i < rounds; i++ {
		mustExec(t, s.DB(), "INSERT INTO t VALUES(?)", i)
		mustCheckpoint(t, s)
		ids[fileID()] = true
	}
	if len(ids) < 3 {
		t.Fatalf("%d checkpoints saw %d journal files; want the journal rebuilt at least twice", rounds, len(ids))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	if err := r.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != rounds {
		t.Fatalf("after reopen: %d rows, %v; want %d", n, err, rounds)
	}
}
