//go:build linux

package yank

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// phase is one database size of a yank subtest: its own volume, a
// preloaded database, and pulls rounds.
type phase struct {
	preloadMiB int
	volumeMiB  int
	pulls      int
}

// rowBytes is the size of every row's blob.
const rowBytes = 1000

// batchRows is the rows of one grow batch: 256 KiB, or 1/256 of the
// preload, so the database grows by at most a few batches per round.
func (p phase) batchRows() int { return max(256, p.preloadMiB<<20/256/rowBytes) }

// churnRows is the rows of one churn batch: half a grow batch, one row in
// 32 of the preload, each on a page of its own. An in-place checkpoint
// writes about twice the dirty pages, so Auto picks it over the copy for
// both kinds of batch (checkpoint's chooseMode); on FAT a grow batch
// copies whatever the mode (the store never grows a file in place on
// fusefat), so both arms switch between the modes there.
func (p phase) churnRows() int { return p.batchRows() / 2 }

// phases is the plan of a target on a filesystem: the default keeps CI
// short (20 pulls, 4 MiB databases); -yank.full runs hundreds of pulls
// up to 256 MiB, and for the store in Auto and in place a few at 1 GiB on
// a volume with less free space than the database (so only the in-place
// checkpoint fits; 5 + 5 pulls took 4 min on 2026-12-03, README). On FAT
// it stops at 64 MiB:
// fusefat walks a file's cluster chain from its start on every access,
// so a 256 MiB database takes minutes per round there.
func phases(kind realfs.Kind, tgt target) []phase {
	var ps []phase
	switch {
	case *flagFull && tgt.isStore():
		ps = []phase{{4, 256, 120}, {64, 384, 60}, {256, 1024, 20}}
		if tgt != targetCopy {
			ps = append(ps, phase{1024, 1536, 5})
		}
	case *flagFull:
		ps = []phase{{4, 256, 40}, {64, 384, 20}, {256, 1024, 10}}
	default:
		ps = []phase{{4, 64, 20}}
	}
	if kind == realfs.VFAT {
		ps = slices.DeleteFunc(ps, func(p phase) bool { return p.preloadMiB > 64 })
	}
	if *flagPulls > 0 {
		for i := range ps {
			ps[i].pulls = *flagPulls
		}
	}
	return ps
}

// volumeMiB is the image size for a phase. FAT volumes get at least
// 320 MiB, so that mkfs.vfat picks 4 KiB clusters as on a real stick
// (below 260 MiB it picks 512 bytes): fusefat walks a file's cluster
// chain from its start on every read, and with 512-byte clusters an
// integrity_check of a 4 MiB database takes seconds. The image is
// sparse; Pull copies only what was written.
func volumeMiB(kind realfs.Kind, p phase) int {
	if kind == realfs.VFAT {
		return max(p.volumeMiB, 320)
	}
	return p.volumeMiB
}

// TestYank pulls the drive under a process that commits and
// checkpoints, at seeded random moments weighted to fall inside
// checkpoints, then remounts and checks what is on the drive. For the
// store every check is an assertion; for plain SQLite (wal-normal,
// delete-full) the outcomes are counted for the summary, never failed.
func TestYank(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	for _, kind := range kinds() {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			for _, tgt := range targets {
				if *flagTargets == "" && !tgt.byDefault() ||
					*flagTargets != "" && !strings.Contains(","+*flagTargets+",", ","+string(tgt)+",") {
					continue
				}
				t.Run(string(tgt), func(t *testing.T) {
					for _, p := range phases(kind, tgt) {
						t.Run(fmt.Sprintf("%dMiB", p.preloadMiB), func(t *testing.T) {
							start := time.Now()
							runPhase(t, kind, tgt, p)
							record(kind, tgt, func(tl *tally) { tl.elapsed += time.Since(start) })
						})
					}
				})
			}
		})
	}
}

// runner drives the rounds of one phase.
type runner struct {
	t        *testing.T
	kind     realfs.Kind
	tgt      target
	p        phase
	vol      *realfs.Volume
	path     string
	preload  string // the preloaded database, on the host, to start again from
	preRows  int    // its rows
	rng      *rand.Rand
	batchRng *rand.Rand // the batches' kinds and rows (nextBatch)
	seed     int64
	est      [2]time.Duration // running estimate of a durability point's duration: grow, churn
	estLog   time.Duration    // running estimate of an in-place checkpoint's redo log's life
	model    model            // the table durable when the round starts
	num      int              // the last batch's number
	stock    string           // where the stock CLI reads copies of the drive's files
	hidden   map[string]bool  // .fuse_hidden files seen so far
	failures int
}

const dbName = "yank.db"

func runPhase(t *testing.T, kind realfs.Kind, tgt target, p phase) {
	start := time.Now()
	r := &runner{t: t, kind: kind, tgt: tgt, p: p, est: [2]time.Duration{30 * time.Millisecond, 30 * time.Millisecond}, estLog: 30 * time.Millisecond, hidden: make(map[string]bool)}
	r.seed = subSeed(t.Name())
	r.rng = rand.New(rand.NewSource(r.seed))
	r.batchRng = newBatchRng(r.seed)
	r.stock = t.TempDir()
	t.Logf("seed %d (run seed %d; replay: %s)", r.seed, seed(), r.replay(p.pulls-1))
	r.preload = filepath.Join(t.TempDir(), "preload.db")
	r.preRows = makePreload(t, r.preload, p.preloadMiB)
	r.newVolume()
	// The store is asserted on every filesystem, fusefat included: it
	// never extends a file after a reopen nor writes below an extension
	// (a copy is one ordered pass, the journal is preallocated, and on
	// fusefat a checkpoint that grows the database copies instead of
	// writing in place), and it reads back what it wrote there. (The
	// driver's bug is shown on a volume of its own by TestFusefat_Bugs: the
	// probe leaks clusters that fsck would then report here.)
	inside := 0
	ip0, cp0 := inPlaceCount(kind, tgt)
	for round := 0; round < p.pulls; round++ {
		if kind == realfs.VFAT && len(r.model) >= 2*r.preRows {
			// Start again from the preload: fusefat walks a file's
			// cluster chain from its start on every access, so each read
			// costs in proportion to the file's size, and a round's
			// reads (integrity_check) with its square.
			r.install()
		}
		in, ok := r.round(round)
		if in {
			inside++
		}
		if !ok {
			r.failures++
			if r.failures >= 3 {
				t.Fatalf("stopping after %d failed rounds (seed %d)", r.failures, r.seed)
			}
		}
	}
	t.Logf("%s %s %d MiB: %d pulls, %d inside a durability point, %d failures; database now %d rows; %v",
		kind, tgt, p.preloadMiB, p.pulls, inside, r.failures, len(r.model), time.Since(start).Round(time.Second))
	// The arms test the modes they name: a store-inplace arm (and Auto on
	// exFAT, where its churn and growth both go in place) whose
	// checkpoints all copied would pass while testing only copies.
	ip1, cp1 := inPlaceCount(kind, tgt)
	ip, cp := ip1-ip0, cp1-cp0
	switch {
	case !tgt.isStore() || p.pulls == 0:
	case cp == 0:
		t.Errorf("%s %s: no checkpoint completed in %d rounds", kind, tgt, p.pulls)
	case tgt == targetCopy && ip != 0:
		t.Errorf("%s %s: %d of %d checkpoints went in place in the copy arm", kind, tgt, ip, cp)
	case (tgt == targetInPlace || tgt == targetStore && kind == realfs.ExFAT) && ip == 0:
		t.Errorf("%s %s: none of %d checkpoints went in place", kind, tgt, cp)
	}
}

// inPlaceCount returns the checkpoints the arm completed so far, and how
// many of them went in place.
func inPlaceCount(kind realfs.Kind, tgt target) (inPlace, checkpoints int) {
	record(kind, tgt, func(tl *tally) { inPlace, checkpoints = tl.inPlace, tl.checkpoints })
	return inPlace, checkpoints
}

// replay is the command line that replays rounds 0 to round.
func (r *runner) replay(round int) string {
	parts := strings.Split(r.t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + p + "$"
	}
	return fmt.Sprintf("go test ./yank -count=1 -v -run '%s' -yank.seed=%d -yank.pulls=%d", strings.Join(parts, "/"), seed(), round+1)
}

// newVolume replaces the volume (if any) with a freshly formatted one and
// installs the preload on it.
func (r *runner) newVolume() {
	t := r.t
	if r.vol != nil {
		if err := r.vol.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
	}
	vol, err := realfs.New(t, realfs.Options{Kind: r.kind, SizeMiB: volumeMiB(r.kind, r.p)})
	if err != nil {
		t.Fatal(err)
	}
	r.vol = vol
	r.path = filepath.Join(vol.Mount, dbName)
	r.install()
}

// install copies the preloaded database onto the volume, removing
// whatever database files are there, and makes it durable with a clean
// unmount and mount.
func (r *runner) install() {
	t := r.t
	names, err := os.ReadDir(r.vol.Mount)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n.Name(), dbName) {
			if err := os.Remove(filepath.Join(r.vol.Mount, n.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := copyFile(r.path, r.preload); err != nil { // streamed: up to 1 GiB
		t.Fatal(err)
	}
	if err := r.vol.Remount(); err != nil {
		t.Fatalf("Remount: %v", err)
	}
	r.model = make(model, r.preRows)
}

// copyFile copies the file src to dst, creating or truncating dst.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// moment is where in a round the drive is pulled.
type moment string

const (
	momentInside moment = "inside" // during a durability point, after a random delay
	momentLog    moment = "log"    // the store: during an in-place checkpoint's redo log's life, after a random delay
	momentIdle   moment = "idle"   // after a durability point, the child waiting
	momentCommit moment = "commit" // while the batch commits, after a random delay
	weightInside        = 4        // of 10
	weightLog           = 7        // inside < weight <= log: 3 of 10 (inside for a target without a log)
	weightIdle          = 9        // log < weight <= idle: 2 of 10; the rest commit
	// logTries is how many durability points a log moment waits for a
	// log (a checkpoint may copy: Auto's pick, or a growing database on
	// fusefat) before it pulls idle.
	logTries    = 4
	lineTimeout = time.Minute
)

// state is what the parent knows of the child from its lines.
type state struct {
	ready    bool
	done     int             // durability points completed ("end" lines)
	inflight bool            // a "begin" without its "end"
	modes    []string        // how each completed one wrote (the store: inplace or copy)
	took     []time.Duration // how long each took
	preErr   bool            // the child failed before the pull
	errors   []string
	trunc0   []string
	lines    []string
}

func (s *state) apply(line string) {
	s.lines = append(s.lines, line)
	switch f := strings.Fields(line); {
	case line == "ready":
		s.ready = true
	case line == "begin":
		s.inflight = true
	case len(f) > 0 && f[0] == "end":
		s.done++
		s.inflight = false
		if len(f) == 3 {
			s.modes = append(s.modes, f[2])
			if us, err := strconv.Atoi(f[1]); err == nil {
				s.took = append(s.took, time.Duration(us)*time.Microsecond)
			}
		}
	case strings.HasPrefix(line, "truncate0"):
		s.trunc0 = append(s.trunc0, line)
	case strings.HasPrefix(line, "error"):
		s.errors = append(s.errors, line)
	}
}

// round runs one child and one pull, then checks. It reports whether the
// pull fell inside a durability point, and whether every store check
// passed (always true for plain SQLite).
func (r *runner) round(round int) (inside, ok bool) {
	t := r.t
	start := time.Now()
	skip := r.rng.Intn(3)
	w := r.rng.Intn(10)
	mo := momentCommit
	switch {
	case w < weightInside:
		mo = momentInside
	case w < weightLog && r.tgt.isStore() && r.tgt != targetCopy:
		mo = momentLog
	case w < weightLog:
		mo = momentInside
	case w < weightIdle:
		mo = momentIdle
	}
	frac := r.rng.Float64()
	decision := fmt.Sprintf("skip %d, moment %s, delay fraction %.3f", skip, mo, frac)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(r.tgt), dbEnv+"="+r.path, rowBytesEnv+"="+strconv.Itoa(rowBytes))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var st state
	states := []model{r.model} // states[i]: the table after the first i batches sent
	var sent []batch
	est := func(b batch) *time.Duration {
		if b.churn {
			return &r.est[1]
		}
		return &r.est[0]
	}
	fail := func(format string, args ...any) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("FAIL yank seed=%d kind=%s target=%s round=%d (%s): %s\nchild lines: %q\nchild stderr: %s\nreplay: %s",
			r.seed, r.kind, r.tgt, round, decision, fmt.Sprintf(format, args...), st.lines, stderr.String(), r.replay(round))
	}
	// next returns the child's next line. An error before the pull fails
	// the round for the store; for plain SQLite it is an outcome:
	// ok=false, and the round pulls at once.
	next := func() (string, bool) {
		select {
		case line, open := <-lines:
			if !open {
				if !r.tgt.isStore() {
					st.preErr = true
					return "", false
				}
				fail("child exited")
			}
			st.apply(line)
			if len(st.trunc0) > 0 {
				fail("child before the pull: %s", line)
			}
			if len(st.errors) > 0 {
				if !r.tgt.isStore() {
					st.preErr = true
					return line, false
				}
				fail("child before the pull: %s", line)
			}
			return line, true
		case <-time.After(lineTimeout):
			fail("no line from the child in %v", lineTimeout)
		}
		return "", false
	}
	sleep := func(scale time.Duration) { time.Sleep(time.Duration(frac * float64(scale))) }

	// Drive the child until the chosen moment; see moment.
	for {
		line, ok := next()
		if !ok {
			break
		}
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "end" && st.done <= len(sent) {
			if us, err := strconv.Atoi(f[1]); err == nil {
				e := est(sent[st.done-1])
				*e = (*e*7 + time.Duration(us)*time.Microsecond*3) / 10
			}
		}
		if f := strings.Fields(line); len(f) == 2 && f[0] == "unlog" {
			if us, err := strconv.Atoi(f[1]); err == nil {
				r.estLog = (r.estLog*7 + time.Duration(us)*time.Microsecond*3) / 10
			}
		}
		if line == "begin" {
			if st.done >= skip && mo == momentInside && st.done < len(sent) {
				sleep(*est(sent[st.done]) * 12 / 10)
				break
			}
			continue
		}
		if line == "log" {
			if st.done >= skip && mo == momentLog {
				sleep(r.estLog * 11 / 10)
				break
			}
			continue
		}
		if line != "ready" && !strings.HasPrefix(line, "end") {
			continue
		}
		if st.done > skip && mo == momentIdle || st.done > skip+logTries && mo == momentLog {
			break
		}
		b := r.nextBatch(states[len(states)-1])
		sent = append(sent, b)
		states = append(states, states[len(states)-1].apply(b))
		fmt.Fprintln(stdin, b.String())
		if st.done >= skip && mo == momentCommit {
			sleep(*est(b)) // commits take less than checkpoints; the delay may reach into one
			break
		}
	}
	if err := r.vol.Pull(); err != nil {
		fail("Pull: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for line := range lines { // what the child printed before it died
		st.apply(line)
	}
	inside = st.inflight
	if strings.Contains(stderr.String(), "DATA RACE") {
		fail("race detector report in the child")
	}
	res := roundResult{round: round, decision: decision, st: &st, states: states, sent: sent}
	res.lap("child", start)
	if r.tgt.isStore() {
		ok = r.checkStore(&res)
	} else {
		r.checkPlain(&res)
		ok = true
	}
	record(r.kind, r.tgt, func(tl *tally) {
		tl.pulls++
		if inside {
			tl.inside++
		}
		for _, m := range st.modes {
			if m == "inplace" {
				tl.inPlace++
			}
		}
		tl.checkpoints += len(st.modes)
		if !ok {
			tl.failures++
		}
	})
	return inside, ok
}
