// Package lease is how a process says, on the drive, that it holds an
// ejectsafe database, and how the eject CLI finds and talks to it.
//
// A lease is a small JSON file, written atomically (temp, fsync, rename,
// directory fsync) through device.FS:
//
//	{"version":1,"db":"notes/app.db","pid":1234,"start":56789,
//	 "host":"laptop","boot":"4f2c...","state":"open",
//	 "endpoint":"/run/user/1000/ejectsafe/1234-ab12cd.sock","since":"2026-..."}
//
// Where leases live: in the volume's lease directory,
// <volume root>/.ejectsafe/leases/<hash of db>-<pid>-<start>-<hash of
// host and boot>.json (the holder in the name: see name.go), so a check of a
// volume finds every lease by listing one directory; when the volume root
// is not writable (or the FS is not native: device.IsNative), next to
// the database as <db>.ejectsafe-lease.
//
// Validity conditions (Parse enforces them; anything else is Invalid):
//
//  1. the file is at most MaxSize bytes of JSON with exactly these fields;
//  2. version is 1;
//  3. db is a clean, relative, slash-separated path that does not leave
//     the volume (no "..", not absolute), at most 1024 bytes;
//  4. pid is in 1..1<<22, start (process start time, see Self) >= 0;
//  5. host is 1..255 bytes, boot is 0..64 bytes, both without control
//     characters;
//  6. state is "open" or "checkpointing";
//  7. endpoint is empty, or an absolute path of at most 107 bytes (a Unix
//     socket path) ending in ".sock", or a Windows named pipe of ours:
//     PipePrefix followed by 1..64 bytes of [0-9a-z-].
//
// A lease is Stale when its holder is gone: on this host (same host name
// and boot id) the pid is not running, runs a process started at another
// time (pid reuse), or has exited and waits to be reaped (a zombie); from
// another host or an earlier boot, it is stale too, since the drive is
// here now. Stale leases are reported, and reclaimed by the next Open
// after recovery. A lease is Dead when its holder is proven gone from
// this host (Dead, with LockFree for the holder's OS lock): Open and the
// eject CLI remove dead leases, and SweepEndpoints removes control
// sockets whose server is gone.
package lease

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode"
)

// PipePrefix begins every Windows endpoint (a named pipe). An endpoint
// read from a lease is followed only if it is a Unix socket path or a pipe
// of this name, never any other pipe on the host.
const PipePrefix = `\\.\pipe\ejectsafe-`

// Version is the lease format version.
const Version = 1

// MaxSize bounds a lease file; larger ones are invalid and not read whole.
const MaxSize = 4096

// States a lease can be in.
const (
	StateOpen          = "open"          // the holder has the database open
	StateCheckpointing = "checkpointing" // the holder is checkpointing to release it
)

// ErrInvalid wraps every reason a lease file is refused.
var ErrInvalid = errors.New("lease: invalid")

// Lease is one holder's claim on one database.
type Lease struct {
	Version  int       `json:"version"`
	DB       string    `json:"db"`    // relative to the volume root, slash-separated
	PID      int       `json:"pid"`   // the holder
	Start    uint64    `json:"start"` // the holder's start time, in its platform's unit (see Self)
	Host     string    `json:"host"`
	Boot     string    `json:"boot"` // boot id: the holder's boot
	State    string    `json:"state"`
	Endpoint string    `json:"endpoint"` // control socket; "" if none
	Since    time.Time `json:"since"`
}

// Encode returns the lease's file content.
func (l Lease) Encode() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes and validates a lease file. It never follows anything the
// file names; it only checks it. Its errors never quote the file: a lease
// is read from a drive anyone may have written (a link planted there to
// /etc/shadow was once reported with its first byte); they name the field
// and the reason only.
func Parse(b []byte) (Lease, error) {
	var l Lease
	if len(b) > MaxSize {
		return l, fmt.Errorf("%w: %d bytes (at most %d)", ErrInvalid, len(b), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Lease{}, fmt.Errorf("%w: %s", ErrInvalid, jsonProblem(err))
	}
	if dec.More() {
		return Lease{}, fmt.Errorf("%w: trailing data", ErrInvalid)
	}
	if err := l.Validate(); err != nil {
		return Lease{}, err
	}
	return l, nil
}

// Validate checks the numbered conditions in the package comment.
func (l Lease) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	switch {
	case l.Version != Version:
		return bad("version %d", l.Version)
	case l.DB == "" || len(l.DB) > 1024:
		return bad("db path of %d bytes", len(l.DB))
	case path.IsAbs(l.DB) || strings.Contains(l.DB, "\\") || path.Clean(l.DB) != l.DB ||
		l.DB == ".." || strings.HasPrefix(l.DB, "../"):
		return bad("db path leaves the volume or is not clean")
	case l.PID < 1 || l.PID > 1<<22:
		return bad("pid %d", l.PID)
	case len(l.Host) < 1 || len(l.Host) > 255 || hasControl(l.Host):
		return bad("host name of %d bytes or with control characters", len(l.Host))
	case len(l.Boot) > 64 || hasControl(l.Boot):
		return bad("boot id of %d bytes or with control characters", len(l.Boot))
	case l.State != StateOpen && l.State != StateCheckpointing:
		return bad("unknown state")
	case l.Endpoint != "" && !isSocketPath(l.Endpoint) && !isPipeName(l.Endpoint):
		return bad("endpoint is neither a socket path nor a pipe of ours")
	}
	for _, part := range strings.Split(l.DB, "/") {
		if hasControl(part) {
			return bad("db path has control characters")
		}
	}
	return nil
}

// isSocketPath: an absolute Unix socket path ending in ".sock" that fits
// in sockaddr_un.
func isSocketPath(e string) bool {
	return path.IsAbs(e) && len(e) <= 107 && strings.HasSuffix(e, ".sock") && !hasControl(e)
}

// isPipeName: PipePrefix and 1..64 bytes of [0-9a-z-].
func isPipeName(e string) bool {
	rest, ok := strings.CutPrefix(e, PipePrefix)
	if !ok || len(rest) < 1 || len(rest) > 64 {
		return false
	}
	for _, c := range []byte(rest) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// jsonProblem describes a decoding error without quoting the input (a
// json.SyntaxError's message quotes the offending character).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON (syntax error at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated or empty"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "a field that is not a lease's"
	}
	return "not a lease"
}
