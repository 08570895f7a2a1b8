package lease

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The control protocol: the client sends one JSON line, a Request; the
// server answers one JSON line, a Response, and closes the connection.
//
//	{"op":"status"}                 -> {"ok":true,"status":{...}}
//	{"op":"eject","timeout_ms":N}   -> {"ok":true} once checkpointed and released,
//	                                   {"ok":false,"refused":"why"} when the app said no,
//	                                   {"ok":false,"error":"why"} when it could not.
//
// Only processes of the server's own user are answered (SO_PEERCRED);
// the socket is mode 0600 in a directory of mode 0700 besides.

// Request is what a client asks.
type Request struct {
	Op        string `json:"op"` // "status" or "eject"
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// Response is the server's answer.
type Response struct {
	OK      bool    `json:"ok"`
	Refused string  `json:"refused,omitempty"`
	Error   string  `json:"error,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// Status is a holder's live state.
type Status struct {
	DB             string    `json:"db"`
	State          string    `json:"state"`
	DirtyBytes     int64     `json:"dirty_bytes"`
	WALBytes       int64     `json:"wal_bytes"`
	Generation     uint64    `json:"generation"`
	LastCheckpoint time.Time `json:"last_checkpoint"`
}

// Handler is what a lease holder does for its endpoint.
type Handler interface {
	Status() Status
	// Eject checkpoints and releases the database; a *RefusedError means
	// the application declined.
	Eject(ctx context.Context) error
}

// RefusedError is an eject the holder's application declined.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "eject refused: " + e.Reason }

// ErrNotOwner means a process of another user tried the endpoint.
var ErrNotOwner = errors.New("lease: peer is not the endpoint's user")

// Server is a holder's control endpoint.
type Server struct {
	ln   *net.UnixListener
	path string
	h    Handler
	wg   sync.WaitGroup
}

// runtimeDir returns the user's private directory for sockets: made if
// needed, and refused unless it is ours with mode 0700.
func runtimeDir() (string, error) {
	uid := os.Getuid()
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		if d := fmt.Sprintf("/run/user/%d", uid); dirOwned(d, uid) {
			base = d
		}
	}
	dir := filepath.Join(base, "ejectsafe")
	if base == "" {
		dir = filepath.Join(os.TempDir(), "ejectsafe-"+strconv.Itoa(uid))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm() != 0o700 {
		return "", fmt.Errorf("lease: %s is not a private directory of uid %d (mode %v)", dir, uid, fi.Mode())
	}
	return dir, nil
}

func dirOwned(d string, uid int) bool {
	fi, err := os.Stat(d)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}

// Listen starts an endpoint for h in the user's runtime directory.
func Listen(h Handler) (*Server, error) {
	dir, err := runtimeDir()
	if err != nil {
		return nil, err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	return ListenAt(filepath.Join(dir, fmt.Sprintf("%d-%s.sock", os.Getpid(), hex.EncodeToString(rnd[:]))), h)
}

// ListenAt starts an endpoint for h on the socket path given.
func ListenAt(path string, h Handler) (*Server, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("lease: listen: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("lease: %w", err)
	}
	s := &Server{ln: ln, path: path, h: h}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Endpoint is the socket path to put in the lease.
func (s *Server) Endpoint() string { return s.path }

// Close stops the endpoint and waits for requests in flight, except one
// that is closing the server itself (an eject).
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		// An eject closes the server from its own handler: serve it on a
		// goroutine Close does not wait for.
		go s.handle(c)
	}
}

func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	reply := func(r Response) { json.NewEncoder(c).Encode(r) }
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// At most one request line of bounded size, even from a stranger, so
	// that the refusal below reaches a client still writing.
	line, rerr := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err := checkPeer(c); err != nil {
		reply(Response{Error: err.Error()})
		return
	}
	if rerr != nil {
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		reply(Response{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Op {
	case "status":
		st := s.h.Status()
		reply(Response{OK: true, Status: &st})
	case "eject":
		timeout := time.Duration(req.TimeoutMS) * time.Millisecond
		if timeout <= 0 || timeout > 10*time.Minute {
			timeout = time.Minute
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := s.h.Eject(ctx)
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			reply(Response{Refused: refused.Reason})
		case err != nil:
			reply(Response{Error: err.Error()})
		default:
			reply(Response{OK: true})
		}
	default:
		reply(Response{Error: fmt.Sprintf("unknown op %q", req.Op)})
	}
}

// checkPeer refuses a process of another user.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("%w: uid %d", ErrNotOwner, cred.Uid)
	}
	return nil
}

// Ask sends one request to the endpoint and returns the response; ctx
// bounds the whole exchange.
func Ask(ctx context.Context, endpoint string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", endpoint)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	werr := json.NewEncoder(c).Encode(req)
	// Read the answer even if the write failed: a refusal may have come
	// first.
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		if werr != nil {
			return Response{}, werr
		}
		return Response{}, fmt.Errorf("lease: no answer from %s: %w", endpoint, err)
	}
	return resp, nil
}
