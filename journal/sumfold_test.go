package journal

import (
	"math/rand"
	"slices"
	"testing"
)

func TestGF_inverse(t *testing.T) {
	for _, g := range []*gf{gfC, gfI} {
		for k := range g.pow {
			if got := g.mul(g.pow[k], g.ipow[k]); got != gfOne {
				t.Errorf("poly %#08x: x^(2^%d) * x^(-2^%d) = %#08x, want 1 (%#08x)", g.poly, k, k, got, gfOne)
			}
		}
		for _, n := range []uint64{0, 1, 7, 4096, 1<<20 + 3, 1 << 40} {
			if got := g.mul(g.xpow(n, false), g.xpow(n, true)); got != gfOne {
				t.Errorf("poly %#08x: x^(8*%d) * x^(-8*%d) = %#08x, want 1", g.poly, n, n, got)
			}
		}
	}
}

func TestSumConcat(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 200 {
		a, b := randBytes(rng, rng.Intn(10000)), randBytes(rng, rng.Intn(10000))
		ab := slices.Concat(a, b)
		if got, want := SumConcat(Sum(a), Sum(b), int64(len(b))), Sum(ab); got != want {
			t.Fatalf("SumConcat(%d bytes, %d bytes) = %#016x, want %#016x", len(a), len(b), got, want)
		}
		if got, want := SumTrim(Sum(ab), Sum(b), int64(len(b))), Sum(a); got != want {
			t.Fatalf("SumTrim(%d bytes, %d bytes) = %#016x, want %#016x", len(ab), len(b), got, want)
		}
	}
}

// TestSumPatcher folds random sets of rewritten blocks into a file's
// checksum, with the file then grown (SumConcat) or cut short (SumTrim),
// and checks the result against the checksum of the new bytes.
func TestSumPatcher(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for iter := range 500 {
		bs := []int{1, 512, 4096}[rng.Intn(3)]
		blocks := rng.Intn(40)
		old := randBytes(rng, blocks*bs+rng.Intn(bs)) // not always whole blocks
		// The new file: keep a prefix (maybe all), patch blocks in it,
		// then maybe grow.
		keep := len(old)
		if rng.Intn(3) == 0 {
			keep = rng.Intn(len(old) + 1)
		}
		neu := slices.Clone(old[:keep])
		p := NewSumPatcher(SumTrim(Sum(old), Sum(old[keep:]), int64(len(old)-keep)), int64(keep))
		for off := 0; off < keep; off += bs {
			if rng.Intn(4) != 0 {
				continue
			}
			end := min(off+bs, keep)
			// A rewrite may leave bytes equal, or change one bit.
			switch rng.Intn(3) {
			case 0:
				copy(neu[off:end], randBytes(rng, end-off))
			case 1:
				neu[off+rng.Intn(end-off)] ^= 1 << rng.Intn(8)
			}
			p.Patch(int64(off), old[off:end], neu[off:end])
		}
		got := p.Sum64()
		if want := Sum(neu); got != want {
			t.Fatalf("iteration %d: folded %#016x, want %#016x (%d bytes kept of %d, block %d)", iter, got, want, keep, len(old), bs)
		}
		if rng.Intn(2) == 0 {
			ext := randBytes(rng, rng.Intn(3*bs))
			if got, want := SumConcat(got, Sum(ext), int64(len(ext))), Sum(slices.Concat(neu, ext)); got != want {
				t.Fatalf("iteration %d: grown by %d: %#016x, want %#016x", iter, len(ext), got, want)
			}
		}
	}
}

func TestSumPatcher_misuse(t *testing.T) {
	for name, f := range map[string]func(p *SumPatcher){
		"out of order": func(p *SumPatcher) { p.Patch(8, []byte{1}, []byte{2}); p.Patch(4, []byte{1}, []byte{2}) },
		"past the end": func(p *SumPatcher) { p.Patch(15, []byte{1, 2}, []byte{2, 3}) },
		"lengths":      func(p *SumPatcher) { p.Patch(0, []byte{1}, []byte{2, 3}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewSumPatcher(0, 16))
		})
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

func BenchmarkSumPatcher(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	old, neu := randBytes(rng, 4096), randBytes(rng, 4096)
	for i := 0; i < b.N; i++ {
		p := NewSumPatcher(0, 256<<20)
		for off := int64(0); off < 256<<20; off += 10 * 4096 {
			p.Patch(off, old, neu)
		}
		p.Sum64()
	}
}
