package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// linkedDB makes dir/real/app.db's names: a symlink to the file
// (dir/link.db, relative) and a symlinked directory (dir/via -> real).
func linkedDB(t *testing.T) (real, fileLink, dirLink string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	real = filepath.Join(dir, "real", "app.db")
	fileLink = filepath.Join(dir, "link.db")
	symlink(t, filepath.Join("real", "app.db"), fileLink)
	symlink(t, "real", filepath.Join(dir, "via"))
	return real, fileLink, filepath.Join(dir, "via", "app.db")
}

// TestOpen_symlinkSameLock: a database opened through a symlink is the
// same database as through its real name: in this process a second Open
// gets ErrAlreadyOpen, in another process ErrLocked, whichever name each
// uses.
func TestOpen_symlinkSameLock(t *testing.T) {
	real, fileLink, dirLink := linkedDB(t)
	names := map[string]string{"real": real, "file link": fileLink, "directory link": dirLink}
	for firstName, first := range names {
		for secondName, second := range names {
			if firstName == secondName {
				continue
			}
			t.Run(firstName+" then "+secondName, func(t *testing.T) {
				s, err := Open(first, &Options{ManualCheckpoint: true})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if s2, err := Open(second, nil); !errors.Is(err, ErrAlreadyOpen) {
					if err == nil {
						s2.Close()
					}
					t.Fatalf("in-process Open(%s) beside Open(%s) = %v; want ErrAlreadyOpen", second, first, err)
				}
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"="+second)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("second process Open(%s) beside Open(%s): %v (want ErrLocked)\n%s", second, first, err, out)
				}
				if !strings.Contains(string(out), "locked by process "+strconv.Itoa(os.Getpid())) {
					t.Errorf("second process's error does not name this process: %s", out)
				}
			})
		}
	}
}

// TestCheckpoint_throughSymlink: checkpoints through a symlinked path
// write the target; the link stays a link and nothing is derived from
// the link's name.
func TestCheckpoint_throughSymlink(t *testing.T) {
	real, fileLink, _ := linkedDB(t)
	s, err := Open(fileLink, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
	for round := 0; round < 3; round++ {
		for i := 0; i < 100; i++ {
			mustExec(t, s.DB(), "INSERT INTO t(v) VALUES(?)", fmt.Sprintf("round %d row %d", round, i))
		}
		mustCheckpoint(t, s)
		assertSymlink(t, fileLink)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertSymlink(t, fileLink)
	if got := sqlite3CLI(t, real, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != "300\nok" {
		t.Fatalf("the target holds %q; want 300 rows, ok", got)
	}
	if got := sqlite3CLI(t, fileLink, "SELECT count(*) FROM t"); got != "300" {
		t.Fatalf("through the link: %q; want 300", got)
	}
	// Nothing named after the link: no lock, journal or lease beside it.
	entries, err := os.ReadDir(filepath.Dir(fileLink))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filepath.Base(fileLink)) && e.Name() != filepath.Base(fileLink) {
			t.Errorf("a name derived from the link: %s", e.Name())
		}
	}
	assertClean(t, real)
}

// TestOpen_danglingSymlink: a link to a missing file creates the file
// it names, as open(O_CREAT) would; the link stays a link.
func TestOpen_danglingSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link.db")
	target := filepath.Join(dir, "target.db")
	symlink(t, "target.db", link)
	s, err := Open(link, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(x)")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertSymlink(t, link)
	if got := sqlite3CLI(t, target, "SELECT count(*) FROM sqlite_master"); got != "1" {
		t.Fatalf("target: %q", got)
	}
	// A loop is refused with ELOOP, creating nothing.
	loop := filepath.Join(dir, "loop.db")
	os.Symlink("loop.db", loop)
	if _, err := Open(loop, nil); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Open(a symlink loop) = %v; want ELOOP", err)
	}
	if _, err := os.Lstat(loop + lockSuffix); err == nil {
		t.Errorf("a refused Open made a lock file")
	}
}

func assertSymlink(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symlink (mode %v): the database was split", p, fi.Mode())
	}
}

// TestOpen_hardLinked: a database file with two names is refused with
// ErrHardLinked through either name, and nothing in the directory
// changes.
func TestOpen_hardLinked(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true})
	mustExec(t, s.DB(), "CREATE TABLE t(x); INSERT INTO t VALUES(1)")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(path), "other.db")
	if err := os.Link(path, other); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, filepath.Dir(path))
	for _, p := range []string{path, other} {
		s, err := Open(p, nil)
		if !errors.Is(err, ErrHardLinked) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open(%s) with 2 hard links = %v; want ErrHardLinked", p, err)
		}
		if !strings.Contains(err.Error(), "2 names") {
			t.Errorf("the error does not say how many names: %v", err)
		}
	}
	if after := dirState(t, filepath.Dir(path)); after != before {
		t.Fatalf("a refused Open changed the directory:\nbefore %s\nafter  %s", before, after)
	}
	// One name again: it opens.
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
