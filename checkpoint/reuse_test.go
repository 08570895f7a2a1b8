package checkpoint

import (
	"bytes"
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
)

// The package's tests run with the kept blocks poisoned (recycle).
func init() { poisonKept = true }

// TestMain_blocksReused: a commit keeps its overlay's blocks (recycle) and
// the next writes take them (takeBlock), the old bytes in them never
// showing: a partial write into a kept block reads the view around it,
// not what the block held before.
func TestMain_blocksReused(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	fs.WriteFile(testDB, pattern(4*4096, 'A'), 0o600)
	m := mustOpenMain(t, fs, Options{})
	defer m.Close()
	junk := bytes.Repeat([]byte{0xEE}, 4096)
	mustWriteAt(t, m, junk, 4096)
	mustWriteAt(t, m, junk, 2*4096)
	mustCommit(t, m)
	if n := len(m.free); n != 2 {
		t.Fatalf("after a commit of two blocks, %d kept; want 2", n)
	}
	want := readMain(t, m)
	// A partial write into block 3 (base bytes 'A'): a kept block (0xEE,
	// poisoned to 0xA5) takes it, and must hold the view around the write.
	mustWriteAt(t, m, []byte("xyz"), 3*4096+100)
	copy(want[3*4096+100:], "xyz")
	// A whole block at the end: the other kept block.
	tail := pattern(4096, 'B')
	mustWriteAt(t, m, tail, 4*4096)
	want = append(want, tail...)
	if n := len(m.free); n != 0 {
		t.Fatalf("after two block writes, %d blocks still kept; want 0", n)
	}
	commitWant(t, fs, m, want, "writes into kept blocks")
	checkTrace(t, fs)
	m.Close()
	if m.free != nil {
		t.Errorf("a closed Main keeps %d blocks", len(m.free))
	}
}
