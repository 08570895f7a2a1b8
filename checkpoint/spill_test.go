package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	fs2 "io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject"
)

// TestSpill_writesDuringCommits: a writer that never stops, with nearly
// every block spilled, while commits run back to back: a block written
// during a commit lands in the spill file the commit may want to retire,
// and must survive into the next commit (spill.go, "Lifetime").
func TestSpill_writesDuringCommits(t *testing.T) {
	const pages, psize = 64, 4096
	fs := newFS(t, faultinject.Options{NoTrace: true})
	fs.WriteFile(testDB, make([]byte, pages*psize), 0o644)
	m := mustOpenMain(t, fs, Options{SpillDir: t.TempDir(), SpillAbove: 2 * psize})
	defer m.Close()
	want := make([]byte, pages*psize)
	var writes atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 1)
	wg.Add(1)
	ended := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(ended)
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			pg := (v * 7) % pages
			p := bytes.Repeat([]byte{byte(v)}, psize)
			if err := m.WriteAt(p, int64(pg*psize)); err != nil {
				errc <- err
				return
			}
			copy(want[pg*psize:], p) // read by the test only after wg.Wait
			writes.Add(1)
		}
	}()
	spilled := int64(0)
	for n := 0; n < 200 || writes.Load() < 5000; n++ {
		if isClosed(ended) { // the writer failed
			break
		}
		if err := m.Commit(); err != nil {
			t.Fatal(err)
		}
		spilled = max(spilled, m.Stats().Spilled)
	}
	close(stop)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m)
	if got := readMain(t, m); !bytes.Equal(got, want) {
		t.Fatal("the view after the last commit is not what was written")
	}
	if got := fileOf(fs, testDB); !bytes.Equal(got, want) {
		t.Fatal("the database after the last commit is not what was written")
	}
	if spilled == 0 {
		t.Fatal("nothing spilled")
	}
	if st := m.Stats(); st.Spilled != 0 || st.Overlay != 0 || st.SpillErr != nil {
		t.Errorf("after the last commit: spilled %d, overlay %d, spill error %v; want 0, 0, nil", st.Spilled, st.Overlay, st.SpillErr)
	}
	m.mu.RLock()
	sp := m.sp
	m.mu.RUnlock()
	if sp != nil {
		t.Error("the spill file outlives the last spilled block")
	}
}

// TestSpill_inPlace: an in-place commit whose pages are all in the
// spill file writes the new state exactly (the redo log from the spill
// file, then the pages), and the stock shell reads it whole.
func TestSpill_inPlace(t *testing.T) {
	bin := stockCLI(t)
	for _, c := range inPlaceChanges {
		t.Run(c.name, func(t *testing.T) {
			a, b := sqliteStates(t, bin, c.sql)
			db := filepath.Join(t.TempDir(), "app.db")
			if err := os.WriteFile(db, a, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := Open(device.OS, db, Options{Mode: ModeInPlace, SpillDir: t.TempDir(), SpillAbove: 4096})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			dirty := writeDiff(t, m, a, b)
			if st := m.Stats(); st.Spilled < dirty-4096 {
				t.Fatalf("spilled %d of %d bytes written; want all but one block", st.Spilled, dirty)
			}
			if err := m.Commit(); err != nil {
				t.Fatal(err)
			}
			if st := m.Stats(); st.LastMode != ModeInPlace {
				t.Fatalf("the commit went %v, not in place", st.LastMode)
			}
			got, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("database after the commit: %d bytes, not the new state (%d bytes)", len(got), len(b))
			}
			if out := runSQL(t, bin, "file:"+db+"?immutable=1", "PRAGMA integrity_check"); out != "ok" {
				t.Errorf("stock integrity_check: %s", out)
			}
		})
	}
}

// TestSpill_noDir: a spill directory that cannot take a file (gone) is
// no error at first: the blocks stay in memory, the commit writes them,
// and Stats says why nothing spilled. Past four times SpillAbove in
// memory, writes fail with the spill's error rather than grow the heap
// without bound, and change nothing.
func TestSpill_noDir(t *testing.T) {
	fs := newFS(t, faultinject.Options{NoTrace: true})
	m := mustOpenMain(t, fs, Options{SpillDir: filepath.Join(t.TempDir(), "gone"), SpillAbove: 4096})
	defer m.Close()
	want := pattern(4*4096, 'S')
	for off := 0; off < len(want); off += 4096 { // a block per write, as SQLite's checkpoint writes
		mustWriteAt(t, m, want[off:off+4096], int64(off))
	}
	st := m.Stats()
	if st.Spilled != 0 || st.SpillErr == nil || st.SpillErrs != 3 || st.Overlay != int64(len(want)) {
		t.Fatalf("spilled %d, spill error %v (%d), overlay %d; want 0, an error (3), %d", st.Spilled, st.SpillErr, st.SpillErrs, st.Overlay, len(want))
	}
	if err := m.WriteAt(pattern(4096, 'X'), 4*4096); err == nil || !errors.Is(err, fs2.ErrNotExist) {
		t.Fatalf("a fifth block in memory with spilling failing: %v; want the spill's error", err)
	}
	commitWant(t, fs, m, want, "after the failed write")
}

// TestSpill_memoryBounded: the overlay's memory stays at SpillAbove
// however much is written; the rest is in the spill file.
func TestSpill_memoryBounded(t *testing.T) {
	for _, limit := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			fs := newFS(t, faultinject.Options{NoTrace: true})
			m := mustOpenMain(t, fs, Options{SpillDir: t.TempDir(), SpillAbove: limit})
			defer m.Close()
			if limit == 0 {
				limit = DefaultSpillAbove
			}
			total := limit + 1<<20
			blk := make([]byte, 4096)
			for off := int64(0); off < total; off += 4096 {
				blk[0] = byte(off >> 12)
				mustWriteAt(t, m, blk, off)
			}
			st := m.Stats()
			if mem := st.Overlay - st.Spilled; mem > limit || st.Overlay != total {
				t.Fatalf("overlay %d bytes, %d of them in memory; want %d, at most %d in memory", st.Overlay, mem, total, limit)
			}
			mustCommit(t, m)
			got := fileOf(fs, testDB)
			for off := int64(0); off < total; off += 4096 {
				if got[off] != byte(off>>12) {
					t.Fatalf("block at %d: %d, want %d", off, got[off], byte(off>>12))
				}
			}
		})
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestSpill_closedWrite: a write racing Close (here: after it) leaves no
// spill file open behind the closed Main.
func TestSpill_closedWrite(t *testing.T) {
	fs := newFS(t, faultinject.Options{NoTrace: true})
	m := mustOpenMain(t, fs, Options{SpillDir: t.TempDir(), SpillAbove: 4096})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteAt(make([]byte, 8*4096), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteAt after Close = %v; want ErrClosed", err)
	}
	if m.sp != nil {
		t.Fatalf("a spill file (%d references) is held by a closed Main", m.sp.refs.Load())
	}
}

// TestSpill_failedCommit: a commit that fails (fsync of the copy) puts
// its spilled blocks back under the writes made since (unfreeze): the
// view keeps them, and the next commit writes them.
func TestSpill_failedCommit(t *testing.T) {
	fs := newFS(t, faultinject.Options{NoTrace: true})
	m := mustOpenMain(t, fs, Options{SpillDir: t.TempDir(), SpillAbove: 2 * 4096})
	defer m.Close()
	want := pattern(16*4096, 'F')
	for off := 0; off < len(want); off += 4096 {
		mustWriteAt(t, m, want[off:off+4096], int64(off))
	}
	if st := m.Stats(); st.Spilled != 14*4096 {
		t.Fatalf("spilled %d bytes; want 14 blocks", st.Spilled)
	}
	fs.Inject(faultinject.Fail(syscall.EIO).On(faultinject.OpSync).Always())
	if err := m.Commit(); err == nil {
		t.Fatal("a commit whose fsync fails succeeded")
	}
	fs.ClearRules()
	more := pattern(4096, 'G') // a write after the failure, over a spilled block
	mustWriteAt(t, m, more, 5*4096)
	copy(want[5*4096:], more)
	commitWant(t, fs, m, want, "spilled blocks after the failed commit")
}
