package lease

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// A minimal named-pipe transport: overlapped handles, each operation
// waited for on its own event (never an I/O completion port: Wine 8 never
// completes a pending ConnectNamedPipe on one, so a port-based listener
// hangs there), deadlines by a timed wait and CancelIoEx.
//
// The OVERLAPPED of an operation lives in a heap object (pipeListener,
// pipeConn), never in a local variable: x/sys passes it to the system as
// a uintptr, so a local one stays on the goroutine's stack, which Go may
// move (grow) between ReadFile's "pending" and the wait; the system then
// completes the operation into the old stack, and GetOverlappedResult on
// the moved copy says ERROR_IO_INCOMPLETE, or worse.

// pipeOp is one direction's overlapped operation; its mutex lets one
// operation at a time use it.
type pipeOp struct {
	mu sync.Mutex
	ov windows.Overlapped
	n  uint32
}

type pipeAddr string

func (pipeAddr) Network() string  { return "pipe" }
func (a pipeAddr) String() string { return string(a) }

// pipeListener accepts connections on one pipe name.
type pipeListener struct {
	path    string
	sa      *windows.SecurityAttributes
	closeEv windows.Handle // set by Close; wakes a waiting Accept
	mu      sync.Mutex
	next    windows.Handle // the instance the next Accept waits on
	closed  bool
	conn    pipeOp // ConnectNamedPipe's; Accept runs one at a time
}

const pipeMode = windows.PIPE_TYPE_BYTE | windows.PIPE_READMODE_BYTE | windows.PIPE_WAIT | windows.PIPE_REJECT_REMOTE_CLIENTS

// listenPipe creates the first instance of path, failing if the name
// exists (FILE_FLAG_FIRST_PIPE_INSTANCE: nobody can squat on it first).
func listenPipe(path string, sd *windows.SECURITY_DESCRIPTOR) (*pipeListener, error) {
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	h, err := createPipe(path, sa, true)
	if err != nil {
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return &pipeListener{path: path, sa: sa, closeEv: ev, next: h}, nil
}

func createPipe(path string, sa *windows.SecurityAttributes, first bool) (windows.Handle, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, err
	}
	flags := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	return windows.CreateNamedPipe(name, flags, pipeMode, windows.PIPE_UNLIMITED_INSTANCES, 4096, 4096, 0, sa)
}

// Accept waits for a client on the current instance and, before handing
// the connection over, creates the next instance, so that the name always
// has one waiting: a client that finds no instance gets "file not found".
// A client that came and went before the connect is skipped.
func (l *pipeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.accept1()
		if err == windows.ERROR_NO_DATA {
			continue
		}
		return c, err
	}
}

func (l *pipeListener) accept1() (net.Conn, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	h := l.next
	l.next = 0
	l.mu.Unlock()
	if h == 0 {
		var err error
		if h, err = createPipe(l.path, l.sa, false); err != nil {
			return nil, &os.PathError{Op: "accept", Path: l.path, Err: err}
		}
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	defer windows.CloseHandle(ev)
	op := &l.conn
	op.mu.Lock()
	defer op.mu.Unlock()
	op.ov = windows.Overlapped{HEvent: ev}
	err = windows.ConnectNamedPipe(h, &op.ov)
	if err == windows.ERROR_IO_PENDING {
		r, werr := windows.WaitForMultipleObjects([]windows.Handle{ev, l.closeEv}, false, windows.INFINITE)
		if werr != nil || r != windows.WAIT_OBJECT_0 {
			windows.CancelIoEx(h, &op.ov)
			windows.GetOverlappedResult(h, &op.ov, &op.n, true)
			windows.CloseHandle(h)
			return nil, net.ErrClosed
		}
		err = windows.GetOverlappedResult(h, &op.ov, &op.n, false)
	}
	if err == windows.ERROR_NO_DATA {
		windows.CloseHandle(h)
		return nil, err
	}
	if err != nil && err != windows.ERROR_PIPE_CONNECTED {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "accept", Path: l.path, Err: err}
	}
	next, err := createPipe(l.path, l.sa, false)
	if err != nil {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "accept", Path: l.path, Err: err}
	}
	l.mu.Lock()
	if l.closed {
		windows.CloseHandle(next)
	} else {
		l.next = next
	}
	l.mu.Unlock()
	return &pipeConn{h: h, addr: pipeAddr(l.path), server: true}, nil
}

func (l *pipeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	windows.SetEvent(l.closeEv)
	if l.next != 0 {
		windows.CloseHandle(l.next)
		l.next = 0
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.path) }

// dialPipe opens the client end of path, retrying while every instance
// is busy, until ctx ends. The server may learn who we are
// (SECURITY_IDENTIFICATION) but not act as us.
func dialPipe(ctx context.Context, path string) (net.Conn, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	for {
		h, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING,
			windows.FILE_FLAG_OVERLAPPED|windows.SECURITY_SQOS_PRESENT|windows.SECURITY_IDENTIFICATION, 0)
		if err == nil {
			return &pipeConn{h: h, addr: pipeAddr(path)}, nil
		}
		if err != windows.ERROR_PIPE_BUSY {
			return nil, &os.PathError{Op: "dial", Path: path, Err: err}
		}
		select {
		case <-ctx.Done():
			return nil, &os.PathError{Op: "dial", Path: path, Err: ctx.Err()}
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pipeConn is one end of a connected pipe.
type pipeConn struct {
	h      windows.Handle
	addr   pipeAddr
	server bool // the server end: flush before closing

	mu       sync.Mutex
	rdl, wdl time.Time
	closed   bool

	rop, wop pipeOp
}

func (c *pipeConn) Fd() uintptr { return uintptr(c.h) }

func (c *pipeConn) Read(b []byte) (int, error) {
	n, err := c.io(false, b)
	// The other end closed. A zero-byte success is not an end: bufio
	// retries it.
	if err == windows.ERROR_BROKEN_PIPE || err == windows.ERROR_PIPE_NOT_CONNECTED {
		return n, io.EOF
	}
	return n, err
}

func (c *pipeConn) Write(b []byte) (int, error) {
	var done int
	for done < len(b) {
		n, err := c.io(true, b[done:])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (c *pipeConn) io(write bool, b []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	dl := c.rdl
	if write {
		dl = c.wdl
	}
	c.mu.Unlock()
	wait := uint32(windows.INFINITE)
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		wait = uint32(d.Milliseconds()) + 1
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		return 0, err
	}
	defer windows.CloseHandle(ev)
	op := &c.rop
	if write {
		op = &c.wop
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	op.ov = windows.Overlapped{HEvent: ev}
	op.n = 0
	if write {
		err = windows.WriteFile(c.h, b, &op.n, &op.ov)
	} else {
		err = windows.ReadFile(c.h, b, &op.n, &op.ov)
	}
	if err == windows.ERROR_IO_PENDING {
		r, werr := windows.WaitForSingleObject(ev, wait)
		if werr != nil || r != windows.WAIT_OBJECT_0 {
			windows.CancelIoEx(c.h, &op.ov)
			windows.GetOverlappedResult(c.h, &op.ov, &op.n, true)
			return int(op.n), os.ErrDeadlineExceeded
		}
		err = windows.GetOverlappedResult(c.h, &op.ov, &op.n, false)
	}
	return int(op.n), err
}

// Close cancels what is in flight on the handle and closes it.
func (c *pipeConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	c.mu.Unlock()
	if c.server {
		// Closing the server end drops what the client has not read yet:
		// wait until it has read the answer (or gone).
		windows.FlushFileBuffers(c.h)
	}
	windows.CancelIoEx(c.h, nil)
	return windows.CloseHandle(c.h)
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.addr }
func (c *pipeConn) RemoteAddr() net.Addr { return c.addr }

func (c *pipeConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.mu.Unlock()
	return nil
}

func (c *pipeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	return nil
}

func (c *pipeConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}
