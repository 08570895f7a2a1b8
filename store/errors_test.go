package store

import (
	"context"
	"errors"
	"path"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// TestErrors_checkpointReexports: a checkpoint on a drive without room
// for its copy fails with an error that errors.Is matches with store's
// own names (ErrCheckpoint, ErrNoSpace, syscall.ENOSPC), and store's
// names for package checkpoint's actionable errors are the same values.
func TestErrors_checkpointReexports(t *testing.T) {
	for _, p := range []struct {
		name       string
		store, ckp error
	}{
		{"ErrNoSpace", ErrNoSpace, checkpoint.ErrNoSpace},
		{"ErrDriveCorrupted", ErrDriveCorrupted, checkpoint.ErrDriveCorrupted},
		{"ErrUnsure", ErrUnsure, checkpoint.ErrUnsure},
	} {
		if p.store != p.ckp {
			t.Errorf("store.%s is not checkpoint.%s", p.name, p.name)
		}
	}
	fsys := faultinject.New(faultinject.Options{Capacity: 1 << 20})
	dir := vol("/vol/full")
	if err := fsys.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	fsys.WriteFile(path.Join(dir, caseMarker), nil, 0o644)
	s, err := Open(fiDB(fsys), &Options{FS: fsys, ManualCheckpoint: true, Durability: Checkpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustCheckpoint(t, s)
	free, err := fsys.FreeSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile(path.Join(dir, "filler"), make([]byte, free-8<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "INSERT INTO t SELECT randomblob(1000) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<100) SELECT i FROM c)")
	err = s.Checkpoint(context.Background())
	for _, want := range []error{ErrCheckpoint, ErrNoSpace, syscall.ENOSPC} {
		if !errors.Is(err, want) {
			t.Errorf("checkpoint on a full drive: %v; errors.Is(err, %v) false", err, want)
		}
	}
}
