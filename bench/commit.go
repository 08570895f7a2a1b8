package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"github.com/ejectsafe/ejectsafe/store"
)

// Commit variants, in report order. All use the same schema, row and
// statements through the same driver.
const (
	Store        = "store"         // the ejectsafe store (WAL in memory)
	Limit        = "limit"         // SQLite's WAL code over malloc'd buffers, no I/O (limitvfs.c)
	Memory       = "memory"        // SQLite :memory:
	WALOff       = "wal-off"       // stock WAL, synchronous=OFF
	WALNormal    = "wal-normal"    // stock WAL, synchronous=NORMAL
	WALFull      = "wal-full"      // stock WAL, synchronous=FULL
	RollbackFull = "rollback-full" // rollback journal (DELETE), synchronous=FULL
)

// Variants lists the commit variants in report order.
var Variants = []string{Store, Limit, Memory, WALOff, WALNormal, WALFull, RollbackFull}

// VariantDesc says what each variant is, for tables.
var VariantDesc = map[string]string{
	Store:        "ejectsafe store",
	Limit:        "SQLite's WAL over malloc'd buffers, exclusive locking, no I/O",
	Memory:       "SQLite `:memory:`",
	WALOff:       "stock WAL, synchronous=OFF",
	WALNormal:    "stock WAL, synchronous=NORMAL",
	WALFull:      "stock WAL, synchronous=FULL",
	RollbackFull: "rollback journal, synchronous=FULL",
}

// fsyncBound reports the variants whose every commit waits for the drive.

// StoreDurability is the durability level of the store variant of the
// commit benchmarks; the zero value is the store's default (issue 13:
// store.HostLog where supported).
var StoreDurability store.Durability

func fsyncBound(name string) bool { return name == WALFull || name == RollbackFull }

// Schema is the table every commit benchmark writes.
const Schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"

// RowBytes is the size of the blob each inserted row carries.
const RowBytes = 100

// CommitResult is one variant's commits in one mode.
type CommitResult struct {
	Mode          string  `json:"mode"` // "autocommit" or "tx100"
	Variant       string  `json:"variant"`
	RowsPerCommit int     `json:"rows_per_commit"`
	Rounds        int     `json:"rounds"`
	PerRound      int     `json:"per_round"`
	Commits       int     `json:"commits"`
	CommitsPerSec float64 `json:"commits_per_sec"`
	RowsPerSec    float64 `json:"rows_per_sec"`
	NsPerCommit   float64 `json:"ns_per_commit"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`
	// StoreRatio is the store's throughput relative to this variant's
	// (this variant's time per commit over the store's): the median over
	// rounds, and the range.
	StoreRatio    float64 `json:"store_ratio"`
	StoreRatioMin float64 `json:"store_ratio_min"`
	StoreRatioMax float64 `json:"store_ratio_max"`
}

// ModeName names a commit mode by its rows per commit.
func ModeName(rows int) string {
	if rows == 1 {
		return "autocommit"
	}
	return fmt.Sprintf("tx%d", rows)
}

// Unprepared is the mode name of single-row autocommit INSERTs made with
// unprepared SQL (Exec with the statement's text, prepared and finalized
// by the driver on every call), as most applications write them.
const Unprepared = "autocommit-exec"

// mode names cs's commit mode.
func (cs *CommitSet) mode() string {
	if cs.Unprepared {
		return Unprepared
	}
	return ModeName(cs.Rows)
}

// CommitSet is the commit variants opened side by side in one directory,
// committing rows-row transactions (1: autocommit INSERTs). Rounds
// alternate between the variants; between rounds the store checkpoints,
// untimed, as a long-running app's background checkpointer does. Stock
// WAL keeps its own auto-checkpoint, which is part of its commit cost.
type CommitSet struct {
	Rows       int
	Unprepared bool // single-row commits through Exec with the SQL text (mode Unprepared)
	Variants   []*Variant
	row        []byte
	order      *rand.Rand // each round's order (Round); seeded, so runs repeat
}

// Variant is one way of committing.
type Variant struct {
	Name     string
	PerRound int // commits per round: fsync-bound variants do fewer
	db       *sql.DB
	conn     *sql.Conn
	begin    *sql.Stmt
	ins      *sql.Stmt
	commit   *sql.Stmt
	between  func() error // untimed, after each round
	closeAll func() error
	lat      []time.Duration // every timed commit
	rounds   []float64       // ns per commit, per timed round
}

// OpenCommitSet opens the variants named (nil: all) in dir, each with
// Schema. perRound is the commits per round; fsync-bound variants do
// perRound/fsyncDiv (at least 5).
func OpenCommitSet(dir string, names []string, rows, perRound, fsyncDiv int) (cs *CommitSet, err error) {
	if names == nil {
		names = Variants
	}
	cs = &CommitSet{Rows: rows, row: make([]byte, RowBytes), order: rand.New(rand.NewPCG(1, 2))}
	defer func() {
		if err != nil {
			cs.Close()
		}
	}()
	ctx := context.Background()
	mode := ModeName(rows)
	for _, name := range names {
		v := &Variant{Name: name, PerRound: perRound}
		if fsyncBound(name) {
			v.PerRound = max(5, perRound/max(fsyncDiv, 1))
		}
		path := filepath.Join(dir, mode+"-"+name+".db")
		switch name {
		case Store:
			s, err := openStore(path, store.Options{ManualCheckpoint: true, Durability: StoreDurability})
			if err != nil {
				return cs, err
			}
			v.db, v.closeAll = s.DB(), s.Close
			v.between = func() error { return s.Checkpoint(ctx) }
		case Limit:
			v.db, v.closeAll, err = openLimit(path)
			v.between = func() error {
				_, err := v.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
				return err
			}
		case Memory:
			v.db, err = openStock(":memory:", "", "")
		case WALOff:
			v.db, err = openStock(path, "WAL", "OFF")
		case WALNormal:
			v.db, err = openStock(path, "WAL", "NORMAL")
		case WALFull:
			v.db, err = openStock(path, "WAL", "FULL")
		case RollbackFull:
			v.db, err = openStock(path, "DELETE", "FULL")
		default:
			return cs, fmt.Errorf("unknown variant %q", name)
		}
		if err != nil {
			return cs, fmt.Errorf("%s: %w", name, err)
		}
		if v.closeAll == nil {
			v.closeAll = v.db.Close
		}
		cs.Variants = append(cs.Variants, v)
		if v.conn, err = v.db.Conn(ctx); err != nil {
			return cs, fmt.Errorf("%s: %w", name, err)
		}
		if _, err := v.conn.ExecContext(ctx, Schema); err != nil {
			return cs, fmt.Errorf("%s: %w", name, err)
		}
		for q, st := range map[string]**sql.Stmt{"BEGIN": &v.begin, "INSERT INTO t(v) VALUES(?)": &v.ins, "COMMIT": &v.commit} {
			if *st, err = v.conn.PrepareContext(ctx, q); err != nil {
				return cs, fmt.Errorf("%s: %s: %w", name, q, err)
			}
		}
	}
	return cs, nil
}

// openStock opens stock SQLite through mattn: :memory:, or a database
// file with the given journal mode and synchronous level, on SQLite's
// default VFS. One connection, so :memory: is one database, and the same
// for the others, fairly.
func openStock(path, journal, sync string) (*sql.DB, error) {
	dsn := path
	if journal != "" {
		dsn = fmt.Sprintf("%s?_journal_mode=%s&_sync=%s", fileURI(path), journal, sync)
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// fileURI is path as an SQLite URI, escaped ('%', '?' and '#' are
// possible in directory names).
func fileURI(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return store.FileURI(path, "")
}

// commitOnce runs one transaction.
func (v *Variant) commitOnce(rows int, unprepared bool, row []byte) error {
	if rows == 1 && unprepared {
		_, err := v.conn.ExecContext(context.Background(), "INSERT INTO t(v) VALUES(?)", row)
		return err
	}
	if rows == 1 {
		_, err := v.ins.Exec(row)
		return err
	}
	if _, err := v.begin.Exec(); err != nil {
		return err
	}
	for i := 0; i < rows; i++ {
		if _, err := v.ins.Exec(row); err != nil {
			v.conn.ExecContext(context.Background(), "ROLLBACK")
			return err
		}
	}
	_, err := v.commit.Exec()
	return err
}

// Round runs one round of every variant, in an order drawn afresh for
// each round (seeded, so runs repeat); timed rounds are recorded. With
// one fixed order the variant after the fsync-bound ones, and the one
// after the store's checkpoint, started every round on caches those had
// left cold: the store, listed first, measured 0.71-0.88x the limit arm,
// and 0.91-0.94x with the limit arm listed first (BENCHMARKS.md, issue
// 12's fourth pass). Rotating the list does not help: the neighbours
// stay the same. The untimed work between rounds comes after all of
// them, so that it too falls on a variant drawn at random.
func (cs *CommitSet) Round(timed bool) error {
	for _, k := range cs.order.Perm(len(cs.Variants)) {
		v := cs.Variants[k]
		var sum time.Duration
		for i := 0; i < v.PerRound; i++ {
			t0 := time.Now()
			if err := v.commitOnce(cs.Rows, cs.Unprepared, cs.row); err != nil {
				return fmt.Errorf("%s: %w", v.Name, err)
			}
			d := time.Since(t0)
			sum += d
			if timed {
				v.lat = append(v.lat, d)
			}
		}
		if timed {
			v.rounds = append(v.rounds, float64(sum.Nanoseconds())/float64(v.PerRound))
		}
	}
	// The untimed work between rounds (the store's checkpoint), after
	// every variant's commits: inside the round it left the caches cold
	// for whichever variant came next.
	for _, v := range cs.Variants {
		if v.between != nil {
			if err := v.between(); err != nil {
				return fmt.Errorf("%s: %w", v.Name, err)
			}
		}
	}
	return nil
}

// Close closes every variant and returns the first error.
func (cs *CommitSet) Close() error {
	var first error
	for _, v := range cs.Variants {
		for _, st := range []*sql.Stmt{v.begin, v.ins, v.commit} {
			if st != nil {
				st.Close()
			}
		}
		if v.conn != nil {
			v.conn.Close()
		}
		if err := v.closeAll(); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	return first
}

// Results summarizes the timed rounds. Ratios are against the variant
// named Store, round by round, when it is in the set.
func (cs *CommitSet) Results() []CommitResult {
	var base *Variant
	for _, v := range cs.Variants {
		if v.Name == Store {
			base = v
		}
	}
	var out []CommitResult
	for _, v := range cs.Variants {
		var sum time.Duration
		for _, d := range v.lat {
			sum += d
		}
		n := len(v.lat)
		ns := float64(sum.Nanoseconds()) / float64(max(n, 1))
		res := CommitResult{
			Mode: cs.mode(), Variant: v.Name, RowsPerCommit: cs.Rows, Commits: n,
			Rounds: len(v.rounds), PerRound: v.PerRound,
			NsPerCommit: ns, CommitsPerSec: 1e9 / ns, RowsPerSec: 1e9 / ns * float64(cs.Rows),
			P50us: percentile(v.lat, 0.50), P99us: percentile(v.lat, 0.99),
		}
		if base != nil {
			var rs []float64
			for i := range min(len(v.rounds), len(base.rounds)) {
				rs = append(rs, v.rounds[i]/base.rounds[i])
			}
			if len(rs) > 0 {
				res.StoreRatio, res.StoreRatioMin, res.StoreRatioMax = median(rs), slices.Min(rs), slices.Max(rs)
			}
		}
		out = append(out, res)
	}
	return out
}

// MeasureCommits runs the commit throughput measurement in one mode:
// one untimed warm-up round (the store's WAL memory touched once, as in
// steady state), then p.CommitRounds timed rounds.
func MeasureCommits(ctx context.Context, dir string, rows int, p Plan, log func(string, ...any)) ([]CommitResult, error) {
	return measureCommits(ctx, dir, rows, false, nil, p, log)
}

// UnpreparedVariants are the variants measured in mode Unprepared: the
// store, the limit arm and :memory: (the statement's preparation is the
// same work in every variant; the fsync-bound ones would add nothing).
var UnpreparedVariants = []string{Store, Limit, Memory}

// MeasureUnprepared is MeasureCommits in mode Unprepared.
func MeasureUnprepared(ctx context.Context, dir string, p Plan, log func(string, ...any)) ([]CommitResult, error) {
	return measureCommits(ctx, dir, 1, true, UnpreparedVariants, p, log)
}

func measureCommits(ctx context.Context, dir string, rows int, unprepared bool, names []string, p Plan, log func(string, ...any)) ([]CommitResult, error) {
	perRound := p.CommitPerRound
	if rows > 1 {
		perRound = p.TxPerRound
	}
	cs, err := OpenCommitSet(dir, names, rows, perRound, p.FsyncDivisor)
	if err != nil {
		return nil, err
	}
	cs.Unprepared = unprepared
	defer cs.Close()
	if err := cs.Round(false); err != nil {
		return nil, err
	}
	for i := 0; i < p.CommitRounds; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := cs.Round(true); err != nil {
			return nil, err
		}
	}
	res := cs.Results()
	for _, r := range res {
		rel := ""
		if r.Variant != Store {
			rel = fmt.Sprintf(", store/%s %.2fx", r.Variant, r.StoreRatio)
		}
		log("%-13s %9.0f commits/s  p50 %8.1f us  p99 %8.1f us%s", r.Variant, r.CommitsPerSec, r.P50us, r.P99us, rel)
	}
	return res, cs.Close()
}

// percentile returns the q-quantile of ds in microseconds (nearest rank).
func percentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return float64(s[min(max(i, 0), len(s)-1)].Nanoseconds()) / 1e3
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
