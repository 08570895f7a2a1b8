package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ejectsafe/ejectsafe/store"
)

// OpenResult is the time to open a clean database and run a first query,
// small against large.
type OpenResult struct {
	SmallMiB   int     `json:"small_mib"`
	LargeMiB   int     `json:"large_mib"`
	Iterations int     `json:"iterations"`
	ColdCache  bool    `json:"cold_cache"` // the database's pages were dropped from the page cache before each open
	SmallMs    float64 `json:"small_ms"`   // median
	LargeMs    float64 `json:"large_ms"`   // median
	Ratio      float64 `json:"ratio"`      // LargeMs / SmallMs
}

// BuildClean makes a clean database of about mib MiB at path:
// checkpointed and closed.
func BuildClean(ctx context.Context, path string, mib int) error {
	s, err := openStore(path, store.Options{ManualCheckpoint: true, MaxWALBytes: walCapFor(mib)})
	if err != nil {
		return err
	}
	if err := seed(ctx, s.DB(), mib); err != nil {
		s.Abandon()
		return err
	}
	return s.Close()
}

// OpenOnce times store.Open and a first query (one row by its key) on
// the database at path, after dropping its pages from the page cache
// where the platform allows. It reports the time and whether the cache
// was dropped. The store is released with Abandon: nothing was written,
// and Close would checkpoint, which is not what is measured.
func OpenOnce(ctx context.Context, path string) (time.Duration, bool, error) {
	cold := dropCache(path)
	t0 := time.Now()
	s, err := openStore(path, store.Options{ManualCheckpoint: true})
	if err != nil {
		return 0, cold, err
	}
	var n int
	err = s.DB().QueryRowContext(ctx, "SELECT length(v) FROM t WHERE id = 1").Scan(&n)
	d := time.Since(t0)
	if aerr := s.Abandon(); err == nil {
		err = aerr
	}
	return d, cold, err
}

// MeasureOpen builds a clean database of each size and opens them in
// turn, iters times each.
func MeasureOpen(ctx context.Context, dir string, sizes [2]int, iters int) (OpenResult, error) {
	res := OpenResult{SmallMiB: sizes[0], LargeMiB: sizes[1], Iterations: iters, ColdCache: true}
	var paths [2]string
	for i, mib := range sizes {
		paths[i] = filepath.Join(dir, fmt.Sprintf("open-%d.db", mib))
		if err := BuildClean(ctx, paths[i], mib); err != nil {
			return res, err
		}
	}
	var ms [2][]float64
	for it := 0; it < iters; it++ {
		for k := range 2 {
			i := (k + it) % 2 // alternate which goes first
			d, cold, err := OpenOnce(ctx, paths[i])
			if err != nil {
				return res, err
			}
			res.ColdCache = res.ColdCache && cold
			ms[i] = append(ms[i], float64(d.Microseconds())/1e3)
		}
	}
	res.SmallMs, res.LargeMs = median(ms[0]), median(ms[1])
	if res.SmallMs > 0 {
		res.Ratio = res.LargeMs / res.SmallMs
	}
	return res, nil
}
