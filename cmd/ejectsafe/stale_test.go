package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// waitZombie waits until pid, killed, is a zombie and its other threads
// are gone: the leader shows Z while they still exit, holding its files.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' && len(tasks) == 1 {
			return
		}
		if time.Now().After(deadline) { // a hang detector, not a speed check
			t.Fatalf("pid %d did not become a zombie: %s", pid, b)
		}
	}
}

// TestCheck_zombieHolder: a holder killed with -9 and not yet reaped is
// reported stale: check exits 0, and eject removes its lease and its
// control socket.
func TestCheck_zombieHolder(t *testing.T) {
	// Not the presence of /proc: Wine shows the host's to Windows code.
	if runtime.GOOS != "linux" {
		t.Skip("SKIP LOUDLY: zombies are told apart on Linux only (/proc)")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "held.db")
	holder := startHolder(t, db, "") // reaped only by its cleanup
	_, found, err := lease.Find(dir)
	if err != nil || len(found) != 1 {
		t.Fatalf("leases %+v, %v", found, err)
	}
	l, file := found[0].Lease, found[0].File
	holder.Process.Signal(syscall.SIGKILL)
	waitZombie(t, holder.Process.Pid)
	pid := strconv.Itoa(holder.Process.Pid)

	code, out, errs := runCmd(t, "check", dir)
	if code != 0 || !strings.Contains(out, "stale") || !strings.Contains(out, "zombie") || !strings.Contains(out, "pid "+pid) {
		t.Fatalf("check with a zombie holder = %d; want 0, the lease stale, naming the zombie:\n%s%s", code, out, errs)
	}
	if code, out, _ := runCmd(t, "status", dir); code != 0 || !strings.Contains(out, "stale") {
		t.Fatalf("status = %d:\n%s", code, out)
	}
	code, out, errs = runCmd(t, "eject", "--no-unmount", dir)
	if code != 0 || !strings.Contains(out, "removed the dead lease") {
		t.Fatalf("eject --no-unmount with a zombie holder = %d; want 0, its lease removed:\n%s%s", code, out, errs)
	}
	for _, p := range []string{file, l.Endpoint} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("after eject: %s of the zombie is still there", p)
		}
	}
	if code, out, _ := runCmd(t, "status", dir); code != 0 || !strings.Contains(out, "leases:     none") {
		t.Fatalf("status after eject = %d; want no lease:\n%s", code, out)
	}
}

// TestCheck_lockProbe: a lease whose pid runs (a real process, not ours)
// but whose control socket refuses and whose OS lock is free holds
// nothing: check exits 0 and says why; once the lock is held, it blocks.
func TestCheck_lockProbe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIP LOUDLY: the test reads a process's start time from /proc: Linux only")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", sleeper.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	me, err := lease.Me()
	if err != nil {
		t.Fatal(err)
	}
	// A socket file nothing listens on.
	sock := filepath.Join(t.TempDir(), "gone.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	l := lease.Lease{Version: lease.Version, DB: "app.db", PID: sleeper.Process.Pid, Start: start,
		Host: me.Host, Boot: me.Boot, State: lease.StateOpen, Endpoint: sock, Since: time.Now().UTC()}
	if err := lease.Write(device.OS, db+lease.FallbackSuffix, l); err != nil {
		t.Fatal(err)
	}
	if stale, why := l.Stale(); stale {
		t.Fatalf("the lease is stale by its pid already (%s): the test needs a running holder", why)
	}

	lk, err := device.OS.Lock(db + lease.LockSuffix)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "check", dir)
	if code != 1 {
		t.Fatalf("check with the lock held = %d; want 1:\n%s%s", code, out, errs)
	}
	lk.Close()
	code, out, errs = runCmd(t, "check", dir)
	if code != 0 || !strings.Contains(out, "lock is free") {
		t.Fatalf("check with the lock free and the endpoint gone = %d; want 0, saying why:\n%s%s", code, out, errs)
	}
}

// TestCLI_symlinkedPath: the CLI resolves symlinks as Open does: check
// through a link to the database finds the holder's lease beside the real
// file, and recover through the link is kept out by the holder's lock.
func TestCLI_symlinkedPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "real", "app.db")
	link := filepath.Join(dir, "link.db")
	symlink(t, filepath.Join("real", "app.db"), link)
	holder := startHolder(t, db, "")
	pid := strconv.Itoa(holder.Process.Pid)
	code, out, errs := runCmd(t, "check", link)
	if code != 1 || !strings.Contains(out, "pid "+pid) {
		t.Fatalf("check %s (a link to a held database) = %d; want 1 naming pid %s:\n%s%s", link, code, pid, out, errs)
	}
	code, out, errs = runCmd(t, "recover", link)
	if code != 2 || !strings.Contains(errs, "locked by process "+pid) {
		t.Fatalf("recover %s under a live holder = %d; want 2, locked by %s:\n%s%s", link, code, pid, out, errs)
	}
	if _, err := os.Lstat(link + lease.LockSuffix); err == nil {
		t.Errorf("recover made a lock file named after the link")
	}
}
