//go:build linux || darwin

package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

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

// checkPeer refuses a process of another user.
func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("lease: %T is not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var uid int
	var cerr error
	if err := raw.Control(func(fd uintptr) { uid, cerr = peerUID(int(fd)) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if uid != os.Getuid() {
		return fmt.Errorf("%w: uid %d", ErrNotOwner, uid)
	}
	return nil
}

// dial connects to a holder's Unix socket.
func dial(ctx context.Context, endpoint string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", endpoint)
}
