package store

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var benchDir = flag.String("bench.dir", "", "directory for benchmark databases (default: a temporary directory)")

// commitVariant is one way of committing single-row INSERTs.
type commitVariant struct {
	name    string
	perRnd  int // commits per round: fsync-bound variants do fewer
	db      *sql.DB
	ins     *sql.Stmt
	between func() error // untimed, after each round
	elapsed time.Duration
	commits int
}

// BenchmarkCommit compares single-row autocommit INSERTs through the store
// with SQLite :memory: and stock WAL at synchronous OFF, NORMAL and FULL,
// on the same directory, through the same driver, in one run. Rounds
// alternate between the variants so drift hits all alike; between rounds
// the store checkpoints, untimed, as in a long-running app whose
// checkpoints run in the background. Stock WAL keeps its own
// auto-checkpoint, which is part of its commit cost.
//
// It reports ns/commit per variant and throughput ratios against the store
// (e.g. store/memory = 0.9 means the store commits at 0.9x :memory:).
func BenchmarkCommit(b *testing.B) {
	dir := *benchDir
	if dir == "" {
		dir = b.TempDir()
	} else {
		dir = filepath.Join(dir, fmt.Sprintf("bench-%d", time.Now().UnixNano()))
		mkdirT(b, dir)
	}
	s, err := Open(filepath.Join(dir, "store.db"), &Options{ManualCheckpoint: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	vs := []*commitVariant{
		{name: "store", perRnd: 1000, db: s.DB(), between: func() error { return s.Checkpoint(ctx) }},
		{name: "memory", perRnd: 1000, db: openPlain(b, ":memory:", "")},
		{name: "wal-off", perRnd: 1000, db: openPlain(b, filepath.Join(dir, "off.db"), "OFF")},
		{name: "wal-normal", perRnd: 1000, db: openPlain(b, filepath.Join(dir, "normal.db"), "NORMAL")},
		{name: "wal-full", perRnd: 20, db: openPlain(b, filepath.Join(dir, "full.db"), "FULL")},
	}
	for _, v := range vs {
		if _, err := v.db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
			b.Fatal(v.name, err)
		}
		if v.ins, err = v.db.Prepare("INSERT INTO t(v) VALUES(?)"); err != nil {
			b.Fatal(v.name, err)
		}
		defer v.ins.Close()
	}
	row := make([]byte, 100)
	// Warm up: one untimed round each, so the store's WAL memory is
	// touched once, as in steady state.
	for _, v := range vs {
		runRound(b, v, row, false)
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += vs[0].perRnd {
		for _, v := range vs {
			runRound(b, v, row, true)
		}
	}
	b.StopTimer()
	base := vs[0].nsPerCommit()
	for _, v := range vs {
		b.ReportMetric(v.nsPerCommit(), v.name+"-ns/commit")
		if v != vs[0] {
			b.ReportMetric(v.nsPerCommit()/base, "store/"+v.name)
		}
	}
}

func runRound(b *testing.B, v *commitVariant, row []byte, timed bool) {
	start := time.Now()
	for i := 0; i < v.perRnd; i++ {
		if _, err := v.ins.Exec(row); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
	}
	if timed {
		v.elapsed += time.Since(start)
		v.commits += v.perRnd
	}
	if v.between != nil {
		if err := v.between(); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
	}
}

func (v *commitVariant) nsPerCommit() float64 {
	return float64(v.elapsed.Nanoseconds()) / float64(max(v.commits, 1))
}

// openPlain opens stock SQLite through mattn: :memory:, or a WAL database
// with the given synchronous level.
func openPlain(b *testing.B, path, sync string) *sql.DB {
	b.Helper()
	dsn := path
	if sync != "" {
		dsn = fmt.Sprintf("file:%s?_journal_mode=WAL&_sync=%s", path, sync)
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one :memory: database; same for the others, fairly
	b.Cleanup(func() { db.Close() })
	return db
}

func mkdirT(b *testing.B, dir string) {
	b.Cleanup(func() { os.RemoveAll(dir) })
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
}
