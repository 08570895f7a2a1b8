package journal

import "hash/crc32"

// Folding changes into a known database checksum, without reading the
// bytes that did not change.
//
// A CRC is linear over GF(2): for two messages of the same length,
// crc(A) XOR crc(B) is the CRC of A XOR B computed with a zero initial
// value and no final XOR (the "raw" CRC; the conditioning cancels out),
// and the raw CRC of a message followed by n zero bytes is the raw CRC
// of the message times x^(8n) modulo the polynomial. So:
//
//   - rewriting bytes old -> new at offset o of a file of size s changes
//     its CRC by raw(old XOR new) * x^(8(s-o-len)) (SumPatcher);
//   - appending b to a: crc(a||b) = crc(a) * x^(8 len(b)) XOR crc(b)
//     (SumConcat, zlib's crc32_combine);
//   - cutting b off a||b: crc(a) = (crc(a||b) XOR crc(b)) * x^(-8 len(b))
//     (SumTrim); x is invertible modulo a polynomial with a constant term.
//
// Each holds for both halves of the database checksum (see Sum). The
// arithmetic is in the reflected bit order Go's hash/crc32 uses: bit 31
// is the coefficient of x^0, bit 0 that of x^31.
//
// What a folded checksum proves: that the file holds the bytes it was
// meant to hold, if the bytes the fold started from were what their
// checksum says. It is computed from the record of the base, not from
// the drive: a base someone else changed makes the folded checksum
// disagree with the file, and that disagreement is what recovery and
// `ejectsafe verify` find when they read the file.

// gf is one CRC-32's arithmetic modulo its polynomial.
type gf struct {
	poly uint32 // reflected, as in hash/crc32
	tab  *crc32.Table
	pow  [67]uint32 // pow[k] = x^(2^k) mod poly
	ipow [67]uint32 // ipow[k] = x^(-2^k) mod poly
}

const gfOne = uint32(1) << 31 // x^0

func newGF(poly uint32, tab *crc32.Table) *gf {
	g := &gf{poly: poly, tab: tab}
	g.pow[0] = 1 << 30 // x^1
	// x^-1 = x^31 + (P(x) - x^32 - 1) / x: then x * x^-1 = P(x) - 1,
	// which is 1 modulo P (signs do not matter in GF(2)). In the
	// reflected order, dividing by x is a shift left, which drops the
	// x^0 term, and x^31 is bit 0.
	g.ipow[0] = poly<<1 | 1
	for k := 1; k < len(g.pow); k++ {
		g.pow[k] = g.mul(g.pow[k-1], g.pow[k-1])
		g.ipow[k] = g.mul(g.ipow[k-1], g.ipow[k-1])
	}
	return g
}

// mul returns a*b modulo the polynomial (zlib's multmodp): for each term
// of a, from x^0 up, add b, then multiply b by x.
func (g *gf) mul(a, b uint32) uint32 {
	var p uint32
	for m := gfOne; a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a ^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ g.poly
		} else {
			b >>= 1
		}
	}
	return p
}

// xpow returns x^(8n) (inverse: x^(-8n)) modulo the polynomial.
func (g *gf) xpow(n uint64, inverse bool) uint32 {
	t := &g.pow
	if inverse {
		t = &g.ipow
	}
	p := gfOne
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = g.mul(t[k], p)
		}
	}
	return p
}

// raw returns the raw CRC of p continuing from the raw state c.
func (g *gf) raw(c uint32, p []byte) uint32 {
	return ^crc32.Update(^c, g.tab, p)
}

// The two halves of the database checksum (Sum): CRC-32C and CRC-32.
var (
	gfC = newGF(crc32.Castagnoli, castagnoli)
	gfI = newGF(crc32.IEEE, crc32.IEEETable)
)

// split and join take a database checksum apart into its two CRCs.
func split(s uint64) (c, i uint32) { return uint32(s >> 32), uint32(s) }
func join(c, i uint32) uint64      { return uint64(c)<<32 | uint64(i) }

// SumConcat returns the database checksum of a followed by b from
// Sum(a), Sum(b) and len(b).
func SumConcat(sumA, sumB uint64, lenB int64) uint64 {
	ac, ai := split(sumA)
	bc, bi := split(sumB)
	return join(gfC.mul(gfC.xpow(uint64(lenB), false), ac)^bc, gfI.mul(gfI.xpow(uint64(lenB), false), ai)^bi)
}

// SumTrim returns the database checksum of a from Sum(a followed by b),
// Sum(b) and len(b): the checksum of a file cut short, from the bytes cut
// off alone.
func SumTrim(sumAB, sumB uint64, lenB int64) uint64 {
	abc, abi := split(sumAB)
	bc, bi := split(sumB)
	return join(gfC.mul(gfC.xpow(uint64(lenB), true), abc^bc), gfI.mul(gfI.xpow(uint64(lenB), true), abi^bi))
}

// SumPatcher folds rewrites of a file's bytes into its checksum. Give it
// the rewrites in increasing order of offset, without overlaps, then ask
// for the checksum: the cost is one CRC pass over the rewritten bytes
// (old and new) and a few dozen multiplications per gap between them,
// none over the bytes that stay.
type SumPatcher struct {
	size   int64  // the file's size
	sum    uint64 // its checksum before the rewrites
	end    int64  // the end of the last rewrite
	dc, di uint32 // raw CRCs of old XOR new from offset 0 to end
	any    bool
	// The last gap's powers of x: rewrites of whole blocks repeat gaps.
	gap    uint64
	gc, gi uint32
}

// NewSumPatcher starts folding rewrites into sum, the checksum of a file
// of size bytes.
func NewSumPatcher(sum uint64, size int64) *SumPatcher {
	return &SumPatcher{size: size, sum: sum}
}

// Patch records that the bytes at off, which held old, now hold new.
// old and new have the same length; off+len(new) is at most the size;
// off is at or beyond the end of the previous Patch. It panics otherwise
// (a bug in the caller: the bytes are its own).
func (p *SumPatcher) Patch(off int64, old, new []byte) {
	if len(old) != len(new) || off < p.end || off+int64(len(new)) > p.size {
		panic("journal: SumPatcher.Patch out of order, out of range or of unequal lengths")
	}
	if len(new) == 0 {
		return
	}
	if gap := uint64(off - p.end); gap > 0 && p.any {
		if gap != p.gap {
			p.gap, p.gc, p.gi = gap, gfC.xpow(gap, false), gfI.xpow(gap, false)
		}
		p.dc = gfC.mul(p.gc, p.dc)
		p.di = gfI.mul(p.gi, p.di)
	}
	// raw(old XOR new) = raw(old) XOR raw(new), continued from the state:
	// the raw CRC is linear in its starting state and in the bytes.
	p.dc = gfC.raw(p.dc, old) ^ gfC.raw(0, new)
	p.di = gfI.raw(p.di, old) ^ gfI.raw(0, new)
	p.end, p.any = off+int64(len(new)), true
}

// Sum64 returns the file's checksum with the rewrites folded in.
func (p *SumPatcher) Sum64() uint64 {
	if !p.any {
		return p.sum
	}
	tail := uint64(p.size - p.end)
	c, i := split(p.sum)
	return join(c^gfC.mul(gfC.xpow(tail, false), p.dc), i^gfI.mul(gfI.xpow(tail, false), p.di))
}
