package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCheckpoint measures a checkpoint of a database of a given size
// with a given share of its pages dirty, against, in the same run and
// directory:
//
//   - raw: copy the database file, fsync the copy, rename it over a
//     scratch name, fsync the directory: the floor for any checkpoint that
//     never writes the database in place;
//   - vacuum: VACUUM INTO a new file (SQLite's own way to write a fresh
//     copy), then remove it.
//
// The dirtying UPDATE runs untimed. Reported: ms per operation for each,
// and ratios ckpt/raw and ckpt/vacuum (below 1 is faster than the
// baseline).
func BenchmarkCheckpoint(b *testing.B) {
	for _, mib := range []int{1, 16} {
		for _, pct := range []float64{0.1, 1, 10} {
			b.Run(fmt.Sprintf("db=%dMiB/dirty=%g%%", mib, pct), func(b *testing.B) {
				benchCheckpoint(b, mib, pct)
			})
		}
	}
}

func benchCheckpoint(b *testing.B, mib int, pct float64) {
	dir := b.TempDir()
	if *benchDir != "" {
		dir = filepath.Join(*benchDir, fmt.Sprintf("ckpt-%d", time.Now().UnixNano()))
		mkdirT(b, dir)
	}
	path := filepath.Join(dir, "ckpt.db")
	s, err := Open(path, &Options{ManualCheckpoint: true, MaxWALBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	const rowBytes = 1000
	rows := mib << 20 / rowBytes
	if _, err := db.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(v) SELECT randomblob(%d) FROM c", rows, rowBytes)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	// Rows are about a quarter of a 4 KiB page: touching every k-th row
	// dirties about pct% of the pages.
	every := max(1, int(100/pct)*4)
	var ckpt, raw, vacuum time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := db.Exec("UPDATE t SET v = randomblob(?) WHERE id % ? = ?", rowBytes, every, i%every); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := s.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		ckpt += time.Since(start)
		b.StopTimer()

		start = time.Now()
		if err := rawCopy(path, filepath.Join(dir, "raw.tmp"), filepath.Join(dir, "raw.db")); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)

		vac := filepath.Join(dir, "vacuum.db")
		start = time.Now()
		if _, err := db.Exec("VACUUM INTO ?", vac); err != nil {
			b.Fatal(err)
		}
		vacuum += time.Since(start)
		os.Remove(vac)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(ckpt.Milliseconds())/n, "ckpt-ms")
	b.ReportMetric(float64(raw.Milliseconds())/n, "raw-ms")
	b.ReportMetric(float64(vacuum.Milliseconds())/n, "vacuum-ms")
	b.ReportMetric(float64(ckpt)/float64(raw), "ckpt/raw")
	b.ReportMetric(float64(ckpt)/float64(vacuum), "ckpt/vacuum")
}

// rawCopy is the floor: copy, fsync, rename, fsync the directory.
func rawCopy(src, tmp, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
