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

// ReadResult is a read-heavy workload on the store against stock WAL
// (synchronous=NORMAL) on the same filesystem: random point reads by key
// and range scans of 100 rows, on a database four times SQLite's default
// page cache (2,000 KiB), so that most pages miss the cache and are read
// from the database file (the operating system's cache holds it: what is
// measured is the read path, not the drive).
type ReadResult struct {
	DBMiB        float64 `json:"db_mib"`
	Rounds       int     `json:"rounds"`
	PointPerRnd  int     `json:"points_per_round"`
	ScanPerRnd   int     `json:"scans_per_round"`
	StoreUsRound float64 `json:"store_us_per_round"` // median
	StockUsRound float64 `json:"stock_us_per_round"` // median
	// Ratio is the store's time over stock WAL's, the median of the
	// per-round ratios, and the range (below 1: the store is faster).
	Ratio    float64 `json:"ratio"`
	RatioMin float64 `json:"ratio_min"`
	RatioMax float64 `json:"ratio_max"`
}

// readDBRows is the number of 200-byte rows: about 8 MiB, four times the
// default page cache.
const readDBRows = 36000

// MeasureReads runs rounds of the read workload on the store (default
// options, checkpointed, so every page is in the database file) and on
// stock WAL NORMAL, alternating, one connection each.
func MeasureReads(ctx context.Context, dir string, rounds int) (ReadResult, error) {
	var res ReadResult
	s, err := openStore(filepath.Join(dir, "read-store.db"), store.Options{})
	if err != nil {
		return res, err
	}
	defer s.Close()
	stock, err := openStock(filepath.Join(dir, "read-stock.db"), "WAL", "NORMAL")
	if err != nil {
		return res, err
	}
	defer stock.Close()
	seedQ := fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(id, v) SELECT i, randomblob(200) FROM c", readDBRows)
	for _, db := range []*sql.DB{s.DB(), stock} {
		if _, err := db.ExecContext(ctx, Schema); err != nil {
			return res, err
		}
		if _, err := db.ExecContext(ctx, seedQ); err != nil {
			return res, err
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		return res, err
	}
	if _, err := stock.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return res, err
	}
	var pages, psize int64
	if err := stock.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return res, err
	}
	if err := stock.QueryRowContext(ctx, "PRAGMA page_size").Scan(&psize); err != nil {
		return res, err
	}
	res.DBMiB = float64(pages*psize) / (1 << 20)

	type arm struct {
		conn        *sql.Conn
		point, scan *sql.Stmt
		rounds      []float64
	}
	var arms []*arm
	for _, db := range []*sql.DB{s.DB(), stock} {
		c, err := db.Conn(ctx)
		if err != nil {
			return res, err
		}
		defer c.Close()
		a := &arm{conn: c}
		if a.point, err = c.PrepareContext(ctx, "SELECT length(v) FROM t WHERE id = ?"); err != nil {
			return res, err
		}
		defer a.point.Close()
		if a.scan, err = c.PrepareContext(ctx, "SELECT sum(length(v)) FROM t WHERE id BETWEEN ? AND ?"); err != nil {
			return res, err
		}
		defer a.scan.Close()
		arms = append(arms, a)
	}
	res.Rounds, res.PointPerRnd, res.ScanPerRnd = rounds, 2000, 200
	rng := rand.New(rand.NewPCG(7, 12))
	for r := -1; r < rounds; r++ { // round -1 warms up, untimed
		seed1, seed2 := rng.Uint64(), rng.Uint64()
		for i := range arms {
			a := arms[(i+r+1)%len(arms)] // rotate the order
			q := rand.New(rand.NewPCG(seed1, seed2))
			t0 := time.Now()
			var n int64
			for j := 0; j < res.PointPerRnd; j++ {
				if err := a.point.QueryRowContext(ctx, 1+q.IntN(readDBRows)).Scan(&n); err != nil {
					return res, err
				}
			}
			for j := 0; j < res.ScanPerRnd; j++ {
				lo := 1 + q.IntN(readDBRows-100)
				if err := a.scan.QueryRowContext(ctx, lo, lo+99).Scan(&n); err != nil {
					return res, err
				}
			}
			if r >= 0 {
				a.rounds = append(a.rounds, float64(time.Since(t0).Microseconds()))
			}
		}
	}
	var ratios []float64
	for i := range arms[0].rounds {
		ratios = append(ratios, arms[0].rounds[i]/arms[1].rounds[i])
	}
	res.StoreUsRound, res.StockUsRound = median(arms[0].rounds), median(arms[1].rounds)
	res.Ratio, res.RatioMin, res.RatioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	return res, nil
}
