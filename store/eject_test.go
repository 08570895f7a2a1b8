package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// TestStore_ejectRequest drives the Store's control endpoint as ejectsafe
// eject does: status reports what is not checkpointed; a refusing
// OnEjectRequest keeps the store serving; an accepted eject checkpoints,
// releases the lease and leaves every method returning ErrEjected.
func TestStore_ejectRequest(t *testing.T) {
	refuse := errors.New("saving a document")
	var asked int
	var ev events
	s, path := openT(t, &Options{ManualCheckpoint: true, OnStateChange: ev.add, OnEjectRequest: func(context.Context) error {
		asked++
		if asked == 1 {
			return refuse
		}
		return nil
	}})
	if s.endpoint == nil {
		t.Fatalf("no control endpoint: %v", s.Stats().LeaseError)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES (1), (2), (3)")
	l, err := lease.Read(s.opts.FS, s.lease.Path)
	if err != nil || l.PID != os.Getpid() || l.Endpoint != s.endpoint.Endpoint() {
		t.Fatalf("lease %+v, %v", l, err)
	}
	ctx := context.Background()
	ask := func(op string) lease.Response {
		t.Helper()
		resp, err := lease.Ask(ctx, l.Endpoint, lease.Request{Op: op, DB: path})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// The volume as the Store identified it. Device number and mount id
	// are a unix notion: on Windows both are 0 and the holder proves its
	// database's path alone (README, Platforms).
	vol, err := device.VolumeOf(device.OS, filepath.Dir(path), false)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && vol.Dev == 0 {
		t.Fatalf("VolumeOf(%s) = %+v: no device number", filepath.Dir(path), vol)
	}
	if st := ask("status").Status; st == nil || st.DirtyBytes == 0 || st.DB != path || st.VolumeDev != vol.Dev || st.VolumeMount != vol.Mount {
		t.Fatalf("status = %+v; want the database, its volume (%+v) and its dirty bytes", st, vol)
	}
	// An eject for another database (a lease copied or planted elsewhere
	// names this endpoint) releases nothing and does not ask the app.
	if resp, err := lease.Ask(ctx, l.Endpoint, lease.Request{Op: "eject", DB: path + "-elsewhere"}); err != nil || resp.OK || asked != 0 {
		t.Fatalf("eject for another database = %+v, %v (app asked %d times)", resp, err, asked)
	}
	if resp := ask("eject"); resp.OK || resp.Refused != refuse.Error() {
		t.Fatalf("eject under a refusing app = %+v", resp)
	}
	mustExec(t, s.DB(), "INSERT INTO t VALUES (4)") // still serving
	if resp := ask("eject"); !resp.OK {
		t.Fatalf("eject = %+v", resp)
	}
	if err := s.Checkpoint(ctx); !errors.Is(err, ErrEjected) {
		t.Errorf("Checkpoint after eject = %v; want ErrEjected", err)
	}
	if err := s.Close(); !errors.Is(err, ErrEjected) {
		t.Errorf("Close after eject = %v; want ErrEjected", err)
	}
	// The *sql.DB too (README: an ejected Store's calls return ErrEjected).
	if _, err := s.DB().Exec("INSERT INTO t VALUES (5)"); !errors.Is(err, ErrEjected) {
		t.Errorf("db.Exec after eject = %v; want ErrEjected", err)
	}
	if err := s.DB().QueryRow("SELECT count(*) FROM t").Scan(new(int)); !errors.Is(err, ErrEjected) {
		t.Errorf("db.QueryRow after eject = %v; want ErrEjected", err)
	}
	if st := s.State(); st.Condition != Ejected {
		t.Errorf("State after eject = %+v", st)
	}
	ev.wait(t, Ejected, false)
	if _, err := os.Stat(s.lease.Path); !os.IsNotExist(err) {
		t.Errorf("the lease survived the eject: %v", err)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != "4" {
		t.Errorf("after the eject the file holds %s rows; want 4", got)
	}
}
