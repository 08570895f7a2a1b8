//go:build linux

package yank

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/store"
)

// fillOnCreate is an FS that fills the volume when the store creates a
// checkpoint copy: after the free-space check passed, before the copy is
// written. The drive fills up mid-checkpoint, as when another program
// writes to it.
type fillOnCreate struct {
	device.FS
	fill func() error
	err  error // the fill's own error
}

func (f *fillOnCreate) Create(name string, perm os.FileMode) (device.File, error) {
	if f.fill != nil && strings.Contains(filepath.Base(name), ".ejectsafe-tmp-") {
		f.err, f.fill = f.fill(), nil
	}
	return f.FS.Create(name, perm)
}

// storeT is a store on a volume with helpers that fail the test.
type storeT struct {
	t    *testing.T
	s    *store.Store
	rows int
}

func (st *storeT) insert(n int) {
	st.t.Helper()
	if _, err := st.s.DB().Exec(insertBatch(n, rowBytes)); err != nil {
		st.t.Fatalf("insert while the drive is full: %v (the store must keep serving from memory)", err)
	}
	st.rows += n
}

// count checks that every committed row is readable.
func (st *storeT) count(when string) {
	st.t.Helper()
	var n int
	if err := st.s.DB().QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != st.rows {
		st.t.Fatalf("%s: count = %d, %v; want %d", when, n, err, st.rows)
	}
}

// TestFull_DriveFull fills the volume, before a checkpoint and in the
// middle of one: Checkpoint and Close fail with ErrCheckpoint and the
// filesystem's own errno, the store keeps serving reads and writes from
// memory, and once space is freed the next checkpoint succeeds and a
// reopen shows every row.
func TestFull_DriveFull(t *testing.T) {
	for _, kind := range kinds() {
		for _, when := range []string{"before", "mid-checkpoint"} {
			t.Run(string(kind)+"/"+when, func(t *testing.T) {
				realfs.Skip(t, kind)
				v, err := realfs.New(t, realfs.Options{Kind: kind})
				if err != nil {
					t.Fatal(err)
				}
				driveFull(t, v, when)
			})
		}
	}
}

// driveFull runs the drive-full scenario.
func driveFull(t *testing.T, v *realfs.Volume, when string) {
	path := filepath.Join(v.Mount, dbName)
	fsys := &fillOnCreate{FS: fsFor(v.Mount, nil)}
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abandon()
	st := &storeT{t: t, s: s}
	if _, err := s.DB().Exec(tableSQL); err != nil {
		t.Fatal(err)
	}
	st.insert(2000) // 2 MiB
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	st.insert(500)
	if when == "before" {
		if err := v.Fill(64 << 10); err != nil {
			t.Fatal(err)
		}
	} else {
		fsys.fill = func() error { return v.Fill(0) }
	}

	err = s.Checkpoint(context.Background())
	errno := realfs.FullErrno[v.Kind]
	t.Logf("FINDING %s drive full %s: Checkpoint: %v", v.Kind, when, err)
	if fsys.err != nil {
		t.Fatalf("Fill: %v", fsys.err)
	}
	switch {
	case err == nil:
		t.Fatalf("Checkpoint on a full drive succeeded")
	case !errors.Is(err, store.ErrCheckpoint):
		t.Errorf("Checkpoint error %v is not store.ErrCheckpoint", err)
	case !errors.Is(err, errno) && !errors.Is(err, syscall.ENOSPC):
		t.Errorf("Checkpoint error %v carries neither ENOSPC nor %v (what %s gives for a full drive)", err, errno, v.Kind)
	}
	st.count("after the failed checkpoint")
	st.insert(100)
	st.count("after a commit on the full drive")
	if err := s.Close(); err == nil || !errors.Is(err, store.ErrCheckpoint) {
		t.Fatalf("Close on a full drive = %v, want an error wrapping store.ErrCheckpoint", err)
	}
	st.count("after the failed Close") // the store is still open
	if got := s.Stats(); got.CheckpointFailures < 2 || got.LastCheckpointError == nil {
		t.Errorf("Stats after two failures: %+v", got)
	}

	if err := v.Unfill(); err != nil {
		t.Fatal(err)
	}
	err = s.Checkpoint(context.Background())
	if err == nil {
		err = s.Close()
	}
	if err != nil {
		t.Fatalf("checkpoint and Close after space was freed: %v", err)
	}
	if err := v.Remount(); err != nil {
		t.Fatal(err)
	}
	rows, problems, _, recovery := verifyStore(path)
	if err := v.Unmount(); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	if rows != st.rows || len(problems) > 0 {
		t.Errorf("after reopen: %d rows, want %d; %q; %s", rows, st.rows, problems, recovery)
	}
	if !rep.Clean {
		t.Errorf("fsck after the drive-full test and a clean unmount:\n%s", rep.Output)
	}
}

// TestFull_ReadOnly covers a drive that comes back read-only. A FUSE
// mount with files open for writing cannot be remounted read-only (both
// umount and mount -o remount,ro answer "busy"), so the way a running
// application meets a read-only drive is a drive pulled and plugged back
// in write-protected: the store's handles are on the dead mount. The
// store keeps serving what it has in memory, Checkpoint and Close fail
// typed, and nothing committed is dropped while the process lives; but
// it cannot take up the remounted drive, even once writable again: only
// Abandon (dropping what was not checkpointed) and Open get the
// database back. A store opened on the read-only drive is refused with
// ErrReadOnly.
func TestFull_ReadOnly(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			v, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			readOnly(t, v)
		})
	}
}

// readOnly runs the read-only scenario.
func readOnly(t *testing.T, v *realfs.Volume) {
	path := filepath.Join(v.Mount, dbName)
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsFor(v.Mount, nil), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	abandoned := false
	defer func() {
		if !abandoned {
			s.Abandon()
		}
	}()
	st := &storeT{t: t, s: s}
	if _, err := s.DB().Exec(tableSQL); err != nil {
		t.Fatal(err)
	}
	st.insert(1000)
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkpointed := st.rows
	st.insert(200)

	if err := v.Pull(); err != nil {
		t.Fatal(err)
	}
	if err := v.RemountReadOnly(); err != nil {
		t.Fatal(err)
	}
	err = s.Checkpoint(context.Background())
	t.Logf("FINDING %s: Checkpoint with the drive back read-only after a pull: %v", v.Kind, err)
	if err == nil || !errors.Is(err, store.ErrCheckpoint) {
		t.Fatalf("Checkpoint = %v, want an error wrapping store.ErrCheckpoint", err)
	}
	st.count("after the failed checkpoint")
	st.insert(100)
	st.count("after a commit with the drive read-only")
	if err := s.Close(); err == nil || !errors.Is(err, store.ErrCheckpoint) {
		t.Fatalf("Close = %v, want an error wrapping store.ErrCheckpoint (the store keeps its data)", err)
	}
	st.count("after the failed Close")

	if err := v.Remount(); err != nil { // the write protection is off again
		t.Fatal(err)
	}
	// The store opens its copies and a rebuilt journal by path, on the
	// new mount, but reads its base and appends to its journal through
	// handles on the dead one. Try a few checkpoints and say what each did.
	var errs []error
	for i := 0; i < 3 && (len(errs) == 0 || errs[len(errs)-1] != nil); i++ {
		err := s.Checkpoint(context.Background())
		errs = append(errs, err)
		if err != nil && !errors.Is(err, store.ErrCheckpoint) {
			t.Errorf("Checkpoint = %v, not store.ErrCheckpoint", err)
		}
	}
	t.Logf("FINDING %s: Checkpoints once the drive is writable again: %v", v.Kind, errs)
	st.count("after the drive came back")
	want := st.rows
	if errs[len(errs)-1] != nil {
		// Let go, dropping what the last checkpoint did not cover, as
		// Abandon documents. Its error (closing handles on the dead
		// mount) is expected; it must release the database all the same.
		abandoned = true
		t.Logf("FINDING %s: Abandon: %v", v.Kind, s.Abandon())
		want = checkpointed
	} else if err := s.Close(); errors.Is(err, store.ErrCheckpoint) {
		t.Fatalf("Close after a successful checkpoint: %v", err)
	} else if err != nil {
		// Closing its handles on the dead mount fails; the data is
		// durable and the store is closed, as Close documents.
		t.Logf("FINDING %s: Close after the store took up the remounted drive: %v", v.Kind, err)
	}
	rows, problems, _, recovery := verifyStore(path)
	if rows != want || len(problems) > 0 {
		t.Errorf("reopened: %d rows, want %d; %q; %s", rows, want, problems, recovery)
	}

	if err := v.RemountReadOnly(); err != nil {
		t.Fatal(err)
	}
	s2, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsFor(v.Mount, nil), Logger: quiet})
	if err == nil {
		s2.Close()
		t.Fatalf("store.Open on a read-only drive succeeded")
	}
	if !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("store.Open on a read-only drive = %v, want store.ErrReadOnly", err)
	}
	t.Logf("FINDING %s: store.Open on the read-only drive: %v", v.Kind, err)
}

// TestFull_BiggerThanFree puts a database larger than the drive's free
// space on a small exFAT volume and checkpoints a grow and a churn batch
// (batch). In Auto and in place each checkpoint succeeds and is written
// in place (a copy would not fit: in Auto, chooseMode's first rule), and
// after a reopen the store and the stock sqlite3 shell read exactly the
// committed table. The copy mode is the control: its checkpoint fails
// with ErrNoSpace, nothing lost, which shows the database does not fit
// twice.
func TestFull_BiggerThanFree(t *testing.T) {
	const kind = realfs.ExFAT
	realfs.Skip(t, kind)
	const volMiB, dbMiB = 12, 7
	preload := filepath.Join(t.TempDir(), "preload.db")
	preRows := makePreload(t, preload, dbMiB)
	for _, mode := range []store.CheckpointMode{store.CheckpointAuto, store.CheckpointInPlace, store.CheckpointCopy} {
		t.Run(mode.String(), func(t *testing.T) {
			v, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: volMiB})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(v.Mount, dbName)
			if err := copyFile(path, preload); err != nil {
				t.Fatal(err)
			}
			if err := v.Remount(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			free, err := device.OS.FreeSpace(v.Mount)
			if err != nil {
				t.Fatal(err)
			}
			if free >= fi.Size() {
				t.Fatalf("setup: %d bytes free for a database of %d: it would fit twice", free, fi.Size())
			}
			t.Logf("database %d bytes, %d free on the drive", fi.Size(), free)
			biggerThanFree(t, v, path, mode, make(model, preRows))
		})
	}
}

// biggerThanFree runs TestFull_BiggerThanFree in one mode on v, whose
// database at path holds m.
func biggerThanFree(t *testing.T, v *realfs.Volume, path string, mode store.CheckpointMode, m model) {
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsFor(v.Mount, nil), Logger: quiet, CheckpointMode: mode})
	if mode == store.CheckpointCopy && err != nil {
		// Open checkpoints a database stock SQLite made (a generation of
		// its own): in copy mode that already needs room for a copy.
		t.Logf("copy mode: Open: %v", err)
		if !errors.Is(err, store.ErrNoSpace) {
			t.Fatalf("copy mode: Open = %v; want ErrNoSpace (the copy does not fit) or success", err)
		}
		s = nil
	} else if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		verifyTable(t, v, path, m)
		return
	}
	open := true
	defer func() {
		if open {
			s.Abandon()
		}
	}()
	p := phase{preloadMiB: 7}
	batches := []batch{
		{n: p.batchRows(), num: 1},
		{churn: true, first: 3, stride: len(m) / p.churnRows(), count: p.churnRows(), num: 2},
	}
	want := m
	before := s.Stats().InPlaceCheckpoints // Open's own checkpoint, if any
	for i, b := range batches {
		if _, err := s.DB().Exec(b.sql(rowBytes)); err != nil {
			t.Fatal(err)
		}
		err := s.Checkpoint(context.Background())
		st := s.Stats()
		t.Logf("%v checkpoint %d (%s): %v; wrote %d bytes, %v; %d in place", mode, i+1, b, err, st.LastCheckpointWritten, st.LastCheckpointMode, st.InPlaceCheckpoints)
		if mode == store.CheckpointCopy {
			if !errors.Is(err, store.ErrCheckpoint) || !errors.Is(err, store.ErrNoSpace) {
				t.Fatalf("copy mode: Checkpoint = %v; want ErrCheckpoint and ErrNoSpace (the copy does not fit)", err)
			}
			break // the rows stay in memory; Abandon drops them
		}
		if err != nil {
			t.Fatalf("checkpoint %d of a database bigger than the free space: %v", i+1, err)
		}
		if st.LastCheckpointMode != store.CheckpointInPlace || st.InPlaceCheckpoints != before+int64(i+1) {
			t.Fatalf("checkpoint %d: LastCheckpointMode %v, InPlaceCheckpoints %d; want in place, %d", i+1, st.LastCheckpointMode, st.InPlaceCheckpoints, before+int64(i+1))
		}
		want = want.apply(b)
	}
	if mode == store.CheckpointCopy {
		err = s.Abandon()
	} else {
		err = s.Close()
	}
	open = false
	if err != nil {
		t.Fatal(err)
	}
	verifyTable(t, v, path, want)
}

// verifyTable remounts v and checks that the store and the stock
// shell read want at path, and fsck after a clean unmount.
func verifyTable(t *testing.T, v *realfs.Volume, path string, want model) {
	t.Helper()
	if err := v.Remount(); err != nil {
		t.Fatal(err)
	}
	got, problems, _, recovery := verifyStoreSig(path) // the stock shell too
	if err := v.Unmount(); err != nil {
		t.Fatal(err)
	}
	rep, err := v.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	if got != want.sig() || len(problems) > 0 {
		t.Errorf("after reopen: %v (rows|sum(g)|sum(g*id)), want %v; %q; %s", got, want.sig(), problems, recovery)
	}
	if !rep.Clean {
		t.Errorf("fsck after a clean unmount:\n%s", rep.Output)
	}
}
