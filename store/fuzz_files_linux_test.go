package store

import (
	"bytes"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/lease"
)

// The files beside a database that FuzzFilesBeside plants, in the order
// of the bytes of its input.
var besideFiles = []string{"journal", "copy", "wal", "lock", "lease"}

// Kinds of file FuzzFilesBeside plants under a name (input byte % 8).
const (
	kindAbsent    = iota
	kindJunk      // a regular file of junk bytes (from the input)
	kindPlausible // what ejectsafe itself would leave there
	kindLink      // a symlink to a file outside the volume
	kindDangling  // a symlink to a missing file outside the volume
	kindFIFO
	kindDir
	kindHuge // a sparse regular file of 16 MiB
	kindCount
)

const fuzzRows = 40

// fuzzBase is the committed database every input starts from, with the
// journal a clean Close leaves.
type fuzzBase struct {
	db, jrnl []byte
}

func makeFuzzBase(tb testing.TB, dir string) fuzzBase {
	path := filepath.Join(dir, "base.db")
	s, err := Open(path, &Options{ManualCheckpoint: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.DB().Exec("CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < fuzzRows; i++ {
		if _, err := s.DB().Exec("INSERT INTO t(v) VALUES(?)", fmt.Sprintf("row %d", i)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	var b fuzzBase
	if b.db, err = os.ReadFile(path); err != nil {
		tb.Fatal(err)
	}
	if b.jrnl, err = os.ReadFile(journal.Name(path)); err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzFilesBeside plants, beside a committed database, each of the files
// ejectsafe opens there (journal, checkpoint copy, stock -wal, lock,
// lease) as one of: absent, junk, plausible, a link out of the volume
// (to a file, or dangling), a FIFO, a directory, a huge file. Then it
// runs checkpoint.Verify, checkpoint.Recover (under the lock, as the
// recover command does) and Open, each bounded by the harness, and
// checks (issue 17, findings 4 and 5, and the fuzz target of its
// acceptance):
//
//   - no call hangs (a minute each: a FIFO opened for reading blocks for
//     ever) and none panics;
//   - nothing outside the database's directory changed: a sentinel
//     directory the links point into is byte for byte as it was, nothing
//     was created where a dangling link points;
//   - nothing committed is lost: an Open that succeeds reads every row,
//     with integrity_check ok; one that fails left the database's bytes
//     (or a copy of them) in the directory.
//
// The seed corpus (every kind under every name, and a few mixes) runs in
// the default suite; go test -fuzz=FuzzFilesBeside ./store explores more.
func FuzzFilesBeside(f *testing.F) {
	for i := range besideFiles {
		for k := byte(1); k < kindCount; k++ {
			spec := make([]byte, len(besideFiles)+4)
			spec[i] = k
			copy(spec[len(besideFiles):], "junk")
			f.Add(spec)
		}
	}
	f.Add([]byte{kindFIFO, kindFIFO, kindFIFO, kindFIFO, kindFIFO})
	f.Add([]byte{kindLink, kindDangling, kindLink, kindDangling, kindLink})
	f.Add([]byte{kindPlausible, kindPlausible, kindJunk, kindPlausible, kindPlausible, 'S', 'Q', 'L'})
	f.Add([]byte{kindHuge, kindHuge, kindHuge, kindHuge, kindHuge})
	f.Add([]byte{kindDir, kindDir, kindDir, kindDir, kindDir})
	base := makeFuzzBase(f, f.TempDir())
	f.Fuzz(func(t *testing.T, spec []byte) {
		filesBeside(t, base, spec)
	})
}

func filesBeside(t *testing.T, base fuzzBase, spec []byte) {
	top := t.TempDir()
	dir, sentinel := filepath.Join(top, "vol"), filepath.Join(top, "sentinel")
	for _, d := range []string{dir, sentinel, filepath.Join(sentinel, "subdir")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(sentinel, "target")
	if err := os.WriteFile(target, []byte("sentinel: nothing may change me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := treeSnapshot(t, sentinel)
	db := filepath.Join(dir, "app.db")
	if err := os.WriteFile(db, base.db, 0o644); err != nil {
		t.Fatal(err)
	}
	junk := []byte("junk")
	if len(spec) > len(besideFiles) {
		junk = spec[len(besideFiles):]
	}
	for i, which := range besideFiles {
		kind := byte(kindAbsent)
		if i < len(spec) {
			kind = spec[i] % kindCount
		}
		plant(t, db, which, kind, base, junk, sentinel)
	}

	bounded := func(what string, fn func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatalf("%s with %v: still running after a minute (a hang)", what, spec)
			return nil
		}
	}
	bounded("Verify", func() error { _, err := checkpoint.Verify(device.OS, db); return err })
	bounded("Recover", func() error {
		l, err := device.OS.Lock(db + lockSuffix)
		if err != nil {
			return err
		}
		defer l.Close()
		_, err = checkpoint.Recover(device.OS, db)
		return err
	})
	var rows int
	var integrity string
	openErr := bounded("Open", func() error {
		s, err := Open(db, &Options{ManualCheckpoint: true})
		if err != nil {
			return err
		}
		defer s.Close()
		return queryCheck(s.DB(), &rows, &integrity)
	})

	if after := treeSnapshot(t, sentinel); !equalSnap(before, after) {
		t.Errorf("%v: outside the database's directory changed:\nbefore %v\nafter  %v", spec, before, after)
	}
	if _, err := os.Lstat(filepath.Join(sentinel, "missing")); !os.IsNotExist(err) {
		t.Errorf("%v: a file was created where a dangling link points", spec)
	}
	if openErr == nil {
		if rows != fuzzRows || integrity != "ok" {
			t.Errorf("%v: Open succeeded with %d rows (want %d), integrity %q", spec, rows, fuzzRows, integrity)
		}
		return
	}
	if !keptSomewhere(dir, base.db) {
		t.Errorf("%v: Open failed (%v) and the database's bytes are nowhere in its directory", spec, openErr)
	}
}

func queryCheck(db *sql.DB, rows *int, integrity *string) error {
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(rows); err != nil {
		return err
	}
	return db.QueryRow("PRAGMA integrity_check").Scan(integrity)
}

// plant makes the file which of db as kind.
func plant(t *testing.T, db, which string, kind byte, base fuzzBase, junk []byte, sentinel string) {
	t.Helper()
	var name string
	var plausible []byte
	switch which {
	case "journal":
		name, plausible = journal.Name(db), base.jrnl
	case "copy":
		name, plausible = journal.TempName(db, 1+uint64(len(junk)%3)), base.db
	case "wal":
		name, plausible = db+walSuffix, append([]byte{0x37, 0x7f, 0x06, 0x82}, junk...)
	case "lock":
		name, plausible = db+lockSuffix, nil
	case "lease":
		name = db + lease.FallbackSuffix
		l := lease.Lease{Version: lease.Version, DB: filepath.Base(db), PID: 1 << 22, Host: "elsewhere", State: lease.StateOpen}
		var err error
		if plausible, err = l.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	switch kind {
	case kindAbsent:
		return
	case kindJunk:
		err = os.WriteFile(name, junk, 0o644)
	case kindPlausible:
		err = os.WriteFile(name, plausible, 0o644)
	case kindLink:
		err = os.Symlink(filepath.Join(sentinel, "target"), name)
	case kindDangling:
		err = os.Symlink(filepath.Join(sentinel, "missing"), name)
	case kindFIFO:
		err = syscall.Mkfifo(name, 0o644)
	case kindDir:
		err = os.Mkdir(name, 0o755)
	case kindHuge:
		if err = os.WriteFile(name, junk, 0o644); err == nil {
			err = os.Truncate(name, 16<<20)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// treeSnapshot lists a directory tree: each path with its type, size and,
// for regular files, content.
func treeSnapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			out = append(out, p+": "+err.Error())
			return nil
		}
		fi, _ := d.Info()
		line := fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		out = append(out, line)
		return nil
	})
	sort.Strings(out)
	return out
}

func equalSnap(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// keptSomewhere reports whether a regular file in dir holds want.
func keptSomewhere(dir string, want []byte) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && bytes.Equal(b, want) {
			return true
		}
	}
	return false
}
