package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// nobody is the second user of the security tests.
const nobody = 65534

// runAsNobody runs name with args as uid/gid 65534 in dir "/", with env
// added, and returns its exit code and combined output.
func runAsNobody(t *testing.T, env []string, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

// sharedTmpfs mounts a tmpfs with mode 1777 at a new directory: a stick
// two users share. Or skips loudly.
func sharedTmpfs(t *testing.T) string {
	t.Helper()
	mp, err := os.MkdirTemp("", "es-shared-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(mp, 0o755)
	if err := syscall.Mount("tmpfs", mp, "tmpfs", 0, "size=16m,mode=1777"); err != nil {
		os.Remove(mp)
		t.Skipf("SKIP LOUDLY: mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		syscall.Unmount(mp, syscall.MNT_DETACH)
		os.Remove(mp)
	})
	return mp
}

// TestSecurity_secondUser (issue 17 acceptance): on a volume shared with
// uid 65534, that user cannot
//
//   - disable the victim's endpoint by making the victim's runtime
//     directory ($TMPDIR/ejectsafe-0) first: the victim's holder listens
//     elsewhere and its eject works;
//   - read the victim's lease (0600), directly or through `ejectsafe
//     status`, whose output never shows the victim's endpoint (the lease
//     is reported unreadable, and `check` counts it as live);
//   - remove or replace the victim's lease (the shared lease directory is
//     sticky);
//   - release the victim's store with `ejectsafe eject` (the endpoint is
//     not theirs to connect to);
//   - misdirect the victim's eject: a lease planted on the shared volume
//     naming the victim's holder of another database is reported and not
//     followed, and that holder keeps its store.
func TestSecurity_secondUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP LOUDLY: needs root to run a second user (uid 65534)")
	}
	bin := cli(t)
	os.Chmod(filepath.Dir(bin), 0o755) // nobody runs it too
	vol := sharedTmpfs(t)

	// The victim's TMPDIR is one both users can write, as /tmp; nobody
	// makes the victim's runtime directory there first.
	tmp, err := os.MkdirTemp("", "es-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o777|os.ModeSticky)
	squat := filepath.Join(tmp, "ejectsafe-0")
	if code, out := runAsNobody(t, nil, "mkdir", "-m", "0700", squat); code != 0 {
		t.Fatalf("nobody's mkdir %s: %s", squat, out)
	}
	env := []string{"TMPDIR=" + tmp, "XDG_RUNTIME_DIR="}

	// The victim holds a database on the shared volume, and one elsewhere.
	mine := filepath.Join(vol, "root")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	onVol := filepath.Join(mine, "app.db")
	holder := startHolderEnv(t, onVol, env...)
	elsewhere := filepath.Join(t.TempDir(), "other.db")
	other := startHolderEnv(t, elsewhere, env...)

	_, found, err := lease.Find(vol)
	if err != nil || len(found) != 1 || found[0].Err != nil {
		t.Fatalf("leases on the volume: %+v, %v", found, err)
	}
	victimLease := found[0]
	if ep := victimLease.Lease.Endpoint; ep == "" || strings.HasPrefix(ep, squat+"/") {
		t.Fatalf("the victim's endpoint %q: none, or in the squatted directory", ep)
	}
	otherLease, err := lease.Read(device.OS, elsewhere+lease.FallbackSuffix)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("read the victim's lease", func(t *testing.T) {
		code, out := runAsNobody(t, nil, "cat", victimLease.File)
		if code == 0 || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody's cat of the victim's lease = %d: %s", code, out)
		}
		code, out = runAsNobody(t, env, bin, "status", vol)
		if strings.Contains(out, victimLease.Lease.Endpoint) || strings.Contains(out, filepath.Base(victimLease.Lease.Endpoint)) {
			t.Errorf("nobody's status shows the victim's endpoint:\n%s", out)
		}
		if code != 0 || !strings.Contains(out, "unreadable: "+victimLease.File) {
			t.Errorf("nobody's status = %d; want the victim's lease reported unreadable:\n%s", code, out)
		}
		// Unreadable is not "nobody there": the volume is not safe to
		// remove for nobody either.
		if code, out := runAsNobody(t, env, bin, "check", vol); code != 1 || strings.Contains(out, victimLease.Lease.Endpoint) {
			t.Errorf("nobody's check = %d; want 1 (another user's live lease), without the endpoint:\n%s", code, out)
		}
	})

	t.Run("remove or replace the victim's lease", func(t *testing.T) {
		fake := filepath.Join(vol, lease.DirName, "fake.json")
		script := "echo '{}' > " + fake + " && mv -f " + fake + " " + victimLease.File + "; rm -f " + victimLease.File
		code, out := runAsNobody(t, nil, "sh", "-c", script)
		if got, err := lease.Read(device.OS, victimLease.File); err != nil || got != victimLease.Lease {
			t.Errorf("the victim's lease after nobody's mv/rm (exit %d: %s): %+v, %v", code, out, got, err)
		}
	})

	t.Run("release the victim's store", func(t *testing.T) {
		code, out := runAsNobody(t, env, bin, "eject", "--no-unmount", "--timeout", "5s", vol)
		if strings.Contains(out, "released in") {
			t.Errorf("nobody's eject released something (exit %d):\n%s", code, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if resp, err := lease.Ask(ctx, victimLease.Lease.Endpoint, lease.Request{Op: "status"}); err != nil || resp.Status == nil || resp.Status.State != lease.StateOpen {
			t.Errorf("the victim's store after nobody's eject: %+v, %v; want open", resp, err)
		}
	})

	t.Run("misdirect the victim's eject", func(t *testing.T) {
		// nobody plants a lease on the shared volume naming the victim's
		// holder of the other database (pid and start time are public in
		// /proc; suppose the endpoint guessed).
		planted := otherLease
		planted.DB = "planted.db"
		b, err := planted.Encode()
		if err != nil {
			t.Fatal(err)
		}
		plantedFile := filepath.Join(vol, lease.DirName, "0000000000000000.json")
		code, out := runAsNobody(t, []string{"LEASE=" + string(b)}, "sh", "-c", `printf '%s' "$LEASE" > `+plantedFile)
		if code != 0 {
			t.Fatalf("nobody could not plant a lease: %s", out)
		}
		// The victim ejects the shared volume (without unmounting it).
		code, out, errs := runCmd(t, "eject", "--no-unmount", "--timeout", "20s", vol)
		if !strings.Contains(out+errs, "another database") {
			t.Errorf("the victim's eject did not report the planted lease (exit %d):\n%s%s", code, out, errs)
		}
		if code != 0 || !strings.Contains(out, "pid "+strconv.Itoa(holder.Process.Pid)+" released") {
			t.Errorf("the victim's eject of its own holder = %d:\n%s%s", code, out, errs)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if resp, err := lease.Ask(ctx, otherLease.Endpoint, lease.Request{Op: "status"}); err != nil || resp.Status == nil || resp.Status.State != lease.StateOpen || !alive(other) {
			t.Errorf("the victim's other store after the eject: %+v, %v; want open", resp, err)
		}
	})
}

// startHolderAs runs this test binary, copied where uid can run it, as a
// holder of db (see startHolderEnv) as uid/gid uid.
func startHolderAs(t *testing.T, uid int, db string) *exec.Cmd {
	t.Helper()
	dir, err := os.MkdirTemp("", "es-holder-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "cmd.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+db, "XDG_RUNTIME_DIR=", "TMPDIR=/tmp")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("holder as uid %d: %q, %v", uid, line, err)
	}
	return cmd
}

// TestSecurity_unreadableLeaseNotForever (review of issue 17): on a
// volume two users share, neither of them root, one user's unreadable
// (0600) lease keeps the volume "not safe to remove" for the other only
// while its holder lives. Before lease names carried their holder, a
// holder killed with SIGKILL, or a `{}` written 0600 into the shared
// lease directory, made `check` say "not safe" (exit 1) for ever: the
// other user could neither read, ask, nor remove it.
func TestSecurity_unreadableLeaseNotForever(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP LOUDLY: needs root to run two other users")
	}
	const owner = 65533 // the lease's owner; nobody (65534) checks
	bin := cli(t)
	os.Chmod(filepath.Dir(bin), 0o755)
	vol := sharedTmpfs(t)
	home := filepath.Join(vol, "owner")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, owner, owner); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_RUNTIME_DIR=", "TMPDIR=/tmp"}

	h := startHolderAs(t, owner, filepath.Join(home, "app.db"))
	_, found, err := lease.Find(vol)
	if err != nil || len(found) != 1 || found[0].Err != nil {
		t.Fatalf("leases on the volume: %+v, %v", found, err)
	}
	if fi, err := os.Stat(found[0].File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the owner's lease: %v, %v; want 0600", fi, err)
	}
	// While it lives, the holder keeps the volume for nobody.
	if code, out := runAsNobody(t, env, bin, "check", vol); code != 1 || !strings.Contains(out, "uid 65533") {
		t.Errorf("nobody's check with the owner's holder alive = %d; want 1, naming the owner:\n%s", code, out)
	}
	// nobody's eject keeps the volume, naming the lease file and its
	// owner (it said "pid 0 ()", review finding 9).
	code, out := runAsNobody(t, env, bin, "eject", "--no-unmount", "--timeout", "5s", vol)
	if code != 1 || !strings.Contains(out, "unreadable lease "+found[0].File) || !strings.Contains(out, "owner uid 65533") || strings.Contains(out, "pid 0 ()") {
		t.Errorf("nobody's eject with the owner's holder alive = %d; want 1, naming the unreadable lease and its owner:\n%s", code, out)
	}

	// Killed with SIGKILL: its lease stays, unreadable to nobody.
	h.Process.Kill()
	h.Wait()
	if _, err := os.Stat(found[0].File); err != nil {
		t.Fatalf("the killed holder's lease: %v", err)
	}
	if code, out := runAsNobody(t, env, bin, "check", vol); code != 0 {
		t.Errorf("nobody's check after the owner's holder was killed = %d; want 0 (its holder is gone):\n%s", code, out)
	}

	// Files the owner plants, 0600: in the lease directory, and beside a
	// database (whose lock nobody holds).
	planted := []string{
		filepath.Join(vol, lease.DirName, "0123456789abcdef.json"),
		filepath.Join(vol, "x.db"+lease.FallbackSuffix),
	}
	for _, p := range planted {
		cmd := exec.Command("sh", "-c", "umask 077 && echo '{}' > "+p)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: owner, Gid: owner}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the owner's plant of %s: %v: %s", p, err, out)
		}
	}
	code, out = runAsNobody(t, env, bin, "check", vol)
	if code != 0 {
		t.Errorf("nobody's check with the owner's planted unreadable files = %d; want 0:\n%s", code, out)
	}
	for _, p := range planted {
		if !strings.Contains(out, p) {
			t.Errorf("nobody's check does not report %s:\n%s", p, out)
		}
	}
}
