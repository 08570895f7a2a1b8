package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

// TestMain_Model runs random writes, truncations, prepares and commits
// against a plain byte slice, checking the view after every step and the
// file on the drive after every commit. A small block size makes most
// writes partial. With spill, all but two blocks of the overlay go to
// the spill file (spill.go).
func TestMain_Model(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) { testModel(t, spill) })
	}
}

func testModel(t *testing.T, spill bool) {
	for _, bs := range []int{512, 4096} {
		for seed := range uint64(6) {
			fs := newFS(t, faultinject.Options{NoTrace: true})
			var spilled int64                                                    // the most the overlay had spilled at once
			opts := Options{BlockSize: bs, JournalLimit: 8 * journal.RecordSize} // appends, and compacts often
			if spill {
				opts.SpillDir, opts.SpillAbove = t.TempDir(), 2*int64(bs)
			}
			var model []byte
			if seed%2 == 0 { // start from an existing database, or none
				model = pattern(10_000+int(seed)*777, 'A')
				if err := fs.WriteFile(testDB, model, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m := mustOpenMain(t, fs, opts)
			rng := rand.New(rand.NewPCG(seed, uint64(bs)))
			for step := range 300 {
				switch op := rng.IntN(20); {
				case op < 12:
					off := rng.Int64N(int64(len(model)) + 3000)
					p := make([]byte, 1+rng.IntN(3*bs))
					for i := range p {
						p[i] = byte(rng.Uint32())
					}
					mustWriteAt(t, m, p, off)
					if end := off + int64(len(p)); end > int64(len(model)) {
						model = append(model, make([]byte, end-int64(len(model)))...)
					}
					copy(model[off:], p)
				case op < 15:
					size := rng.Int64N(int64(len(model)) + 2000)
					if err := m.Truncate(size); err != nil {
						t.Fatal(err)
					}
					if size < int64(len(model)) {
						model = model[:size]
					} else {
						model = append(model, make([]byte, size-int64(len(model)))...)
					}
				case op < 17:
					if err := m.Prepare(); err != nil {
						t.Fatal(err)
					}
				default:
					mustCommit(t, m)
					if got := fileOf(fs, testDB); !bytes.Equal(got, model) && !(got == nil && len(model) == 0) {
						t.Fatalf("bs=%d seed=%d step %d: file after commit differs from the model (%d vs %d bytes)", bs, seed, step, len(got), len(model))
					}
				}
				if got := readMain(t, m); !bytes.Equal(got, model) {
					t.Fatalf("bs=%d seed=%d step %d: view differs from the model (%d vs %d bytes)", bs, seed, step, len(got), len(model))
				}
				spilled = max(spilled, m.Stats().Spilled)
			}
			mustCommit(t, m)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if spill {
				if spilled == 0 {
					t.Fatalf("bs=%d seed=%d: nothing spilled", bs, seed)
				}
				if left, _ := os.ReadDir(opts.SpillDir); len(left) != 0 {
					t.Fatalf("bs=%d seed=%d: the spill directory holds %d names: spill files are unlinked at creation", bs, seed, len(left))
				}
			}
			// A fresh Main after Recover sees the same.
			if rep, err := Recover(fs, testDB); err != nil || rep.Action != ActionNone {
				t.Fatalf("Recover after a clean close = %v, %v", rep, err)
			}
			m = mustOpenMain(t, fs, Options{})
			if got := readMain(t, m); !bytes.Equal(got, model) {
				t.Fatalf("bs=%d seed=%d: reopened view differs from the model", bs, seed)
			}
			m.Close()
		}
	}
}

func TestMain_ReadAt(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	base := pattern(8192, 'A')
	fs.WriteFile(testDB, base, 0o644)
	m := mustOpenMain(t, fs, Options{})
	defer m.Close()
	mustWriteAt(t, m, []byte("BBBB"), 4094) // straddles two blocks

	t.Run("overlay over base", func(t *testing.T) {
		b := make([]byte, 8)
		if _, err := m.ReadAt(b, 4090); err != nil {
			t.Fatal(err)
		}
		want := append(append([]byte{}, base[4090:4094]...), "BBBB"...)
		if !bytes.Equal(b, want) {
			t.Errorf("got %q, want %q", b, want)
		}
	})
	t.Run("past the end", func(t *testing.T) {
		b := make([]byte, 10)
		n, err := m.ReadAt(b, 8190)
		if n != 2 || err != io.EOF {
			t.Errorf("ReadAt at the end = %d, %v; want 2, io.EOF", n, err)
		}
		if n, err := m.ReadAt(b, 9000); n != 0 || err != io.EOF {
			t.Errorf("ReadAt past the end = %d, %v; want 0, io.EOF", n, err)
		}
	})
	t.Run("nothing on the drive", func(t *testing.T) {
		if got := fileOf(fs, testDB); !bytes.Equal(got, base) {
			t.Error("the database file changed before Commit")
		}
		if names, _ := fs.List(testDir); len(names) != 1 {
			t.Errorf("files before Commit: %v", names)
		}
	})
}

func TestMain_Truncate(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	base := pattern(10000, 'A')
	fs.WriteFile(testDB, base, 0o644)
	m := mustOpenMain(t, fs, Options{})
	defer m.Close()

	if err := m.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if err := m.Truncate(12000); err != nil { // grows again: zeros, not the old bytes
		t.Fatal(err)
	}
	want := append(append([]byte{}, base[:5000]...), make([]byte, 7000)...)
	commitWant(t, fs, m, want, "after shrink and grow (old bytes came back?)")
	mustWriteAt(t, m, []byte("x"), 20000) // extension by a write
	want = append(want, make([]byte, 20001-len(want))...)
	want[20000] = 'x'
	mustCommit(t, m)
	if got := fileOf(fs, testDB); !bytes.Equal(got, want) {
		t.Fatal("file after extending write differs")
	}
	if err := m.Truncate(0); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m)
	if fi, err := fs.Stat(testDB); err != nil || fi.Size() != 0 {
		t.Fatalf("file after truncate to 0: %v, %v", fi, err)
	}
	checkTrace(t, fs)
}

func TestMain_Commit(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, pattern(8192, 'A'), 0o600)
	m := mustOpenMain(t, fs, Options{})
	defer m.Close()

	t.Run("no-op when clean", func(t *testing.T) {
		n := fs.OpCount()
		mustCommit(t, m)
		if err := m.Truncate(8192); err != nil { // same size: no change
			t.Fatal(err)
		}
		mustCommit(t, m)
		if got := fs.OpCount(); got != n {
			t.Errorf("clean commits ran %d operations", got-n)
		}
	})
	t.Run("generations", func(t *testing.T) {
		for gen := uint64(1); gen <= 3; gen++ {
			ino := inodeOf(t, fs)
			mustWriteAt(t, m, []byte{byte(gen)}, 100)
			mustCommit(t, m)
			if got := m.Stats().Generation; got != gen {
				t.Errorf("generation = %d, want %d", got, gen)
			}
			if inodeOf(t, fs) == ino {
				t.Error("the database file was not replaced")
			}
		}
		data, _ := fs.ReadFile(testJournal)
		j, err := journal.Decode(data)
		if err != nil || len(j.Records) != 9 {
			t.Fatalf("journal: %d records, %v", len(j.Records), err)
		}
		if last, _ := j.Last(); last.Kind != journal.Done || last.Gen != 3 {
			t.Errorf("last record %v", last)
		}
		if s := m.Stats(); s.Commits != 3 || s.Failures != 0 || s.LastBytes != 8192 || s.Overlay != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("permissions kept", func(t *testing.T) {
		fi, err := fs.Stat(testDB)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("mode after commits: %v, %v", fi.Mode(), err)
		}
	})
	t.Run("reopen knows the checksum", func(t *testing.T) {
		m.Close()
		n := fs.OpCount()
		m2 := mustOpenMain(t, fs, Options{})
		defer m2.Close()
		for _, ev := range fs.Trace()[n:] {
			if ev.Kind == faultinject.OpReadAt && ev.Path == testDB {
				t.Fatalf("Open read the database: %v", ev)
			}
		}
		if !m2.disk.known {
			t.Error("the checksum of the last Done was not taken")
		}
	})
	checkTrace(t, fs)
}

func inodeOf(t testing.TB, fs *faultinject.FS) uint64 {
	t.Helper()
	n := fs.OpCount()
	if _, err := fs.Stat(testDB); err != nil {
		t.Fatal(err)
	}
	for _, ev := range fs.Trace()[n:] {
		return ev.Inode
	}
	return 0
}

func TestMain_Prepare(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, pattern(3*4096, 'A'), 0o644)
	m := mustOpenMain(t, fs, Options{})
	// A database never committed: Prepare computes its checksum and
	// writes nothing (a copy made ahead would be written out of order).
	n := fs.OpCount()
	if err := m.CheckpointStart(); err != nil { // prepares
		t.Fatal(err)
	}
	if !m.disk.known {
		t.Error("Prepare did not compute the base's checksum")
	}
	for _, ev := range fs.Trace()[n:] {
		if ev.Kind == faultinject.OpCreate || ev.Kind == faultinject.OpWriteAt {
			t.Errorf("Prepare wrote: %v", ev)
		}
	}
	mustWriteAt(t, m, bytes.Repeat([]byte("B"), 4096), 4096)
	mustCommit(t, m)
	want := pattern(3*4096, 'A')
	copy(want[4096:], bytes.Repeat([]byte("B"), 4096))
	if got := fileOf(fs, testDB); !bytes.Equal(got, want) {
		t.Fatal("file differs")
	}
	if err := m.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := fs.List(testDir); len(names) != 2 {
		t.Errorf("files after Close: %v", names)
	}
	if err := m.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v", err)
	}
	if _, err := m.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close = %v", err)
	}
	checkTrace(t, fs)
}

func TestMain_JournalLimit(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	// A new journal holds the header and the last checkpoint's three
	// records, and a commit appends three more: with this limit, a
	// journal takes two commits before it is compacted.
	const limit = 8 * journal.RecordSize
	m := mustOpenMain(t, fs, Options{JournalLimit: limit})
	for i := range 10 {
		mustWriteAt(t, m, []byte{byte(i)}, int64(i)*100)
		mustCommit(t, m)
		data, _ := fs.ReadFile(testJournal)
		if len(data) != limit {
			t.Fatalf("journal %d bytes after commit %d; want %d", len(data), i, limit)
		}
	}
	// The journal is never extended: fusefat corrupts files extended
	// after they were reopened.
	for _, ev := range fs.Trace() {
		if ev.Path == testJournal && ev.Kind == faultinject.OpWriteAt && ev.Off+int64(ev.Len) > limit {
			t.Errorf("journal written past its end: %v", ev)
		}
	}
	if s := m.Stats(); s.Rewrites < 3 {
		t.Errorf("rewrites = %d", s.Rewrites)
	}
	m.Close()
	m = mustOpenMain(t, fs, Options{})
	defer m.Close()
	if !m.disk.known || m.Stats().Generation != 10 {
		t.Errorf("after compaction: sum known %v, generation %d", m.disk.known, m.Stats().Generation)
	}
	checkTrace(t, fs)
}

func TestOpen_RecoveryNeeded(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, pattern(4096, 'A'), 0o644)
	j := journal.AppendHeader(nil, journal.Header{FileID: 7})
	j, _ = journal.AppendRecord(j, 7, journal.Record{Kind: journal.Began, Gen: 1, Size: 4096, Sum: 1})
	fs.WriteFile(testJournal, j, 0o644)
	if _, err := Open(fs, testDB, Options{}); !errors.Is(err, ErrRecoveryNeeded) {
		t.Errorf("Open with a checkpoint in flight = %v", err)
	}
	fs.WriteFile(testJournal, []byte("garbage"), 0o644)
	if _, err := Open(fs, testDB, Options{}); !errors.Is(err, ErrRecoveryNeeded) {
		t.Errorf("Open with a damaged journal = %v", err)
	}
}

// TestMain_ConcurrentReads reads pages from many goroutines while pages
// are rewritten and committed. Every page is uniform (one version
// everywhere in it) and its version never goes backwards for a reader:
// a torn or stale read across the base swap would show. With spill, the
// pages past the third come from the spill file, which is retired and
// made again across commits. Run with -race.
func TestMain_ConcurrentReads(t *testing.T) {
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprintf("spill=%v", spill), func(t *testing.T) {
			opts := Options{}
			if spill {
				opts.SpillDir, opts.SpillAbove = t.TempDir(), 3*4096
			}
			testConcurrentReads(t, opts)
		})
	}
}

func testConcurrentReads(t *testing.T, opts Options) {
	const pages, psize = 8, 4096
	fs := newFS(t, faultinject.Options{NoTrace: true})
	fs.WriteFile(testDB, make([]byte, pages*psize), 0o644)
	m := mustOpenMain(t, fs, opts)
	defer m.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 8)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := make([]byte, pages)
			b := make([]byte, psize)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pg := (i + r) % pages
				if _, err := m.ReadAt(b, int64(pg*psize)); err != nil {
					errc <- err
					return
				}
				v := b[0]
				if bytes.Count(b, []byte{v}) != psize {
					errc <- errors.New("torn page")
					return
				}
				if v < seen[pg] {
					errc <- errors.New("page went back in time")
					return
				}
				seen[pg] = v
			}
		}()
	}
	for v := byte(1); v < 60; v++ {
		for pg := range pages {
			mustWriteAt(t, m, bytes.Repeat([]byte{v}, psize), int64(pg*psize))
		}
		if v%3 == 0 {
			m.Prepare()
		}
		mustCommit(t, m)
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}
