package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
)

// errCase is a Main about to commit: the drive holds before, the Main's
// view is after.
type errCase struct {
	name  string
	setup func(t *testing.T) (fs *faultinject.FS, m *Main, before, after []byte)
}

var errCases = []errCase{
	{"first commit", func(t *testing.T) (*faultinject.FS, *Main, []byte, []byte) {
		fs := newFS(t, faultinject.Options{})
		fs.WriteFile(testDB, stateA, 0o644)
		m := mustOpenMain(t, fs, Options{})
		if err := applyMain(m, writesB()); err != nil {
			t.Fatal(err)
		}
		return fs, m, stateA, stateB
	}},
	{"prepared commit", func(t *testing.T) (*faultinject.FS, *Main, []byte, []byte) {
		fs := newFS(t, faultinject.Options{})
		fs.WriteFile(testDB, stateA, 0o644)
		m := mustOpenMain(t, fs, Options{})
		if err := applyMain(m, writesB()); err != nil {
			t.Fatal(err)
		}
		mustCommit(t, m)
		if err := applyMain(m, writesC()); err != nil {
			t.Fatal(err)
		}
		if err := m.Prepare(); err != nil {
			t.Fatal(err)
		}
		return fs, m, stateB, stateC
	}},
}

// glob turns a copy's path into a pattern for every generation's copy.
var genSuffix = regexp.MustCompile(`-tmp-[0-9]+$`)

func glob(p string) string { return genSuffix.ReplaceAllString(p, "-tmp-*") }

// TestCommit_Errors fails every operation of a commit, with each error
// number, once or persistently (every later operation of that kind on
// that file), and checks: the commit fails with a typed error that
// wraps the errno (or succeeds durably, where the failed operation comes
// after the commit point), reads still serve the new content, a pull
// now leaves the old or the new state, and once the fault clears a later
// commit makes everything durable, with no ordering violation.
func TestCommit_Errors(t *testing.T) {
	errnos := []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EROFS, syscall.ENODEV}
	for _, c := range errCases {
		fs, m, _, _ := c.setup(t)
		start := fs.OpCount()
		mustCommit(t, m)
		ops := fs.Trace()[start:]
		m.Close()
		for i, ev := range ops {
			for _, errno := range errnos {
				for _, persistent := range []bool{false, true} {
					mode := "once"
					if persistent {
						mode = "always"
					}
					name := fmt.Sprintf("%s/op%d-%v-%s/%v-%s", c.name, i, ev.Kind, glob(ev.Path), errno, mode)
					t.Run(name, func(t *testing.T) {
						fs, m, before, after := c.setup(t)
						defer m.Close()
						rule := faultinject.Fail(errno).At(fs.OpCount() + i)
						if persistent {
							rule = faultinject.Fail(errno).On(ev.Kind).Matching(glob(ev.Path)).Always()
						}
						if err := fs.Inject(rule); err != nil {
							t.Fatal(err)
						}
						runFault(t, fs, m, ev, errno, persistent, before, after)
					})
				}
			}
		}
	}
}

func runFault(t *testing.T, fs *faultinject.FS, m *Main, ev faultinject.Event, errno syscall.Errno, persistent bool, before, after []byte) {
	states := map[string][]byte{"old": before, "new": after}
	err := m.Commit()
	switch {
	case err == nil:
		// Only operations after the commit point may fail without failing
		// the commit: the Done record, the reopen's leftovers.
		if got := fileOf(fs, testDB); !bytes.Equal(got, after) {
			t.Fatalf("Commit succeeded but the database is %s", describe(got, states))
		}
	case !errors.Is(err, errno) || !errors.Is(err, ErrCommit):
		t.Fatalf("Commit = %v; want an ErrCommit wrapping %v", err, errno)
	case errno == syscall.ENOSPC && !errors.Is(err, ErrNoSpace):
		t.Fatalf("Commit = %v; want ErrNoSpace", err)
	}
	t.Logf("Commit: %v", err)

	// Reads serve the new content, unless the fault is on reading the
	// base itself, which no overlay can hide.
	if !(persistent && ev.Kind == faultinject.OpReadAt) {
		if got, rerr := contentOf(m); rerr != nil || !bytes.Equal(got, after) {
			t.Fatalf("view after the failure: %v, %s", rerr, describe(got, states))
		}
	}

	// A pull now leaves the old or the new state, and recovery settles it.
	img := fs.CrashImage(faultinject.DropAll, 0)
	if _, rerr := Recover(img, testDB); rerr != nil {
		t.Fatalf("Recover of a pull after the failure: %v", rerr)
	}
	got := fileOf(img, testDB)
	if !bytes.Equal(got, after) && (err == nil || !bytes.Equal(got, before)) {
		t.Fatalf("after a pull and Recover the database is %s", describe(got, states))
	}

	// The fault clears: the next commit makes everything durable.
	fs.ClearRules()
	if err := m.Commit(); err != nil {
		t.Fatalf("Commit after the fault cleared: %v", err)
	}
	if got, _ := contentOf(m); !bytes.Equal(got, after) {
		t.Fatal("view after the retry differs")
	}
	if got := fileOf(fs, testDB); !bytes.Equal(got, after) {
		t.Fatalf("database after the retry is %s", describe(got, states))
	}
	if s := m.Stats(); (s.Failures > 0) != (err != nil) || s.Unsure {
		t.Errorf("stats %+v", s)
	}
	if cerr := m.Close(); cerr != nil && ev.Kind != faultinject.OpClose {
		t.Fatalf("Close: %v", cerr)
	}
	checkTrace(t, fs)

	// Durable: what a pull leaves, recovered and opened afresh.
	img = fs.CrashImage(faultinject.DropAll, 0)
	if _, err := Recover(img, testDB); err != nil {
		t.Fatal(err)
	}
	m2, err := Open(img, testDB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := readMain(t, m2); !bytes.Equal(got, after) {
		t.Fatalf("after the retry, a pull and Recover, the database is %s", describe(got, states))
	}
	if names, _ := img.List(testDir); len(names) != 2 {
		t.Errorf("files left: %v", names)
	}
}

// TestCommit_NoSpace checks the free space check: nothing is written,
// nothing lost.
func TestCommit_NoSpace(t *testing.T) {
	fs := newFS(t, faultinject.Options{Capacity: 100 << 10})
	fs.WriteFile(testDB, stateA, 0o644)
	m := mustOpenMain(t, fs, Options{})
	defer m.Close()
	if err := applyMain(m, writesB()); err != nil {
		t.Fatal(err)
	}
	n := fs.OpCount()
	err := m.Commit()
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrCommit) {
		t.Fatalf("Commit on a full drive = %v", err)
	}
	for _, ev := range fs.Trace()[n:] {
		// The trace has slash paths; Windows' filepath has backslashes.
		if ev.Kind == faultinject.OpCreate && ev.Path != filepath.ToSlash(journalTempOf(testDB)) {
			t.Errorf("a copy was created on a full drive: %v", ev)
		}
	}
	if got := readMain(t, m); !bytes.Equal(got, stateB) {
		t.Fatal("view lost writes")
	}
	if got := fileOf(fs, testDB); !bytes.Equal(got, stateA) {
		t.Fatal("database changed")
	}
}

func journalTempOf(db string) string { return newPaths(db).jtemp }

// TestCommit_Unsure fails the rename and the directory fsync after it, in
// every combination with a pull, and checks the next commit settles the
// name by checksum.
func TestCommit_Unsure(t *testing.T) {
	for _, op := range []faultinject.OpKind{faultinject.OpRename, faultinject.OpSyncDir} {
		t.Run(op.String(), func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			fs.WriteFile(testDB, stateA, 0o644)
			m := mustOpenMain(t, fs, Options{})
			defer m.Close()
			if err := applyMain(m, writesB()); err != nil {
				t.Fatal(err)
			}
			mustCommit(t, m) // creates the journal, with a rename of its own
			if err := applyMain(m, writesC()); err != nil {
				t.Fatal(err)
			}
			fs.Inject(faultinject.Fail(syscall.EIO).On(op).Always())
			err := m.Commit()
			if !errors.Is(err, ErrUnsure) {
				t.Fatalf("Commit = %v; want ErrUnsure", err)
			}
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Commit = %v; want EIO", err)
			}
			if got := readMain(t, m); !bytes.Equal(got, stateC) {
				t.Fatal("view changed")
			}
			// Still failing: the next commit cannot settle, and says so.
			if err := m.Commit(); err == nil {
				t.Fatal("Commit succeeded with the fault still armed")
			}
			fs.ClearRules()
			mustCommit(t, m)
			if got := fileOf(fs, testDB); !bytes.Equal(got, stateC) {
				t.Fatal("database after settling differs")
			}
			if s := m.Stats(); s.Unsure || s.Failures != 2 {
				t.Errorf("stats %+v", s)
			}
			checkTrace(t, fs)
		})
	}
}

// renameLiar renames, then reports EIO for renames over the database:
// the case faultinject's rules (a failed operation has no effect) cannot
// produce, and a real device can.
type renameLiar struct {
	*faultinject.FS
	lie bool
}

func (r *renameLiar) Rename(oldname, newname string) error {
	err := r.FS.Rename(oldname, newname)
	if err == nil && r.lie && filepath.Clean(newname) == filepath.Clean(testDB) { // Windows: \d\app.db
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EIO}
	}
	return err
}

// TestCommit_UnsureLanded: the rename happened but reported an error. The
// next commit finds the new content at the name by checksum, records
// Done, adopts it as the base, and does not write the same state again.
func TestCommit_UnsureLanded(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, stateA, 0o644)
	liar := &renameLiar{FS: fs}
	m, err := Open(liar, testDB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := applyMain(m, writesB()); err != nil {
		t.Fatal(err)
	}
	liar.lie = true
	if err := m.Commit(); !errors.Is(err, ErrUnsure) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Commit = %v; want ErrUnsure wrapping EIO", err)
	}
	if !m.Stats().Unsure {
		t.Error("stats do not say unsure")
	}
	// A pull now: recovery settles it by checksum.
	img := fs.CrashImage(faultinject.KeepAll, 0)
	if rep, err := Recover(img, testDB); err != nil || rep.Action != ActionFinish {
		t.Errorf("Recover after the lie: %v, %v", rep, err)
	}
	liar.lie = false
	n := fs.OpCount()
	mustCommit(t, m)
	for _, ev := range fs.Trace()[n:] {
		if ev.Kind == faultinject.OpCreate {
			t.Errorf("settling wrote a new copy: %v", ev)
		}
	}
	if got := readMain(t, m); !bytes.Equal(got, stateB) {
		t.Fatal("view differs")
	}
	if s := m.Stats(); s.Unsure || s.Generation != 1 {
		t.Errorf("stats %+v", s)
	}
	if err := applyMain(m, writesC()); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m)
	if got := fileOf(fs, testDB); !bytes.Equal(got, stateC) {
		t.Fatal("database differs")
	}
	checkTrace(t, fs)
}
