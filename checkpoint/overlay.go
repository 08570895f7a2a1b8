package checkpoint

import (
	"bytes"
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
	spilled map[int64]int64 // blocks in the spill file (spill.go), at these offsets; never also in blocks
	cut     int64           // the lowest size truncated to in this level; math.MaxInt64 if none
	changed bool            // a write or a size change reached this level
}

// source says where the raw view of block b comes from.
type source int

const (
	fromOverlay source = iota
	fromSpill
	fromZero
	fromBase
)

// lookup finds block b in the levels: its bytes in memory, or its offset
// in the spill file. The caller holds mu.
func (m *Main) lookup(b int64) ([]byte, int64, source) {
	for _, l := range [2]*level{m.dirty, m.pending} {
		if l == nil {
			continue
		}
		if d, ok := l.blocks[b]; ok {
			return d, 0, fromOverlay
		}
		if off, ok := l.spilled[b]; ok {
			return nil, off, fromSpill
		}
		if b*m.bs >= l.cut {
			return nil, 0, fromZero
		}
	}
	return nil, 0, fromBase
}

// span is a part of a read that the base file serves, or the spill file.
type span struct {
	dst   []byte
	off   int64
	spill bool
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
		d, so, src := m.lookup(b)
		switch src {
		case fromOverlay:
			copy(p[:n], d[in:in+n])
		case fromSpill:
			holes = append(holes, span{dst: p[:n], off: so + in, spill: true})
		case fromZero:
			clear(p[:n])
		case fromBase:
			k := min(max(baseSize-off, 0), n)
			if k > 0 {
				if last := len(holes) - 1; last >= 0 && !holes[last].spill && holes[last].off+int64(len(holes[last].dst)) == off {
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
	var sp *spill
	for _, h := range holes {
		if h.spill {
			if sp = m.sp; sp == nil { // every spilled block is in m.sp
				m.mu.RUnlock()
				m.releaseBase(ref)
				return errNoSpill
			}
			sp.refs.Add(1)
			break
		}
	}
	m.mu.RUnlock()
	defer m.releaseBase(ref)
	if sp != nil {
		defer sp.release()
	}
	for _, h := range holes {
		if h.spill {
			if err := sp.read(h.dst, h.off); err != nil {
				return err
			}
			continue
		}
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
	if len(p) == 0 {
		first, last = 0, -1
	}
	// Past SpillAbove in memory, the blocks go to the spill file (whole
	// blocks straight from p: the spill path allocates nothing that
	// stays). If it cannot be had or written (the host disk full), they
	// stay in memory up to spillMemLimit, past which the write fails;
	// the error is kept for Stats either way.
	sp, err := m.spillFor(int(last - first + 1))
	blocks = make([][]byte, 0, last-first+1)
	for b := first; b <= last; b++ {
		start := b * m.bs
		lo, hi := max(off, start), min(end, start+m.bs)
		if sp != nil && lo == start && hi == start+m.bs {
			blocks = append(blocks, p[lo-off:hi-off]) // copied once appended, or below
			continue
		}
		blk := m.takeBlock()
		if lo > start || hi < start+m.bs {
			clear(blk) // readRaw fills it whole; a kept block's old bytes never show even if that changes
			// A partial block starts from the current view. Reading it
			// outside mu is safe: only writers change the view, and they
			// are serialized by wmu.
			if err := m.readRaw(blk, start); err != nil {
				if sp != nil {
					sp.release()
				}
				return err
			}
		}
		copy(blk[lo-start:], p[lo-off:hi-off])
		blocks = append(blocks, blk)
	}
	var spillAt int64
	if err == nil && sp != nil {
		if spillAt, err = sp.appendBlocks(blocks); err != nil {
			sp.release()
			sp = nil
			for i, blk := range blocks { // they stay in memory: own them
				blocks[i] = bytes.Clone(blk)
			}
		}
	}
	if err != nil || sp != nil {
		m.smu.Lock()
		if m.stats.SpillErr = err; err != nil {
			m.stats.SpillErrs++
		}
		m.smu.Unlock()
	}
	if err != nil {
		m.mu.RLock()
		over := (m.memBlocks()+int64(len(blocks)))*m.bs > m.spillMemLimit()
		m.mu.RUnlock()
		if over {
			return fmt.Errorf("checkpoint: write %s: the overlay holds %d MiB in memory and cannot spill: %w", m.p.db, m.spillMemLimit()>>20, err)
		}
	}
	if sp != nil {
		defer sp.release() // after mu: m.sp keeps its own reference
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for i, blk := range blocks {
		b := first + int64(i)
		if sp != nil {
			m.dirty.spilled[b] = spillAt + int64(i)*m.bs
			delete(m.dirty.blocks, b)
		} else {
			m.dirty.blocks[b] = blk
			delete(m.dirty.spilled, b)
		}
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
		for k := range m.dirty.spilled {
			if k*m.bs >= size {
				delete(m.dirty.spilled, k)
			}
		}
		if blk != nil {
			m.dirty.blocks[b] = blk // rule cut block kept
			delete(m.dirty.spilled, b)
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
		if !d.holds(b) && b*m.bs < d.cut {
			d.blocks[b] = blk
		}
	}
	for b, off := range p.spilled {
		if !d.holds(b) && b*m.bs < d.cut {
			d.spilled[b] = off
		}
	}
	d.cut = min(d.cut, p.cut)
	d.changed = true
	m.pending = nil
}

// holds reports whether the level holds block b, in memory or spilled.
func (l *level) holds(b int64) bool {
	if _, ok := l.blocks[b]; ok {
		return true
	}
	_, ok := l.spilled[b]
	return ok
}

// pendingBlocks returns the pending level's block indexes in order.
func pendingBlocks(l *level) []int64 {
	idx := make([]int64, 0, len(l.blocks)+len(l.spilled))
	for b := range l.blocks {
		idx = append(idx, b)
	}
	for b := range l.spilled {
		idx = append(idx, b)
	}
	slices.Sort(idx)
	return idx
}

// keepFree is the most memory the overlay keeps for reuse between
// commits (takeBlock): what a checkpoint backfills is written into blocks
// already faulted in, not fresh ones, and the next checkpoint of about
// the same size allocates nothing.
const keepFree = 32 << 20

// takeBlock returns a block for the overlay: a kept one (its old bytes
// still in it), or a new one.
func (m *Main) takeBlock() []byte {
	m.fmu.Lock()
	if n := len(m.free); n > 0 {
		blk := m.free[n-1]
		m.free = m.free[:n-1]
		m.fmu.Unlock()
		return blk
	}
	m.fmu.Unlock()
	return make([]byte, m.bs)
}

// recycle keeps the in-memory blocks of l, a level nothing can reach any
// more (swapBase dropped it), for takeBlock, up to keepFree. That rests on
// two rules: a block is in one live level at a time (freeze starts an
// empty dirty level; unfreeze, the one place blocks move between levels,
// sets pending to nil as it moves them), and a failed in-place commit kept
// for settling (Main.inplace) unfreezes its level before it is kept, so
// its blocks are never the pending level swapBase drops.
// TestMain_blocksReused checks the reuse; with poisonKept every content
// check of the package's tests guards the two rules.
func (m *Main) recycle(l *level) {
	if l == nil {
		return
	}
	m.fmu.Lock()
	defer m.fmu.Unlock()
	for _, blk := range l.blocks { // every block is m.bs long (rule whole blocks)
		if int64(len(m.free)+1)*m.bs > keepFree {
			return
		}
		if poisonKept {
			for i := range blk {
				blk[i] = 0xA5
			}
		}
		m.free = append(m.free, blk)
	}
}

// poisonKept makes recycle fill every block it keeps with 0xA5. This
// package's tests set it: a kept block that a level still holds (the
// rules above broken) then shows as wrong bytes in every test that checks
// what the view or the file holds.
var poisonKept bool
