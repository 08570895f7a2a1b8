package store

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// TestStore_foldFindsChangedBase: the database is rewritten in place
// behind an attached Store, same size, unseen by the quick stat check
// (the fault injector keeps no modification time, like a drive that
// changes bytes by itself). The next checkpoint's folded copy reads back
// other bytes than its checksum says; the Main finds the base changed
// (checkpoint.ErrChanged), and the Store treats it as the proof would:
// ErrDriveChanged, State DriveChanged, and a retry refuses too, leaving
// the database on the drive as it is.
func TestStore_foldFindsChangedBase(t *testing.T) {
	dir := vol("/vol")
	dbPath := filepath.Join(dir, "app.db")
	a := faultinject.New(faultinject.Options{NoTrace: true})
	if err := a.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	bay := &swapFS{}
	bay.plug(a, "AAAA-0001")
	var ev events
	// Copy mode: its read-back is what finds the change. In place a
	// checkpoint reads only the pages it rewrites; the change is found by
	// the full proof, recovery or verify (checkpoint's
	// TestInPlace_verifyFindsScribble).
	s, err := Open(dbPath, &Options{FS: bay, ManualCheckpoint: true, OnStateChange: ev.add, CheckpointMode: CheckpointCopy})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES (randomblob(100000))")
	mustCheckpoint(t, s)
	mustExec(t, s.DB(), "INSERT INTO t VALUES ('a2')")
	mustCheckpoint(t, s) // the base's checksum is known: the next checkpoint folds

	f, err := a.Open(dbPath, device.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("scribble"), 50_000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	scribbled, _ := a.ReadFile(dbPath)
	scribbled = bytes.Clone(scribbled)

	mustExec(t, s.DB(), "INSERT INTO t VALUES ('a3')")
	for i := range 2 {
		err := s.Checkpoint(context.Background())
		if !errors.Is(err, ErrDriveChanged) || !errors.Is(err, checkpoint.ErrChanged) {
			t.Fatalf("checkpoint %d over a changed base = %v; want ErrDriveChanged (checkpoint.ErrChanged)", i, err)
		}
		if got, _ := a.ReadFile(dbPath); !bytes.Equal(got, scribbled) {
			t.Fatalf("checkpoint %d: the database on the drive changed", i)
		}
	}
	if st := s.State(); st.Condition != DriveChanged || !errors.Is(st.Err, ErrDriveChanged) {
		t.Fatalf("State = %+v; want DriveChanged", st)
	}
}
