package lease

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The control protocol: the client sends one JSON line, a Request; the
// server answers one JSON line, a Response, and closes the connection.
//
//	{"op":"status"}                 -> {"ok":true,"status":{...}}
//	{"op":"eject","timeout_ms":N}   -> {"ok":true} once checkpointed and released,
//	                                   {"ok":false,"refused":"why"} when the app said no,
//	                                   {"ok":false,"error":"why"} when it could not.
//
// Only processes of the server's own user are answered. The endpoint,
// per platform (control_unix.go, control_windows.go):
//
//   - Linux, macOS: a Unix socket, mode 0600 in a directory of mode 0700,
//     and the peer's uid checked (Linux SO_PEERCRED, macOS LOCAL_PEERCRED);
//   - Windows: a named pipe, \\.\pipe\ejectsafe-<pid>-<random>, whose
//     DACL grants access to the user's SID only and which refuses remote
//     clients, and the client process's token user SID checked. A named
//     pipe rather than AF_UNIX: Windows' AF_UNIX has no peer credentials
//     (SO_PEERCRED does not exist there) and its socket files carry
//     inherited ACLs, whereas a pipe's DACL is set at creation and the
//     client's identity can be asked of the kernel.

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

// EjectAnswerer is a Handler told when its answer to an eject request
// has been delivered: written and the connection closed, which on Windows
// waits until the asker has read it (or is gone). A holder that tells its
// application of the eject only then cannot lose the answer to an
// application that exits at once.
type EjectAnswerer interface {
	EjectAnswered()
}

// RefusedError is an eject the holder's application declined.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "eject refused: " + e.Reason }

// ErrNotOwner means a process of another user tried the endpoint.
var ErrNotOwner = errors.New("lease: peer is not the endpoint's user")

// Server is a holder's control endpoint.
type Server struct {
	ln   net.Listener
	path string
	h    Handler
	wg   sync.WaitGroup
}

// Endpoint is the socket path (Windows: the pipe name) to put in the
// lease.
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
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		// An eject closes the server from its own handler: serve it on a
		// goroutine Close does not wait for.
		go s.handle(c)
	}
}

func (s *Server) handle(c net.Conn) {
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
		if a, ok := s.h.(EjectAnswerer); ok {
			// Runs before the deferred c.Close above: close here first,
			// so that the answer is delivered when the handler hears.
			defer a.EjectAnswered()
			defer c.Close()
		}
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

// Ask sends one request to the endpoint and returns the response; ctx
// bounds the whole exchange.
func Ask(ctx context.Context, endpoint string, req Request) (Response, error) {
	c, err := dial(ctx, endpoint)
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
