package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

func TestLockSuffix_matchesLease(t *testing.T) {
	if lockSuffix != lease.LockSuffix {
		t.Fatalf("store locks %q, lease probes %q", lockSuffix, lease.LockSuffix)
	}
}

// holdInChild opens db in another process (killChild) and returns it with
// its lease once its Open has returned (sweep included): the child has
// then committed and checkpointed one batch, and waits on its stdin.
func holdInChild(t *testing.T, db string) (*exec.Cmd, lease.Lease, string) {
	t.Helper()
	s, err := Open(db, &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, s.DB(), "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+db)
	in, err := cmd.StdinPipe() // kept open: the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	fmt.Fprintln(in, "go")
	lines := bufio.NewScanner(out)
	for lines.Scan() && lines.Text() != "end" {
		if strings.HasPrefix(lines.Text(), "error") {
			t.Fatalf("child: %s", lines.Text())
		}
	}
	place := lease.PlaceFor(device.OS, db)
	l, err := lease.Read(device.OS, place.Path)
	if err != nil || l.PID != cmd.Process.Pid {
		t.Fatalf("the child's lease at %s: %+v, %v", place.Path, l, err)
	}
	return cmd, l, place.Path
}

// TestOpen_sweepsDeadHolders: leases and control sockets left by holders
// killed with -9, reaped or not (zombies), are removed by the next Open of
// any database beside them; a live holder's are kept.
func TestOpen_sweepsDeadHolders(t *testing.T) {
	// Not the presence of /proc: Wine shows the host's to Windows code.
	if runtime.GOOS != "linux" {
		t.Skip("SKIP LOUDLY: zombies and /proc/PID/task are Linux's: dead holders are proven on Linux only")
	}
	dir := t.TempDir()
	zombie, zl, zfile := holdInChild(t, filepath.Join(dir, "zombie.db"))
	reaped, rl, rfile := holdInChild(t, filepath.Join(dir, "reaped.db"))
	_, ll, lfile := holdInChild(t, filepath.Join(dir, "live.db"))
	zombie.Process.Signal(syscall.SIGKILL) // never waited for until cleanup
	reaped.Process.Signal(syscall.SIGKILL)
	reaped.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		// Stale once the leader is a zombie; its files are closed once
		// its other threads are gone too.
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", zl.PID))
		if stale, _ := zl.Stale(); stale && len(tasks) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed child never became a zombie")
		}
	}
	// The leases are in this test's directory: only an Open here removes
	// them. The sockets are in the runtime directory every Open sweeps, so
	// a test running beside this one may remove them first.
	for _, p := range []string{zfile, rfile} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("before Open: %s missing (%v); the test needs it left behind", p, err)
		}
	}
	s, err := Open(filepath.Join(dir, "other.db"), &Options{ManualCheckpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{zfile, rfile, zl.Endpoint, rl.Endpoint} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("after Open: %s of a dead holder is still there", p)
		}
	}
	for _, p := range []string{lfile, ll.Endpoint} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("after Open: %s of a live holder was removed: %v", p, err)
		}
	}
}
