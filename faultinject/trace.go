package faultinject

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/ejectsafe/ejectsafe/device"
)

// Event is one operation in an FS's trace. The FS fills the fields that
// apply to the kind; Check reads them, so hand-made traces in tests set
// the same ones.
type Event struct {
	// Index is the operation's global sequence number (FS.OpCount before
	// it ran).
	Index int
	Kind  OpKind
	// Path is the cleaned path: the name for path operations, the name
	// the file was opened with for handle operations, the old name for
	// Rename.
	Path string
	// NewPath is Rename's new name.
	NewPath string
	// Handle identifies the open file (or lock) for handle operations and
	// for the Open, Create or Lock that returned it; 0 otherwise.
	Handle int
	// Inode identifies the file: the one opened, created or locked, the
	// one a handle refers to, the one Rename moved or Remove unlinked.
	// 0 when none was found.
	Inode uint64
	// Mode is Open's mode.
	Mode device.OpenMode
	// Off is the offset of ReadAt and WriteAt and the size of Truncate.
	Off int64
	// Len is the length of ReadAt and WriteAt.
	Len int
	// Data is a copy of what WriteAt wrote.
	Data []byte
	// Err is the result: 0 for success (and for ReadAt's io.EOF).
	Err syscall.Errno
}

// String renders the event on one line, for failure reports.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s", e.Index, e.Kind, e.Path)
	switch e.Kind {
	case OpRename:
		fmt.Fprintf(&b, " -> %s", e.NewPath)
	case OpOpen:
		if e.Mode == device.ReadWrite {
			b.WriteString(" rw")
		} else {
			b.WriteString(" ro")
		}
	case OpReadAt, OpWriteAt:
		fmt.Fprintf(&b, " off=%d len=%d", e.Off, e.Len)
	case OpTruncate:
		fmt.Fprintf(&b, " size=%d", e.Off)
	}
	if e.Inode != 0 {
		fmt.Fprintf(&b, " ino=%d", e.Inode)
	}
	if e.Err != 0 {
		fmt.Fprintf(&b, ": %s", errnoName(e.Err))
	}
	return b.String()
}

// Trace returns a copy of the operations recorded so far, in index order
// (empty with Options.NoTrace). Data slices are shared: do not modify.
func (f *FS) Trace() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Event(nil), f.trace...)
}

// errnoOf maps a returned error to the error number the trace records.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e
	case errors.Is(err, os.ErrClosed):
		return syscall.EBADF
	case errors.Is(err, device.ErrLocked):
		return syscall.EAGAIN
	}
	return syscall.EIO
}
