package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/windows"
)

// Listen starts an endpoint for h on a new named pipe,
// \\.\pipe\ejectsafe-<pid>-<random>.
func Listen(h Handler) (*Server, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	return ListenAt(fmt.Sprintf("%s%d-%s", PipePrefix, os.Getpid(), hex.EncodeToString(rnd[:])), h)
}

// ListenAt starts an endpoint for h on the named pipe given. The pipe is
// created new (an existing pipe of that name is an error, so nobody can
// squat on it first), refuses remote clients, and its DACL grants access
// to this process's user SID alone.
func ListenAt(path string, h Handler) (*Server, error) {
	sid, err := userSID(windows.GetCurrentProcessToken())
	if err != nil {
		return nil, fmt.Errorf("lease: listen: %w", err)
	}
	// D:P: a protected DACL (nothing inherited); one ACE: generic all to
	// the user. No other principal, SYSTEM and Administrators included.
	sd, err := windows.SecurityDescriptorFromString("D:P(A;;GA;;;" + sid.String() + ")")
	if err != nil {
		return nil, fmt.Errorf("lease: listen: %w", err)
	}
	ln, err := listenPipe(path, sd)
	if err != nil {
		return nil, fmt.Errorf("lease: listen: %w", err)
	}
	s := &Server{ln: ln, path: path, h: h}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// checkPeer refuses a client process whose token's user is not ours. The
// DACL keeps other users from opening the pipe at all; this is the second
// lock, as SO_PEERCRED is on Linux.
func checkPeer(c net.Conn) error {
	f, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return fmt.Errorf("lease: %T is not a named pipe", c)
	}
	var pid uint32
	if err := windows.GetNamedPipeClientProcessId(windows.Handle(f.Fd()), &pid); err != nil {
		return fmt.Errorf("lease: client of the pipe: %w", err)
	}
	ph, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return fmt.Errorf("%w: client process %d cannot be inspected: %v", ErrNotOwner, pid, err)
	}
	defer windows.CloseHandle(ph)
	var tok windows.Token
	if err := windows.OpenProcessToken(ph, windows.TOKEN_QUERY, &tok); err != nil {
		return fmt.Errorf("%w: token of client process %d: %v", ErrNotOwner, pid, err)
	}
	defer tok.Close()
	theirs, err := userSID(tok)
	if err != nil {
		return fmt.Errorf("%w: client process %d: %v", ErrNotOwner, pid, err)
	}
	mine, err := userSID(windows.GetCurrentProcessToken())
	if err != nil {
		return err
	}
	if !windows.EqualSid(theirs, mine) {
		return fmt.Errorf("%w: user %s", ErrNotOwner, theirs)
	}
	return nil
}

// userSID is the user a token stands for, copied out of the token's
// buffer.
func userSID(tok windows.Token) (*windows.SID, error) {
	tu, err := tok.GetTokenUser()
	if err != nil {
		return nil, err
	}
	return tu.User.Sid.Copy()
}

// dial connects to a holder's named pipe.
func dial(ctx context.Context, endpoint string) (net.Conn, error) {
	return dialPipe(ctx, endpoint)
}
