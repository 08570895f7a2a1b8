package store

import (
	"testing"
	"time"
)

// TestStore_RewindCheckpointDurable: an automatic checkpoint that takes the
// gate's rewind path (the WAL above the high-water mark) lets SQLite's
// TRUNCATE checkpoint release the WAL with its xSync deferred, and commits
// the MainFile right after. Once that checkpoint has returned, every row
// must be in the database file on the drive, read by the stock sqlite3:
// WAL bytes are released only after the checkpoint that covers them is
// durable (invariant wal-kept-until-durable). The gate's other tests do not look at the
// drive after this path.
func TestStore_RewindCheckpointDurable(t *testing.T) {
	// Automatic checkpoints as by default; whatever starts the first one
	// (pressure or idle), the WAL is then above half the cap.
	s, path := openT(t, &Options{MaxWALBytes: 4 << 20})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x BLOB)")
	const rows = 700 // about 2.9 MiB of 4 KiB pages: above the 2 MiB mark
	mustExec(t, db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) INSERT INTO t SELECT randomblob(4000) FROM n", rows)

	deadline := time.Now().Add(30 * time.Second)
	for {
		st := s.Stats()
		if st.Rewinds > 0 && st.DirtyBytes == 0 && st.Checkpoints > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rewinding checkpoint within 30 s: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.LastCheckpointError != nil {
		t.Fatalf("checkpoint failed: %v", st.LastCheckpointError)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != "700" {
		t.Errorf("rows on the drive after the rewinding checkpoint = %s, want %d", got, rows)
	}
}
