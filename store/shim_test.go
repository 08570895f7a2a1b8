package store

import (
	"testing"
)

// TestShim_commitPathNoGoCall: steady-state commits make no call from
// the shim into Go (ARCHITECTURE, "The commit path makes no Go call"):
// WAL frames, wal-index reads and lock slots stay in C. A checkpoint,
// whose main-file I/O is Go's, shows that the count moves at all.
func TestShim_commitPathNoGoCall(t *testing.T) {
	s, _ := openT(t, &Options{ManualCheckpoint: true})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
	mustExec(t, db, "INSERT INTO t(id, v) VALUES (1, 0)")
	stmt, err := db.Prepare("UPDATE t SET v = ? WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	commit := func(i int) {
		t.Helper()
		if _, err := stmt.Exec(i); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	for i := 0; i < 100; i++ { // warm: pages cached, connections open
		commit(i)
	}
	before := goCallbacks.Load()
	for i := 0; i < 3000; i++ {
		commit(i)
	}
	if got := goCallbacks.Load() - before; got != 0 {
		t.Errorf("3,000 steady-state commits made %d calls into Go; want 0", got)
	}
	mustCheckpoint(t, s)
	if goCallbacks.Load() == before {
		t.Errorf("a checkpoint made no call into Go: the count counts nothing")
	}
}
