package store_test

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/bench"
	"github.com/ejectsafe/ejectsafe/store"
)

// The measurement code is package bench's, shared with `ejectsafe bench`,
// which runs all of it and evaluates issue #7's targets; these benchmarks
// run one measurement each.

var (
	benchDir = flag.String("bench.dir", "", "directory for benchmark databases (default: a temporary directory)")
	benchBig = flag.Bool("bench.big", false, "also run the 256 MiB database cases")
	benchDur = flag.String("bench.durability", "", "durability of the store variant in the commit benchmarks: checkpoint, hostlog, hostsync (default: the store's default)")
)

// dirB returns a fresh directory on the filesystem under test.
func dirB(b *testing.B) string {
	b.Helper()
	if *benchDir == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(*benchDir, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkCommit compares single-row autocommit INSERTs through the store
// with SQLite :memory:, stock WAL at synchronous OFF, NORMAL and FULL, and
// a rollback journal at FULL, on the same directory, through the same
// driver, in one run (bench.CommitSet). Rounds alternate between the
// variants so drift hits all alike; between rounds the store checkpoints,
// untimed, as in a long-running app whose checkpoints run in the
// background. Stock WAL keeps its own auto-checkpoint, which is part of
// its commit cost.
//
// It reports ns/commit and p99 per variant and ratios store/<variant>:
// the store's throughput relative to the variant's, median over rounds
// (store/memory 0.9: the store commits at 0.9x :memory:).
func BenchmarkCommit(b *testing.B) { benchCommit(b, 1, 4000) }

// BenchmarkCommitTx100 is BenchmarkCommit with 100-row transactions.
func BenchmarkCommitTx100(b *testing.B) { benchCommit(b, 100, 40) }

// BenchmarkCommitUnprepared is BenchmarkCommit with unprepared SQL (Exec
// with the statement's text, as most applications write it), for the
// store, the limit arm and :memory:.
func BenchmarkCommitUnprepared(b *testing.B) { benchCommit(b, -1, 4000) }

// benchCommit runs rows-row transactions; rows -1: single-row autocommit
// through unprepared SQL.
func benchCommit(b *testing.B, rows, perRound int) {
	var names []string
	unprepared := rows < 0
	if unprepared {
		rows, names = 1, bench.UnpreparedVariants
	}
	switch *benchDur {
	case "":
	case "checkpoint":
		bench.StoreDurability = store.Checkpoint
	case "hostlog":
		bench.StoreDurability = store.HostLog
	case "hostsync":
		bench.StoreDurability = store.HostSync
	default:
		b.Fatalf("-bench.durability %q: want checkpoint, hostlog or hostsync", *benchDur)
	}
	cs, err := bench.OpenCommitSet(dirB(b), names, rows, perRound, 50)
	if err != nil {
		b.Fatal(err)
	}
	cs.Unprepared = unprepared
	defer cs.Close()
	// Warm up: one untimed round each, so the store's WAL memory is
	// touched once, as in steady state.
	if err := cs.Round(false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += perRound {
		if err := cs.Round(true); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for _, r := range cs.Results() {
		b.ReportMetric(r.NsPerCommit, r.Variant+"-ns/commit")
		b.ReportMetric(r.P99us, r.Variant+"-p99-us")
		if r.Variant != bench.Store {
			b.ReportMetric(r.StoreRatio, "store/"+r.Variant)
		}
	}
	if err := cs.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCommitDuringCheckpoint reports commit latency p99 with and
// without a checkpoint running (16 MiB database, 10,000 commits/s for
// 2 s): the store with Checkpoint looping in a goroutine, and stock WAL
// (synchronous=NORMAL) whose auto-checkpoint runs inside some commits.
// One run per b.N; run with -benchtime 1x.
func BenchmarkCommitDuringCheckpoint(b *testing.B) {
	ctx := context.Background()
	for _, f := range []func(context.Context, string, int, time.Duration, int) (bench.LatencyResult, error){bench.StoreLatency, bench.StockLatency} {
		for i := 0; i < b.N; i++ {
			r, err := f(ctx, dirB(b), 16, 2*time.Second, 10000)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.IdleP99us, r.Variant+"-idle-p99-us")
			b.ReportMetric(r.DuringP99us, r.Variant+"-during-p99-us")
			b.ReportMetric(r.P99Ratio, r.Variant+"-p99-during/idle")
		}
	}
}

// The memory children: this test binary re-executed (TestMain).
func init() { store.ChildCommands[bench.ChildCommand] = bench.RunChild }

// BenchmarkMemory reports the peak RSS of a process that filled a 64 MiB
// WAL, above that of one that opened an empty store, per WAL byte. The
// processes are this test binary re-executed (see package bench).
func BenchmarkMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.MeasureMemory(context.Background(), dirB(b), 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.ExtraRSS)/(1<<20), "extra-rss-MiB")
		b.ReportMetric(float64(r.WALBytes)/(1<<20), "wal-MiB")
		b.ReportMetric(r.RSSPerWAL, "rss/wal")
	}
}

// BenchmarkRead runs a read-heavy workload (random point reads and
// 100-row range scans on a database four times SQLite's default page
// cache) on the store and on stock WAL NORMAL in the same directory,
// alternating rounds (bench.MeasureReads), and reports store/stock time.
// One measurement of 20 rounds per b.N; run with -benchtime 1x.
func BenchmarkRead(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := bench.MeasureReads(context.Background(), dirB(b), 20)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.StoreUsRound, "store-us/round")
		b.ReportMetric(r.StockUsRound, "stock-us/round")
		b.ReportMetric(r.Ratio, "store/stock")
		b.ReportMetric(r.RatioMin, "store/stock-min")
		b.ReportMetric(r.RatioMax, "store/stock-max")
		b.ReportMetric(r.DBMiB, "db-MiB")
	}
}
