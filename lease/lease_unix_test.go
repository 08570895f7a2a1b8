//go:build linux || darwin

package lease

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// checkPrivate: the socket is mode 0600 in a directory of mode 0700.
func checkPrivate(t *testing.T, endpoint string) {
	t.Helper()
	fi, err := os.Stat(endpoint)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	if di, err := os.Stat(filepath.Dir(endpoint)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v, %v; want 0700", di.Mode(), err)
	}
}

// TestServer_otherUser: a process of another user is refused, by the
// socket's permissions and, were they open, by the peer check.
func TestServer_otherUser(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; this test needs to switch to a second uid")
		}
		t.Skip("SKIP LOUDLY: needs root to run a process as a second uid (nobody)")
	}
	// The test binary, where uid 65534 can run it.
	dir, err := os.MkdirTemp("", "lease-peer-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "lease.test")
	copyFile(t, os.Args[0], bin)
	srv, err := ListenAt(filepath.Join(dir, "peer.sock"), &fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	asNobody := func() string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), peerChildEnv+"="+srv.Endpoint())
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child as nobody: %v\n%s", err, out)
		}
		return string(out)
	}
	out := asNobody()
	t.Logf("0600 socket: %s", out)
	if !strings.Contains(out, "permission denied") {
		t.Errorf("another user reached a 0600 socket: %s", out)
	}
	os.Chmod(srv.Endpoint(), 0o666) // open the door: the peer check must still refuse
	out = asNobody()
	t.Logf("0666 socket: %s", out)
	if !strings.Contains(out, "not the endpoint's user") || strings.Contains(out, "OK:true") {
		t.Errorf("the peer check let another user in: %s", out)
	}
}
