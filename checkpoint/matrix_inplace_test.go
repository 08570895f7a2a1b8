package checkpoint

import (
	"bytes"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/faultinject"
	"github.com/ejectsafe/ejectsafe/internal/stocktest"
)

// The in-place and mode-switch crash matrices run on real SQLite
// databases (made here with mattn), so that the stock sqlite3 shell can
// read every crash image before our recovery touches it: the invariant
// stock-reads-any-pull.

var stockEvery = flag.Int("crash.stock", 0, "the in-place crash matrix reads every Nth crash image with the stock sqlite3 shell (0: 8, or every image under -crash.full)")

// sqlChange is one transaction on the matrix database; r makes its bytes
// the same on every run (a failure's seed replays).
type sqlChange func(db *sql.DB, r *rand.Rand) error

func blob(r *rand.Rand) []byte {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

// sqlInsert adds rows from..to-1.
func sqlInsert(from, to int) sqlChange {
	return func(db *sql.DB, r *rand.Rand) error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for i := from; i < to; i++ {
			if _, err := tx.Exec("INSERT INTO t VALUES(?, ?)", i, blob(r)); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
}

// sqlUpdate rewrites the rows whose id is a multiple of every.
func sqlUpdate(every int) sqlChange {
	return func(db *sql.DB, r *rand.Rand) error {
		rows, err := db.Query("SELECT id FROM t WHERE id % ? = 0 ORDER BY id", every)
		if err != nil {
			return err
		}
		var ids []int
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := db.Exec("UPDATE t SET v = ? WHERE id = ?", blob(r), id); err != nil {
				return err
			}
		}
		return nil
	}
}

func sqlExec(q string) sqlChange {
	return func(db *sql.DB, _ *rand.Rand) error { _, err := db.Exec(q); return err }
}

func sqlAll(cs ...sqlChange) sqlChange {
	return func(db *sql.DB, r *rand.Rand) error {
		for _, c := range cs {
			if err := c(db, r); err != nil {
				return err
			}
		}
		return nil
	}
}

// The changes the matrices commit, over a table of 180 rows of 300
// bytes (16 pages of 4 KiB).
var (
	// sqlSmall rewrites two rows and adds twenty: a few pages, and growth.
	sqlSmall = sqlAll(sqlUpdate(90), sqlInsert(1000, 1020))
	// sqlShrink deletes most rows and vacuums: most pages, and a cut.
	sqlShrink = sqlAll(sqlExec("DELETE FROM t WHERE id > 60 AND id < 1000"), sqlExec("VACUUM"))
	// sqlEvery rewrites every row: every page.
	sqlEvery = sqlUpdate(1)
	// sqlTiny rewrites one row: two pages (its leaf and the header's),
	// which Auto writes in place.
	sqlTiny = sqlUpdate(170)
)

// sqliteStates3 returns a real SQLite database in WAL mode (page size
// 4096) and the two states after c1 and c2, each a whole file (the last
// connection's close checkpoints and removes the -wal).
func sqliteStates3(t testing.TB, c1, c2 sqlChange) [3][]byte {
	t.Helper()
	return sqliteStatesPS(t, 4096, c1, c2)
}

// sqliteStatesPS is sqliteStates3 with another page size.
func sqliteStatesPS(t testing.TB, pageSize int, c1, c2 sqlChange) [3][]byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.db")
	r := rand.New(rand.NewPCG(11, 11))
	var st [3][]byte
	for i, c := range []sqlChange{
		sqlAll(sqlExec(fmt.Sprintf("PRAGMA page_size=%d; PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)", pageSize)), sqlInsert(1, 181)),
		c1, c2,
	} {
		db, err := sql.Open("sqlite3", p)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		err = c(db, r)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p + "-wal"); err == nil {
			t.Fatal("the close left a -wal: the state is not in the file")
		}
		if st[i], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// pageDiff is the writes that make a Main's view go from a to b: the
// pages of b that differ from a, and a truncate when b is shorter.
func pageDiff(a, b []byte) []write {
	var ws []write
	for off := 0; off < len(b); off += page {
		if off+page <= len(a) && bytes.Equal(a[off:off+page], b[off:off+page]) {
			continue
		}
		ws = append(ws, write{int64(off), b[off : off+page]})
	}
	if len(b) < len(a) {
		ws = append(ws, write{int64(len(b)), nil})
	}
	return ws
}

func sqlScenario(st [3][]byte, modes [2]Mode, want [2]Mode) scenario {
	return scenario{initial: st[0], w1: pageDiff(st[0], st[1]), w2: pageDiff(st[1], st[2]), modes: &modes, want: want}
}

// stockOracle is the crash matrices' Before: the crash image's database
// and -wal, as the crash left them, copied to a directory of the real
// filesystem and opened by the stock sqlite3 shell, which must read
// exactly one of the states the markers allow, with integrity_check ok.
// Only every sample-th image is read (1: all of them), counted apart
// for images with a -wal (inside an in-place commit or its recovery) and
// without, so that both kinds are read.
type stockOracle struct {
	bin    string
	dir    string
	want   map[string]string // state name -> the shell's output for it
	sample int64
	n      [2]atomic.Int64 // images seen, without and with a -wal
	ran    atomic.Int64
}

// stockQuery is what the shell runs: integrity, then contentQuery.
const stockQuery = "PRAGMA integrity_check; " + contentQuery

func newStockOracle(t *testing.T, bin string, st [3][]byte, sample int64) *stockOracle {
	t.Helper()
	o := &stockOracle{bin: bin, dir: t.TempDir(), want: map[string]string{}, sample: sample}
	for i, name := range []string{"A", "B", "C"} {
		out, err := o.read(map[string][]byte{"app.db": st[i]})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "ok\n") {
			t.Fatalf("state %s: stock shell says %q", name, out)
		}
		o.want[name] = out
	}
	if o.want["A"] == o.want["B"] || o.want["B"] == o.want["C"] || o.want["A"] == o.want["C"] {
		t.Fatalf("the stock shell cannot tell the states apart: %v", o.want)
	}
	return o
}

// read writes files into a new directory and runs the shell on app.db.
func (o *stockOracle) read(files map[string][]byte) (string, error) {
	d, err := os.MkdirTemp(o.dir, "img")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(d)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(d, name), b, 0o644); err != nil {
			return "", err
		}
	}
	out, err := exec.Command(o.bin, filepath.Join(d, "app.db"), stockQuery).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sqlite3: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (o *stockOracle) before(img *faultinject.FS) error {
	wal, err := img.ReadFile(testDB + "-wal")
	hasWAL := err == nil
	if (o.n[b2i(hasWAL)].Add(1)-1)%o.sample != 0 {
		return nil
	}
	o.ran.Add(1)
	db, err := img.ReadFile(testDB)
	if err != nil {
		return fmt.Errorf("no database for the stock shell: %w", err)
	}
	files := map[string][]byte{"app.db": db}
	if hasWAL {
		files["app.db-wal"] = wal
	}
	out, err := o.read(files)
	if err != nil {
		return err
	}
	allowed := allowedStates(img)
	for _, s := range allowed {
		if out == o.want[s] {
			return nil
		}
	}
	for s, w := range o.want {
		if out == w {
			return fmt.Errorf("the stock shell reads state %s, want one of %v", s, allowed)
		}
	}
	return fmt.Errorf("the stock shell reads %q, none of the states (want one of %v)", out, allowed)
}

// firstPagePoints returns the points (relative to the workload's start)
// just after each in-place commit's first write into the database: the
// database partly written beside its durable log, which recovery rolls
// forward.
func firstPagePoints(t *testing.T, cfg faultinject.MatrixConfig) []int {
	t.Helper()
	fs, start := countingRun(t, cfg)
	var pts []int
	last := -2
	for _, ev := range fs.Trace() {
		if ev.Index < start || ev.Kind != faultinject.OpWriteAt || ev.Path != testDB {
			continue
		}
		if ev.Index > last+1 {
			pts = append(pts, ev.Index-start+1)
		}
		last = ev.Index
	}
	if len(pts) == 0 {
		t.Fatal("no page written in place")
	}
	return pts
}

// countingRun runs the workload once on a fresh FS, uncut, and returns
// the FS and its operation count when the workload started.
func countingRun(t *testing.T, cfg faultinject.MatrixConfig) (*faultinject.FS, int) {
	t.Helper()
	fs, err := cfg.Setup()
	if err != nil {
		t.Fatal(err)
	}
	start := fs.OpCount()
	if err := cfg.Workload(fs); err != nil {
		t.Fatal(err)
	}
	return fs, start
}

// secondCommit returns the operation (relative to the workload's start)
// after which the workload's second commit runs, from a counting run.
func secondCommit(t *testing.T, cfg faultinject.MatrixConfig) int {
	t.Helper()
	fs, start := countingRun(t, cfg)
	b, err := fs.ReadFile(path.Join(markDir, "c1-done"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return n - start
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkLogRemade fails t unless the trace, from operation from on (an
// index in the trace), removes the redo log and then creates it again,
// both succeeding: the path a case with NoGrowInPlace is there to cut at
// every point.
func checkLogRemade(t *testing.T, trace []faultinject.Event, from int) {
	t.Helper()
	removed := false
	for _, ev := range trace {
		if ev.Index < from || ev.Path != testDB+"-wal" || ev.Err != 0 {
			continue
		}
		switch {
		case ev.Kind == faultinject.OpRemove:
			removed = true
		case ev.Kind == faultinject.OpCreate && removed:
			return
		}
	}
	t.Fatalf("the second commit did not remove its retired log and create a new one (removed: %v)", removed)
}

// inPlaceViolations checks a trace against the ordering rules, the
// database's writes allowed behind a durable redo log and no log left to
// outlive its checkpoint (invariant log-ahead: CheckConfig.LogPath).
func inPlaceViolations(trace []faultinject.Event) []faultinject.Violation {
	return faultinject.Check(trace, faultinject.CheckConfig{
		DBPath: testDB, JournalPath: testJournal, DecodeClaim: decodeClaim(testDB), LogPath: testDB + "-wal",
	})
}

// TestCrashMatrix_inPlace is the crash matrix of the in-place mode and of
// mode switches (a copy after an in-place commit, the reverse, and Auto
// choosing each), and of NoGrowInPlace's path that removes a retired log
// too small for the next and creates a new one (fusefat), on real SQLite
// databases: every crash image is read by
// the stock sqlite3 shell before our recovery (old or new state,
// integrity ok), then recovered (compound: recovery crashed too) and
// judged by the copy matrix's oracle. By default a slice (points around
// each durability boundary, of the second commit only for a mode switch,
// 1 seed, compound only for the in-place case just after its last
// commit's first page written in place, the shell on every eighth image with a
// -wal and every eighth without);
// -crash.full: every point, 8 seeds, every image through the shell
// (-crash.stock N: every Nth). The trace checker knows the redo log
// (CheckConfig.LogPath).
func TestCrashMatrix_inPlace(t *testing.T) {
	bin, fatal, err := stocktest.Lookup()
	switch {
	case err != nil && fatal:
		t.Fatalf("sqlite3 CLI missing in CI: %v", err)
	case err != nil:
		t.Logf("SKIP LOUDLY: the stock shell's reading of each crash image not checked here: %v", err)
	}
	small := sync.OnceValue(func() [3][]byte { return sqliteStates3(t, sqlSmall, sqlShrink) })
	every := sync.OnceValue(func() [3][]byte { return sqliteStates3(t, sqlEvery, sqlSmall) })
	tinyShrink := sync.OnceValue(func() [3][]byte { return sqliteStates3(t, sqlTiny, sqlShrink) })
	everyTiny := sync.OnceValue(func() [3][]byte { return sqliteStates3(t, sqlEvery, sqlTiny) })
	tinyEvery := sync.OnceValue(func() [3][]byte { return sqliteStates3(t, sqlTiny, sqlEvery) })
	in, cp, auto := ModeInPlace, ModeCopy, ModeAuto
	cases := []struct {
		name     string
		states   func() [3][]byte
		modes    [2]Mode
		want     [2]Mode
		compound bool // by default at a few points; -crash.full compounds every case at every point
		opts     Options
		// remade: the second commit removes the first's retired log and
		// creates its own (NoGrowInPlace, a log larger than the file).
		remade bool
	}{
		{"in place", small, [2]Mode{in, in}, [2]Mode{in, in}, true, Options{}, false},
		{"in place, then copy", small, [2]Mode{in, cp}, [2]Mode{in, cp}, false, Options{}, false},
		{"copy, then in place", every, [2]Mode{cp, in}, [2]Mode{cp, in}, false, Options{}, false},
		{"auto: in place, then copy", tinyShrink, [2]Mode{auto, auto}, [2]Mode{in, cp}, false, Options{}, false},
		{"auto: copy, then in place", everyTiny, [2]Mode{auto, auto}, [2]Mode{cp, in}, false, Options{}, false},
		{"in place, the log made anew (NoGrowInPlace)", tinyEvery, [2]Mode{in, in}, [2]Mode{in, in}, false, Options{NoGrowInPlace: true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := c.states()
			sc := sqlScenario(st, c.modes, c.want)
			acts := &actions{n: map[Action]int{}}
			cfg := faultinject.MatrixConfig{
				Setup:    matrixSetup(faultinject.Options{}, sc),
				Workload: matrixWorkload(c.opts, sc),
				Recover:  acts.recover,
				Oracle:   func(img *faultinject.FS) error { return oracle(img, st, inPlaceViolations) },
				Workers:  2,
			}
			fs, err := cfg.Setup()
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Workload(fs); err != nil {
				t.Fatal(err)
			}
			for _, v := range inPlaceViolations(fs.Trace()) {
				t.Errorf("violation: %v", v)
			}
			if c.remade {
				_, start := countingRun(t, cfg)
				checkLogRemade(t, fs.Trace(), start+secondCommit(t, cfg))
			}
			sample := int64(8)
			cfgs := []faultinject.MatrixConfig{cfg}
			if *crashFull {
				cfgs[0].Seeds, cfgs[0].Compound, sample = 8, true, 1
			} else {
				cfgs[0].Seeds, cfgs[0].Compound = 1, false
				cfgs[0].Points = boundaryPoints(t, cfg.Setup, cfg.Workload, 8)
				if c.modes[0] != c.modes[1] || c.modes[0] == ModeAuto { // the switch: the second commit
					from := secondCommit(t, cfg)
					cfgs[0].Points = slices.DeleteFunc(cfgs[0].Points, func(p int) bool { return p < from })
				}
				if c.compound { // and recovery crashed at each of its operations where it rolls forward (the last commit: growth or a cut)
					comp := cfgs[0]
					pts := firstPagePoints(t, cfg)
					comp.Compound, comp.Points = true, pts[len(pts)-1:]
					cfgs = append(cfgs, comp)
				}
			}
			if *stockEvery > 0 {
				sample = int64(*stockEvery)
			}
			var stock *stockOracle
			if bin != "" {
				stock = newStockOracle(t, bin, st, sample)
			}
			for _, cfg := range cfgs {
				if stock != nil {
					cfg.Before = stock.before
				}
				start := time.Now()
				sum, err := faultinject.RunMatrix(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s (%s, compound %v, %v)", sum, c.name, cfg.Compound, time.Since(start).Round(time.Millisecond))
				if err := sum.Err(); err != nil {
					t.Error(err)
				}
			}
			t.Logf("recoveries: %v", acts)
			if stock != nil {
				t.Logf("stock shell read %d of %d images before recovery (%d with a -wal)", stock.ran.Load(), stock.n[0].Load()+stock.n[1].Load(), stock.n[1].Load())
			}
		})
	}
}
