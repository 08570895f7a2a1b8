//go:build linux || darwin

package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// runUser is where systemd makes each user's runtime directory; tests
// point it elsewhere.
var runUser = "/run/user"

// runtimeDir returns this user's private directory for sockets, made if
// needed (runtimeDirs lists every one this user may have).
//
// The directory: $XDG_RUNTIME_DIR/ejectsafe, else /run/user/UID/ejectsafe
// when that is ours, else $TMPDIR/ejectsafe-UID. The last is in a
// directory every user can write: another user may have made it first
// (to squat it: its sockets would be theirs to replace), or put a link
// there. So it is used only if, opened without following a link, it is a
// directory owned by this user; its mode is then set to 0700. Otherwise
// an alternative is used: an existing $TMPDIR/ejectsafe-UID-* of ours
// (mode 0700), else a new one made with a random name (mkdtemp: O_EXCL
// semantics, mode 0700). Leases name the endpoint's full path, so an
// eject finds it wherever it is.
func runtimeDir() (string, error) {
	uid := os.Getuid()
	primary, shared := primaryRuntimeDir(uid)
	if !shared {
		if err := os.MkdirAll(primary, 0o700); err != nil {
			return "", err
		}
	} else if err := os.Mkdir(primary, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	err := ownDir(primary, uid)
	if err == nil || !shared {
		return primary, err
	}
	// Squatted: another user's, a link, or not a directory.
	if alts := altRuntimeDirs(uid); len(alts) > 0 {
		return alts[0], nil
	}
	return os.MkdirTemp(os.TempDir(), altPrefix(uid))
}

// primaryRuntimeDir is the directory runtimeDir tries first, and whether
// it is in a directory all users share.
func primaryRuntimeDir(uid int) (dir string, shared bool) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		if d := filepath.Join(runUser, strconv.Itoa(uid)); dirOwned(d, uid) {
			base = d
		}
	}
	if base == "" {
		return filepath.Join(os.TempDir(), "ejectsafe-"+strconv.Itoa(uid)), true
	}
	return filepath.Join(base, "ejectsafe"), false
}

func altPrefix(uid int) string { return "ejectsafe-" + strconv.Itoa(uid) + "-" }

// altRuntimeDirs lists the alternative runtime directories of this user
// that pass ownDir, sorted.
func altRuntimeDirs(uid int) []string {
	names, err := filepath.Glob(filepath.Join(os.TempDir(), altPrefix(uid)+"*"))
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range names {
		if ownDir(d, uid) == nil {
			out = append(out, d)
		}
	}
	return out
}

// runtimeDirs lists every runtime directory of this user that exists and
// is ours: the primary one and the alternatives, for Endpoints.
func runtimeDirs() []string {
	uid := os.Getuid()
	var dirs []string
	if d, _ := primaryRuntimeDir(uid); ownDir(d, uid) == nil {
		dirs = append(dirs, d)
	}
	return append(dirs, altRuntimeDirs(uid)...)
}

// ownDir checks that dir, opened without following a link, is a
// directory owned by uid, and makes its mode 0700 (it is ours: a umask or
// an earlier version may have left it open).
func ownDir(dir string, uid int) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lease: %s is not a private directory of uid %d: %w", dir, uid, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("lease: %s is not a private directory of uid %d: owned by uid %d", dir, uid, st.Uid)
	}
	if st.Mode&0o7777 != 0o700 {
		if err := syscall.Fchmod(fd, 0o700); err != nil {
			return &os.PathError{Op: "chmod", Path: dir, Err: err}
		}
	}
	return nil
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

// connPeerUID is the uid of the process at the other end of c.
func connPeerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("lease: %T is not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var uid int
	var cerr error
	if err := raw.Control(func(fd uintptr) { uid, cerr = peerUID(int(fd)) }); err != nil {
		return 0, err
	}
	return uid, cerr
}

// checkServer refuses, on the asking side, a server that is neither this
// user's, root's, nor (owner >= 0) the lease file's owner's: a lease
// planted by one user naming another user's socket (or a socket of its
// own standing for someone else's holder) is not followed, and nothing
// is sent to it.
func checkServer(c net.Conn, owner int) error {
	uid, err := connPeerUID(c)
	if err != nil {
		return err
	}
	if uid != os.Getuid() && uid != 0 && (owner < 0 || uid != owner) {
		return fmt.Errorf("%w: the endpoint's server is uid %d, neither this user, root, nor the lease's owner; not asked", ErrNotOwner, uid)
	}
	return nil
}

// checkPeer refuses a process of another user, root excepted.
func checkPeer(c net.Conn) error {
	uid, err := connPeerUID(c)
	if err != nil {
		return err
	}
	// Root may ask any holder: `sudo ejectsafe eject` must be able to
	// release a user's store before unmounting.
	if uid != os.Getuid() && uid != 0 {
		return fmt.Errorf("%w: uid %d", ErrNotOwner, uid)
	}
	return nil
}

// dial connects to a holder's Unix socket.
func dial(ctx context.Context, endpoint string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", endpoint)
}
