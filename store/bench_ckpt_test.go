package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/bench"
	"github.com/ejectsafe/ejectsafe/store"
)

// BenchmarkCheckpoint measures a checkpoint of a database of a given size
// with a given share of its pages dirty, against, in the same run and
// directory (bench.CkptDB):
//
//   - raw: copy the database file, fsync the copy, rename it over a
//     scratch name, fsync the directory: the floor for any checkpoint that
//     never writes the database in place;
//   - vacuum: VACUUM INTO a new file (SQLite's own way to write a fresh
//     copy);
//   - backup: SQLite's online backup API into a new file.
//
// The dirtying UPDATE runs untimed. ns/op is the store's checkpoint;
// reported besides: ms per operation for each, MiB each wrote, and ratios
// ckpt/raw, ckpt/vacuum, ckpt/backup (below 1 is faster than the
// baseline). -bench.big adds a 256 MiB database.
func BenchmarkCheckpoint(b *testing.B) {
	sizes := []int{1, 16}
	if *benchBig {
		sizes = append(sizes, 256)
	}
	for _, mib := range sizes {
		for _, pct := range []float64{0.1, 1, 10} {
			b.Run(fmt.Sprintf("db=%dMiB/dirty=%g%%", mib, pct), func(b *testing.B) {
				benchCheckpoint(b, mib, pct)
			})
		}
	}
}

func benchCheckpoint(b *testing.B, mib int, pct float64) {
	ctx := context.Background()
	c, err := bench.NewCkptDB(ctx, dirB(b), mib)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var sum bench.CkptSample
	sum.Time, sum.Bytes = map[string]time.Duration{}, map[string]int64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := c.Sample(ctx, pct, i)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range bench.CkptMethods {
			sum.Time[m] += s.Time[m]
			sum.Bytes[m] += s.Bytes[m]
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(sum.Time[bench.CkptStore].Nanoseconds())/n, "ns/op")
	for _, m := range bench.CkptMethods {
		b.ReportMetric(float64(sum.Time[m].Microseconds())/1e3/n, m+"-ms")
		b.ReportMetric(float64(sum.Bytes[m])/(1<<20)/n, m+"-MiB-written")
		if m != bench.CkptStore {
			b.ReportMetric(float64(sum.Time[bench.CkptStore])/float64(sum.Time[m]), "ckpt/"+m)
		}
	}
}

// BenchmarkOpen times store.Open plus a first query on a clean database
// of 1 MiB and of 64 MiB (256 MiB with -bench.big), its pages dropped from
// the page cache first: recovery must not read a clean database whole,
// so the two should take the same time.
func BenchmarkOpen(b *testing.B) {
	sizes := []int{1, 64}
	if *benchBig {
		sizes[1] = 256
	}
	for _, mib := range sizes {
		b.Run(fmt.Sprintf("db=%dMiB", mib), func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(dirB(b), "open.db")
			if err := bench.BuildClean(ctx, path, mib); err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, _, err := bench.OpenOnce(ctx, path)
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
		})
	}
}

// BenchmarkFirstCheckpoint measures the first checkpoint after Open of a
// 64 MiB database (one row updated), against the second checkpoint of
// the same Store with the same change, in the same run: the first
// computes the base's checksum over the file it copies (the journal's
// last Done only names the database; issue 17), the second knows it.
// ns/op is the first; first-ms, second-ms and first/second are reported.
func BenchmarkFirstCheckpoint(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(dirB(b), "first.db")
	if err := bench.BuildClean(ctx, path, 64); err != nil {
		b.Fatal(err)
	}
	var first, second time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := store.Open(path, &store.Options{ManualCheckpoint: true})
		if err != nil {
			b.Fatal(err)
		}
		for k, d := range []*time.Duration{&first, &second} {
			if _, err := s.DB().ExecContext(ctx, "UPDATE t SET v = randomblob(1000) WHERE id = ?", 1+i*2+k); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			if err := s.Checkpoint(ctx); err != nil {
				b.Fatal(err)
			}
			*d += time.Since(t0)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(first.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(first.Microseconds())/1e3/n, "first-ms")
	b.ReportMetric(float64(second.Microseconds())/1e3/n, "second-ms")
	b.ReportMetric(float64(first)/float64(second), "first/second")
}
