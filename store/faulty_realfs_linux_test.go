package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/lease"
)

// TestFaulty_realMount injects errors on a real exFAT mount: the store
// runs on a faultinject.Faulty over device.OS, which it treats as the
// OS's filesystem (the lease in the volume's lease directory, the default
// durability of device.OS). Every fsync failing fails the checkpoint with
// EIO while the store keeps serving; once the rule is cleared a
// checkpoint makes every row durable, as the stock sqlite3 CLI reads the
// file alone.
func TestFaulty_realMount(t *testing.T) {
	realfs.Skip(t, realfs.ExFAT)
	v, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(v.Mount, "app.db")
	w := faultinject.Wrap(device.OS, 1)
	s, err := Open(path, &Options{FS: w, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if want := lease.PlaceFor(device.OS, path); s.lease != want || !strings.HasPrefix(s.lease.Path, filepath.Join(v.Mount, lease.DirName)+"/") {
		t.Errorf("lease at %+v; want %+v, in the volume's lease directory, as device.OS gets", s.lease, want)
	}
	if want := map[bool]Durability{true: defaultDurability, false: Checkpoint}[hlSupported()]; s.opts.Durability != want {
		t.Errorf("durability %v through a Faulty over device.OS; want %v, device.OS's default", s.opts.Durability, want)
	}

	mustExec(t, s.DB(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	const before, after = 50, 20
	for i := range before {
		mustExec(t, s.DB(), "INSERT INTO t(v) VALUES(?)", fmt.Sprintf("row %d", i))
	}
	mustCheckpoint(t, s)
	for i := range after {
		mustExec(t, s.DB(), "INSERT INTO t(v) VALUES(?)", fmt.Sprintf("late %d", i))
	}

	if err := w.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpSync).Always()); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(context.Background()); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Checkpoint with every fsync failing on the exFAT mount = %v; want an error wrapping EIO", err)
	}
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != before+after {
		t.Fatalf("after the failed checkpoint the store serves %d rows, %v; want %d", n, err, before+after)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != fmt.Sprint(before) {
		t.Fatalf("the drive holds %s rows after the failed checkpoint; want the %d of the last good one", got, before)
	}

	w.ClearRules()
	mustCheckpoint(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != fmt.Sprint(before+after) {
		t.Errorf("the drive holds %s rows; want %d", got, before+after)
	}
	if got := sqlite3CLI(t, path, "PRAGMA integrity_check"); got != "ok" {
		t.Errorf("integrity_check: %s", got)
	}
}
