package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
)

// countFS counts the bytes read through ReadAt from files that are not
// copies (the database, that is the base) and passes the descriptor of
// the OS's files on, so that copy_file_range still sees them. While
// failRead is set, those reads fail with EIO.
type countFS struct {
	device.FS
	read     atomic.Int64
	failRead atomic.Bool
}

func (c *countFS) Unwrap() device.FS { return c.FS }

func (c *countFS) Open(name string, mode device.OpenMode) (device.File, error) {
	f, err := c.FS.Open(name, mode)
	if err != nil || genSuffix.MatchString(name) {
		return f, err
	}
	if fd, ok := f.(interface{ Fd() uintptr }); ok {
		return &countFdFile{countFile{f, c}, fd}, nil
	}
	return &countFile{f, c}, nil
}

type countFile struct {
	device.File
	c *countFS
}

func (f *countFile) ReadAt(p []byte, off int64) (int, error) {
	if f.c.failRead.Load() {
		return 0, &os.PathError{Op: "read", Path: f.Name(), Err: syscall.EIO}
	}
	n, err := f.File.ReadAt(p, off)
	f.c.read.Add(int64(n))
	return n, err
}

type countFdFile struct {
	countFile
	fd interface{ Fd() uintptr }
}

func (f *countFdFile) Fd() uintptr { return f.fd.Fd() }

// TestCommit_FoldedChecksum: commits after the first fold their changes
// into the base's checksum (copy.go). Through random rounds of scattered
// writes, runs of blocks, truncates and growth, on the fault injector
// (copied through user space) and on the OS's filesystem (copied with
// copy_file_range on Linux), the database on the drive is the model and
// the checksum the journal records for it is the checksum of its bytes.
// On Linux, a commit of a few blocks reads a small part of the base, not
// all of it.
func TestCommit_FoldedChecksum(t *testing.T) {
	for _, kind := range []string{"faultinject", "os", "os-ordered"} {
		for _, bs := range []int{512, 4096} {
			t.Run(kind+"/"+map[int]string{512: "512", 4096: "4096"}[bs], func(t *testing.T) {
				var inner device.FS
				db := testDB
				if kind != "faultinject" {
					dir := t.TempDir()
					inner, db = device.OS, filepath.Join(dir, "app.db")
				} else {
					inner = newFS(t, faultinject.Options{NoTrace: true})
				}
				cfs := &countFS{FS: inner}
				model := pattern(3<<20+777, 'A')
				writeFile(t, inner, db, model)
				// os: patched after a kernel copy; os-ordered: the ordered
				// pass, with copy_file_range for long stretches.
				m, err := Open(cfs, db, Options{BlockSize: bs, ReadBack: ReadBackNever, PatchAfterCopy: kind == "os"})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				rng := rand.New(rand.NewPCG(7, uint64(bs)))
				write := randomWriter(t, m, rng, &model)
				for round := range 40 {
					few := round == 0 || rng.IntN(3) == 0 // a few scattered blocks only
					if few {
						for range 1 + rng.IntN(4) {
							write(rng.Int64N(int64(len(model))), 1+rng.IntN(bs))
						}
					} else {
						for range rng.IntN(30) {
							write(rng.Int64N(int64(len(model))+int64(3*bs)), 1+rng.IntN(3*bs))
						}
						if rng.IntN(3) == 0 { // a run of blocks
							off := rng.Int64N(int64(len(model)))
							write(off, 64*bs+rng.IntN(bs))
						}
						switch rng.IntN(4) {
						case 0:
							size := int64(len(model)) - rng.Int64N(int64(len(model))/8+1) // the base stays large
							if err := m.Truncate(size); err != nil {
								t.Fatal(err)
							}
							model = model[:size]
						case 1:
							size := int64(len(model)) + rng.Int64N(int64(5*bs))
							if err := m.Truncate(size); err != nil {
								t.Fatal(err)
							}
							model = append(model, make([]byte, size-int64(len(model)))...)
						}
					}
					before := cfs.read.Load()
					mustCommit(t, m)
					read := cfs.read.Load() - before
					got := readFile(t, inner, db)
					if !bytes.Equal(got, model) {
						t.Fatalf("round %d: database differs from the model (%d vs %d bytes)", round, len(got), len(model))
					}
					id := m.Identity()
					if want := journal.Sum(got); !id.SumKnown || id.Sum != want || id.Size != int64(len(got)) {
						t.Fatalf("round %d: the journal records %d bytes, checksum %#016x (known %v); the database is %d bytes, %#016x",
							round, id.Size, id.Sum, id.SumKnown, len(got), want)
					}
					// Every commit after the first folds: the first hashes
					// the base, whose checksum nothing recorded. (A round
					// that wrote nothing commits nothing.)
					if st := m.Stats(); st.Commits < 1 || st.Folded != st.Commits-1 {
						t.Fatalf("round %d: %d of %d commits folded; want all but the first", round, st.Folded, st.Commits)
					}
					if few && round > 0 && kind != "faultinject" && runtime.GOOS == "linux" && read > int64(len(got))/8 {
						t.Errorf("round %d: a commit of a few blocks read %d bytes of a %d-byte base", round, read, len(got))
					}
				}
				if rep, err := Verify(cfs, db); err != nil || !strings.Contains(rep.String(), "matches the journal") {
					t.Errorf("Verify = %v, %v", rep, err)
				}
			})
		}
	}
}

// TestCommit_FoldDenseBatch: rewritten blocks closer together than
// copyMin are read, patched and written in batches of at most one buffer
// (chunkSize) each. Dense rewrites spanning several buffers, with 4 KiB
// blocks (every other block over 3 MiB) and with the largest block size
// that folds (chunkSize/4: five adjacent blocks are more than a buffer),
// give the model's bytes and the checksum of those bytes, by a fold.
func TestCommit_FoldDenseBatch(t *testing.T) {
	for _, bs := range []int{4096, chunkSize / 4} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			fs := newFS(t, faultinject.Options{NoTrace: true})
			model := pattern(5<<20+1000, 'A')
			fs.WriteFile(testDB, model, 0o644)
			m := mustOpenMain(t, fs, Options{BlockSize: bs})
			defer m.Close()
			mustWriteAt(t, m, []byte("first"), 100)
			copy(model[100:], "first")
			mustCommit(t, m) // hashes the base; the next ones fold
			rng := rand.New(rand.NewPCG(5, uint64(bs)))
			write := func(off int64, n int) {
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				mustWriteAt(t, m, p, off)
				copy(model[off:], p)
			}
			check := func(what string, folded int64) {
				t.Helper()
				mustCommit(t, m)
				got := fileOf(fs, testDB)
				if !bytes.Equal(got, model) {
					t.Fatalf("%s: database differs from the model", what)
				}
				if id := m.Identity(); id.Sum != journal.Sum(got) || id.Size != int64(len(got)) {
					t.Fatalf("%s: the journal records %d bytes, %#016x; the database is %d bytes, %#016x",
						what, id.Size, id.Sum, len(got), journal.Sum(got))
				}
				if st := m.Stats(); st.Folded != folded {
					t.Fatalf("%s: %d commits folded; want %d", what, st.Folded, folded)
				}
			}
			if bs == 4096 {
				// Every other block from 1 MiB + 10 KiB to 4 MiB, one
				// byte to a whole block each: one run of batches.
				for off := int64(1<<20 + 10<<10); off < 4<<20; off += 2 * int64(bs) {
					write(off, 1+rng.IntN(bs))
				}
			} else {
				// Blocks 1 to 5 whole and 9 to 14 in part: each run is
				// more than a buffer.
				write(int64(bs), 5*bs)
				for b := 9; b < 15; b++ {
					write(int64(b*bs+rng.IntN(bs/2)), 1+rng.IntN(bs/2))
				}
			}
			check("dense", 1)
			// The same, and the file cut inside the last dense run.
			for off := int64(2 << 20); off < 4<<20; off += int64(bs) {
				write(off+int64(rng.IntN(bs/2)), 1+rng.IntN(bs/2))
			}
			cut := int64(3<<20 + bs/3)
			if err := m.Truncate(cut); err != nil {
				t.Fatal(err)
			}
			model = model[:cut]
			check("dense, cut", 2)
		})
	}
}

// TestCommit_FoldAfterOpen: a Main opened on a database a previous Main
// committed takes the checksum of the journal's last Done only as a claim
// (a stock tool may have rewritten the file in place since): its first
// commit hashes the whole base it copies (writeCopy) and does not fold;
// the second folds, reading little of the base.
func TestCommit_FoldAfterOpen(t *testing.T) {
	db := filepath.Join(t.TempDir(), "app.db")
	model := pattern(2<<20, 'A')
	writeFile(t, device.OS, db, model)
	m, err := Open(device.OS, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustWriteAt(t, m, []byte("first"), 100)
	mustCommit(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	copy(model[100:], "first")

	cfs := &countFS{FS: device.OS}
	m, err = Open(cfs, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if id := m.Identity(); !id.SumKnown || id.Sum != journal.Sum(model) {
		t.Fatalf("identity after Open %v; want the journal's checksum %#016x", id, journal.Sum(model))
	}
	for i, off := range []int64{300_000, 1_500_000} {
		mustWriteAt(t, m, []byte("again"), off)
		copy(model[off:], "again")
		before := cfs.read.Load()
		mustCommit(t, m)
		read := cfs.read.Load() - before
		if got := readFile(t, device.OS, db); !bytes.Equal(got, model) {
			t.Fatalf("commit %d: the database differs from the model", i)
		}
		folded := m.Stats().Folded
		switch i {
		case 0:
			if folded != 0 || read < int64(len(model)) {
				t.Fatalf("first commit after Open: folded %d, read %d bytes of a %d-byte base; want it hashed whole, not folded",
					folded, read, len(model))
			}
		case 1:
			if folded != 1 {
				t.Fatalf("second commit after Open: folded %d; want 1", folded)
			}
			if runtime.GOOS == "linux" && read > int64(len(model))/8 {
				t.Errorf("second commit after Open read %d bytes of a %d-byte base", read, len(model))
			}
		}
	}
}

// TestCommit_FoldScribbledBase: a base changed on the drive behind the
// Main's back (same size, in place) is not the base the folded checksum
// starts from. With ReadBackAlways the read-back disagrees, the commit
// reads the base once to tell why, and fails with ErrChanged (not
// ErrDriveCorrupted: the drive returned what was written, the base is
// what changed); every later commit refuses too, writing nothing, so the
// scribble is never copied into a generation as the store's own data,
// until the base reads as recorded again. With ReadBackNever the commit
// goes through and Verify reports the database as differing from the
// journal: the change is found, not recorded as the store's own data.
func TestCommit_FoldScribbledBase(t *testing.T) {
	for _, mode := range []ReadBack{ReadBackAlways, ReadBackNever} {
		t.Run(map[ReadBack]string{ReadBackAlways: "always", ReadBackNever: "never"}[mode], func(t *testing.T) {
			fs := newFS(t, faultinject.Options{})
			fs.WriteFile(testDB, pattern(1<<20, 'A'), 0o644)
			m := mustOpenMain(t, fs, Options{ReadBack: mode})
			defer m.Close()
			mustWriteAt(t, m, []byte("first"), 5000)
			mustCommit(t, m) // the base's checksum is now known
			committed := bytes.Clone(fileOf(fs, testDB))
			scribble := func(b []byte) {
				t.Helper()
				f, err := fs.Open(testDB, device.ReadWrite)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteAt(b, 700_000); err != nil {
					t.Fatal(err)
				}
			}
			scribble([]byte("scribble"))
			scribbled := bytes.Clone(fileOf(fs, testDB))
			mustWriteAt(t, m, []byte("second"), 9000)
			err := m.Commit()
			switch mode {
			case ReadBackAlways:
				id := m.Identity()
				for i := range 2 { // the retry refuses too
					if i > 0 {
						ops := fs.OpCount()
						err = m.Commit()
						const writes = faultinject.OpCreate | faultinject.OpWriteAt | faultinject.OpTruncate | faultinject.OpSync |
							faultinject.OpRename | faultinject.OpRemove | faultinject.OpSyncDir
						for _, ev := range fs.Trace() {
							if ev.Index >= ops && ev.Kind&writes != 0 {
								t.Fatalf("a commit over a base known to have changed wrote: %v", ev)
							}
						}
					}
					if !errors.Is(err, ErrChanged) || !errors.Is(err, ErrCommit) || errors.Is(err, ErrDriveCorrupted) ||
						!strings.Contains(err.Error(), "changed behind the store") {
						t.Fatalf("commit %d over a scribbled base = %v; want ErrChanged (the base changed), not ErrDriveCorrupted", i, err)
					}
					if !bytes.Equal(fileOf(fs, testDB), scribbled) {
						t.Fatalf("commit %d: the database on the drive changed", i)
					}
					if names, _ := fs.List(testDir); !slices.Equal(names, []string{"app.db", "app.db.ejectsafe-jrnl"}) {
						t.Fatalf("commit %d: files %v; want no copy left", i, names)
					}
					if got := m.Identity(); got != id {
						t.Fatalf("commit %d: identity %v, was %v: a generation was recorded", i, got, id)
					}
				}
				// The base reads as recorded again: the writes commit.
				scribble(committed[700_000 : 700_000+len("scribble")])
				mustCommit(t, m)
				want := bytes.Clone(committed)
				copy(want[9000:], "second")
				if !bytes.Equal(fileOf(fs, testDB), want) {
					t.Fatal("the database after the base was restored is not the committed one with the write")
				}
			case ReadBackNever:
				if err != nil {
					t.Fatal(err)
				}
				rep, err := Verify(fs, testDB)
				if err != nil || !strings.Contains(rep.String(), "differs") {
					t.Errorf("Verify after committing over a scribbled base = %v, %v; want it to report the database differs", rep, err)
				}
			}
		})
	}
}

// TestCommit_FoldDriveCorrupted: a folded copy that reads back wrong over
// a base that still reads as recorded is the drive's fault: the commit
// fails with ErrDriveCorrupted, not ErrChanged, and a retry on a drive
// that behaves again folds and commits.
func TestCommit_FoldDriveCorrupted(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, pattern(1<<20, 'A'), 0o644)
	lfs := &lyingFS{FS: fs}
	m, err := Open(lfs, testDB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mustWriteAt(t, m, []byte("first"), 5000)
	mustCommit(t, m) // hashes the base; the next folds
	mustWriteAt(t, m, []byte("second"), 9000)
	lfs.corrupt = true
	err = m.Commit()
	if !errors.Is(err, ErrDriveCorrupted) || errors.Is(err, ErrChanged) {
		t.Fatalf("folded commit on a lying drive = %v; want ErrDriveCorrupted", err)
	}
	lfs.corrupt = false
	folded := m.Stats().Folded
	mustCommit(t, m)
	if m.Stats().Folded != folded+1 {
		t.Error("the retry did not fold")
	}
	want := pattern(1<<20, 'A')
	copy(want[5000:], "first")
	copy(want[9000:], "second")
	if !bytes.Equal(fileOf(fs, testDB), want) {
		t.Fatal("the database after the retry differs")
	}
}

func writeFile(t *testing.T, fsys device.FS, name string, b []byte) {
	t.Helper()
	if fi, ok := fsys.(*faultinject.FS); ok {
		if err := fi.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, fsys device.FS, name string) []byte {
	t.Helper()
	var b []byte
	var err error
	if fi, ok := fsys.(*faultinject.FS); ok {
		b, err = fi.ReadFile(name)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCommit_patchAfterCopy: where the filesystem allows it
// (PatchAfterCopy), a commit with dense rewrites (every tenth block, a run of blocks, a block
// straddling the base's end, and growth) copies the base in the kernel
// and writes the rewritten blocks over it (copyPatchFold): the database
// is the model, its checksum is folded and right, and on Linux the base
// is read through user space only for the rewritten blocks, where the
// ordered pass (copyPatched) would read nearly all of it. With spill,
// the rewritten blocks come from the spill file. With a small
// writebackChunk the copy goes in many chunks, the run of blocks across
// two of them; a block size that does not divide the chunk (3000) puts
// blocks across chunk boundaries.
func TestCommit_patchAfterCopy(t *testing.T) {
	for _, bs := range []int64{4096, 3000} {
		for _, chunk := range []int64{writebackChunk, 64 << 10} {
			for _, spill := range []bool{false, true} {
				t.Run(fmt.Sprintf("bs=%d/chunk=%d/spill=%v", bs, chunk, spill), func(t *testing.T) {
					defer func(old int64) { writebackChunk = old }(writebackChunk)
					writebackChunk = chunk
					testPatchAfterCopy(t, spill, int(bs))
				})
			}
		}
	}
}

func testPatchAfterCopy(t *testing.T, spill bool, bsize int) {
	bs := int64(bsize)
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	cfs := &countFS{FS: device.OS}
	model := pattern(4<<20+bsize/2, 'A') // ends inside a block
	writeFile(t, device.OS, db, model)
	opts := Options{BlockSize: bsize, ReadBack: ReadBackNever, PatchAfterCopy: true}
	if spill {
		opts.SpillDir, opts.SpillAbove = t.TempDir(), 8*bs
	}
	m, err := Open(cfs, db, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(11, 12))
	write := randomWriter(t, m, rng, &model)
	write(100, 10)
	mustCommit(t, m) // hashes the base; the next commits fold
	for round := range 3 {
		var dirty int64 // bytes rewritten
		for off := int64(round) * bs; off < int64(len(model))-bs; off += 10 * bs {
			dirty += write(off+int64(rng.IntN(bsize/2)), 1+rng.IntN(bsize/2))
		}
		dirty += write(1<<20, 20*bsize)               // a run of blocks
		dirty += write(int64(len(model))-bs/4, bsize) // straddles the end: growth
		if spill && m.Stats().Spilled == 0 {
			t.Fatalf("round %d: nothing spilled", round)
		}
		before := cfs.read.Load()
		mustCommit(t, m)
		read := cfs.read.Load() - before
		got := readFile(t, device.OS, db)
		if !bytes.Equal(got, model) {
			t.Fatalf("round %d: database differs from the model (%d vs %d bytes)", round, len(got), len(model))
		}
		if id := m.Identity(); id.Sum != journal.Sum(got) || id.Size != int64(len(got)) {
			t.Fatalf("round %d: the journal records %d bytes, %#016x; the database is %d bytes, %#016x", round, id.Size, id.Sum, len(got), journal.Sum(got))
		}
		if st := m.Stats(); st.Folded != int64(round+1) {
			t.Fatalf("round %d: %d commits folded; want %d", round, st.Folded, round+1)
		}
		// Every rewritten block (a tenth of them, and a run) is read
		// whole once, for its old bytes.
		if runtime.GOOS == "linux" && read > int64(len(got))/5 {
			t.Errorf("round %d: read %d bytes of a %d-byte base for %d rewritten: the base went through user space", round, read, len(got), dirty)
		}
	}
	if rep, err := Verify(cfs, db); err != nil || !strings.Contains(rep.String(), "matches the journal") {
		t.Errorf("Verify = %v, %v", rep, err)
	}
}

// TestCommit_patchAfterCopyFoldFails: the old bytes of the rewritten
// blocks are read on a goroutine beside the kernel copy and the writes of
// their new ones (copyPatchFold). A read of the base that fails there
// fails the commit with the read's error (not the writes' errStopped),
// leaves the database as it was, and the next commit, the base readable
// again, writes the model.
func TestCommit_patchAfterCopyFoldFails(t *testing.T) {
	const bs = 4096
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	cfs := &countFS{FS: device.OS}
	model := pattern(2<<20, 'A')
	writeFile(t, device.OS, db, model)
	m, err := Open(cfs, db, Options{BlockSize: bs, ReadBack: ReadBackNever, PatchAfterCopy: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	write := randomWriter(t, m, rand.New(rand.NewPCG(3, 4)), &model)
	write(0, 10)
	mustCommit(t, m) // hashes the base; the next commit folds
	old := slices.Clone(model)
	for off := int64(0); off < int64(len(model)); off += 7 * bs {
		write(off+100, 200)
	}
	cfs.failRead.Store(true)
	err = m.Commit()
	cfs.failRead.Store(false)
	if !errors.Is(err, syscall.EIO) || errors.Is(err, errStopped) {
		t.Fatalf("Commit with the base unreadable = %v; want the read's EIO", err)
	}
	if got := readFile(t, device.OS, db); !bytes.Equal(got, old) {
		t.Fatal("a failed commit changed the database")
	}
	mustCommit(t, m)
	if got := readFile(t, device.OS, db); !bytes.Equal(got, model) {
		t.Fatal("the database is not the model after the next commit")
	}
	if st := m.Stats(); st.Folded != 1 {
		t.Fatalf("%d commits folded; want 1", st.Folded)
	}
}

// randomWriter returns a function that writes n random bytes at off to m
// and to *model (grown as needed), and returns n.
func randomWriter(t *testing.T, m *Main, rng *rand.Rand, model *[]byte) func(off int64, n int) int64 {
	return func(off int64, n int) int64 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		mustWriteAt(t, m, p, off)
		if end := off + int64(n); end > int64(len(*model)) {
			*model = append(*model, make([]byte, end-int64(len(*model)))...)
		}
		copy((*model)[off:], p)
		return int64(n)
	}
}
