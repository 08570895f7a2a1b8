package lease

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
)

// The control protocol: the client sends one JSON line, a Request; the
// server answers one JSON line, a Response, and closes the connection.
//
//	{"op":"status"}                 -> {"ok":true,"status":{...}}
//	{"op":"eject","db":P,"volume_dev":D,"volume_mount":M,"timeout_ms":N}
//	                                -> {"ok":true} once checkpointed and released,
//	                                   {"ok":false,"refused":"why"} when the app said no,
//	                                   {"ok":false,"error":"why"} when it could not,
//	                                   or when it does not hold the database P
//	                                   on the volume D, M (when given).
//
// A lease is a file on a drive: anyone can copy it to another drive (cp -a
// of a stick whose holder is live) or plant one naming someone's
// endpoint. So an endpoint is trusted only for the database it proves it
// holds: its status names its database's real path and its volume (device
// number and mount id), which the asker compares with the lease's
// database on the volume being ejected before it asks for an eject; and
// an eject names the database it is for, which the server checks against
// its own (Server.handle), so a misdirected eject releases nothing.
//
// Only processes of the server's own user, and root, are answered; and
// the asker (AskHolder) sends nothing to a server that is not its own
// user's, root's, or the lease file owner's (Linux, macOS; Windows: TODO
// in askcheck_windows.go). The endpoint,
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
	Op        string `json:"op"`           // "status" or "eject"
	DB        string `json:"db,omitempty"` // eject: the database to release, as its real path
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	// Eject: the volume the asker found the database's directory on
	// (device.VolumeID's Dev and Mount); the server releases nothing
	// when its own database is on another mount. 0: not given (older
	// clients), only the path is checked.
	VolumeDev   uint64 `json:"volume_dev,omitempty"`
	VolumeMount uint64 `json:"volume_mount,omitempty"`
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
	DB string `json:"db"` // the database's real path
	// The volume the database is on, as the holder identified it when it
	// opened it (device.VolumeID): device number and mount id prove "the
	// same mount" to an asker on this host; 0 when unknown.
	VolumeDev      uint64    `json:"volume_dev,omitempty"`
	VolumeMount    uint64    `json:"volume_mount,omitempty"`
	VolumeSerial   string    `json:"volume_serial,omitempty"`
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

// ErrNotHeld begins the answer of an endpoint asked to eject a database
// it does not hold.
var ErrNotHeld = errors.New("lease: not the holder of that database")

// SamePath reports whether two real paths of a database name the same
// file: equal once cleaned. (Case-insensitive filesystems are handled
// where the paths are made: store.Open and the CLI give the name the
// directory holds.)
func SamePath(a, b string) bool {
	return a != "" && filepath.Clean(a) == filepath.Clean(b)
}

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
		// Release only the database the asker means: a lease copied
		// from another drive, or planted, names this endpoint for a
		// database it does not hold.
		held := s.h.Status()
		if req.DB == "" || !SamePath(req.DB, held.DB) {
			reply(Response{Error: fmt.Sprintf("%s: this endpoint holds another database; nothing released", ErrNotHeld)})
			return
		}
		// The same path on another mount (a volume mounted below the
		// one being ejected, or the same path in another mount
		// namespace) is not this holder's database.
		if req.VolumeDev != 0 && held.VolumeDev != 0 && (req.VolumeDev != held.VolumeDev || req.VolumeMount != held.VolumeMount) {
			reply(Response{Error: fmt.Sprintf("%s: this endpoint holds that path on another volume; nothing released", ErrNotHeld)})
			return
		}
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

// MaxAnswer bounds the answer Ask reads from an endpoint.
const MaxAnswer = 64 << 10

// Ask sends one request to the endpoint and returns the response; ctx
// bounds the whole exchange. The endpoint's server must be this user's or
// root's (AskHolder also accepts the lease owner's).
func Ask(ctx context.Context, endpoint string, req Request) (Response, error) {
	return AskHolder(ctx, endpoint, req, -1)
}

// AskHolder is Ask for the endpoint a lease file owned by uid owner
// names (-1: unknown): the server may also be owner's, so that root can
// ask any user's holder through that user's lease, and no lease can
// direct a question to a third user's server. The answer is read up to
// MaxAnswer bytes, and a status whose text fields hold control
// characters is refused (they would reach a terminal).
func AskHolder(ctx context.Context, endpoint string, req Request, owner int) (Response, error) {
	c, err := dial(ctx, endpoint)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := checkServer(c, owner); err != nil {
		return Response{}, err
	}
	werr := json.NewEncoder(c).Encode(req)
	// Read the answer even if the write failed: a refusal may have come
	// first.
	var resp Response
	line, rerr := bufio.NewReader(io.LimitReader(c, MaxAnswer+1)).ReadBytes('\n')
	if len(line) > MaxAnswer {
		return Response{}, fmt.Errorf("lease: the answer from %s is longer than %d bytes; not read", endpoint, MaxAnswer)
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		if werr != nil {
			return Response{}, werr
		}
		if rerr != nil {
			err = rerr
		}
		return Response{}, fmt.Errorf("lease: no answer from %s: %w", endpoint, err)
	}
	if st := resp.Status; st != nil && (hasControl(st.DB) || hasControl(st.State) || hasControl(st.VolumeSerial)) {
		return Response{}, fmt.Errorf("lease: the answer from %s has control characters in its status; not used", endpoint)
	}
	if hasControl(resp.Error) || hasControl(resp.Refused) {
		resp.Error, resp.Refused = stripControl(resp.Error), stripControl(resp.Refused)
	}
	return resp, nil
}

// stripControl drops control characters from a message to be printed.
func stripControl(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
