package checkpoint

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/journal"
	"github.com/ejectsafe/ejectsafe/sqlitewal"
)

var crashFull = flag.Bool("crash.full", false, "crash at every point, with 8 seeds per random policy, recovery crashed too (slow)")

// The matrix workload's states: A on the drive at the start, B after the
// first commit, C after the second.
var stateA, stateB, stateC = matrixStates()

const page = 4096

func matrixStates() (a, b, c []byte) {
	a = pattern(64<<10, 'A')
	b = slices.Clone(a)
	for _, w := range writesB() {
		b = apply(b, w)
	}
	c = slices.Clone(b)
	for _, w := range writesC() {
		c = apply(c, w)
	}
	return a, b, c
}

// write is a WriteAt, or a Truncate when data is nil.
type write struct {
	off  int64
	data []byte
}

func writesB() []write {
	pg := bytes.Repeat([]byte("B"), page)
	return []write{{page, pg}, {3 * page, pg}, {19 * page, pg}} // the last one grows the file to 80 KiB
}

func writesC() []write {
	return []write{
		{2*page + 50, bytes.Repeat([]byte("C"), 100)}, // inside a page
		{18 * page, nil}, // shrink to 72 KiB
		{5 * page, bytes.Repeat([]byte("C"), 2*page)},
	}
}

func apply(b []byte, w write) []byte {
	if w.data == nil {
		if w.off < int64(len(b)) {
			return b[:w.off]
		}
		return append(b, make([]byte, w.off-int64(len(b)))...)
	}
	if end := w.off + int64(len(w.data)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[w.off:], w.data)
	return b
}

func applyMain(m *Main, ws []write) error {
	for _, w := range ws {
		var err error
		if w.data == nil {
			err = m.Truncate(w.off)
		} else {
			err = m.WriteAt(w.data, w.off)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Markers, written durably outside the workload's operations, say how far
// the workload got before the cut, and so which states may be on the
// drive.
const markDir = "/m"

// A marker holds the operation count at which it was written.
func mark(fs *faultinject.FS, name string) {
	fs.WriteFile(path.Join(markDir, name), []byte(strconv.Itoa(fs.OpCount())), 0o644)
}

func marked(fs *faultinject.FS, name string) bool {
	_, err := fs.ReadFile(path.Join(markDir, name))
	return err == nil
}

// scenario is a matrix workload: the database starts as initial (nil:
// no file), the first commit writes w1, the second w2. With modes set,
// the Main runs the first commit in modes[0] and the second in modes[1]
// (a mode switch, as Auto does per commit), and the counting run fails
// unless each commit was written in want's mode.
type scenario struct {
	initial []byte
	w1, w2  []write
	modes   *[2]Mode
	want    [2]Mode
}

var (
	existingDB = scenario{initial: stateA, w1: writesB(), w2: writesC()}
	freshDB    = scenario{w1: []write{{0, pattern(2*page, 'B')}, {5 * page, pattern(page, 'B')}}, w2: writesC()}
)

// states returns the database after 0, 1 and 2 commits; nil is missing.
func (sc scenario) states() [3][]byte {
	var st [3][]byte
	st[0] = sc.initial
	st[1] = slices.Clone(st[0])
	for _, w := range sc.w1 {
		st[1] = apply(st[1], w)
	}
	st[2] = slices.Clone(st[1])
	for _, w := range sc.w2 {
		st[2] = apply(st[2], w)
	}
	return st
}

func matrixSetup(opts faultinject.Options, sc scenario) func() (*faultinject.FS, error) {
	return func() (*faultinject.FS, error) {
		fs := faultinject.New(opts)
		if err := fs.MkdirAll(testDir); err != nil {
			return nil, err
		}
		if err := fs.MkdirAll(markDir); err != nil {
			return nil, err
		}
		if sc.initial == nil {
			return fs, nil
		}
		return fs, fs.WriteFile(testDB, sc.initial, 0o644)
	}
}

// matrixWorkload opens a Main on the first state, commits the second,
// prepares and commits the third, and closes.
func matrixWorkload(opts Options, sc scenario) func(*faultinject.FS) error {
	return func(fs *faultinject.FS) error {
		o := opts // the workload runs on several workers at once
		if sc.modes != nil {
			o.Mode = sc.modes[0]
		}
		m, err := Open(fs, testDB, o)
		if err != nil {
			return err
		}
		defer m.Close()
		// wrote checks the mode a commit used: a mode switch that did not
		// happen would test nothing.
		wrote := func(i int) error {
			if got := m.Stats().LastMode; sc.modes != nil && got != sc.want[i] {
				return fmt.Errorf("commit %d written %v, want %v", i+1, got, sc.want[i])
			}
			return nil
		}
		if err := applyMain(m, sc.w1); err != nil {
			return err
		}
		mark(fs, "c1-began")
		if err := m.Commit(); err != nil {
			return err
		}
		if err := wrote(0); err != nil {
			return err
		}
		mark(fs, "c1-done")
		if err := applyMain(m, sc.w2); err != nil {
			return err
		}
		if sc.modes != nil {
			m.opts.Mode = sc.modes[1] // single goroutine, between commits
		}
		if err := m.Prepare(); err != nil {
			return err
		}
		mark(fs, "c2-began")
		if err := m.Commit(); err != nil {
			return err
		}
		if err := wrote(1); err != nil {
			return err
		}
		mark(fs, "c2-done")
		return m.Close()
	}
}

// actions counts what the matrix's recoveries did, to show that every
// branch was reached.
type actions struct {
	mu sync.Mutex
	n  map[Action]int
}

func (a *actions) recover(fs *faultinject.FS) error {
	rep, err := Recover(fs, testDB)
	a.mu.Lock()
	a.n[rep.Action]++
	a.mu.Unlock()
	return err
}

func (a *actions) String() string {
	var parts []string
	for act := ActionNone; act <= ActionReset; act++ {
		parts = append(parts, fmt.Sprintf("%v %d", act, a.n[act]))
	}
	return strings.Join(parts, ", ")
}

// matrixOracle accepts an image, after Recover, if the database is a
// state that could be durable at the cut, nothing is left over, the
// journal is clean, recovery kept the ordering rules, a second Recover
// does nothing, and Open serves the same bytes.
func matrixOracle(sc scenario) func(*faultinject.FS) error {
	st := sc.states()
	return func(img *faultinject.FS) error { return oracle(img, st, violations) }
}

// allowedStates names the states ("A", "B", "C") that may be on the drive
// of img, by the workload's markers.
func allowedStates(img *faultinject.FS) []string {
	switch {
	case marked(img, "c2-done"):
		return []string{"C"}
	case marked(img, "c2-began"):
		return []string{"B", "C"}
	case marked(img, "c1-done"):
		return []string{"B"}
	case marked(img, "c1-began"):
		return []string{"A", "B"}
	}
	return []string{"A"}
}

func oracle(img *faultinject.FS, st [3][]byte, check func([]faultinject.Event) []faultinject.Violation) error {
	for _, v := range check(img.Trace()) {
		// A roll forward renames a copy that a Ready record from before
		// the trace claims; Check only knows claims made in the trace.
		if v.Kind != faultinject.RenameBeforeReady {
			return fmt.Errorf("recovery broke an ordering rule: %v", v)
		}
	}
	states := map[string][]byte{"A": st[0], "B": st[1], "C": st[2]}
	allowed := allowedStates(img)
	got := fileOf(img, testDB)
	s := describe(got, states)
	if got == nil && st[0] == nil {
		s = "A"
	}
	if !slices.Contains(allowed, s) {
		return fmt.Errorf("database is %s, want one of %v", s, allowed)
	}
	names, err := img.List(testDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		// Recovery keeps a copy aside, by design, when the journal cannot
		// vouch for it and there is no database at all.
		orphan := got == nil && strings.HasPrefix(n, path.Base(testDB)+orphanInfix)
		if n == path.Base(testDB)+"-wal" {
			// An in-place commit's redo log, retired (a header of
			// zeros: empty to SQLite) and kept for the next; a log
			// SQLite would read anything from is left over.
			b, err := img.ReadFile(testDB + "-wal")
			if err != nil {
				return err
			}
			if len(b) == 0 || sqlitewal.RetiredHeader(b) {
				continue
			}
		}
		if n != path.Base(testDB) && n != path.Base(testJournal) && !orphan {
			return fmt.Errorf("left over: %s", n)
		}
	}
	if data, err := img.ReadFile(testJournal); err == nil {
		j, err := journal.Decode(data)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if why := cleanJournal(j, len(data)); why != "" {
			return fmt.Errorf("journal not clean: %s", why)
		}
	}
	before := img.Files()
	rep, err := Recover(img, testDB)
	if err != nil || rep.Action != ActionNone {
		return fmt.Errorf("second Recover: %v, %v", rep, err)
	}
	if after := img.Files(); !equalFiles(before, after) {
		return errors.New("second Recover changed files")
	}
	m, err := Open(img, testDB, Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	view, err := contentOf(m)
	if err != nil {
		return err
	}
	if !bytes.Equal(view, got) && !(got == nil && len(view) == 0) {
		return errors.New("Open serves other bytes than the file holds")
	}
	return nil
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// boundaryPoints returns the crash points (relative to the workload's
// start) around the operations where durability changes hands: syncs,
// renames, directory syncs, removes and journal writes, plus every
// stride-th point.
func boundaryPoints(t *testing.T, setup func() (*faultinject.FS, error), work func(*faultinject.FS) error, stride int) []int {
	t.Helper()
	fs, err := setup()
	if err != nil {
		t.Fatal(err)
	}
	start := fs.OpCount()
	if err := work(fs); err != nil {
		t.Fatal(err)
	}
	n := fs.OpCount() - start
	var pts []int
	for _, ev := range fs.Trace() {
		i := ev.Index - start
		if i < 0 {
			continue
		}
		key := ev.Kind&(faultinject.OpSync|faultinject.OpRename|faultinject.OpSyncDir|faultinject.OpRemove|faultinject.OpCreate) != 0 ||
			(ev.Kind == faultinject.OpWriteAt && strings.Contains(ev.Path, journal.JournalSuffix))
		if key || i%stride == 0 {
			pts = append(pts, i, i+1) // before it, and just after it
		}
	}
	pts = append(pts, n)
	slices.Sort(pts)
	return slices.Compact(slices.DeleteFunc(pts, func(p int) bool { return p > n }))
}

func TestCrashMatrix(t *testing.T) {
	cases := []struct {
		name     string
		sc       scenario
		fsOpts   faultinject.Options
		opts     Options
		compound bool // by default; -crash.full compounds every case
	}{
		{"atomic rename", existingDB, faultinject.Options{}, Options{}, true},
		{"FAT rename", existingDB, faultinject.Options{NonAtomicRename: true}, Options{}, true},
		{"journal compaction", existingDB, faultinject.Options{}, Options{JournalLimit: 100}, false},
		{"fresh database", freshDB, faultinject.Options{}, Options{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			acts := &actions{n: map[Action]int{}}
			cfg := faultinject.MatrixConfig{
				Setup:    matrixSetup(c.fsOpts, c.sc),
				Workload: matrixWorkload(c.opts, c.sc),
				Recover:  acts.recover,
				Oracle:   matrixOracle(c.sc),
				Seeds:    4,
				Workers:  2,
				Compound: c.compound,
			}
			// The workload itself keeps the ordering rules.
			fs, err := cfg.Setup()
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Workload(fs); err != nil {
				t.Fatal(err)
			}
			checkTrace(t, fs)
			if *crashFull {
				cfg.Seeds, cfg.Compound = 8, true
			} else {
				cfg.Seeds = 2
				cfg.Points = boundaryPoints(t, cfg.Setup, cfg.Workload, 8)
			}
			start := time.Now()
			sum, err := faultinject.RunMatrix(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (%s, %v)", sum, c.name, time.Since(start).Round(time.Millisecond))
			t.Logf("recoveries: %v", acts)
			if err := sum.Err(); err != nil {
				t.Error(err)
			}
		})
	}
}
