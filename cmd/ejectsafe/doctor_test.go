package main

import (
	"bytes"
	"context"
	"encoding/json"
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
)

// childEnv names the file the helper process maps; set only in the
// environment of a child that TestDoctor_mmapChildHelper should act as.
const childEnv = "EJECTSAFE_DOCTOR_TEST_CHILD"

// TestDoctor_mmapChildHelper is not a test: it is the other process of
// the shm check when the parent is a test binary (which is not the
// ejectsafe program, so it cannot be re-executed as one).
func TestDoctor_mmapChildHelper(t *testing.T) {
	file := os.Getenv(childEnv)
	if file == "" {
		t.Skip("helper process for the shm check")
	}
	if os.Getenv(childEnv+"_LONELY") != "" {
		shmChildWait = 400 * time.Millisecond
	}
	os.Exit(run([]string{"doctor", "--mmap-child", file}, os.Stdout, os.Stderr))
}

// useTestChild makes doctor start this test binary as its shm child.
// With lonely set, the child maps a file of its own instead of the
// parent's: two mappings that never see each other, as on a filesystem
// whose shared mappings are not coherent.
func useTestChild(t *testing.T, lonely bool) {
	t.Helper()
	old := mmapChildCommand
	mmapChildCommand = func(ctx context.Context, file string) (*exec.Cmd, error) {
		if lonely {
			file = filepath.Join(t.TempDir(), "other-shm")
			if err := os.WriteFile(file, make([]byte, shmSize), 0o600); err != nil {
				return nil, err
			}
		}
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDoctor_mmapChildHelper$")
		cmd.Env = append(os.Environ(), childEnv+"="+file)
		if lonely {
			cmd.Env = append(cmd.Env, childEnv+"_LONELY=1")
		}
		return cmd, nil
	}
	t.Cleanup(func() { mmapChildCommand = old })
}

// runDoctorCmd runs `ejectsafe doctor args...` and returns its exit code
// and outputs.
func runDoctorCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"doctor"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// statuses maps each check to the statuses it reported.
func statuses(rep *doctorOut) map[string][]string {
	m := map[string][]string{}
	for _, f := range rep.Findings {
		m[f.Check] = append(m[f.Check], f.Status)
	}
	return m
}

// assertLeftNothing fails if doctor left anything in dir.
func assertLeftNothing(t *testing.T, dir string) {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		t.Errorf("doctor left %s behind", filepath.Join(dir, n.Name()))
	}
}

func TestRun_doctor(t *testing.T) {
	useTestChild(t, false)
	dir := t.TempDir()
	code, out, errOut := runDoctorCmd(t, dir)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("\n%s", out)
	shmWant := "INFO  shm      coherent: "
	if runtime.GOOS == "windows" { // probe_mmap_other.go: no shared-mapping probe there
		shmWant = "INFO  shm      not tested on windows"
	}
	for _, want := range []string{
		"path:           " + dir + "\n",
		"mount point:    ",
		"OK    rename   ",
		"OK    lock     taken, refused to a second holder, released\n",
		shmWant,
		"overall: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// fsync may warn on a machine whose disk cache ignores flushes; it
	// must not fail.
	if !strings.Contains(out, "OK    fsync    p50 ") && !strings.Contains(out, "WARN  fsync    p50 ") {
		t.Errorf("output lacks an fsync line")
	}
	assertLeftNothing(t, dir)
}

func TestRun_doctorJSON(t *testing.T) {
	useTestChild(t, false)
	dir := t.TempDir()
	file := filepath.Join(dir, "app.db")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file: its directory is probed. --json after PATH is accepted.
	code, out, errOut := runDoctorCmd(t, file, "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	for _, key := range []string{"schema", "command", "exit_code", "path", "dir", "volume", "findings", "fsync", "shared_memory_coherent", "overall"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	var rep struct {
		doctorOut
		Volume map[string]any `json:"volume"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"path", "mounted", "mount_point", "device", "fs_type", "mount_options", "read_only",
		"removable", "usb", "class", "container", "vm", "notes"} {
		if _, ok := rep.Volume[key]; !ok {
			t.Errorf("JSON volume lacks %q", key)
		}
	}
	if rep.Path != file || rep.Dir != dir {
		t.Errorf("path, dir = %q, %q; want %q, %q", rep.Path, rep.Dir, file, dir)
	}
	if rep.Fsync == nil || rep.Fsync.Samples != fsyncSamples || rep.Fsync.Bytes != 4096 ||
		rep.Fsync.P50NS <= 0 || rep.Fsync.P99NS < rep.Fsync.P50NS {
		t.Errorf("fsync = %+v", rep.Fsync)
	}
	checks := []string{"rename", "lock", "shm"}
	if runtime.GOOS == "windows" { // no shared-mapping probe there
		checks = checks[:2]
		if rep.SharedMemoryCoherent != nil {
			t.Errorf("shared_memory_coherent = %v on windows, where it is not probed", *rep.SharedMemoryCoherent)
		}
	} else if rep.SharedMemoryCoherent == nil || !*rep.SharedMemoryCoherent {
		t.Errorf("shared_memory_coherent = %v, want true", rep.SharedMemoryCoherent)
	}
	st := statuses(&rep.doctorOut)
	want := map[string]string{"rename": "ok", "lock": "ok", "shm": "info"}
	if runtime.GOOS == "windows" {
		delete(want, "shm")
	}
	for check, want := range want {
		if got := st[check]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v, want [%s]", check, got, want)
		}
	}
	if rep.Overall == "fail" || rep.ExitCode != 0 || rep.Schema != schemaVersion || rep.Command != "doctor" {
		t.Errorf("overall %s, exit_code %d", rep.Overall, rep.ExitCode)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("doctor touched PATH: %v", err)
	}
}

func TestRun_doctorIncoherent(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no shared mappings on windows yet")
	}
	useTestChild(t, true)
	old := shmParentWait
	shmParentWait = 300 * time.Millisecond
	t.Cleanup(func() { shmParentWait = old })
	code, out, errOut := runDoctorCmd(t, t.TempDir(), "--json")
	if code != 0 {
		t.Fatalf("exit %d (incoherence is a warning)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep doctorOut
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.SharedMemoryCoherent == nil || *rep.SharedMemoryCoherent {
		t.Errorf("shared_memory_coherent = %v, want false", rep.SharedMemoryCoherent)
	}
	var shm string
	for _, f := range rep.Findings {
		if f.Check == "shm" {
			shm = f.Status + " " + f.Summary
		}
	}
	for _, want := range []string{"info not coherent: after storing 1 this process waited", "the other process: waited", "for 1 and saw 0"} {
		if !strings.Contains(shm, want) {
			t.Errorf("shm finding %q lacks %q", shm, want)
		}
	}
	// The store does not depend on shared mappings: the verdict is that
	// of the other findings alone.
	want := "ok"
	for _, f := range rep.Findings {
		if f.Check != "shm" && f.Status == "warn" {
			want = "warn"
		}
	}
	if rep.Overall != want {
		t.Errorf("overall = %s, want %s (shm must not count)", rep.Overall, want)
	}
}

// syncFailFS is device.OS with an fsync that always fails, as on a
// drive that went away.
type syncFailFS struct{ device.FS }

func (s syncFailFS) Create(name string, perm os.FileMode) (device.File, error) {
	f, err := s.FS.Create(name, perm)
	if err != nil {
		return nil, err
	}
	return syncFailFile{f}, nil
}

type syncFailFile struct{ device.File }

func (syncFailFile) Sync() error { return &os.PathError{Op: "fsync", Path: "fake", Err: syscall.EIO} }

func TestRun_doctorFail(t *testing.T) {
	useTestChild(t, false)
	old := doctorFS
	doctorFS = syncFailFS{device.OS}
	t.Cleanup(func() { doctorFS = old })
	dir := t.TempDir()
	code, out, errOut := runDoctorCmd(t, dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	flat := strings.Join(strings.Fields(out), " ") // undo the wrapping
	for _, want := range []string{
		"FAIL fsync fsync 1 failed, so checkpoints will fail here: fsync fake: input/output error",
		"FAIL rename write the target: fsync fake: input/output error",
		"overall: FAIL (2 FAIL, ",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	assertLeftNothing(t, dir)
}

func TestRun_doctorUsage(t *testing.T) {
	code, out, errOut := runDoctorCmd(t, "--help")
	if code != 0 || errOut != "" {
		t.Errorf("doctor --help: exit %d, stderr %q", code, errOut)
	}
	golden(t, "doctor_usage.golden", out)

	// Usage and operational errors: exit 2, a message on stderr, nothing
	// on stdout (without --json).
	missing := filepath.Join(string(filepath.Separator), "nonexistent-ejectsafe-doctor", "app.db")
	var all strings.Builder
	for _, args := range [][]string{
		{},
		{"/tmp", "/var"},
		{"--frobnicate", "/tmp"},
		{"--json=maybe", "/tmp"},
		{missing},
	} {
		code, out, errOut := runDoctorCmd(t, args...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("doctor %q: exit %d, stdout %q, stderr %q; want 2, nothing, a message", args, code, out, errOut)
		}
		fmt.Fprintf(&all, "$ ejectsafe doctor %s\nexit %d\n%s\n", strings.Join(args, " "), code, errOut)
	}
	if runtime.GOOS == "linux" {
		golden(t, "doctor_errors.golden", all.String())
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 20; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct{ pct, want int }{{50, 10}, {99, 20}, {100, 20}, {5, 1}, {1, 1}} {
		if got := percentile(d, tt.pct); got != d[tt.want-1] {
			t.Errorf("percentile(1..20, %d) = %v, want %v", tt.pct, got, d[tt.want-1])
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v", got)
	}
}

func TestWrap(t *testing.T) {
	got := wrap("WARN  probe    ", strings.Repeat("word ", 30))
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("wrap made %d lines: %q", len(lines), got)
	}
	for i, l := range lines {
		if len(l) > 80 {
			t.Errorf("line %d is %d columns: %q", i, len(l), l)
		}
		if i > 0 && !strings.HasPrefix(l, strings.Repeat(" ", 15)+"word") {
			t.Errorf("line %d not indented under the text: %q", i, l)
		}
	}
	if got := wrap("note: ", ""); got != "note: \n" {
		t.Errorf("wrap of nothing = %q", got)
	}
}

// TestDoctor_overall: the verdict is the worst finding the store depends
// on; an informational finding never changes it.
func TestDoctor_overall(t *testing.T) {
	for _, tc := range []struct {
		statuses []string
		want     string
	}{
		{[]string{statusOK, statusOK, statusInfo}, statusOK},
		{[]string{statusOK, statusWarn, statusInfo}, statusWarn},
		{[]string{statusOK, statusFail, statusInfo}, statusFail},
		{[]string{statusWarn, statusFail}, statusFail},
		{[]string{statusInfo}, statusOK},
		{nil, statusOK},
	} {
		var fs []finding
		for i, s := range tc.statuses {
			fs = append(fs, finding{Check: fmt.Sprint("c", i), Status: s})
		}
		if got := overall(fs); got != tc.want {
			t.Errorf("overall(%v) = %s; want %s", tc.statuses, got, tc.want)
		}
	}
}

// TestRun_doctorThroughLink: doctor of a directory reached through a
// symbolic link runs its live checks in the real directory. device.OS
// refuses a link anywhere in a path it opens (issue 17), so without
// resolving first every live check failed ("FAIL  rename", "FAIL  lock").
func TestRun_doctorThroughLink(t *testing.T) {
	useTestChild(t, false)
	top := t.TempDir()
	real := filepath.Join(top, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(top, "link")
	symlink(t, real, link)
	code, out, errOut := runDoctorCmd(t, link)
	if code != 0 || strings.Contains(out, "FAIL  ") || !strings.Contains(out, "OK    lock ") {
		t.Fatalf("doctor through a link = %d:\n%s%s", code, out, errOut)
	}
	assertLeftNothing(t, real)
}
