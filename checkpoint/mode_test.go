package checkpoint

import (
	"testing"

	"github.com/ejectsafe/ejectsafe/faultinject"
)

// TestChooseMode: ModeAuto's rule, one case per clause (mode.go).
func TestChooseMode(t *testing.T) {
	const mib = 1 << 20
	known := func(bps float64) rate { return rate{bps: bps, n: 3} }
	for _, c := range []struct {
		name           string
		e              estimate
		copyR, inPlace rate
		want           Mode
	}{
		// 1. Free space.
		{"only in place fits", estimate{copyBytes: 100 * mib, inPlaceBytes: 90 * mib, free: 50 * mib, copyNeed: 100 * mib, inPlaceNeed: 45 * mib}, rate{}, rate{}, ModeInPlace},
		{"only the copy fits", estimate{copyBytes: 10 * mib, inPlaceBytes: 1 * mib, free: 10 * mib, copyNeed: 10 * mib, inPlaceNeed: 11 * mib}, rate{}, rate{}, ModeCopy},
		{"neither fits: by bytes", estimate{copyBytes: 100 * mib, inPlaceBytes: 2 * mib, free: 1 * mib, copyNeed: 100 * mib, inPlaceNeed: 2 * mib}, rate{}, rate{}, ModeInPlace},
		// 2. Both measured: time at the observed speeds.
		{"measured: random writes slow, large share copies", estimate{copyBytes: 64 * mib, inPlaceBytes: 20 * mib, free: -1}, known(20 * mib), known(4 * mib), ModeCopy},
		{"measured: small share in place", estimate{copyBytes: 64 * mib, inPlaceBytes: 2 * mib, free: -1}, known(20 * mib), known(4 * mib), ModeInPlace},
		{"measured: fast random writes", estimate{copyBytes: 64 * mib, inPlaceBytes: 40 * mib, free: -1}, known(20 * mib), known(20 * mib), ModeInPlace},
		// 3. Not measured: bytes with the penalty.
		{"unmeasured: under half the bytes", estimate{copyBytes: 64 * mib, inPlaceBytes: 31 * mib, free: -1}, rate{}, rate{}, ModeInPlace},
		{"unmeasured: over half the bytes", estimate{copyBytes: 64 * mib, inPlaceBytes: 33 * mib, free: -1}, rate{}, rate{}, ModeCopy},
		{"copy measured only: in place at half its speed", estimate{copyBytes: 64 * mib, inPlaceBytes: 33 * mib, free: -1}, known(20 * mib), rate{}, ModeCopy},
		{"in place measured only: copy at twice its speed", estimate{copyBytes: 64 * mib, inPlaceBytes: 31 * mib, free: -1}, rate{}, known(5 * mib), ModeInPlace},
	} {
		if got := chooseMode(c.e, c.copyR, c.inPlace); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRate_observe: commits under rateMinBytes measure latency and are
// not counted; larger ones move an average.
func TestRate_observe(t *testing.T) {
	var r rate
	r.observe(4096, 0.01)
	if r.n != 0 {
		t.Fatalf("a 4 KiB commit counted: %+v", r)
	}
	r.observe(10<<20, 1)
	r.observe(10<<20, 0.5)
	if r.n != 2 || r.bps <= 10<<20 || r.bps >= 20<<20 {
		t.Errorf("after 10 MiB/s and 20 MiB/s: %+v; want an average between", r)
	}
}

// TestInPlaceBlocked: the commits that copy whatever the mode.
func TestInPlaceBlocked(t *testing.T) {
	fs := newFS(t, faultinject.Options{})
	base := pattern(8192, 'a')
	base[16], base[17] = 0x10, 0x00 // page size 4096, the block size
	if err := fs.WriteFile(testDB, base, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(fs, testDB, Options{Mode: ModeInPlace, NoGrowInPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pend := newLevel()
	pend.blocks[0] = make([]byte, 4096)
	pend.blocks[0][16] = 0x10
	otherPS := newLevel() // page 1 says 1024-byte pages
	otherPS.blocks[0] = make([]byte, 4096)
	otherPS.blocks[0][16] = 0x04
	m.mu.RLock()
	src := m.base
	m.mu.RUnlock()
	for _, c := range []struct {
		name  string
		pend  *level
		size  int64
		stale bool
		ok    bool
	}{
		{"a page rewritten", pend, 8192, false, true},
		{"growth with NoGrowInPlace", pend, 12288, false, false},
		{"not whole pages", pend, 8000, false, false},
		{"stale base handle", pend, 8192, true, false},
		{"nothing changed", newLevel(), 8192, false, false},
		{"the new page size is not the block size", otherPS, 8192, false, false},
	} {
		if got := m.inPlaceBlocked(c.pend, c.size, src, c.stale) == ""; got != c.ok {
			t.Errorf("%s: in place allowed = %v, want %v (%q)", c.name, got, c.ok, m.inPlaceBlocked(c.pend, c.size, src, c.stale))
		}
	}
}
