package faultinject

import (
	"io"
	"os"
	"syscall"

	"github.com/ejectsafe/ejectsafe/device"
)

// file is an open file description. It refers to an inode, not a name:
// after a rename over its name or a remove it keeps reading and writing
// the same file, as on POSIX.
type file struct {
	fs       *FS
	id       int
	name     string // as opened, for Name and errors
	path     string // cleaned, for rules and the trace
	ino      *inode
	writable bool
	closed   bool
}

var _ device.File = (*file)(nil)

// begin starts a handle operation with the FS lock held.
func (h *file) begin(kind OpKind) Event {
	ev := h.fs.begin(kind, h.path, "")
	ev.Handle, ev.Inode = h.id, h.ino.id
	return ev
}

// check returns the error of an operation on a closed handle (os.ErrClosed,
// as *os.File does), or the event's own error.
func (h *file) check(op string, ev *Event) error {
	if ev.Err == 0 && h.closed {
		ev.Err = syscall.EBADF
		return &os.PathError{Op: op, Path: h.name, Err: os.ErrClosed}
	}
	return pathErr(op, h.name, ev.Err)
}

// Name returns the path the file was opened with. It is not an operation.
func (h *file) Name() string { return h.name }

// ReadAt reads what the file holds now, synced or not.
func (h *file) ReadAt(p []byte, off int64) (int, error) {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := h.begin(OpReadAt)
	ev.Off, ev.Len = off, len(p)
	err := h.check("read", &ev)
	if err == nil && off < 0 {
		ev.Err = syscall.EINVAL
		err = pathErr("read", h.name, ev.Err)
	}
	f.record(ev)
	if err != nil {
		return 0, err
	}
	if off >= int64(len(h.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes p at off. The write is not durable until Sync.
func (h *file) WriteAt(p []byte, off int64) (int, error) {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := h.begin(OpWriteAt)
	ev.Off, ev.Len = off, len(p)
	if !f.opts.NoTrace {
		ev.Data = append([]byte(nil), p...)
	}
	err := h.check("write", &ev)
	if err == nil {
		switch {
		case !h.writable:
			ev.Err = syscall.EBADF
		case off < 0:
			ev.Err = syscall.EINVAL
		case !f.fits(h.ino, off+int64(len(p))):
			ev.Err = syscall.ENOSPC
		default:
			h.ino.write(p, off)
		}
		err = pathErr("write", h.name, ev.Err)
	}
	f.record(ev)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Truncate sets the file's size. Not durable until Sync.
func (h *file) Truncate(size int64) error {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := h.begin(OpTruncate)
	ev.Off = size
	err := h.check("truncate", &ev)
	if err == nil {
		switch {
		case !h.writable:
			ev.Err = syscall.EINVAL // ftruncate(2) on a read-only descriptor
		case size < 0:
			ev.Err = syscall.EINVAL
		case !f.fits(h.ino, size):
			ev.Err = syscall.ENOSPC
		default:
			h.ino.truncate(size)
		}
		err = pathErr("truncate", h.name, ev.Err)
	}
	f.record(ev)
	return err
}

// Size returns the file's current size.
func (h *file) Size() (int64, error) {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := h.begin(OpSize)
	err := h.check("stat", &ev)
	f.record(ev)
	if err != nil {
		return 0, err
	}
	return int64(len(h.ino.data)), nil
}

// Sync makes the file's data and size durable. An injected failure drops
// the unsynced writes from durability for good (see FS).
func (h *file) Sync() error {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := h.begin(OpSync)
	err := h.check("sync", &ev)
	switch {
	case err == nil:
		h.ino.sync()
	case !f.dead && !h.closed:
		h.ino.pending = nil // fsyncgate: the pages are clean, the data is not on the drive
	}
	f.record(ev)
	return err
}

// Close releases the handle, even when it reports an error.
func (h *file) Close() error {
	f := h.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := h.begin(OpClose)
	err := h.check("close", &ev)
	if !h.closed {
		h.closed = true
		delete(f.handles, h.id)
	}
	f.record(ev)
	return err
}

// lockHandle is the Closer FS.Lock returns.
type lockHandle struct {
	fs       *FS
	id       int
	name     string
	path     string
	ino      *inode
	released bool
}

// Close releases the lock, even when it reports an error.
func (l *lockHandle) Close() error {
	f := l.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.begin(OpUnlock, l.path, "")
	ev.Handle, ev.Inode = l.id, l.ino.id
	var err error
	switch {
	case ev.Err == 0 && l.released:
		ev.Err = syscall.EBADF
		err = &os.PathError{Op: "unlock", Path: l.name, Err: os.ErrClosed}
	default:
		err = pathErr("unlock", l.name, ev.Err)
	}
	if !l.released {
		l.released = true
		if f.locks[l.ino] == l.id {
			delete(f.locks, l.ino)
		}
	}
	f.record(ev)
	return err
}
