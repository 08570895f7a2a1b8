package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// TestStore_StatsDuringFsync: Stats and State answer while a checkpoint
// is held inside the fsync of its copy.
func TestStore_StatsDuringFsync(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	dir := path.Dir(fiDB(fsys))
	s, err := Open(path.Join(dir, "app.db"), &Options{FS: fsys, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES (1), (2)")
	release := make(chan struct{})
	if err := fsys.Inject(faultinject.Hang(release).On(faultinject.OpSync).Matching("*-tmp-*")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Checkpoint(context.Background()) }()
	// The checkpoint is held once the copy's Sync stops the operation
	// count for a while with the checkpoint still running.
	deadline := time.Now().Add(10 * time.Second)
	for n := -1; ; {
		time.Sleep(20 * time.Millisecond)
		m := fsys.OpCount()
		if m == n {
			break
		}
		n = m
		if time.Now().After(deadline) {
			t.Fatal("the checkpoint never reached the held fsync")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the checkpoint returned (%v) with its fsync held", err)
	default:
	}
	answered := make(chan struct{})
	go func() {
		s.Stats()
		s.State()
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Error("Stats or State waited for the checkpoint held in its fsync")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Checkpoint after the release: %v", err)
	}
	if st := s.Stats(); st.Checkpoints != 1 || st.DirtyBytes != 0 {
		t.Errorf("Stats after = %+v", st)
	}
}

// swapFS is a drive bay: the faultinject volume plugged in now, with a
// serial and a mount id that changes at every plug, as device.OS gives on
// Linux.
type swapFS struct {
	mu     sync.Mutex
	cur    *faultinject.FS
	serial string
	mount  uint64
}

func (w *swapFS) plug(f *faultinject.FS, serial string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur, w.serial = f, serial
	w.mount++
}

func (w *swapFS) fs() *faultinject.FS {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

func (w *swapFS) Volume(p string, serial bool) (device.VolumeID, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur.Dead() {
		return device.VolumeID{}, &os.PathError{Op: "statx", Path: p, Err: syscall.ENOTCONN}
	}
	v := device.VolumeID{Mount: w.mount, Dev: 7}
	if serial {
		v.Serial = w.serial
	}
	return v, nil
}

func (w *swapFS) Open(n string, m device.OpenMode) (device.File, error) { return w.fs().Open(n, m) }
func (w *swapFS) Create(n string, p os.FileMode) (device.File, error)   { return w.fs().Create(n, p) }
func (w *swapFS) Rename(a, b string) error                              { return w.fs().Rename(a, b) }
func (w *swapFS) Remove(n string) error                                 { return w.fs().Remove(n) }
func (w *swapFS) Stat(n string) (os.FileInfo, error)                    { return w.fs().Stat(n) }
func (w *swapFS) List(d string) ([]string, error)                       { return w.fs().List(d) }
func (w *swapFS) SyncDir(d string) error                                { return w.fs().SyncDir(d) }
func (w *swapFS) Lock(n string) (io.Closer, error)                      { return w.fs().Lock(n) }
func (w *swapFS) FreeSpace(n string) (int64, error)                     { return w.fs().FreeSpace(n) }

// events collects what OnStateChange tells.
type events struct {
	mu sync.Mutex
	ev []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

// wait waits for an event with condition c (and reattached, if asked).
func (e *events) wait(t *testing.T, c Condition, reattached bool) Event {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		e.mu.Lock()
		for _, ev := range e.ev {
			if ev.Condition == c && (!reattached || ev.Reattached) {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t.Fatalf("no %v event (reattached %v); got %+v", c, reattached, e.ev)
	return Event{}
}

// TestStore_swap plays issue 10's swap on simulated drives: the app's
// drive A is pulled; B, with a database of its own at the same path, is
// plugged in; then A comes back changed elsewhere; then A as it was. The
// Store writes nothing to B nor to the changed A (ErrDriveChanged, naming
// what differs), and reattaches to A unchanged, where every row it
// committed, before and after the pull, is durable after a checkpoint.
func TestStore_swap(t *testing.T) {
	dir := vol("/vol")
	dbPath := filepath.Join(dir, "app.db")
	newDrive := func() *faultinject.FS {
		f := faultinject.New(faultinject.Options{})
		if err := f.MkdirAll(dir); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := newDrive()
	// Drive B holds a database of its own, written by a Store.
	b := newDrive()
	bay := &swapFS{}
	bay.plug(b, "BBBB-0002")
	sb, err := Open(dbPath, &Options{FS: bay, ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, sb.DB(), "CREATE TABLE t(x)")
	mustExec(t, sb.DB(), "INSERT INTO t VALUES ('b1'), ('b2'), ('b3')")
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}

	bay.plug(a, "AAAA-0001")
	var ev events
	s, err := Open(dbPath, &Options{FS: bay, ManualCheckpoint: true, OnStateChange: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	if id := s.Identity(); id.Volume.Serial != "AAAA-0001" {
		t.Errorf("Identity().Volume = %+v", id.Volume)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	mustExec(t, s.DB(), "INSERT INTO t VALUES ('a1'), ('a2')")
	mustCheckpoint(t, s)
	mustExec(t, s.DB(), "INSERT INTO t VALUES ('a3')")

	a.Pull()
	if err := s.Checkpoint(context.Background()); !errors.Is(err, ErrDriveLost) {
		t.Fatalf("Checkpoint with the drive pulled = %v; want ErrDriveLost", err)
	}
	ev.wait(t, DriveLost, false)
	mustExec(t, s.DB(), "INSERT INTO t VALUES ('a4')") // commits go on into memory

	t.Run("other drive", func(t *testing.T) {
		b2 := b.CrashImage(faultinject.DropAll, 0) // B as it stands, plugged in
		bay.plug(b2, "BBBB-0002")
		before := b2.Files()
		for i := 0; i < 3; i++ {
			err := s.Checkpoint(context.Background())
			if !errors.Is(err, ErrDriveChanged) || !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("Checkpoint %d on drive B = %v; want ErrDriveChanged", i, err)
			}
			if i == 0 {
				t.Logf("Checkpoint on B: %v", err)
			}
		}
		if after := b2.Files(); !reflect.DeepEqual(before, after) {
			t.Errorf("drive B changed: %d files before, %d after", len(before), len(after))
		}
		if st := s.State(); st.Condition != DriveChanged || !errors.Is(st.Err, ErrDriveChanged) {
			t.Errorf("State = %+v; want DriveChanged", st)
		}
		ev.wait(t, DriveChanged, false)
		// A clone of A's volume serial (or a serial that cannot be read):
		// the database identity alone refuses B.
		b3 := b.CrashImage(faultinject.DropAll, 0)
		bay.plug(b3, "AAAA-0001")
		before = b3.Files()
		err := s.Checkpoint(context.Background())
		if !errors.Is(err, ErrDriveChanged) {
			t.Fatalf("Checkpoint on B with A's serial = %v; want ErrDriveChanged", err)
		}
		t.Logf("Checkpoint on B with A's serial: %v", err)
		if after := b3.Files(); !reflect.DeepEqual(before, after) {
			t.Error("drive B (with A's serial) was written")
		}
	})

	aImage := a.CrashedImage() // A as the pull left it
	t.Run("changed elsewhere", func(t *testing.T) {
		changed := aImage.CrashImage(faultinject.DropAll, 0)
		data, err := changed.ReadFile(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)-1] ^= 0xff // another program wrote the database
		if err := changed.WriteFile(dbPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		bay.plug(changed, "AAAA-0001")
		before := changed.Files()
		err = s.Checkpoint(context.Background())
		if !errors.Is(err, ErrDriveChanged) {
			t.Fatalf("Checkpoint on A changed elsewhere = %v; want ErrDriveChanged", err)
		}
		t.Logf("Checkpoint on A changed elsewhere: %v", err)
		if after := changed.Files(); !reflect.DeepEqual(before, after) {
			t.Error("the changed database's drive was written")
		}
	})

	t.Run("same drive back", func(t *testing.T) {
		bay.plug(aImage, "AAAA-0001")
		mustCheckpoint(t, s)
		if e := ev.wait(t, Attached, true); e.Reattaches != 1 {
			t.Errorf("reattached event %+v; want Reattaches 1", e)
		}
		mustExec(t, s.DB(), "INSERT INTO t VALUES ('a5')")
		mustCheckpoint(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(dbPath, &Options{FS: bay, ManualCheckpoint: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		var n int
		if err := s2.DB().QueryRow("SELECT count(*) FROM t WHERE x LIKE 'a%'").Scan(&n); err != nil || n != 5 {
			t.Errorf("after reattaching: %d rows (%v); want 5", n, err)
		}
	})
}

// TestStore_stateCheckpointsFailing: a failing drive (EIO on every fsync
// of a copy) is CheckpointsFailing, said once; the drive recovering makes
// it Attached again, which is not a reattach.
func TestStore_stateCheckpointsFailing(t *testing.T) {
	fsys, err := fiSetup()
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	s, err := Open(path.Join(path.Dir(fiDB(fsys)), "app.db"), &Options{FS: fsys, ManualCheckpoint: true, OnStateChange: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.State(); st.Condition != Attached || st.Err != nil {
		t.Fatalf("State after Open = %+v", st)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	if err := fsys.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpSync).Matching("*-tmp-*").Always()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Checkpoint(context.Background()); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Checkpoint = %v; want EIO", err)
		}
	}
	if st := s.State(); st.Condition != CheckpointsFailing || !errors.Is(st.Err, syscall.EIO) {
		t.Errorf("State = %+v; want CheckpointsFailing with EIO", st)
	}
	fsys.ClearRules()
	mustCheckpoint(t, s)
	ev.wait(t, CheckpointsFailing, false)
	e := ev.wait(t, Attached, false)
	ev.mu.Lock()
	n := len(ev.ev)
	ev.mu.Unlock()
	if e.Reattached || n != 2 {
		t.Errorf("events %+v; want CheckpointsFailing once, then Attached (not a reattach)", ev.ev)
	}
}
