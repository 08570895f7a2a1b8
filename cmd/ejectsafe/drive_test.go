package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/lease"
)

// Tests of check and eject through the built binary, on real exFAT and
// FAT loop mounts where the point is about a drive.

const (
	writerEnv = "EJECTSAFE_TEST_WRITER" // a file to hold open for writing
	waitEnv   = "EJECTSAFE_HOLDER_WAIT" // markers a holder waits for before releasing
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// cli builds ejectsafe once per test run and returns its path. Where the
// test binary cannot run go (under Wine), EJECTSAFE_TEST_CLI names the
// CLI built for this platform beforehand (.ci/cross does).
func cli(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EJECTSAFE_TEST_CLI"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ejectsafe-cli-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ejectsafe")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runBin runs the built binary with env added and returns its exit code,
// stdout and stderr.
func runBin(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(cli(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// runWriter is a process holding a file open for writing, with
// unflushed-looking data in it, until killed.
func runWriter(file string) int {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	f.WriteString("a document being written\n")
	fmt.Println("ready", os.Getpid())
	for {
		time.Sleep(time.Second)
	}
}

// startWriter starts a writer process on file and waits until it holds it.
func startWriter(t *testing.T, file string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+file)
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
		t.Fatalf("writer: %q, %v", line, err)
	}
	return cmd
}

func stopProc(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Kill()
	cmd.Wait()
}

// alive reports whether the process has not exited (it is not reaped
// while a test holds it, so a zombie counts as dead).
func alive(cmd *exec.Cmd) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// fuserPIDs is what the stock fuser -m says of mp: an independent reader.
func fuserPIDs(t *testing.T, mp string) []int {
	t.Helper()
	bin, err := exec.LookPath("fuser")
	if err != nil {
		t.Logf("fuser not installed: no independent cross-check")
		return nil
	}
	out, _ := exec.Command(bin, "-m", mp).Output() // pids on stdout; exit 1 when none
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(strings.TrimRight(f, "cefFrmn")); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func contains(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// TestCheck_openFile is the acceptance test: a process holds a file open
// for writing on a real exFAT or FAT volume, and check exits 1 naming it
// (as fuser -m does); once it is gone, check exits 0 and says the cached
// writes were flushed.
func TestCheck_openFile(t *testing.T) {
	for _, kind := range realfs.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			vol, err := realfs.New(t, realfs.Options{Kind: kind, SizeMiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			if code, out, errs := runBin(t, nil, "check", vol.Mount); code != 0 || !strings.Contains(out, "safe to remove") {
				t.Fatalf("check of an idle volume = %d:\n%s%s", code, out, errs)
			}
			file := filepath.Join(vol.Mount, "notes.txt")
			w := startWriter(t, file)
			pid := w.Process.Pid
			code, out, errs := runBin(t, nil, "check", vol.Mount)
			if code != 1 || !strings.Contains(out, fmt.Sprintf("pid %d", pid)) || !strings.Contains(out, file) ||
				!strings.Contains(out, "not safe to remove") {
				t.Fatalf("check with pid %d writing %s = %d; want 1 naming it:\n%s%s", pid, file, code, out, errs)
			}
			if f := fuserPIDs(t, vol.Mount); f != nil && !contains(f, pid) {
				t.Errorf("fuser -m names %v, not the writer %d: the cross-check itself is wrong", f, pid)
			}
			// The same in JSON, flag after PATH.
			code, out, _ = runBin(t, nil, "check", vol.Mount, "--json")
			var js checkOut
			if err := json.Unmarshal([]byte(out), &js); err != nil {
				t.Fatalf("check --json: %v\n%s", err, out)
			}
			if code != 1 || js.ExitCode != 1 || js.Safe || len(js.Users) != 1 || js.Users[0].PID != pid ||
				len(js.Users[0].Files) != 1 || js.Users[0].Files[0] != file || len(js.Reasons) == 0 || !js.Volume.Mounted {
				t.Fatalf("check --json = %d: %+v", code, js)
			}
			stopProc(t, w)
			// A process whose working directory is on the volume keeps it
			// busy too (umount would fail), and is named.
			sh := exec.Command("sleep", "60")
			sh.Dir = vol.Mount
			if err := sh.Start(); err != nil {
				t.Fatal(err)
			}
			code, out, _ = runBin(t, nil, "check", vol.Mount)
			stopProc(t, sh)
			if want := fmt.Sprintf("pid %d (sleep): cwd: %s", sh.Process.Pid, vol.Mount); code != 1 || !strings.Contains(out, want) {
				t.Fatalf("check with a working directory on the volume = %d; want 1 and %q:\n%s", code, want, out)
			}
			code, out, errs = runBin(t, nil, "check", vol.Mount)
			if code != 0 || !strings.Contains(out, "cached writes flushed") {
				t.Fatalf("check after the writer exited = %d:\n%s%s", code, out, errs)
			}
			// "Safe" is true of the drive: a pull right after it loses
			// nothing the writer wrote (without check's sync, the data
			// sits in the device's cache, which a pull loses).
			if err := vol.Pull(); err != nil {
				t.Fatal(err)
			}
			if err := vol.Remount(); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != "a document being written\n" {
				t.Fatalf("after check said safe and the drive was pulled: %q, %v", b, err)
			}
		})
	}
}

// TestEject_exfat: a full eject of a real exFAT volume. Busy processes
// are found before any holder is asked (the holder keeps its database);
// --force goes on, the holder releases, the unmount fails busy, and
// check afterwards is not safe; once the file is closed, eject unmounts
// (exit 0) and check says nothing is mounted there.
func TestEject_exfat(t *testing.T) {
	realfs.Skip(t, realfs.ExFAT)
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT, SizeMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(vol.Mount, "app.db")
	holder := startHolder(t, db, "")
	w := startWriter(t, filepath.Join(vol.Mount, "notes.txt"))
	wpid := strconv.Itoa(w.Process.Pid)

	// 1. Busy: refused before the holder is asked.
	code, out, errs := runBin(t, nil, "eject", vol.Mount)
	if code != 1 || !strings.Contains(errs, "busy") || !strings.Contains(errs, "pid "+wpid) || strings.Contains(out, "asking") {
		t.Fatalf("eject with a file open = %d; want 1 naming pid %s before asking anyone:\n%s%s", code, wpid, out, errs)
	}
	time.Sleep(200 * time.Millisecond)
	if !alive(holder) || !mounted(t, vol.Mount) {
		t.Fatalf("a refused eject changed something: holder alive %v, mounted %v", alive(holder), mounted(t, vol.Mount))
	}
	if code, out, _ := runBin(t, nil, "status", vol.Mount); code != 0 || !strings.Contains(out, "not checkpointed") {
		t.Fatalf("the holder lost its store to a refused eject: status = %d:\n%s", code, out)
	}

	// 2. --force: the holder releases, the unmount fails busy, named.
	code, out, errs = runBin(t, nil, "eject", "--force", "--json", vol.Mount)
	var js ejectOut
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("eject --json: %v\n%s%s", err, out, errs)
	}
	if code != 1 || js.ExitCode != 1 || js.Unmounted || len(js.Holders) != 1 || js.Holders[0].Result != "released" ||
		js.Holders[0].PID != holder.Process.Pid || !strings.Contains(js.Error, "busy") || !strings.Contains(js.Error, "pid "+wpid) {
		t.Fatalf("eject --force with a file open = %d: %+v\n%s", code, js, errs)
	}
	if c := exitCode(t, holder, 30*time.Second); c != 0 {
		t.Fatalf("holder exit %d", c)
	}
	if !mounted(t, vol.Mount) {
		t.Fatalf("%s unmounted although busy", vol.Mount)
	}
	// After an eject whose unmount failed as busy, check is not safe.
	if code, out, _ := runBin(t, nil, "check", vol.Mount); code != 1 || !strings.Contains(out, "pid "+wpid) {
		t.Fatalf("check after a busy unmount = %d; want 1 naming %s:\n%s", code, wpid, out)
	}

	// 3. Nothing open: unmounted, exit 0.
	stopProc(t, w)
	code, out, errs = runBin(t, nil, "eject", vol.Mount)
	if code != 0 || !strings.Contains(out, "unmounted") {
		t.Fatalf("eject = %d:\n%s%s", code, out, errs)
	}
	if mounted(t, vol.Mount) {
		t.Fatalf("%s still mounted after eject", vol.Mount)
	}
	if code, out, _ := runBin(t, nil, "check", vol.Mount); code != 0 || !strings.Contains(out, "no volume is mounted") {
		t.Fatalf("check after eject = %d:\n%s", code, out)
	}
	// Everything the holder committed reached the image.
	if err := vol.Remount(); err != nil {
		t.Fatal(err)
	}
	if got := cliRead(t, db, "SELECT count(*) FROM t; PRAGMA integrity_check"); got != fmt.Sprintf("%d\nok", holdRows) {
		t.Fatalf("sqlite3 reads %q", got)
	}
}

// TestEject_notRemovable: a path below the mount point of a volume the
// kernel does not call removable (a loop device, a tmpfs) is refused
// with exit 2 and nothing done; its mount point, or --force, is not.
func TestEject_notRemovable(t *testing.T) {
	realfs.Skip(t, realfs.VFAT)
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.VFAT, SizeMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(vol.Mount, "photos")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	holder := startHolder(t, filepath.Join(sub, "app.db"), "")
	code, out, errs := runBin(t, nil, "eject", sub)
	if code != 2 || !strings.Contains(errs, "not report as removable") || !strings.Contains(errs, vol.Mount) || strings.Contains(out, "asking") {
		t.Fatalf("eject of a subdirectory of a non-removable volume = %d:\n%s%s", code, out, errs)
	}
	time.Sleep(200 * time.Millisecond)
	if !alive(holder) || !mounted(t, vol.Mount) {
		t.Fatalf("a refused eject changed something")
	}
	code, out, errs = runBin(t, nil, "eject", "--json", vol.Mount)
	if code != 0 || mounted(t, vol.Mount) {
		t.Fatalf("eject of the mount point = %d:\n%s%s", code, out, errs)
	}
	var js ejectOut
	if err := json.Unmarshal([]byte(out), &js); err != nil || !js.Unmounted || js.UnmountMethod == "" ||
		len(js.Holders) != 1 || js.Holders[0].Result != "released" {
		t.Fatalf("eject --json = %+v, %v", js, err)
	}
	if c := exitCode(t, holder, 30*time.Second); c != 0 {
		t.Fatalf("holder exit %d", c)
	}

	t.Run("tmpfs", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("SKIP LOUDLY: mounting a tmpfs needs root")
		}
		mp := t.TempDir()
		mountTmpfs(t, mp)
		sub := filepath.Join(mp, "sub")
		os.Mkdir(sub, 0o755)
		if code, out, errs := runBin(t, nil, "eject", sub); code != 2 || !mounted(t, mp) {
			t.Fatalf("eject of a tmpfs subdirectory = %d (mounted %v):\n%s%s", code, mounted(t, mp), out, errs)
		}
		if code, out, errs := runBin(t, nil, "eject", "--force", sub); code != 0 || mounted(t, mp) {
			t.Fatalf("eject --force of a tmpfs subdirectory = %d (mounted %v):\n%s%s", code, mounted(t, mp), out, errs)
		}
	})
}

// fakeUdisks puts a udisksctl on PATH that answers as udisksctl does when
// its daemon is not running, and returns the PATH to use. (udisks2 is not
// installed in CI; the real client without a daemon fails the same way.)
func fakeUdisks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\necho \"Error connecting to the udisks daemon: Could not connect: No such file or directory\" >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, udisksctl), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// TestEject_udisks: without udisksctl, --power-off is refused before
// anything is done; with a udisksctl whose daemon is absent, --power-off
// is refused the same way and a plain eject falls back to umount(2).
func TestEject_udisks(t *testing.T) {
	realfs.Skip(t, realfs.ExFAT)
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT, SizeMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	holder := startHolder(t, filepath.Join(vol.Mount, "app.db"), "")
	noUdisks := []string{"PATH=" + t.TempDir()} // nothing on PATH: no udisksctl
	if _, err := exec.LookPath(udisksctl); err == nil {
		t.Logf("udisksctl is installed; the first case runs with an empty PATH")
	}
	for _, env := range [][]string{noUdisks, {"PATH=" + fakeUdisks(t)}} {
		code, out, errs := runBin(t, env, "eject", "--power-off", vol.Mount)
		if code != 2 || !strings.Contains(errs, "nothing was done") || strings.Contains(out, "asking") {
			t.Fatalf("eject --power-off (%s) = %d:\n%s%s", env, code, out, errs)
		}
		time.Sleep(200 * time.Millisecond)
		if !alive(holder) || !mounted(t, vol.Mount) {
			t.Fatalf("a refused --power-off changed something")
		}
	}
	code, out, errs := runBin(t, []string{"PATH=" + fakeUdisks(t)}, "eject", "--json", vol.Mount)
	var js ejectOut
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errs)
	}
	if code != 0 || !js.Unmounted || js.UnmountMethod != "umount" || mounted(t, vol.Mount) {
		t.Fatalf("eject with a daemonless udisksctl = %d: %+v\n%s", code, js, errs)
	}
}

// TestEject_parallel: holders are asked all at once under one --timeout.
// Each holder releases only once every holder has been asked, so asking
// them in turn would time out.
func TestEject_parallel(t *testing.T) {
	dir := t.TempDir()
	var dbs, markers []string
	for i := range 3 {
		dbs = append(dbs, filepath.Join(dir, fmt.Sprintf("db%d.db", i)))
		markers = append(markers, dbs[i]+".asked")
	}
	var holders []*exec.Cmd
	for i, db := range dbs {
		holders = append(holders, startHolderEnv(t, db, waitEnv+"="+markers[i]+"|"+strings.Join(markers, ",")))
	}
	code, out, errs := runBin(t, nil, "eject", "--no-unmount", "--timeout", "8s", "--json", dir)
	var js ejectOut
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errs)
	}
	if code != 0 || len(js.Holders) != 3 {
		t.Fatalf("eject of 3 holders that wait for each other = %d: %+v\n%s", code, js, errs)
	}
	for _, h := range js.Holders {
		if h.Result != "released" {
			t.Errorf("holder %+v", h)
		}
	}
	for _, h := range holders {
		if c := exitCode(t, h, 30*time.Second); c != 0 {
			t.Errorf("holder exit %d", c)
		}
	}
}

// TestEject_forceExitsZero: --force past a holder that refuses exits 0
// once the unmount succeeded. The refusing holder is this test process,
// through a lease it writes with an endpoint of its own, so it keeps no
// file open on the volume.
func TestEject_forceExitsZero(t *testing.T) {
	realfs.Skip(t, realfs.VFAT)
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.VFAT, SizeMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(vol.Mount, "app.db")
	srv, err := lease.Listen(refuser{db: db})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	me, err := lease.Me()
	if err != nil {
		t.Fatal(err)
	}
	place := lease.PlaceFor(device.OS, db)
	l := lease.Lease{Version: lease.Version, DB: place.DB, PID: me.PID, Start: me.Start, Host: me.Host, Boot: me.Boot,
		State: lease.StateOpen, Endpoint: srv.Endpoint(), Since: time.Now().UTC().Truncate(time.Second)}
	if err := lease.Write(device.OS, place.Path, l); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runBin(t, nil, "eject", vol.Mount)
	if code != 1 || !strings.Contains(errs, "refused: not now") || !mounted(t, vol.Mount) {
		t.Fatalf("eject with a refusing holder = %d:\n%s%s", code, out, errs)
	}
	code, out, errs = runBin(t, nil, "eject", "--force", vol.Mount)
	if code != 0 || mounted(t, vol.Mount) || !strings.Contains(out, "refused: not now") {
		t.Fatalf("eject --force = %d (mounted %v); want 0 after the unmount:\n%s%s", code, mounted(t, vol.Mount), out, errs)
	}
}

// refuser holds db (its status says so, as a Store's does: an eject
// trusts a holder only for the database it names) and refuses to let go.
type refuser struct{ db string }

func (r refuser) Status() lease.Status { return lease.Status{DB: r.db, State: lease.StateOpen} }
func (refuser) Eject(context.Context) error {
	return &lease.RefusedError{Reason: "not now"}
}

// TestDoctor_fat: doctor's verdict on FAT rests on what the store
// depends on; the shared-memory probe is informational.
func TestDoctor_fat(t *testing.T) {
	realfs.Skip(t, realfs.VFAT)
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.VFAT, SizeMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runBin(t, nil, "doctor", "--json", vol.Mount)
	var js doctorOut
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errs)
	}
	t.Logf("doctor on FAT: exit %d, overall %s, findings %+v", code, js.Overall, js.Findings)
	for _, f := range js.Findings {
		if f.Check == "shm" && f.Status != "info" {
			t.Errorf("shm finding %+v; want info", f)
		}
		if f.Status == "fail" && f.Check != "shm" {
			t.Errorf("FAT fails %s, which the store depends on: %+v", f.Check, f)
		}
	}
	if code != 0 || js.Overall == "fail" {
		t.Fatalf("doctor on FAT = %d, overall %s:\n%s", code, js.Overall, errs)
	}
}

// TestCheck_device: check and eject accept the block device: mounted,
// its mount is checked (a writer named); not mounted, it is safe and
// eject has nothing to do.
func TestCheck_device(t *testing.T) {
	realfs.Skip(t, realfs.ExFAT) // fusefat shows "fusefat" as the mount's source, not the device
	vol, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT, SizeMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	dev := vol.Device
	w := startWriter(t, filepath.Join(vol.Mount, "notes.txt"))
	code, out, errs := runBin(t, nil, "check", dev)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("pid %d", w.Process.Pid)) || !strings.Contains(out, vol.Mount) {
		t.Fatalf("check %s with a writer on its mount = %d:\n%s%s", dev, code, out, errs)
	}
	stopProc(t, w)
	if code, out, errs := runBin(t, nil, "eject", dev); code != 0 || mounted(t, vol.Mount) {
		t.Fatalf("eject %s = %d:\n%s%s", dev, code, out, errs)
	}
	code, out, errs = runBin(t, nil, "check", "--json", dev)
	var js checkOut
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != 0 || !js.Safe || js.Volume.Mounted || js.Volume.Device != dev {
		t.Fatalf("check %s after the unmount = %d, %+v, %v\n%s", dev, code, js, err, errs)
	}
	if code, out, errs := runBin(t, nil, "eject", dev); code != 0 || !strings.Contains(out, "not mounted") {
		t.Fatalf("eject of an unmounted %s = %d:\n%s%s", dev, code, out, errs)
	}
}
