package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// lyingFS is a drive that returns other bytes than were written to the
// commit's copies while corrupt is set, as fusefat does to files it
// extends out of order, and reports free space as free says.
type lyingFS struct {
	device.FS
	corrupt bool
	free    func() (int64, error) // nil: the inner FS's
	reads   int                   // reads of copies
}

func (l *lyingFS) Unwrap() device.FS { return l.FS }

func (l *lyingFS) Create(name string, perm os.FileMode) (device.File, error) {
	f, err := l.FS.Create(name, perm)
	if err != nil || !genSuffix.MatchString(name) {
		return f, err
	}
	return &lyingFile{File: f, fs: l}, nil
}

func (l *lyingFS) Open(name string, mode device.OpenMode) (device.File, error) {
	f, err := l.FS.Open(name, mode)
	if err != nil || !genSuffix.MatchString(name) {
		return f, err
	}
	return &lyingFile{File: f, fs: l}, nil
}

func (l *lyingFS) FreeSpace(dir string) (int64, error) {
	if l.free != nil {
		return l.free()
	}
	return l.FS.FreeSpace(dir)
}

// lyingFile flips the first byte of every read while its FS says so.
type lyingFile struct {
	device.File
	fs *lyingFS
}

func (f *lyingFile) Unwrap() device.File { return f.File }

func (f *lyingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.fs.reads++
	if n > 0 && f.fs.corrupt {
		p[0] ^= 0xff
	}
	return n, err
}

func TestCommit_DriveCorrupted(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, stateA, 0o644)
	lfs := &lyingFS{FS: fs, corrupt: true}
	m, err := Open(lfs, testDB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := applyMain(m, writesB()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := m.Commit()
		var ce *CommitError
		if !errors.Is(err, ErrDriveCorrupted) || !errors.As(err, &ce) || ce.Durable {
			t.Fatalf("commit %d on a lying drive = %v; want a non-durable ErrDriveCorrupted", i, err)
		}
		if got := fileOf(fs, testDB); !bytes.Equal(got, stateA) {
			t.Fatalf("commit %d: the database changed although the copy was corrupt", i)
		}
		if names, _ := fs.List(testDir); !slices.Equal(names, []string{"app.db", "app.db.ejectsafe-jrnl"}) {
			t.Fatalf("commit %d: files %v; want the copy removed", i, names)
		}
		if got := readMain(t, m); !bytes.Equal(got, stateB) {
			t.Fatalf("commit %d: reads lost the writes", i)
		}
	}
	// The drive behaves again: the next commit writes the same writes.
	lfs.corrupt = false
	mustCommit(t, m)
	if got := fileOf(fs, testDB); !bytes.Equal(got, stateB) {
		t.Fatal("database after the retry differs")
	}
	checkTrace(t, fs)
}

// TestCommit_ReadBack: ReadBackAlways reads every copy back and catches a
// drive that stores other bytes; ReadBackNever reads nothing back (for
// kernel filesystems, where the read would come from the page cache) and
// records the checksum of the bytes written.
func TestCommit_ReadBack(t *testing.T) {
	for _, tc := range []struct {
		mode      ReadBack
		wantReads bool
		wantErr   error
	}{
		{ReadBackAlways, true, ErrDriveCorrupted},
		{ReadBackNever, false, nil},
	} {
		t.Run(map[ReadBack]string{ReadBackAlways: "always", ReadBackNever: "never"}[tc.mode], func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			fs.WriteFile(testDB, stateA, 0o644)
			lfs := &lyingFS{FS: fs, corrupt: true}
			m, err := Open(lfs, testDB, Options{ReadBack: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := applyMain(m, writesB()); err != nil {
				t.Fatal(err)
			}
			err = m.Commit()
			if got := lfs.reads > 0; got != tc.wantReads {
				t.Fatalf("the commit read its copy %d times; want reads: %v", lfs.reads, tc.wantReads)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Commit = %v; want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(fileOf(fs, testDB), stateB) {
				t.Fatal("the database is not the committed state")
			}
		})
	}
}

func TestCommit_FreeSpace(t *testing.T) {
	for _, tc := range []struct {
		name string
		free func() (int64, error)
		want error
	}{
		{"unknown", func() (int64, error) { return 0, fmt.Errorf("statfs: %w", errors.ErrUnsupported) }, nil},
		{"full", func() (int64, error) { return 0, nil }, ErrNoSpace},
		{"failing", func() (int64, error) { return 0, errors.New("statfs failed") }, ErrCommit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			fs.WriteFile(testDB, stateA, 0o644)
			m, err := Open(&lyingFS{FS: fs, free: tc.free}, testDB, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := applyMain(m, writesB()); err != nil {
				t.Fatal(err)
			}
			if err := m.Commit(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Commit = %v; want %v", err, tc.want)
			}
		})
	}
}

// TestCommit_InOrder: the copy is written in one pass from offset 0 to
// its end, whatever the writes (below the end, past it, after a
// truncate): fusefat corrupts files written otherwise.
func TestCommit_InOrder(t *testing.T) {
	for _, bs := range []int{512, 4096, 3 << 20} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			fs.WriteFile(testDB, pattern(5<<20/2, 'A'), 0o644)
			m := mustOpenMain(t, fs, Options{BlockSize: bs})
			defer m.Close()
			// Round 0 copies the base reading it whole (its checksum is
			// not known yet); round 1 folds the changes into the known
			// checksum (copy.go).
			for round := range 2 {
				mustWriteAt(t, m, []byte("low"), 100)
				mustWriteAt(t, m, []byte("mid"), 700_000)
				if err := m.Truncate(1 << 20); err != nil {
					t.Fatal(err)
				}
				mustWriteAt(t, m, bytes.Repeat([]byte("x"), 5000), 3<<20-10)
				want := readMain(t, m)
				n := fs.OpCount()
				mustCommit(t, m)
				end := int64(0)
				for _, ev := range fs.Trace()[n:] {
					if !genSuffix.MatchString(ev.Path) {
						continue
					}
					switch ev.Kind {
					case faultinject.OpWriteAt:
						if ev.Off != end {
							t.Fatalf("round %d: copy written at %d after %d bytes: %v", round, ev.Off, end, ev)
						}
						end += int64(ev.Len)
					case faultinject.OpTruncate:
						t.Fatalf("round %d: copy truncated: %v", round, ev)
					}
				}
				if end != int64(len(want)) {
					t.Errorf("round %d: copy written up to %d; want %d", round, end, len(want))
				}
				if got := fileOf(fs, testDB); !bytes.Equal(got, want) {
					t.Errorf("round %d: database differs", round)
				}
			}
		})
	}
}
