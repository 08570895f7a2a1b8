//go:build unix

package lease

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
)

// zombie starts a process, SIGKILLs it and leaves it unreaped; it returns
// the pid and the start time the process had, and reaps it at test end.
func zombie(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	start, err := startTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) { // a hang detector, not a speed check
			t.Fatalf("pid %d did not become a zombie: %s", pid, b)
		}
	}
	return pid, start
}

// TestLease_StaleZombie: a holder killed with -9 but not yet reaped still
// has its pid and start time in /proc; its lease is stale and dead.
func TestLease_StaleZombie(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("SKIP LOUDLY: no /proc: zombie detection is Linux-only")
	}
	pid, start := zombie(t)
	if got, err := startTime(pid); err != nil || got != start {
		t.Fatalf("the zombie's start time reads %d, %v; want %d (this is the case under test)", got, err, start)
	}
	l := mine(t)
	l.PID, l.Start = pid, start
	if stale, why := l.Stale(); !stale || !strings.Contains(why, "zombie") {
		t.Errorf("Stale() of a zombie's lease = %v, %q; want stale, naming the zombie", stale, why)
	}
	if dead, why := l.Dead(); !dead {
		t.Errorf("Dead() of a zombie's lease = false (%s)", why)
	}
	// This process's own lease is neither.
	if dead, why := mine(t).Dead(); dead {
		t.Errorf("this process's lease is dead: %s", why)
	}
	// Another host's lease is stale but not proven dead.
	other := mine(t)
	other.Host = "elsewhere"
	if dead, _ := other.Dead(); dead {
		t.Errorf("another host's lease is proven dead from here")
	}
}

// TestLockFree: the probe sees a lock held (by another open file
// description), a free one and a missing one, and does not hang on a FIFO.
func TestLockFree(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	if free, err := LockFree(db); !free || err != nil {
		t.Fatalf("missing lock file: free=%v, %v; want free", free, err)
	}
	lk, err := device.OS.Lock(db + LockSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if free, err := LockFree(db); free || err != nil {
		t.Fatalf("held lock: free=%v, %v; want held", free, err)
	}
	lk.Close()
	if free, err := LockFree(db); !free || err != nil {
		t.Fatalf("released lock: free=%v, %v; want free", free, err)
	}
	// The probe released what it took: the lock can be taken again.
	lk, err = device.OS.Lock(db + LockSuffix)
	if err != nil {
		t.Fatalf("the probe kept the lock: %v", err)
	}
	lk.Close()
	fifo := filepath.Join(dir, "fifo.db")
	if err := syscall.Mkfifo(fifo+LockSuffix, 0o644); err != nil {
		t.Fatal(err)
	}
	if free, err := LockFree(fifo); free || err == nil {
		t.Fatalf("a FIFO as lock file: free=%v, %v; want an error", free, err)
	}
}

// TestSweepEndpoints: a socket whose server is gone is removed when its
// pid is gone; a live endpoint and a fresh refusing socket of a live pid
// (a server between bind and listen) stay.
func TestSweepEndpoints(t *testing.T) {
	dir, err := runtimeDir()
	if err != nil {
		t.Fatal(err)
	}
	live, err := Listen(&fakeHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadSock := filepath.Join(dir, fmt.Sprintf("%d-0badc0de.sock", cmd.ProcessState.Pid()))
	freshSock := filepath.Join(dir, fmt.Sprintf("%d-0f0f0f0f.sock", os.Getpid()))
	for _, p := range []string{deadSock, freshSock} {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close() // the file stays; nothing listens
		t.Cleanup(func() { os.Remove(p) })
	}
	if !EndpointGone(deadSock) || EndpointGone(live.Endpoint()) {
		t.Fatalf("EndpointGone: dead %v, live %v", EndpointGone(deadSock), EndpointGone(live.Endpoint()))
	}
	removed, err := SweepEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed %v", removed)
	if _, err := os.Lstat(deadSock); err == nil {
		t.Errorf("the dead socket %s is still there", deadSock)
	}
	for _, p := range []string{live.Endpoint(), freshSock} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if resp, err := Ask(context.Background(), live.Endpoint(), Request{Op: "status"}); err != nil || !resp.OK {
		t.Errorf("the live endpoint after the sweep: %+v, %v", resp, err)
	}
}
