package faultinject

import (
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/ejectsafe/ejectsafe/device"
)

// Faulty is a device.FS that applies error rules (Fail, Hang) to another
// device.FS: the OS's on a real mount (faultinject/realfs), the in-memory
// FS, or another decorator. Rules are the FS's rules and match the same
// way; an operation's index counts the operations made through this
// Faulty, from 0.
//
// An operation a rule fails does not reach the inner FS, so it has no
// effect, with two exceptions that follow close(2): a failed File.Close
// still closes the inner file, and a failed Close of a lock still
// releases the inner lock. A Sync a rule fails makes no fsync: unlike the
// in-memory FS, which drops the unsynced writes from durability for good,
// the inner filesystem may still write them back on its own. Callers must
// assume neither (device.File.Sync: the durable state is unknown).
//
// Faulty does not cut power: that is the in-memory FS's model, and on a
// real mount faultinject/realfs pulls the drive. Unwrap returns the inner
// FS, so what the inner FS offers beside the seam (device.IsNative,
// device.VolumeOf) holds for the Faulty: a Faulty over device.OS is
// treated as the OS's filesystem. Its files have no descriptor, so every
// byte goes through them and their rules (no copy_file_range around them).
//
// A Faulty is safe for concurrent use; operations on the inner FS run
// outside its lock.
type Faulty struct {
	inner device.FS
	mu    sync.Mutex
	ops   int // index of the next operation
	rs    ruleSet
}

var (
	_ device.FS   = (*Faulty)(nil)
	_ device.File = (*faultyFile)(nil)
)

// Wrap returns a Faulty over inner with no rules; seed seeds the source
// that probabilistic rules draw from.
func Wrap(inner device.FS, seed int64) *Faulty {
	return &Faulty{inner: inner, rs: newRuleSet(seed)}
}

// Unwrap returns the FS this Faulty forwards to.
func (w *Faulty) Unwrap() device.FS { return w.inner }

// Inject adds rules after the ones already armed, as FS.Inject does.
func (w *Faulty) Inject(rules ...Rule) error {
	if err := validateRules(rules); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rs.add(rules)
	return nil
}

// ClearRules disarms every rule.
func (w *Faulty) ClearRules() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rs.rules = nil
}

// OpCount returns the number of operations so far, which is the index the
// next one gets.
func (w *Faulty) OpCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ops
}

// begin numbers an operation and returns the error number a rule imposes
// on it, or 0. Paths are cleaned as the in-memory FS cleans them, so one
// glob matches on both.
func (w *Faulty) begin(kind OpKind, name, newName string) syscall.Errno {
	ev := Event{Kind: kind, Path: clean(name)}
	if newName != "" {
		ev.NewPath = clean(newName)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ev.Index = w.ops
	w.ops++
	return w.rs.fire(&ev, &w.mu)
}

// Open opens name on the inner FS unless a rule fails it.
func (w *Faulty) Open(name string, mode device.OpenMode) (device.File, error) {
	if e := w.begin(OpOpen, name, ""); e != 0 {
		return nil, pathErr("open", name, e)
	}
	f, err := w.inner.Open(name, mode)
	if err != nil {
		return nil, err
	}
	return &faultyFile{w: w, f: f}, nil
}

// Create creates name on the inner FS unless a rule fails it.
func (w *Faulty) Create(name string, perm os.FileMode) (device.File, error) {
	if e := w.begin(OpCreate, name, ""); e != 0 {
		return nil, pathErr("open", name, e)
	}
	f, err := w.inner.Create(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{w: w, f: f}, nil
}

// Rename renames on the inner FS unless a rule matching either name fails
// it.
func (w *Faulty) Rename(oldname, newname string) error {
	if e := w.begin(OpRename, oldname, newname); e != 0 {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: e}
	}
	return w.inner.Rename(oldname, newname)
}

// Remove removes name on the inner FS unless a rule fails it.
func (w *Faulty) Remove(name string) error {
	if e := w.begin(OpRemove, name, ""); e != 0 {
		return pathErr("remove", name, e)
	}
	return w.inner.Remove(name)
}

// Stat stats name on the inner FS unless a rule fails it.
func (w *Faulty) Stat(name string) (os.FileInfo, error) {
	if e := w.begin(OpStat, name, ""); e != 0 {
		return nil, pathErr("stat", name, e)
	}
	return w.inner.Stat(name)
}

// List lists dir on the inner FS unless a rule fails it.
func (w *Faulty) List(dir string) ([]string, error) {
	if e := w.begin(OpList, dir, ""); e != 0 {
		return nil, pathErr("open", dir, e)
	}
	return w.inner.List(dir)
}

// SyncDir syncs dir on the inner FS unless a rule fails it.
func (w *Faulty) SyncDir(dir string) error {
	if e := w.begin(OpSyncDir, dir, ""); e != 0 {
		return pathErr("sync", dir, e)
	}
	return w.inner.SyncDir(dir)
}

// Lock locks name on the inner FS unless a rule fails it.
func (w *Faulty) Lock(name string) (io.Closer, error) {
	if e := w.begin(OpLock, name, ""); e != 0 {
		return nil, pathErr("lock", name, e)
	}
	l, err := w.inner.Lock(name)
	if err != nil {
		return nil, err
	}
	return &faultyLock{w: w, l: l, name: name}, nil
}

// FreeSpace asks the inner FS unless a rule fails it.
func (w *Faulty) FreeSpace(name string) (int64, error) {
	if e := w.begin(OpFreeSpace, name, ""); e != 0 {
		return 0, pathErr("statfs", name, e)
	}
	return w.inner.FreeSpace(name)
}

// faultyFile is a File of a Faulty. It has no Fd method on purpose: a
// kernel copy would go around the rules.
type faultyFile struct {
	w *Faulty
	f device.File
}

// Unwrap returns the inner file.
func (h *faultyFile) Unwrap() device.File { return h.f }

// Name returns the inner file's name. It is not an operation.
func (h *faultyFile) Name() string { return h.f.Name() }

func (h *faultyFile) ReadAt(p []byte, off int64) (int, error) {
	if e := h.w.begin(OpReadAt, h.f.Name(), ""); e != 0 {
		return 0, pathErr("read", h.f.Name(), e)
	}
	return h.f.ReadAt(p, off)
}

func (h *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if e := h.w.begin(OpWriteAt, h.f.Name(), ""); e != 0 {
		return 0, pathErr("write", h.f.Name(), e)
	}
	return h.f.WriteAt(p, off)
}

func (h *faultyFile) Truncate(size int64) error {
	if e := h.w.begin(OpTruncate, h.f.Name(), ""); e != 0 {
		return pathErr("truncate", h.f.Name(), e)
	}
	return h.f.Truncate(size)
}

func (h *faultyFile) Size() (int64, error) {
	if e := h.w.begin(OpSize, h.f.Name(), ""); e != 0 {
		return 0, pathErr("stat", h.f.Name(), e)
	}
	return h.f.Size()
}

// Sync fsyncs the inner file unless a rule fails it; then no fsync is
// made (see Faulty).
func (h *faultyFile) Sync() error {
	if e := h.w.begin(OpSync, h.f.Name(), ""); e != 0 {
		return pathErr("sync", h.f.Name(), e)
	}
	return h.f.Sync()
}

// Close closes the inner file even when a rule fails it, and reports the
// rule's error first.
func (h *faultyFile) Close() error {
	e := h.w.begin(OpClose, h.f.Name(), "")
	err := h.f.Close()
	if e != 0 {
		return pathErr("close", h.f.Name(), e)
	}
	return err
}

// faultyLock is a lock taken through a Faulty.
type faultyLock struct {
	w    *Faulty
	l    io.Closer
	name string
}

// Close releases the inner lock even when a rule fails it (OpUnlock), and
// reports the rule's error first.
func (l *faultyLock) Close() error {
	e := l.w.begin(OpUnlock, l.name, "")
	err := l.l.Close()
	if e != 0 {
		return pathErr("unlock", l.name, e)
	}
	return err
}
