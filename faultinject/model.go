package faultinject

import (
	"os"
	"sort"
)

// inode is a file's content, split the way a power cut sees it.
//
// Invariant: durable with every op of pending applied in order equals
// data, unless a Sync failed: then the writes unsynced at that moment stay
// in data (the page cache) but were dropped from pending (the kernel
// marked the pages clean without writing them: fsyncgate), and no later
// Sync makes them durable.
type inode struct {
	id      uint64
	perm    os.FileMode
	data    []byte   // what reads see
	durable []byte   // what survives any power cut
	pending []dataOp // writes and truncates since the last Sync, in order
}

// dataOp is one unsynced write (truncate false) or truncate.
type dataOp struct {
	truncate bool
	off      int64  // write offset
	data     []byte // write bytes, owned by the op
	size     int64  // truncate size
}

func (op dataOp) apply(buf []byte) []byte {
	if op.truncate {
		return resize(buf, op.size)
	}
	return writeAt(buf, op.data, op.off)
}

// weight is the op's length in the stream that CutTail cuts.
func (op dataOp) weight() int64 {
	if op.truncate {
		return 1
	}
	return int64(len(op.data))
}

// writeAt writes p at off, growing buf with zeros as needed.
func writeAt(buf, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(buf)) {
		buf = resize(buf, end)
	}
	copy(buf[off:], p)
	return buf
}

// resize truncates buf or extends it with zeros.
func resize(buf []byte, size int64) []byte {
	n := int64(len(buf))
	if size <= n {
		return buf[:size]
	}
	if size <= int64(cap(buf)) {
		buf = buf[:size]
		clear(buf[n:]) // capacity may hold bytes of an earlier, longer file
		return buf
	}
	grown := make([]byte, size, max(size, 2*int64(cap(buf)))) // amortized appends
	copy(grown, buf)
	return grown
}

func (n *inode) write(p []byte, off int64) {
	n.data = writeAt(n.data, p, off)
	n.pending = append(n.pending, dataOp{off: off, data: append([]byte(nil), p...)})
}

func (n *inode) truncate(size int64) {
	n.data = resize(n.data, size)
	n.pending = append(n.pending, dataOp{truncate: true, size: size})
}

// sync makes the pending ops durable.
func (n *inode) sync() {
	for _, op := range n.pending {
		n.durable = op.apply(n.durable)
	}
	n.pending = nil
}

// dir is a live directory. Directories are created by MkdirAll only and
// are durable from then on; their file entries are tracked by the
// namespace log.
type dir struct {
	entries map[string]*inode
	subdirs map[string]bool
}

func newDir() *dir {
	return &dir{entries: map[string]*inode{}, subdirs: map[string]bool{}}
}

func (d *dir) names() []string {
	names := make([]string, 0, len(d.entries)+len(d.subdirs))
	for n := range d.entries {
		names = append(names, n)
	}
	for n := range d.subdirs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// namespace maps a directory path to its file entries.
type namespace map[string]map[string]*inode

func (ns namespace) clone() namespace {
	c := make(namespace, len(ns))
	for d, m := range ns {
		cm := make(map[string]*inode, len(m))
		for name, ino := range m {
			cm[name] = ino
		}
		c[d] = cm
	}
	return c
}

type nsKind uint8

const (
	nsCreate nsKind = iota // dir/name = ino
	nsRemove               // unlink dir/name if it is ino
	nsRename               // unlink dir/name if it is ino, dir2/name2 = ino
	nsLink                 // dir/name = ino (first half of a non-atomic rename)
	nsUnlink               // unlink dir/name if it is ino (second half)
)

// nsOp is one change of directory entries. The FS keeps the changes not
// yet applied to its durable base in order (the namespace log); SyncDir
// of a directory removes it from unsynced of every logged op, and an op is
// durable once unsynced is empty. A crash image applies the durable ops
// and, under the random policies, a random subset of the others, in log
// order, to the base.
type nsOp struct {
	kind        nsKind
	dir, name   string
	dir2, name2 string
	ino         *inode
	unsynced    map[string]bool
}

func (op *nsOp) apply(ns namespace) {
	switch op.kind {
	case nsCreate, nsLink:
		ns[op.dir][op.name] = op.ino
	case nsRemove, nsUnlink:
		if ns[op.dir][op.name] == op.ino {
			delete(ns[op.dir], op.name)
		}
	case nsRename:
		if ns[op.dir][op.name] == op.ino {
			delete(ns[op.dir], op.name)
		}
		ns[op.dir2][op.name2] = op.ino
	}
}

// logLocked appends a namespace change that is not durable until SyncDir
// of each directory it touches.
func (f *FS) logLocked(op *nsOp) {
	op.unsynced = map[string]bool{op.dir: true}
	if op.kind == nsRename {
		op.unsynced[op.dir2] = true
	}
	f.nslog = append(f.nslog, op)
}

// syncDirLocked makes the logged changes to directory d durable, then
// folds the durable head of the log into the base.
func (f *FS) syncDirLocked(d string) {
	for _, op := range f.nslog {
		delete(op.unsynced, d)
	}
	f.compactLocked()
}

func (f *FS) compactLocked() {
	i := 0
	for ; i < len(f.nslog) && len(f.nslog[i].unsynced) == 0; i++ {
		f.nslog[i].apply(f.base)
	}
	if i > 0 {
		f.nslog = append(f.nslog[:0:0], f.nslog[i:]...)
	}
}
