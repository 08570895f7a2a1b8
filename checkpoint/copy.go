package checkpoint

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/journal"
)

// The copy with a folded checksum.
//
// A commit whose base has a known checksum (baseRef.sum) writes the copy
// without reading the base bytes it keeps unchanged: long unchanged
// stretches go from file to file in the kernel (copyRange:
// copy_file_range on Linux), and the copy's checksum is the base's with
// the rewritten blocks folded in (journal.SumPatcher), the bytes cut off
// taken out (journal.SumTrim) and the bytes beyond the base added
// (journal.SumConcat). Only the old bytes of the rewritten blocks and the
// base bytes cut off are read.
//
// What the checksum in Ready then proves: that the copy holds the base as
// it was recorded with the pending writes applied, if the drive kept the
// base as recorded. It no longer describes what was read from the drive
// during the commit. A base changed under the store (another program, a
// failing drive) gives a copy whose bytes disagree with Ready. With
// ReadBackAlways the read-back sees it and the commit reads the base once
// (checkBase): a base that differs from its recorded checksum fails the
// commit with ErrChanged, and later commits refuse until it reads as
// recorded again; a base that matches means the write came back wrong
// (ErrDriveCorrupted). With ReadBackNever nothing in the commit notices:
// every later Ready folds from the wrong checksum too, until a read of the
// whole file does: Prove(true), recovery after a pull (it checks the copy
// against Ready before trusting it, and refuses it), or `ejectsafe
// verify`, which reports the database as differing from the journal's
// last checkpoint. The old way, summing
// the bytes as they were copied, recorded such a change as if it were the
// store's own data.

// copyMin is the shortest unchanged stretch worth a copyRange of its own:
// shorter ones are read and written with the blocks around them, in one
// pwrite, which costs less than three system calls per block.
const copyMin = 64 << 10

// foldable reports whether this commit can copy with a folded checksum.
func (m *Main) foldable(src *baseRef) bool {
	return src.summed && (src.f != nil || src.size == 0) && m.bs <= chunkSize/4
}

// writeCopyFold is writeCopy for a base whose checksum is known (see
// above). The copy is written strictly in order, each byte once, as
// writeCopy does, unless the commit may patch a copy of the base
// (patchesCopy): then the rewritten blocks below the base's end go over
// a kernel copy of it, last (copyPatchFold).
func (m *Main) writeCopyFold(tf device.File, pend *level, size int64, src *baseRef) (uint64, error) {
	keep := min(src.size, pend.cut, size) // base bytes the copy keeps
	// 1. The checksum of the base bytes kept: the base's, less the bytes
	// cut off, which are read.
	prefix := src.sum
	if keep < src.size {
		cut, err := sumRange(src.f, keep, src.size, &m.buf)
		if err != nil {
			return 0, err
		}
		prefix = journal.SumTrim(src.sum, cut, src.size-keep)
	}
	// 2. The kept bytes with the pending blocks below keep patched in,
	// and 3. the tail beyond keep.
	all := pendingBlocks(pend)
	p := journal.NewSumPatcher(prefix, keep)
	b := buffer(&m.buf, chunkSize)
	sb := make([]byte, m.bs) // a spilled block, read back
	var tail uint64
	var err error
	if m.patchesCopy(keep) {
		tail, err = m.copyPatchFold(tf, pend, src, keep, size, all, p, b, sb)
	} else if err = m.copyPatched(tf, pend, src, keep, all, p, b, sb); err == nil {
		tail, err = m.writeTail(tf, pend, keep, size, all, b, sb, nil)
	}
	if err != nil {
		return 0, err
	}
	return journal.SumConcat(p.Sum64(), tail, size-keep), nil
}

// errStopped ends one of copyPatchFold's two passes when the other failed.
var errStopped = errors.New("checkpoint: stopped: the pass beside this one failed")

// copyPatchFold writes the copy as the base's first keep bytes copied
// whole with the rewritten blocks below keep written over them, a chunk
// at a time (copyAndPatch), then the tail beyond keep (writeTail). Writes
// below the file's end before it grows are fine here: this path is never
// taken through a FUSE driver (fusefat corrupts such files). Meanwhile, from the start, a
// goroutine of its own reads the rewritten blocks' old bytes and folds
// them into p (foldPatches): it needs nothing the writes make, so it runs
// beside the kernel copy, the longest step, rather than after it. The
// two passes share nothing but the base and the frozen pending level,
// which both only read. p is read only after the fold ends, and the fold
// always ends before this returns (src is released after). The first
// pass to fail stops the other at its next step; its error is the one
// returned (both, joined, if both fail on their own).
func (m *Main) copyPatchFold(tf device.File, pend *level, src *baseRef, keep, size int64, all []int64, p *journal.SumPatcher, b, sb []byte) (tail uint64, err error) {
	var stop atomic.Bool
	folded := make(chan error, 1)
	go func() {
		err := m.foldPatches(pend, src, keep, all, p, make([]byte, len(b)), make([]byte, m.bs), &stop)
		if err != nil {
			stop.Store(true)
		}
		folded <- err
	}()
	defer func() { // on a panic too: the caller releases src
		switch ferr := <-folded; {
		case ferr == nil || errors.Is(ferr, errStopped):
		case err == nil || errors.Is(err, errStopped):
			err = ferr
		default:
			err = errors.Join(err, ferr)
		}
	}()
	err = m.copyAndPatch(tf, pend, src, keep, all, b, sb, &stop)
	if err == nil {
		tail, err = m.writeTail(tf, pend, keep, size, all, b, sb, &stop)
	}
	if err != nil {
		stop.Store(true)
	}
	return tail, err
}

// writeTail is step 3 of writeCopyFold: beyond keep, zeros with the
// pending blocks there (including the rest of a block that straddles
// keep), summed as written; it returns their checksum. It gives up with
// errStopped once stop (if any) is set.
func (m *Main) writeTail(tf device.File, pend *level, keep, size int64, all []int64, b, sb []byte, stop *atomic.Bool) (uint64, error) {
	tail := journal.NewSum()
	idx := all
	for off := keep; off < size; {
		if stop != nil && stop.Load() {
			return 0, errStopped
		}
		c := b[:min(int64(len(b)), size-off)]
		clear(c)
		w := int64(len(c))
		if err := m.overlayChunk(c, off, pend, &idx, sb); err != nil {
			return 0, err
		}
		tail.Write(c)
		if _, err := tf.WriteAt(c, off); err != nil {
			return 0, err
		}
		off += w
	}
	return tail.Sum64(), nil
}

// overlayChunk copies into c, the copy's bytes at off, the pending
// blocks of idx (ascending) that overlap it. It drops from idx the
// blocks wholly below off and those that end within c; a block that
// continues past c stays first, for the next chunk. Blocks are whole
// (overlay.go), so a block ends at its index times the block size plus
// one block.
func (m *Main) overlayChunk(c []byte, off int64, pend *level, idx *[]int64, sb []byte) error {
	end := off + int64(len(c))
	for len(*idx) > 0 && (*idx)[0]*m.bs < end {
		bo := (*idx)[0] * m.bs
		if bo+m.bs <= off { // wholly below: written in an earlier chunk
			*idx = (*idx)[1:]
			continue
		}
		blk, _, err := m.block(pend, (*idx)[0], sb)
		if err != nil {
			return err
		}
		lo, hi := max(bo, off), min(bo+m.bs, end)
		copy(c[lo-off:hi-off], blk[lo-bo:hi-bo])
		if bo+m.bs > end {
			break // continues in the next chunk
		}
		*idx = (*idx)[1:]
	}
	return nil
}

// patchesCopy reports whether this commit writes its copy as a copy of
// the base with the rewritten blocks written over it (copyPatchFold):
// where Options.PatchAfterCopy says the filesystem allows it (the store:
// kernel filesystems, never FUSE) and its kernel copies between these
// files, or has not refused yet. Cheaper than copyPatched when rewritten
// blocks are dense: at 10% of 256 MiB every stretch between them is
// shorter than copyMin, so the ordered pass moves the whole file through
// user space twice, where this moves it once in the kernel and the
// rewritten blocks twice in user space. Never through a FUSE driver,
// which must see each byte written once, in order (fusefat).
func (m *Main) patchesCopy(keep int64) bool {
	return m.opts.PatchAfterCopy && !m.noKernelCopy && keep > 0
}

// writebackChunk is how much of the copy copyAndPatch writes before it
// asks the kernel to start writing it to the device: at 256 KiB the
// extra system calls cost more than the earlier start gains; at 1 and 4
// MiB a 16 MiB copy checkpoint took about the same time (BENCHMARKS.md,
// issue 12's sixth pass). A variable for tests.
var writebackChunk int64 = 4 << 20

// copyAndPatch writes the base's first keep bytes into tf with the pending
// blocks below keep written over them, a writebackChunk at a time: the
// chunk copied (copyBase), its rewritten blocks written over it
// (writePatches), and the kernel asked to start writing it to the device
// (startWriteback), so that the device writes one chunk while the next is
// copied, rather than all of them in the fsync after. Each chunk is
// patched before its writeback starts, so a rewritten block normally
// reaches the device once (the kernel may write a chunk back on its own
// before: time only), and ends on a block boundary. It gives up with errStopped once stop is set.
func (m *Main) copyAndPatch(tf device.File, pend *level, src *baseRef, keep int64, all []int64, b, sb []byte, stop *atomic.Bool) error {
	idx := all
	for pos := int64(0); pos < keep; {
		if stop.Load() {
			return errStopped
		}
		// Chunks end on a block boundary (or at keep): a block across
		// the end would be written over by the next chunk's copy.
		end := min(max((pos+writebackChunk)/m.bs*m.bs, pos+m.bs), keep)
		if err := m.copyBase(tf, src, pos, end-pos, b); err != nil {
			return err
		}
		j, _ := slices.BinarySearch(idx, (end+m.bs-1)/m.bs) // the blocks that start below end
		if err := m.writePatches(tf, pend, keep, idx[:j], b, sb, stop); err != nil {
			return err
		}
		idx = idx[j:]
		if err := startWriteback(tf, pos, end-pos); err != nil {
			return err
		}
		pos = end
	}
	return nil
}

// copyBase copies the base's n bytes at off into tf: in the kernel
// (copyRange); through buf once the kernel refused, which it remembers
// (later commits then take the ordered pass: patchesCopy), or where it
// stops short (a base that ended early is reported there).
func (m *Main) copyBase(tf device.File, src *baseRef, off, n int64, buf []byte) error {
	return copyRange(tf, src.f, off, n, buf, &m.noKernelCopy)
}

// writePatches writes the pending blocks below keep over a copy of the
// base (copyBase), one WriteAt per run of adjacent blocks, each run
// gathered in nb.
func (m *Main) writePatches(tf device.File, pend *level, keep int64, all []int64, nb, sb []byte, stop *atomic.Bool) error {
	return m.patchRuns(all, keep, len(nb), stop, func(pos, end int64, run []int64) error {
		nw := nb[:0]
		for _, i := range run {
			blk, _, err := m.block(pend, i, sb)
			if err != nil {
				return err
			}
			nw = append(nw, blk[:min(m.bs, keep-i*m.bs)]...)
		}
		_, err := tf.WriteAt(nw, pos)
		return err
	})
}

// foldPatches folds into p the pending blocks below keep that
// writePatches writes, against the base's bytes they replace: one read
// per run into old, then each block. It reads the base and the pending
// level only, and may run beside writePatches (sb is its own).
func (m *Main) foldPatches(pend *level, src *baseRef, keep int64, all []int64, p *journal.SumPatcher, old, sb []byte, stop *atomic.Bool) error {
	return m.patchRuns(all, keep, len(old), stop, func(pos, end int64, run []int64) error {
		o := old[:end-pos]
		if err := readFull(src.f, o, pos); err != nil {
			return err
		}
		for _, i := range run {
			blk, _, err := m.block(pend, i, sb)
			if err != nil {
				return err
			}
			bo, hi := i*m.bs, min((i+1)*m.bs, keep)
			p.Patch(bo, o[bo-pos:hi-pos], blk[:hi-bo])
		}
		return nil
	})
}

// patchRuns calls f, in ascending order, for each run of adjacent blocks
// of all below keep, at most limit bytes long: the run's blocks and the
// bytes [pos, end) below keep they cover. A block always fits (foldable:
// a block is at most a quarter of a buffer). It gives up with errStopped
// once stop (if any) is set.
func (m *Main) patchRuns(all []int64, keep int64, limit int, stop *atomic.Bool, f func(pos, end int64, run []int64) error) error {
	idx := all
	for len(idx) > 0 && idx[0]*m.bs < keep {
		if stop != nil && stop.Load() {
			return errStopped
		}
		pos := idx[0] * m.bs
		end, j := pos, 0
		for ; j < len(idx); j++ {
			bo := idx[j] * m.bs
			hi := min(bo+m.bs, keep)
			if bo >= keep || bo != end || hi-pos > int64(limit) {
				break
			}
			end = hi
		}
		if err := f(pos, end, idx[:j]); err != nil {
			return err
		}
		idx = idx[j:]
	}
	return nil
}

// copyPatched writes the base's first keep bytes into tf with the
// pending blocks below keep patched in, strictly in order, each byte
// once: long unchanged stretches in the kernel where it can, rewritten
// blocks and the short stretches between them read, patched and written
// in batches of at most one buffer.
func (m *Main) copyPatched(tf device.File, pend *level, src *baseRef, keep int64, all []int64, p *journal.SumPatcher, b, sb []byte) error {
	idx := all
	for pos := int64(0); pos < keep; {
		next := keep // the next rewritten block below keep
		if len(idx) > 0 && idx[0]*m.bs < keep {
			next = idx[0] * m.bs
		}
		if next-pos >= copyMin || next == keep {
			if err := copyRange(tf, src.f, pos, next-pos, b, &m.noKernelCopy); err != nil {
				return err
			}
			pos = next
			continue
		}
		// A batch from pos over rewritten blocks and the short
		// unchanged stretches between them, read, patched, written once.
		end, j := pos, 0
		for ; j < len(idx); j++ {
			bo := idx[j] * m.bs
			hi := min(bo+m.bs, keep)
			if bo >= keep || bo-end >= copyMin || hi-pos > int64(len(b)) {
				break
			}
			end = hi
		}
		c := b[:end-pos]
		if err := readFull(src.f, c, pos); err != nil {
			return err
		}
		for _, i := range idx[:j] {
			bo := i * m.bs
			lo, hi := bo-pos, min(bo+m.bs, keep)-pos
			blk, _, err := m.block(pend, i, sb)
			if err != nil {
				return err
			}
			blk = blk[:hi-lo]
			p.Patch(bo, c[lo:hi], blk)
			copy(c[lo:hi], blk)
		}
		if _, err := tf.WriteAt(c, pos); err != nil {
			return err
		}
		pos, idx = end, idx[j:]
	}
	return nil
}

// checkBase reads the whole base and compares its checksum with the one
// recorded for it (src.sum), which a folded checksum starts from. A
// mismatch is a base changed behind the store: another program wrote the
// database in place, or the drive changed it. It returns a *ChangedError
// (ErrChanged) then, and remembers it: every commit refuses until the base
// reads as recorded again, so that the change is never copied into a
// generation as if the store had written it. Nil when the base is as
// recorded; the drive's error when it cannot be read.
func (m *Main) checkBase(src *baseRef) error {
	if !src.summed {
		return m.baseChanged // nothing to compare with: keep the verdict
	}
	got := emptySum
	if src.f != nil {
		var err error
		if got, err = sumFile(src.f, src.size, &m.buf); err != nil {
			return err
		}
	}
	if got == src.sum {
		m.baseChanged = nil
		return nil
	}
	m.baseChanged = &ChangedError{DB: m.p.db, What: fmt.Sprintf(
		"the database on the drive differs from its recorded checksum (%d bytes read as %#016x, recorded %#016x): changed behind the store",
		src.size, got, src.sum)}
	return m.baseChanged
}

// sumRange returns the database checksum of f's bytes from off to end.
func sumRange(f device.File, off, end int64, buf *[]byte) (uint64, error) {
	h := journal.NewSum()
	b := buffer(buf, end-off)
	for off < end {
		k := min(int64(len(b)), end-off)
		if err := readFull(f, b[:k], off); err != nil {
			return 0, err
		}
		h.Write(b[:k])
		off += k
	}
	return h.Sum64(), nil
}

// copyRange copies n bytes at off from src to the same offset in dst: in
// the kernel where it can (copyKernel), else through buf. *noKernel
// remembers that the kernel refused these files: later calls copy
// through buf at once, without one failed system call per stretch.
func copyRange(dst, src device.File, off, n int64, buf []byte, noKernel *bool) error {
	if n <= 0 {
		return nil
	}
	if !*noKernel {
		done, unsupported, err := copyKernel(dst, src, off, n)
		if err != nil {
			return err
		}
		*noKernel = unsupported
		off, n = off+done, n-done
	}
	for n > 0 {
		c := buf[:min(int64(len(buf)), n)]
		if err := readFull(src, c, off); err != nil {
			return err
		}
		if _, err := dst.WriteAt(c, off); err != nil {
			return err
		}
		off, n = off+int64(len(c)), n-int64(len(c))
	}
	return nil
}
