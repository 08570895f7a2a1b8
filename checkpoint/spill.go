package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// The spill file: an overlay past Options.SpillAbove bytes of memory keeps
// further blocks in a file on the host's own disk instead of the heap.
//
// A checkpoint backfills every page of the WAL into the overlay, and the
// commit reads them from there. With the WAL in a host log a transaction
// may be larger than RAM (the store's HostLog level), so its checkpoint
// must not hold its pages in memory: past the limit, WriteAt appends
// blocks to the spill file and the level records where (level.spilled).
// Reads and commits read them back with pread, through the page cache,
// which the kernel may evict: resident memory stays bounded.
//
// The file has no name (O_TMPFILE on Linux; elsewhere its name is
// removed as soon as it is created, where the OS lets an open file be
// removed) and is never flushed: it holds nothing a crash needs
// (the host log holds every frame until the checkpoint is durable), and
// after a crash nothing names it. Its blocks are freed, not zeroed, as
// the host log's are (README, "What stays on the host computer"). The
// store names a spill directory only at the levels that keep a host log:
// at Checkpoint the WAL is capped in memory, so the overlay is too.
//
// Lifetime: the Main's reference (while the file is m.sp), one for each
// reader and writer using it, no reference per block. Every spilled
// block of every level lies in m.sp. m.sp is retired (its reference
// dropped) only under mu with no level holding a spilled block and no
// other reference (no reader mid-read, no writer between appending and
// recording): no reader can then reach it, and a new one is made when a
// block next spills. Retirement is tried at each successful commit and
// at Close.
//
// The file only grows until it is retired: a block written again, cut
// off by Truncate or kept by a failed commit keeps its old space. So it
// holds at most what was spilled since the last commit that left no
// spilled block behind: for a checkpoint, about the transaction's pages
// once, for which the store leaves room (its host-log cap is a third of
// the host disk's free space, store/hostlog.go).

// DefaultSpillAbove is Options.SpillAbove's default: 64 MiB of overlay in
// memory, the size of the default in-memory WAL cap.
const DefaultSpillAbove = 64 << 20

// errNoSpill: a level holds a spilled block but the Main has no spill
// file. It cannot happen while the lifetime rule above holds; it is an
// error rather than a crash if it ever does.
var errNoSpill = errors.New("checkpoint: a spilled block without its spill file")

// spill is an append-only file of overlay blocks.
type spill struct {
	f    *os.File
	name string // still linked (the OS refused the removal): removed at close
	refs atomic.Int64
	mu   sync.Mutex // end; held while appending
	end  int64
}

// newSpill creates an unlinked spill file in dir, private to this user:
// a file that never had a name where the OS can make one (O_TMPFILE on
// Linux), else a temporary name removed at once.
func newSpill(dir string) (*spill, error) {
	if f, err := openUnnamed(dir); err == nil {
		s := &spill{f: f}
		s.refs.Store(1)
		return s, nil
	}
	f, err := os.CreateTemp(dir, ".ejectsafe-spill-*")
	if err != nil {
		return nil, err
	}
	s := &spill{f: f}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if os.Remove(f.Name()) != nil {
		s.name = f.Name() // Windows: an open file stays; removed at close
	}
	s.refs.Store(1)
	return s, nil
}

// release drops a reference; the last closes (and removes) the file.
func (s *spill) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.f.Close() // scratch: nothing to report
	if s.name != "" {
		os.Remove(s.name)
	}
}

// appendBlocks writes blocks one after the other at the file's end and
// returns the offset of the first.
func (s *spill) appendBlocks(blocks [][]byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := s.end
	pos := off
	for _, b := range blocks {
		if _, err := s.f.WriteAt(b, pos); err != nil {
			return 0, fmt.Errorf("checkpoint: spill file: %w", err)
		}
		pos += int64(len(b))
	}
	s.end = pos
	return off, nil
}

// read fills p from the spill file at off.
func (s *spill) read(p []byte, off int64) error {
	if _, err := s.f.ReadAt(p, off); err != nil {
		return fmt.Errorf("checkpoint: spill file: %w", err)
	}
	return nil
}

// memBlocks is the number of overlay blocks held in memory. The caller
// holds mu.
func (m *Main) memBlocks() int64 {
	n := int64(len(m.dirty.blocks))
	if m.pending != nil {
		n += int64(len(m.pending.blocks))
	}
	return n
}

// spilledBlocks is the number of overlay blocks in the spill file. The
// caller holds mu.
func (m *Main) spilledBlocks() int64 {
	n := int64(len(m.dirty.spilled))
	if m.pending != nil {
		n += int64(len(m.pending.spilled))
	}
	return n
}

// spillFor decides whether n new blocks go to the spill file, and if so
// returns it with a reference for the caller (a writer, under wmu), made
// if there is none. Nil, nil: they stay in memory.
func (m *Main) spillFor(n int) (*spill, error) {
	if m.opts.SpillDir == "" || n == 0 {
		return nil, nil
	}
	limit := m.opts.SpillAbove
	if limit <= 0 {
		limit = DefaultSpillAbove
	}
	m.mu.Lock()
	if (m.memBlocks()+int64(n))*m.bs <= limit {
		m.mu.Unlock()
		return nil, nil
	}
	if sp := m.sp; sp != nil {
		sp.refs.Add(1)
		m.mu.Unlock()
		return sp, nil
	}
	m.mu.Unlock()
	// Only writers make the file, and they are serialized (wmu).
	sp, err := newSpill(m.opts.SpillDir)
	if err != nil {
		return nil, err
	}
	sp.refs.Add(1) // the caller's, beside the Main's
	m.mu.Lock()
	if m.closed { // Close ran meanwhile: only the caller's reference, closed on release
		m.mu.Unlock()
		sp.refs.Add(-1)
		return sp, nil
	}
	m.sp = sp
	m.mu.Unlock()
	return sp, nil
}

// spillMemLimit is how much of the overlay may stay in memory when
// spilling fails (the host disk full, the directory gone): past it,
// WriteAt fails with the spill's error, so SQLite's checkpoint fails and
// is tried again later (nothing is lost: the WAL keeps every frame),
// rather than the process running out of memory.
func (m *Main) spillMemLimit() int64 {
	limit := m.opts.SpillAbove
	if limit <= 0 {
		limit = DefaultSpillAbove
	}
	return 4 * limit
}

// retireSpillLocked takes the spill file away from the Main when no
// level holds a block in it and nobody else uses it, and returns it for
// release after mu is unlocked (closing is I/O). The caller holds mu.
func (m *Main) retireSpillLocked(force bool) *spill {
	sp := m.sp
	if sp == nil || (!force && (m.spilledBlocks() != 0 || sp.refs.Load() != 1)) {
		return nil
	}
	m.sp = nil
	return sp
}

// block returns block b of level l (a frozen level, or one the caller
// otherwise keeps from changing): its bytes in memory, or read from the
// spill file into buf (len >= the block size). ok is false when l does
// not hold b.
func (m *Main) block(l *level, b int64, buf []byte) (data []byte, ok bool, err error) {
	if d, ok := l.blocks[b]; ok {
		return d, true, nil
	}
	off, ok := l.spilled[b]
	if !ok {
		return nil, false, nil
	}
	m.mu.RLock()
	sp := m.sp
	if sp == nil {
		m.mu.RUnlock()
		return nil, false, errNoSpill
	}
	sp.refs.Add(1)
	m.mu.RUnlock()
	defer sp.release()
	if err := sp.read(buf[:m.bs], off); err != nil {
		return nil, false, err
	}
	return buf[:m.bs], true, nil
}
