package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/ejectsafe/ejectsafe/checkpoint/checkpointtest"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

const (
	testDir = "/d"
	testDB  = "/d/app.db"
)

var testJournal = journal.Name(testDB)

// newFS returns a faultinject FS with the directory /d.
func newFS(t testing.TB, opts faultinject.Options) *faultinject.FS {
	t.Helper()
	f := faultinject.New(opts)
	if err := f.MkdirAll(testDir); err != nil {
		t.Fatal(err)
	}
	return f
}

// pattern returns n bytes that start like an SQLite database and are
// otherwise c, with the offset mixed in every 256 bytes so that a block
// at the wrong place shows.
func pattern(n int, c byte) []byte {
	b := bytes.Repeat([]byte{c}, n)
	for i := 0; i+8 <= n; i += 256 {
		binary.LittleEndian.PutUint32(b[i+4:], uint32(i))
	}
	copy(b, sqliteMagic)
	return b
}

// decodeClaim is checkpointtest.DecodeClaims.
var decodeClaim = checkpointtest.DecodeClaims

// violations checks a trace against the ordering rules.
func violations(trace []faultinject.Event) []faultinject.Violation {
	return faultinject.Check(trace, faultinject.CheckConfig{
		DBPath: testDB, JournalPath: testJournal, DecodeClaim: decodeClaim(testDB),
	})
}

// checkTrace fails the test on any ordering violation in fs's trace.
func checkTrace(t testing.TB, fs *faultinject.FS) {
	t.Helper()
	for _, v := range violations(fs.Trace()) {
		t.Errorf("violation: %v", v)
	}
}

func mustOpenMain(t testing.TB, fs *faultinject.FS, opts Options) *Main {
	t.Helper()
	m, err := Open(fs, testDB, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustWriteAt(t testing.TB, m *Main, p []byte, off int64) {
	t.Helper()
	if err := m.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

func mustCommit(t testing.TB, m *Main) {
	t.Helper()
	if err := m.Commit(); err != nil {
		t.Fatal(err)
	}
}

// commitWant checks that m's view is want, commits, and checks that the
// database file is want; what names the step in a failure.
func commitWant(t testing.TB, fs *faultinject.FS, m *Main, want []byte, what string) {
	t.Helper()
	if got := readMain(t, m); !bytes.Equal(got, want) {
		t.Fatalf("%s: the view is not what was written", what)
	}
	mustCommit(t, m)
	if got := fileOf(fs, testDB); !bytes.Equal(got, want) {
		t.Fatalf("%s: the committed database is not what was written", what)
	}
}

// readMain returns the whole current content of m.
func readMain(t testing.TB, m *Main) []byte {
	t.Helper()
	b, err := contentOf(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func contentOf(m *Main) ([]byte, error) {
	size, err := m.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size+7) // ask for more than there is: io.EOF
	n, err := m.ReadAt(b, 0)
	if err != io.EOF || int64(n) != size {
		return nil, fmt.Errorf("ReadAt whole file = %d, %v; want %d, io.EOF", n, err, size)
	}
	return b[:n], nil
}

// fileOf returns the file's content, or nil if it is missing.
func fileOf(fs *faultinject.FS, name string) []byte {
	b, err := fs.ReadFile(name)
	if err != nil {
		return nil
	}
	return b
}

// describe says which of the named states b is, for messages.
func describe(b []byte, states map[string][]byte) string {
	for name, s := range states {
		if bytes.Equal(b, s) {
			return name
		}
	}
	if b == nil {
		return "missing"
	}
	return fmt.Sprintf("unknown (%d bytes, %q...)", len(b), b[:min(len(b), 24)])
}
