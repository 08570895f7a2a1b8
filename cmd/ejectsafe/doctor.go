package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/layout"
	"github.com/ejectsafe/ejectsafe/probe"
)

// doctorLong is doctor's help text.
const doctorLong = `Describe the filesystem holding PATH (mount, type, drive, container and
virtual machine) and say whether ejectsafe can keep its guarantee there,
then run live checks in a temporary directory it creates in PATH (or in
PATH's directory, when PATH is a file) and removes again:

  fsync   write 4 KiB and fsync, 20 times: p50 and p99 latency
  rename  write a copy, fsync it, rename it over a target, fsync the
          directory, read the target back
  lock    ejectsafe's lock is taken, refused to a second holder in this
          process, and released
  shm     (informational) two processes map one file MAP_SHARED and each
          must see the other's stores: what stock SQLite's WAL mode (the
          -shm file) needs; ejectsafe keeps its wal-index in memory and
          does not depend on it

Each finding is OK, WARN, FAIL or INFO. The verdict (overall) rests on
what the store depends on: the probe, writing, fsync, rename and lock;
INFO findings never change it. Exit 1 when a finding the store depends
on FAILs.`

// Parameters of the live checks.
const (
	fsyncSamples = 20
	fsyncBytes   = 4096
	// An fsync that returns faster than this on a block device did not
	// reach stable storage: some cache ignores flushes.
	fsyncTooFast = 20 * time.Microsecond
	// Slower than these, checkpoints stall visibly.
	fsyncSlowP50 = 250 * time.Millisecond
	fsyncSlowP99 = 2 * time.Second

	shmSize      = 4096
	shmRounds    = 100             // stores each way
	shmReadyWait = 5 * time.Second // for the child to start and map the file
	shmKillAfter = 10 * time.Second
)

// shmParentWait bounds the parent's whole exchange; the child waits a
// little longer so that, when the parent gives up, the child's report
// says which direction failed. Variables for tests.
var (
	shmParentWait = 3 * time.Second
	shmChildWait  = 4 * time.Second
)

// Finding statuses.
const (
	statusOK   = "OK"
	statusWarn = "WARN"
	statusFail = "FAIL"
	// statusInfo is a finding the store does not depend on: shown, never
	// part of the verdict.
	statusInfo = "INFO"
)

// finding is one line of the doctor's report.
type finding struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
}

// fsyncStats are the measured latencies of write+fsync.
type fsyncStats struct {
	Samples int           `json:"samples"`
	Bytes   int           `json:"bytes"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
}

// doctorReport is everything doctor found; --json prints it as is.
type doctorReport struct {
	Path                 string       `json:"path"`
	Dir                  string       `json:"dir"`
	Probe                probe.Result `json:"probe"`
	Findings             []finding    `json:"findings"`
	Fsync                *fsyncStats  `json:"fsync"`
	SharedMemoryCoherent *bool        `json:"shared_memory_coherent"`
	Overall              string       `json:"overall"`
	ExitCode             int          `json:"exit_code"`
	err                  error        // the finding: a failed check
}

func (r *doctorReport) add(check, status, format string, a ...any) {
	r.Findings = append(r.Findings, finding{check, status, fmt.Sprintf(format, a...)})
}

// doctorFS is the FS the live checks run on. Tests replace it with one
// that fails on purpose.
var doctorFS = device.OS

// mmapChildCommand returns the command that runs the other side of the
// shared-memory check: this program, re-executed with a hidden flag.
// Tests replace it (a test binary is not this program).
var mmapChildCommand = func(ctx context.Context, file string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, exe, "doctor", "--mmap-child", file), nil
}

// runDoctor runs the live probes on the filesystem holding PATH; a check
// that failed is its finding. With the hidden --mmap-child it is the
// other process of the shared-memory probe instead.
func runDoctor(in *invocation) error {
	if child := in.str("mmap-child"); child != "" {
		return runMmapChild(child, in.stdout, in.stderr)
	}
	if len(in.pos) != 1 {
		return usagef("want exactly one PATH, got %d", len(in.pos))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := doctor(ctx, in.pos[0])
	if err != nil {
		return err
	}
	if in.json {
		writeJSON(in.stdout, doctorJSON(rep))
	} else {
		printReport(in.stdout, rep)
	}
	return rep.err
}

// doctor probes path and runs the live checks. An error is operational
// (path missing, interrupted): what doctor finds about the filesystem is
// in the report, never an error.
func doctor(ctx context.Context, path string) (*doctorReport, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	dir := path
	if !fi.IsDir() {
		dir = filepath.Dir(path)
	}
	// The live checks open files as the store does, never through a
	// link (device.OS refuses one anywhere in the path on Linux): use the
	// directory's real path, as store.Open does.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	rep := &doctorReport{Path: path, Dir: dir}

	// 1. What the kernel says: mount, type, drive, environment.
	p, err := probe.Path(dir)
	if p.Notes == nil {
		p.Notes = []string{} // [] rather than null in JSON
	}
	rep.Probe = p
	if err != nil {
		rep.add("verdict", statusWarn, "could not probe the mount: %v", err)
	} else {
		ok, warnings := p.Verdict()
		switch {
		case !ok:
			// The refusal is store.Open's policy: say how a program
			// overrides it, as the store's ErrNetworkFS does.
			rep.add("verdict", statusFail, "%s (store.Options.AllowNetworkFS overrides this check, at the risk of a corrupt database)", warnings[0])
			warnings = warnings[1:]
		case len(warnings) == 0:
			rep.add("verdict", statusOK, "%s (%s) on %s: ejectsafe can keep its guarantee here", p.FSType, p.Class, p.Device)
		}
		for _, w := range warnings {
			rep.add("verdict", statusWarn, "%s", w)
		}
	}

	// 2. Live checks, in a directory of their own; nothing else is
	// touched.
	tmp, err := os.MkdirTemp(dir, layout.DoctorDirPrefix)
	if err != nil {
		rep.add("write", statusFail, "cannot create a directory in %s, so ejectsafe cannot write there either: %v", dir, err)
	} else {
		err = liveChecks(ctx, rep, tmp)
		if rerr := os.RemoveAll(tmp); rerr != nil {
			rep.add("cleanup", statusWarn, "could not remove %s: %v", tmp, rerr)
		}
		if err != nil {
			return nil, err
		}
	}

	// 3. Overall.
	rep.Overall = overall(rep.Findings)
	if rep.Overall == statusFail {
		rep.err = said(problem(errFound))
	}
	rep.ExitCode = codeOf(rep.err)
	return rep, nil
}

// overall is the verdict: the worst finding the store depends on; INFO
// findings (the shm probe) are left out.
func overall(findings []finding) string {
	v := statusOK
	for _, f := range findings {
		switch {
		case f.Status == statusFail:
			v = statusFail
		case f.Status == statusInfo:
			// not what the store depends on
		case f.Status == statusWarn && v == statusOK:
			v = statusWarn
		}
	}
	return v
}

// liveChecks runs the checks in tmp. Its error is only ctx's.
func liveChecks(ctx context.Context, rep *doctorReport, tmp string) error {
	fsys := doctorFS
	for _, check := range []func(){
		func() { checkFsync(rep, fsys, tmp) },
		func() { checkRename(rep, fsys, tmp) },
		func() { checkLock(rep, fsys, tmp) },
		func() { checkSharedMemory(ctx, rep, fsys, tmp) },
	} {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		check()
	}
	return ctx.Err()
}

// checkFsync times fsyncSamples appends of fsyncBytes, each followed by
// fsync: the pattern of a checkpoint writing its copy, and what a pull
// of the drive waits on.
func checkFsync(rep *doctorReport, fsys device.FS, dir string) {
	f, err := fsys.Create(filepath.Join(dir, "fsync"), 0o600)
	if err != nil {
		rep.add("fsync", statusFail, "create: %v", err)
		return
	}
	defer f.Close()
	buf := bytes.Repeat([]byte("ejectsafe doctor"), fsyncBytes/16)
	var samples []time.Duration
	for i := range fsyncSamples {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*fsyncBytes); err != nil {
			rep.add("fsync", statusFail, "write %d: %v", i+1, err)
			return
		}
		if err := f.Sync(); err != nil {
			// Never retried: after a failed fsync the file's durable
			// state is unknown (device.File.Sync).
			rep.add("fsync", statusFail, "fsync %d failed, so checkpoints will fail here: %v", i+1, err)
			return
		}
		samples = append(samples, time.Since(t0))
	}
	slices.Sort(samples)
	st := &fsyncStats{Samples: len(samples), Bytes: fsyncBytes, P50: percentile(samples, 50), P99: percentile(samples, 99)}
	rep.Fsync = st
	summary := fmt.Sprintf("p50 %v, p99 %v (%d writes of %d KiB, each followed by fsync)",
		roundDur(st.P50), roundDur(st.P99), st.Samples, st.Bytes/1024)
	switch {
	case st.P50 > fsyncSlowP50 || st.P99 > fsyncSlowP99:
		rep.add("fsync", statusWarn, "%s: slow; each checkpoint waits for several fsyncs, so expect stalls", summary)
	case st.P50 < fsyncTooFast && rep.Probe.Class != probe.Memory:
		rep.add("fsync", statusWarn, "%s: faster than storage can make data durable; a cache that ignores "+
			"flushes (a VM disk with cache=unsafe, eatmydata, a drive that lies) may be absorbing them", summary)
	default:
		rep.add("fsync", statusOK, "%s", summary)
	}
}

// percentile returns the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, pct int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (pct*len(sorted) + 99) / 100 // ceil(pct/100 * n)
	return sorted[max(rank, 1)-1]
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// checkRename runs ejectsafe's commit sequence once: write a target,
// write a copy, fsync it, rename it over the target, fsync the
// directory, and read the target back.
func checkRename(rep *doctorReport, fsys device.FS, dir string) {
	target, copyName := filepath.Join(dir, "target.db"), filepath.Join(dir, "target.db.copy")
	oldData, newData := []byte("old database contents\n"), []byte("new database contents, longer than the old\n")
	step := func(what string, err error) bool {
		if err == nil {
			return true
		}
		// The durable-write module names its step; the report says it
		// in the words of the sequence above.
		if re := (*device.ReplaceError)(nil); errors.As(err, &re) {
			switch re.Op {
			case device.OpRename:
				what = "rename the copy over the target"
			case device.OpSyncDir:
				what = "fsync the directory"
			}
			err = re.Err
		}
		rep.add("rename", statusFail, "%s: %v", what, err)
		return false
	}
	// The target is created durably; the copy goes through the same
	// durable-write module (package device) as a checkpoint's copy.
	if !step("write the target", device.CreateFile(fsys, target, oldData, 0o600)) {
		return
	}
	pf, err := device.CreatePending(fsys, target, copyName, 0o600, false)
	if !step("write and fsync the copy", err) {
		return
	}
	if _, err := pf.File().WriteAt(newData, 0); err != nil {
		pf.Abort()
		step("write and fsync the copy", err)
		return
	}
	if err := pf.Sync(); err != nil {
		pf.Abort()
		step("write and fsync the copy", err)
		return
	}
	if !step("rename the copy over the target", pf.Commit(nil)) {
		return
	}
	f, err := fsys.Open(target, device.ReadOnly)
	if !step("open the target", err) {
		return
	}
	defer f.Close()
	got := make([]byte, len(newData)+1)
	n, err := f.ReadAt(got, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		step("read the target back", err)
		return
	}
	if !bytes.Equal(got[:n], newData) {
		rep.add("rename", statusFail, "the target reads back %q after the rename, want %q", got[:n], newData)
		return
	}
	if _, err := fsys.Stat(copyName); !errors.Is(err, fs.ErrNotExist) {
		rep.add("rename", statusFail, "the copy is still there after the rename (stat: %v)", err)
		return
	}
	rep.add("rename", statusOK, "write copy, fsync, rename over the target, fsync directory, read back: as written")
}

// checkLock takes ejectsafe's lock, checks that a second holder is
// refused (the lock is per open file description, so a second Lock in
// this process must fail too), and that Close releases it.
func checkLock(rep *doctorReport, fsys device.FS, dir string) {
	name := filepath.Join(dir, "lock")
	l1, err := fsys.Lock(name)
	if err != nil {
		rep.add("lock", statusFail, "cannot take a lock here, so ejectsafe cannot keep a second process out: %v", err)
		return
	}
	l2, err := fsys.Lock(name)
	switch {
	case err == nil:
		l2.Close()
		l1.Close()
		rep.add("lock", statusFail, "a second holder got the lock while the first held it: this filesystem does not "+
			"enforce flock between open files (NFS, for one, turns it into per-process locks), so ejectsafe "+
			"cannot keep a second store out")
		return
	case !errors.Is(err, device.ErrLocked):
		l1.Close()
		rep.add("lock", statusFail, "the second Lock failed with %v, want a lock conflict", err)
		return
	}
	if err := l1.Close(); err != nil {
		rep.add("lock", statusFail, "release: %v", err)
		return
	}
	l3, err := fsys.Lock(name)
	if err != nil {
		rep.add("lock", statusFail, "the lock is still held after its release: %v", err)
		return
	}
	if err := l3.Close(); err != nil {
		rep.add("lock", statusFail, "release: %v", err)
		return
	}
	rep.add("lock", statusOK, "taken, refused to a second holder, released")
}

// checkSharedMemory maps a file MAP_SHARED here and in a child process
// and plays ping-pong with a counter: this process stores odd values
// and waits for the next even one, the child the other way round. Both
// see every store only if the mapping is coherent between processes.
func checkSharedMemory(ctx context.Context, rep *doctorReport, fsys device.FS, dir string) {
	coherent := false
	name := filepath.Join(dir, "shm")
	warn := func(format string, a ...any) {
		rep.add("shm", statusInfo, format+"; stock SQLite cannot use WAL mode safely here, ejectsafe keeps its "+
			"wal-index in memory and does not need shared mappings", a...)
	}
	f, err := fsys.Create(name, 0o600)
	if err == nil {
		err = f.Truncate(shmSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		rep.add("shm", statusInfo, "create %s: %v", name, err)
		return
	}
	m, err := probe.MapShared(name, shmSize)
	if errors.Is(err, errors.ErrUnsupported) {
		rep.add("shm", statusInfo, "not tested on %s", runtime.GOOS)
		return
	}
	if err != nil {
		rep.SharedMemoryCoherent = &coherent
		warn("cannot map a file shared: %v", err)
		return
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(ctx, shmKillAfter)
	defer cancel()
	cmd, err := mmapChildCommand(ctx, name)
	if err != nil {
		rep.add("shm", statusInfo, "not tested: cannot start a second process: %v", err)
		return
	}
	var childErr bytes.Buffer
	cmd.Stderr = &childErr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		rep.add("shm", statusInfo, "not tested: cannot start a second process: %v", err)
		return
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var childSaid []string
	wait := func() error {
		for l := range lines { // until the child closes stdout
			childSaid = append(childSaid, l)
		}
		return cmd.Wait()
	}

	// The child maps the file, then says "ready".
	ready := false
	deadline := time.After(shmReadyWait)
	for !ready {
		select {
		case l, ok := <-lines:
			if !ok {
				werr := wait()
				rep.add("shm", statusInfo, "not tested: the second process ended before it was ready: %v %s",
					werr, strings.TrimSpace(childErr.String()))
				return
			}
			ready = l == "ready"
			childSaid = append(childSaid, l)
		case <-deadline:
			cancel()
			wait()
			rep.add("shm", statusInfo, "not tested: the second process did not get ready in %v", shmReadyWait)
			return
		}
	}

	until := time.Now().Add(shmParentWait)
	failure := ""
	for v := uint32(1); v < 2*shmRounds; v += 2 {
		if err := m.StoreUint32(0, v); err != nil {
			failure = err.Error()
			break
		}
		last, ok, err := waitWord(m, v+1, until)
		if err != nil {
			failure = err.Error()
			break
		}
		if !ok {
			failure = fmt.Sprintf("after storing %d this process waited %v for %d and saw %d", v, shmParentWait, v+1, last)
			break
		}
	}
	werr := wait()
	var saidLines []string
	for _, l := range childSaid {
		if l != "ready" && l != "done" {
			saidLines = append(saidLines, l)
		}
	}
	said := strings.Join(saidLines, "; ")
	switch {
	case failure == "" && werr == nil:
		coherent = true
		rep.SharedMemoryCoherent = &coherent
		summary := fmt.Sprintf("coherent: two processes saw each other's %d stores", shmRounds)
		if p := rep.Probe; p.Class == probe.Network || p.Class == probe.FUSE || p.VM != "" || p.Container != "" {
			summary += " (between processes of this kernel only: a process on the host, in another VM or on " +
				"another machine sharing this folder uses a page cache of its own)"
		}
		rep.add("shm", statusInfo, "%s", summary)
	case failure == "" && werr != nil:
		rep.add("shm", statusInfo, "not concluded: the second process failed: %v %s %s", werr, said, strings.TrimSpace(childErr.String()))
	default:
		rep.SharedMemoryCoherent = &coherent
		if said != "" {
			failure += "; the other process: " + said
		}
		warn("not coherent: %s", failure)
	}
}

// waitWord polls word 0 of m until it holds want or until passes. It
// returns the last value seen.
func waitWord(m *probe.SharedMap, want uint32, until time.Time) (last uint32, ok bool, err error) {
	for i := 0; ; i++ {
		last, err = m.LoadUint32(0)
		if err != nil || last == want {
			return last, err == nil, err
		}
		if time.Now().After(until) {
			return last, false, nil
		}
		if i < 1000 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// runMmapChild is the child side of checkSharedMemory (doctor
// --mmap-child FILE): map FILE, say "ready", then answer each odd
// counter value with the next even one. It reports on stdout and
// succeeds when every round went through; a wait that timed out is its
// finding (exit 1); an error exits 2.
func runMmapChild(file string, stdout, stderr io.Writer) error {
	fail := func(err error) error {
		fmt.Fprintf(stderr, "ejectsafe doctor --mmap-child: %v\n", err)
		return said(err)
	}
	m, err := probe.MapShared(file, shmSize)
	if err != nil {
		return fail(err)
	}
	defer m.Close()
	fmt.Fprintln(stdout, "ready")
	until := time.Now().Add(shmChildWait)
	for v := uint32(1); v < 2*shmRounds; v += 2 {
		last, ok, err := waitWord(m, v, until)
		if err != nil {
			return fail(err)
		}
		if !ok {
			fmt.Fprintf(stdout, "waited %v for %d and saw %d\n", shmChildWait, v, last)
			return said(problem(fmt.Errorf("waited %v for %d and saw %d", shmChildWait, v, last)))
		}
		if err := m.StoreUint32(0, v+1); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintln(stdout, "done")
	return nil
}

// printReport writes rep for people.
func printReport(w io.Writer, rep *doctorReport) {
	p := rep.Probe
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	orNone := func(s string) string {
		if s == "" {
			return "none found"
		}
		return s
	}
	fmt.Fprintf(w, "path:           %s\n", rep.Path)
	if p.Path != "" && p.Path != rep.Path {
		fmt.Fprintf(w, "probed:         %s\n", p.Path)
	}
	fmt.Fprintf(w, "mount point:    %s\n", p.MountPoint)
	fmt.Fprintf(w, "device:         %s\n", p.Device)
	fmt.Fprintf(w, "filesystem:     %s (%s)\n", p.FSType, p.Class)
	fmt.Fprintf(w, "mount options:  %s\n", strings.Join(p.MountOptions, ","))
	fmt.Fprintf(w, "read-only:      %s\n", yesNo(p.ReadOnly))
	fmt.Fprintf(w, "removable:      %s\n", yesNo(p.Removable))
	fmt.Fprintf(w, "usb:            %s\n", yesNo(p.USB))
	fmt.Fprintf(w, "container:      %s\n", orNone(p.Container))
	fmt.Fprintf(w, "vm:             %s\n", orNone(p.VM))
	for _, n := range p.Notes {
		fmt.Fprint(w, wrap("note:           ", n))
	}
	fmt.Fprintln(w)
	counts := map[string]int{}
	for _, f := range rep.Findings {
		counts[f.Status]++
		fmt.Fprint(w, wrap(fmt.Sprintf("%-5s %-8s ", f.Status, f.Check), f.Summary))
	}
	fmt.Fprintf(w, "\noverall: %s (%d FAIL, %d WARN, %d OK)\n",
		rep.Overall, counts[statusFail], counts[statusWarn], counts[statusOK])
}

// wrap formats text after prefix, breaking lines at 80 columns and
// indenting continuation lines under the text.
func wrap(prefix, text string) string {
	const width = 80
	var b strings.Builder
	indent := strings.Repeat(" ", len(prefix))
	line, empty := prefix, true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}
