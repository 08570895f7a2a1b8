package checkpoint

import (
	"fmt"
	"io"
	"slices"
)

// level is one layer of the overlay: whole blocks, keyed by block index
// (offset / block size), over the layers below it (the pending level, then
// the base file).
//
// The current view of byte x, the "raw view", is: the top level's block
// holding x if there is one; else zero if x >= the top level's cut; else
// the same question to the level below; at the bottom, the base file's
// byte if x < the base's size, else zero.
//
// The overlay's own rules (not the protocol's invariants, which
// docs/ARCHITECTURE.md lists), relied on by reads and by every
// partial-block write:
//   - whole blocks: every block holds exactly the block size in bytes;
//   - cut block kept: a level never lacks the block containing its cut
//     when the cut is not block-aligned (Truncate stores it), so a block
//     below the cut is wholly below it;
//   - zero past size: the raw view is zero at and beyond the logical
//     size: the size only shrinks by Truncate, which sets the cut and
//     zeroes the rest of the cut block, and only grows over bytes that
//     are already zero.
type level struct {
	blocks  map[int64][]byte
	cut     int64 // the lowest size truncated to in this level; math.MaxInt64 if none
	changed bool  // a write or a size change reached this level
}

// source says where the raw view of block b comes from.
type source int

const (
	fromOverlay source = iota
	fromZero
	fromBase
)

// lookup finds block b in the levels. The caller holds mu.
func (m *Main) lookup(b int64) ([]byte, source) {
	for _, l := range [2]*level{m.dirty, m.pending} {
		if l == nil {
			continue
		}
		if d, ok := l.blocks[b]; ok {
			return d, fromOverlay
		}
		if b*m.bs >= l.cut {
			return nil, fromZero
		}
	}
	return nil, fromBase
}

// span is a part of a read that the base file serves.
type span struct {
	dst []byte
	off int64
}

// planRead fills p with the raw view at off where the overlay decides it,
// and returns the spans the base file must fill. The caller holds mu.
func (m *Main) planRead(p []byte, off int64) []span {
	var holes []span
	baseSize := m.base.size
	for len(p) > 0 {
		b := off / m.bs
		in := off - b*m.bs
		n := min(int64(len(p)), m.bs-in)
		d, src := m.lookup(b)
		switch src {
		case fromOverlay:
			copy(p[:n], d[in:in+n])
		case fromZero:
			clear(p[:n])
		case fromBase:
			k := min(max(baseSize-off, 0), n)
			if k > 0 {
				if last := len(holes) - 1; last >= 0 && holes[last].off+int64(len(holes[last].dst)) == off {
					// Contiguous on the file and in p (both advance together).
					holes[last].dst = holes[last].dst[:len(holes[last].dst)+int(k)]
				} else {
					holes = append(holes, span{dst: p[:k], off: off})
				}
			}
			clear(p[k:n])
		}
		p, off = p[n:], off+n
	}
	return holes
}

// readRaw reads the raw view: what ReadAt would return without the cut at
// the logical size (beyond which the raw view is zero: rule zero past size).
func (m *Main) readRaw(p []byte, off int64) error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	return m.finishRead(p, off)
}

// finishRead plans a read with mu read-locked, unlocks, and reads the base
// spans outside the lock through a reference, so that a slow drive never
// holds up a commit's swap of the base.
func (m *Main) finishRead(p []byte, off int64) error {
	holes := m.planRead(p, off)
	if len(holes) == 0 {
		m.mu.RUnlock()
		return nil
	}
	ref := m.base
	ref.refs.Add(1)
	m.mu.RUnlock()
	defer m.releaseBase(ref)
	for _, h := range holes {
		if err := readFull(ref.f, h.dst, h.off); err != nil {
			return fmt.Errorf("checkpoint: base %s: %w", m.p.db, err)
		}
	}
	return nil
}

// ReadAt reads the current content: the overlay over the base, cut at the
// logical size, holes zero. It follows io.ReaderAt.
func (m *Main) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("checkpoint: read %s: negative offset %d", m.p.db, off)
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return 0, ErrClosed
	}
	if off >= m.size {
		m.mu.RUnlock()
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), m.size-off))
	if err := m.finishRead(p[:n], off); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes p at off into the overlay. Nothing reaches the drive
// until Commit.
func (m *Main) WriteAt(p []byte, off int64) error {
	if off < 0 {
		return fmt.Errorf("checkpoint: write %s: negative offset %d", m.p.db, off)
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	end := off + int64(len(p))
	first, last := off/m.bs, (end-1)/m.bs
	var blocks [][]byte
	if len(p) > 0 {
		blocks = make([][]byte, 0, last-first+1)
	}
	for b := first; b <= last && len(p) > 0; b++ {
		start := b * m.bs
		lo, hi := max(off, start), min(end, start+m.bs)
		blk := make([]byte, m.bs)
		if lo > start || hi < start+m.bs {
			// A partial block starts from the current view. Reading it
			// outside mu is safe: only writers change the view, and they
			// are serialized by wmu.
			if err := m.readRaw(blk, start); err != nil {
				return err
			}
		}
		copy(blk[lo-start:], p[lo-off:hi-off])
		blocks = append(blocks, blk)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for i, blk := range blocks {
		m.dirty.blocks[first+int64(i)] = blk
	}
	if len(blocks) > 0 {
		m.dirty.changed = true
	}
	if end > m.size {
		m.size = end
		m.dirty.changed = true
	}
	return nil
}

// Truncate sets the logical size. Bytes cut off read as zero if the file
// grows again.
func (m *Main) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("checkpoint: truncate %s: negative size %d", m.p.db, size)
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	cur, err := m.Size()
	if err != nil || size == cur {
		return err
	}
	var blk []byte // the block containing the new end, zeroed past it
	b := size / m.bs
	if r := size - b*m.bs; size < cur && r != 0 {
		blk = make([]byte, m.bs)
		if err := m.readRaw(blk, b*m.bs); err != nil {
			return err
		}
		clear(blk[r:])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if size < cur {
		for k := range m.dirty.blocks {
			if k*m.bs >= size {
				delete(m.dirty.blocks, k)
			}
		}
		if blk != nil {
			m.dirty.blocks[b] = blk // rule cut block kept
		}
		m.dirty.cut = min(m.dirty.cut, size)
	}
	m.size = size // growing: the raw view is already zero there (rule zero past size)
	m.dirty.changed = true
	return nil
}

// freeze moves the dirty level to pending for a commit, and returns it
// with the size to commit and a reference to the base it lies on. ok is
// false when nothing changed since the last commit.
func (m *Main) freeze() (pend *level, size int64, base *baseRef, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirty.changed || m.pending != nil {
		return nil, 0, nil, false
	}
	m.pending, m.dirty = m.dirty, newLevel()
	m.base.refs.Add(1)
	return m.pending, m.size, m.base, true
}

// unfreeze merges the pending level back under the writes made since, for
// the next commit: the view does not change.
func (m *Main) unfreeze() {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, d := m.pending, m.dirty
	if p == nil {
		return
	}
	for b, blk := range p.blocks {
		if _, ok := d.blocks[b]; !ok && b*m.bs < d.cut {
			d.blocks[b] = blk
		}
	}
	d.cut = min(d.cut, p.cut)
	d.changed = true
	m.pending = nil
}

// pendingBlocks returns the pending level's block indexes in order.
func pendingBlocks(l *level) []int64 {
	idx := make([]int64, 0, len(l.blocks))
	for b := range l.blocks {
		idx = append(idx, b)
	}
	slices.Sort(idx)
	return idx
}
