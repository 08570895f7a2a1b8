//go:build linux || darwin

package lease

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// privateRuntime points runtimeDir at a fresh TMPDIR, with no
// XDG_RUNTIME_DIR and no /run/user, for the test.
func privateRuntime(t *testing.T) string {
	t.Helper()
	tmp, err := os.MkdirTemp("", "rt") // short: socket paths fit in 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	os.Chmod(tmp, 0o777|os.ModeSticky) // as /tmp: every user may add to it
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_RUNTIME_DIR", "")
	old := runUser
	runUser = filepath.Join(tmp, "no-run-user")
	t.Cleanup(func() { runUser = old })
	return tmp
}

// TestRuntimeDir_squatted (issue 17, finding 11): another user who makes
// $TMPDIR/ejectsafe-UID first, or puts a link or a file there, does not
// disable this user's endpoint: runtimeDir uses a private alternative,
// Listen works there, the endpoint answers, and Endpoints lists it (so
// sweeps and the dead-mount check find it). Before, Listen failed ("not a
// private directory") and the lease named no endpoint.
func TestRuntimeDir_squatted(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP LOUDLY: needs root to make a directory owned by another uid")
	}
	uid := os.Getuid()
	for _, squat := range []string{"other user's directory", "link to other user's directory", "file"} {
		t.Run(squat, func(t *testing.T) {
			tmp := privateRuntime(t)
			name := filepath.Join(tmp, "ejectsafe-"+strconv.Itoa(uid))
			theirs := filepath.Join(tmp, "theirs")
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			switch squat {
			case "other user's directory":
				must(os.Mkdir(name, 0o700))
				must(os.Chown(name, 65534, 65534))
			case "link to other user's directory":
				must(os.Mkdir(theirs, 0o700))
				must(os.Chown(theirs, 65534, 65534))
				must(os.Symlink(theirs, name))
			case "file":
				must(os.WriteFile(name, nil, 0o644))
			}
			srv, err := Listen(&fakeHandler{})
			if err != nil {
				t.Fatalf("Listen with %s squatted: %v", name, err)
			}
			defer srv.Close()
			dir := filepath.Dir(srv.Endpoint())
			if dir == name || strings.HasPrefix(dir, theirs) {
				t.Fatalf("endpoint %s in the squatted place", srv.Endpoint())
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode() != os.ModeDir|0o700 {
				t.Errorf("alternative %s: mode %v uid %d; want drwx------ of uid %d", dir, fi.Mode(), st.Uid, uid)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if resp, err := Ask(ctx, srv.Endpoint(), Request{Op: "status"}); err != nil || !resp.OK {
				t.Errorf("status: %+v, %v", resp, err)
			}
			eps, err := Endpoints()
			if err != nil || len(eps) != 1 || eps[0].Path != srv.Endpoint() {
				t.Errorf("Endpoints: %+v, %v; want the one endpoint", eps, err)
			}
			// A second Listen reuses the alternative.
			srv2, err := Listen(&fakeHandler{})
			if err != nil {
				t.Fatal(err)
			}
			defer srv2.Close()
			if filepath.Dir(srv2.Endpoint()) != dir {
				t.Errorf("second endpoint in %s; want %s", filepath.Dir(srv2.Endpoint()), dir)
			}
		})
	}
	t.Run("own directory left open", func(t *testing.T) {
		tmp := privateRuntime(t)
		name := filepath.Join(tmp, "ejectsafe-"+strconv.Itoa(uid))
		if err := os.Mkdir(name, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(name, 0o755)
		srv, err := Listen(&fakeHandler{})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if filepath.Dir(srv.Endpoint()) != name {
			t.Errorf("endpoint %s; want it in %s", srv.Endpoint(), name)
		}
		checkPrivate(t, srv.Endpoint())
	})
}

// TestServer_rootMayAsk (finding 11): root may ask a holder of any user
// (sudo ejectsafe eject must be able to release a user's store); the
// peer check refused uid 0 before.
func TestServer_rootMayAsk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP LOUDLY: needs root to run a holder as another uid")
	}
	dir, err := os.MkdirTemp("", "lease-root-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	bin := filepath.Join(dir, "lease.test")
	copyFile(t, os.Args[0], bin)
	sock := filepath.Join(dir, "nobody.sock")
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, _ := cmd.StdinPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	var b [6]byte
	if n, _ := stderr.Read(b[:]); string(b[:n]) != "ready\n" {
		t.Fatalf("holder as nobody: %q", b[:n])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Through nobody's lease (owner 65534): answered.
	resp, err := AskHolder(ctx, sock, Request{Op: "status"}, 65534)
	if err != nil || !resp.OK || resp.Status == nil {
		t.Fatalf("root asking nobody's holder through nobody's lease: %+v, %v; want an answer", resp, err)
	}
	// Through a lease of another owner, or none (review of issue 17: a
	// lease planted by one user naming another user's server), the
	// asking side refuses the server before sending anything.
	for _, owner := range []int{-1, 65533} {
		if resp, err := AskHolder(ctx, sock, Request{Op: "status"}, owner); !errors.Is(err, ErrNotOwner) {
			t.Errorf("root asking nobody's holder through a lease of uid %d: %+v, %v; want ErrNotOwner", owner, resp, err)
		}
	}
	if resp, err := Ask(ctx, sock, Request{Op: "status"}); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Ask of nobody's holder: %+v, %v; want ErrNotOwner", resp, err)
	}
}

// TestAsk_answerChecked (review of issue 17): the answer is read up to
// MaxAnswer bytes, and a status with control characters (an escape
// sequence for the terminal status prints to) is refused; control
// characters are dropped from error messages.
func TestAsk_answerChecked(t *testing.T) {
	dir, err := os.MkdirTemp("", "lease-ans-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cases := []struct {
		name, answer, want string
	}{
		{"huge", `{"ok":false,"error":"` + strings.Repeat("x", 1<<20) + `"}` + "\n", "longer than"},
		{"escape in db", `{"ok":true,"status":{"db":"/x/\u001b]0;owned\u0007app.db","state":"open"}}` + "\n", "control characters"},
	}
	for i, c := range cases {
		sock := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func(answer string) {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			conn.Write([]byte(answer))
		}(c.answer)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := Ask(ctx, sock, Request{Op: "status"})
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Ask = %d-byte error field, status %+v, %v; want an error %q", c.name, len(resp.Error), resp.Status, err, c.want)
		}
	}
}
