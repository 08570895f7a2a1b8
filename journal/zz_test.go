package journal

import (
	"math/rand"
	"testing"
)

func BenchmarkZZRandomGaps(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	old, neu := randBytes(rng, 4096), randBytes(rng, 4096)
	var offs []int64
	for blk := int64(0); blk < 4096; blk++ {
		if rng.Intn(10) == 0 {
			offs = append(offs, blk*4096)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := NewSumPatcher(0, 16<<20)
		for _, off := range offs {
			p.Patch(off, old, neu)
		}
		p.Sum64()
	}
	b.ReportMetric(float64(len(offs)), "patches")
}
