package faultinject

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
)

// Options configures an FS. The zero value is a strict, unlimited, traced
// filesystem with atomic renames.
type Options struct {
	// Capacity is the volume size in bytes: a WriteAt or Truncate that
	// would take the live files past it fails with ENOSPC, and FreeSpace
	// reports what is left. Zero means unlimited (FreeSpace reports 1 TiB).
	Capacity int64
	// Seed seeds the source that probabilistic rules draw from.
	Seed int64
	// NonAtomicRename models FAT, where a rename is two directory writes:
	// the new entry and the removal of the old one are logged as separate
	// changes, so a crash image may hold both names or neither. The zero
	// value models journaling filesystems: a rename survives whole or not
	// at all.
	NonAtomicRename bool
	// NoTrace stops recording the operation trace. Check then has nothing
	// to read; use it only for long runs that never check.
	NoTrace bool
}

// unlimitedFree is what FreeSpace reports without a Capacity.
const unlimitedFree = 1 << 40

// FS is a strict in-memory device.FS that knows what a power cut would
// keep. Each file's content is its durable bytes plus the writes and
// truncates since its last Sync; each directory's entries are its durable
// entries plus the creations, renames and removals since its last SyncDir.
// CrashImage builds the filesystem a power cut would leave under a Policy.
//
// Directories are created by MkdirAll (test setup), are durable at once
// and cannot be removed: device.FS has no Mkdir.
//
// Every call of a device.FS, device.File or lock Closer method is an
// operation with a global index, assigned under the FS mutex in call order
// (deterministic for a single-goroutine workload). Rules (Inject) make
// chosen operations fail; a failed operation has no effect, except that
// Close and Unlock release the handle anyway (as close(2) does) and a
// failed Sync drops the unsynced writes from durability for good, as
// Linux does after a writeback error (fsyncgate): reads still see them,
// no later Sync persists them.
//
// After Pull, PullAt or CrashAt fires, the device is gone: path operations
// fail with ENODEV, operations on open handles (Close and Unlock included)
// with EIO, and the FS holds only what survived the cut.
//
// An FS is safe for concurrent use.
type FS struct {
	mu         sync.Mutex
	opts       Options
	dirs       map[string]*dir // live directories by cleaned path
	base       namespace       // durable entries before the first logged change
	nslog      []*nsOp         // namespace changes not yet folded into base
	handles    map[int]*file   // open files
	locks      map[*inode]int  // lock holder handle by inode
	nextIno    uint64
	nextHandle int
	ops        int     // index of the next operation
	rs         ruleSet // error rules (Inject)
	trace      []Event
	crash      *armedCrash
	dead       bool
	frozen     *FS // after the cut: what the drive holds
}

// New returns an empty FS holding only the root directory "/".
func New(opts Options) *FS {
	f := &FS{
		opts:    opts,
		dirs:    map[string]*dir{"/": newDir()},
		base:    namespace{"/": {}},
		handles: map[int]*file{},
		locks:   map[*inode]int{},
		nextIno: 1,
		rs:      newRuleSet(opts.Seed),
	}
	return f
}

var _ device.FS = (*FS)(nil)

// clean normalizes a path the way every FS method sees it.
func clean(name string) string { return path.Clean(filepath.ToSlash(name)) }

func pathErr(op, name string, e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return &os.PathError{Op: op, Path: name, Err: e}
}

// begin assigns the next operation index, fires an armed crash, and
// decides the failure the device or a rule imposes.
func (f *FS) begin(kind OpKind, p, newPath string) Event {
	ev := Event{Index: f.ops, Kind: kind, Path: p, NewPath: newPath}
	f.ops++
	if c := f.crash; c != nil && !f.dead && ev.Index >= c.at {
		f.crash = nil
		f.cutLocked(f.imageLocked(c.policy, c.seed))
	}
	if f.dead {
		ev.Err = syscall.ENODEV
		if kind.handleOp() {
			ev.Err = syscall.EIO
		}
		return ev
	}
	ev.Err = f.rs.fire(&ev, &f.mu)
	return ev
}

func (f *FS) record(ev Event) {
	if !f.opts.NoTrace {
		f.trace = append(f.trace, ev)
	}
}

// OpCount returns the number of operations so far, which is the index the
// next one gets.
func (f *FS) OpCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// parent returns the live directory that holds p, and p's base name.
func (f *FS) parent(p string) (*dir, string, syscall.Errno) {
	dp := path.Dir(p)
	if d := f.dirs[dp]; d != nil {
		return d, path.Base(p), 0
	}
	if pd := f.dirs[path.Dir(dp)]; pd != nil && pd.entries[path.Base(dp)] != nil {
		return nil, "", syscall.ENOTDIR
	}
	return nil, "", syscall.ENOENT
}

// lookup returns the file at p.
func (f *FS) lookup(p string) (*inode, syscall.Errno) {
	if f.dirs[p] != nil {
		return nil, syscall.EISDIR
	}
	d, name, e := f.parent(p)
	if e != 0 {
		return nil, e
	}
	if ino := d.entries[name]; ino != nil {
		return ino, 0
	}
	return nil, syscall.ENOENT
}

func (f *FS) openLocked(name, p string, ino *inode, writable bool, ev *Event) *file {
	f.nextHandle++
	h := &file{fs: f, id: f.nextHandle, name: name, path: p, ino: ino, writable: writable}
	f.handles[h.id] = h
	ev.Handle, ev.Inode = h.id, ino.id
	return h
}

// createLocked links a new empty file at p in directory d.
func (f *FS) createLocked(d *dir, p string, perm os.FileMode) *inode {
	ino := &inode{id: f.nextIno, perm: perm.Perm()}
	f.nextIno++
	d.entries[path.Base(p)] = ino
	f.logLocked(&nsOp{kind: nsCreate, dir: path.Dir(p), name: path.Base(p), ino: ino})
	return ino
}

// Open opens an existing file.
func (f *FS) Open(name string, mode device.OpenMode) (device.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(name)
	ev := f.begin(OpOpen, p, "")
	ev.Mode = mode
	var h *file
	if ev.Err == 0 {
		var ino *inode
		ino, ev.Err = f.lookup(p)
		switch {
		case ev.Err != 0:
		case mode != device.ReadOnly && mode != device.ReadWrite:
			ev.Err = syscall.EINVAL
		default:
			h = f.openLocked(name, p, ino, mode == device.ReadWrite, &ev)
		}
	}
	f.record(ev)
	if ev.Err != 0 {
		return nil, pathErr("open", name, ev.Err)
	}
	return h, nil
}

// Create creates a new file, read-write, failing with EEXIST if the name
// exists. The entry is not durable until SyncDir of its directory.
func (f *FS) Create(name string, perm os.FileMode) (device.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(name)
	ev := f.begin(OpCreate, p, "")
	var h *file
	if ev.Err == 0 {
		d, base, e := f.parent(p)
		switch {
		case e != 0:
			ev.Err = e
		case d.entries[base] != nil || d.subdirs[base]:
			ev.Err = syscall.EEXIST
		default:
			h = f.openLocked(name, p, f.createLocked(d, p, perm), true, &ev)
		}
	}
	f.record(ev)
	if ev.Err != 0 {
		return nil, pathErr("open", name, ev.Err)
	}
	return h, nil
}

// Rename replaces newname with oldname, atomically unless
// Options.NonAtomicRename. Not durable until SyncDir of both directories.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op, np := clean(oldname), clean(newname)
	ev := f.begin(OpRename, op, np)
	if ev.Err == 0 {
		ev.Err = f.renameLocked(op, np, &ev)
	}
	f.record(ev)
	if ev.Err != 0 {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: ev.Err}
	}
	return nil
}

func (f *FS) renameLocked(op, np string, ev *Event) syscall.Errno {
	if f.dirs[op] != nil {
		return syscall.EPERM // directories are setup-only
	}
	ino, e := f.lookup(op)
	if e != 0 {
		return e
	}
	ev.Inode = ino.id
	if f.dirs[np] != nil {
		return syscall.EISDIR
	}
	nd, nbase, e := f.parent(np)
	if e != 0 {
		return e
	}
	if nd.entries[nbase] == ino {
		return 0 // same file: rename(2) does nothing
	}
	od := f.dirs[path.Dir(op)]
	delete(od.entries, path.Base(op))
	nd.entries[nbase] = ino
	if f.opts.NonAtomicRename {
		f.logLocked(&nsOp{kind: nsLink, dir: path.Dir(np), name: nbase, ino: ino})
		f.logLocked(&nsOp{kind: nsUnlink, dir: path.Dir(op), name: path.Base(op), ino: ino})
		return 0
	}
	f.logLocked(&nsOp{kind: nsRename, dir: path.Dir(op), name: path.Base(op),
		dir2: path.Dir(np), name2: nbase, ino: ino})
	return 0
}

// Remove unlinks a file; open handles keep reading and writing it. Not
// durable until SyncDir. Directories cannot be removed (EISDIR).
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(name)
	ev := f.begin(OpRemove, p, "")
	if ev.Err == 0 {
		var ino *inode
		if ino, ev.Err = f.lookup(p); ev.Err == 0 {
			ev.Inode = ino.id
			delete(f.dirs[path.Dir(p)].entries, path.Base(p))
			f.logLocked(&nsOp{kind: nsRemove, dir: path.Dir(p), name: path.Base(p), ino: ino})
		}
	}
	f.record(ev)
	return pathErr("remove", name, ev.Err)
}

// Stat describes a file or directory.
func (f *FS) Stat(name string) (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(name)
	ev := f.begin(OpStat, p, "")
	var fi os.FileInfo
	if ev.Err == 0 {
		fi, ev.Err = f.statLocked(p)
		if fi, ok := fi.(fileInfo); ok && !fi.dir {
			ev.Inode = fi.ino
		}
	}
	f.record(ev)
	if ev.Err != 0 {
		return nil, pathErr("stat", name, ev.Err)
	}
	return fi, nil
}

func (f *FS) statLocked(p string) (os.FileInfo, syscall.Errno) {
	if f.dirs[p] != nil {
		return fileInfo{name: path.Base(p), mode: os.ModeDir | 0o755, dir: true}, 0
	}
	ino, e := f.lookup(p)
	if e != 0 {
		return nil, e
	}
	return fileInfo{name: path.Base(p), size: int64(len(ino.data)), mode: ino.perm, ino: ino.id}, 0
}

// List returns the names in a directory, sorted.
func (f *FS) List(dirname string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(dirname)
	ev := f.begin(OpList, p, "")
	var names []string
	if ev.Err == 0 {
		if d := f.dirs[p]; d != nil {
			names = d.names()
		} else if _, e := f.lookup(p); e == 0 {
			ev.Err = syscall.ENOTDIR
		} else {
			ev.Err = e
		}
	}
	f.record(ev)
	if ev.Err != 0 {
		return nil, pathErr("open", dirname, ev.Err)
	}
	return names, nil
}

// SyncDir makes the directory's entry changes durable.
func (f *FS) SyncDir(dirname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(dirname)
	ev := f.begin(OpSyncDir, p, "")
	if ev.Err == 0 {
		if f.dirs[p] != nil {
			f.syncDirLocked(p)
		} else if _, e := f.lookup(p); e == 0 {
			ev.Err = syscall.ENOTDIR
		} else {
			ev.Err = e
		}
	}
	f.record(ev)
	return pathErr("sync", dirname, ev.Err)
}

// Lock takes the exclusive lock of name's file, creating it if missing
// (not durable until SyncDir). Locks belong to the file, not the name, and
// conflict between any two holders, in this process or not: the error is
// a *device.LockedError naming this process.
func (f *FS) Lock(name string) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(name)
	ev := f.begin(OpLock, p, "")
	var l *lockHandle
	var err error
	if ev.Err == 0 {
		ino, e := f.lookup(p)
		if e == syscall.ENOENT {
			if d, _, pe := f.parent(p); pe == 0 {
				ino, e = f.createLocked(d, p, 0o644), 0
			}
		}
		switch {
		case e != 0:
			ev.Err = e
			err = pathErr("lock", name, e)
		case f.locks[ino] != 0:
			ev.Inode = ino.id
			err = &device.LockedError{Path: name, PID: os.Getpid()}
		default:
			f.nextHandle++
			l = &lockHandle{fs: f, id: f.nextHandle, name: name, path: p, ino: ino}
			f.locks[ino] = l.id
			ev.Handle, ev.Inode = l.id, ino.id
		}
	} else {
		err = pathErr("lock", name, ev.Err)
	}
	ev.Err = errnoOf(err)
	f.record(ev)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// FreeSpace reports the bytes left under Options.Capacity.
func (f *FS) FreeSpace(name string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := clean(name)
	ev := f.begin(OpFreeSpace, p, "")
	if ev.Err == 0 && f.dirs[p] == nil {
		_, ev.Err = f.lookup(p)
	}
	f.record(ev)
	if ev.Err != 0 {
		return 0, pathErr("statfs", name, ev.Err)
	}
	if f.opts.Capacity == 0 {
		return unlimitedFree, nil
	}
	return max(f.opts.Capacity-f.usedLocked(), 0), nil
}

// usedLocked sums the live sizes of the files that are linked or open.
func (f *FS) usedLocked() int64 {
	seen := map[*inode]bool{}
	var used int64
	add := func(ino *inode) {
		if !seen[ino] {
			seen[ino] = true
			used += int64(len(ino.data))
		}
	}
	for _, d := range f.dirs {
		for _, ino := range d.entries {
			add(ino)
		}
	}
	for _, h := range f.handles {
		add(h.ino)
	}
	return used
}

// fits reports whether growing ino to size stays within Capacity.
func (f *FS) fits(ino *inode, size int64) bool {
	grow := size - int64(len(ino.data))
	return f.opts.Capacity == 0 || grow <= 0 || f.usedLocked()+grow <= f.opts.Capacity
}

type fileInfo struct {
	name string
	size int64
	mode os.FileMode
	dir  bool
	ino  uint64
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() os.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return time.Time{} }
func (fi fileInfo) IsDir() bool        { return fi.dir }
func (fi fileInfo) Sys() any           { return nil }

// The helpers below are for test setup and oracles: they are not
// operations (no index, no trace, no rules) and see the live state, or
// after a cut, what the drive holds.

// view returns the FS whose state the helpers read, with its lock held.
func (f *FS) view() *FS {
	f.mu.Lock()
	for f.dead {
		fr := f.frozen
		f.mu.Unlock()
		f = fr
		f.mu.Lock()
	}
	return f
}

// MkdirAll creates a directory and its parents, durable at once.
func (f *FS) MkdirAll(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return pathErr("mkdir", name, syscall.ENODEV)
	}
	p := clean(name)
	var missing []string
	for q := p; f.dirs[q] == nil; q = path.Dir(q) {
		if _, e := f.lookup(q); e == 0 {
			return pathErr("mkdir", name, syscall.ENOTDIR)
		}
		missing = append(missing, q)
		if path.Dir(q) == q {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		q := missing[i]
		f.dirs[q] = newDir()
		f.base[q] = map[string]*inode{}
		if parent := path.Dir(q); parent != q { // "." is a root for relative paths
			f.dirs[parent].subdirs[path.Base(q)] = true
		}
	}
	return nil
}

// WriteFile creates or replaces a file with data, durably: content and
// entry survive every crash policy.
func (f *FS) WriteFile(name string, data []byte, perm os.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return pathErr("open", name, syscall.ENODEV)
	}
	p := clean(name)
	d, base, e := f.parent(p)
	if e == 0 && d.subdirs[base] {
		e = syscall.EISDIR
	}
	if e != 0 {
		return pathErr("open", name, e)
	}
	ino := f.createLocked(d, p, perm)
	ino.data = append([]byte(nil), data...)
	ino.durable = append([]byte(nil), data...)
	f.nslog[len(f.nslog)-1].unsynced = nil
	f.compactLocked()
	return nil
}

// ReadFile returns a copy of a file's content as reads see it.
func (f *FS) ReadFile(name string) ([]byte, error) {
	v := f.view()
	defer v.mu.Unlock()
	ino, e := v.lookup(clean(name))
	if e != 0 {
		return nil, pathErr("open", name, e)
	}
	return append([]byte(nil), ino.data...), nil
}

// Files returns a copy of every file's content by path.
func (f *FS) Files() map[string][]byte {
	v := f.view()
	defer v.mu.Unlock()
	out := map[string][]byte{}
	for dp, d := range v.dirs {
		for name, ino := range d.entries {
			out[path.Join(dp, name)] = append([]byte(nil), ino.data...)
		}
	}
	return out
}

// Dump renders every directory and file, sorted, one per line: path,
// size, SHA-256 prefix and the first 48 bytes quoted. For failure
// messages and golden comparisons; compare Files for exact equality.
func (f *FS) Dump() string {
	v := f.view()
	var lines []string
	for dp, d := range v.dirs {
		lines = append(lines, strings.TrimSuffix(dp, "/")+"/")
		for name, ino := range d.entries {
			head := ino.data[:min(len(ino.data), 48)]
			sum := sha256.Sum256(ino.data)
			lines = append(lines, fmt.Sprintf("%s %d %x %q", path.Join(dp, name), len(ino.data), sum[:6], head))
		}
	}
	v.mu.Unlock()
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}
