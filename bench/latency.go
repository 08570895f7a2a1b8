package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ejectsafe/ejectsafe/store"
)

// LatencyResult is commit latency with and without a checkpoint running,
// from one run of one variant.
type LatencyResult struct {
	Variant       string  `json:"variant"`
	How           string  `json:"how"`
	DBMiB         int     `json:"db_mib"`
	Rate          int     `json:"rate_per_sec"` // the pace the writer aimed at
	Seconds       float64 `json:"seconds"`
	Checkpoints   int     `json:"checkpoints"`
	CheckpointMs  float64 `json:"checkpoint_ms"` // mean duration of a checkpoint
	IdleCommits   int     `json:"idle_commits"`
	DuringCommits int     `json:"during_commits"`
	IdleP50us     float64 `json:"idle_p50_us"`
	IdleP99us     float64 `json:"idle_p99_us"`
	IdleMaxUs     float64 `json:"idle_max_us"`
	DuringP50us   float64 `json:"during_p50_us"`
	DuringP99us   float64 `json:"during_p99_us"`
	DuringMaxUs   float64 `json:"during_max_us"`
	P99Ratio      float64 `json:"p99_ratio"` // during p99 / idle p99
}

// sample is one commit: when it began and how long it took.
type sample struct {
	at time.Time
	d  time.Duration
}

// interval is when one checkpoint ran.
type interval struct{ start, end time.Time }

// seed creates Schema's table holding about mib MiB of 1000-byte rows.
func seed(ctx context.Context, db *sql.DB, mib int) error {
	if _, err := db.ExecContext(ctx, Schema); err != nil {
		return err
	}
	rows := mib << 20 / 1000
	_, err := db.ExecContext(ctx, fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(v) SELECT randomblob(1000) FROM c", rows))
	return err
}

// walCapFor is a WAL cap that holds a whole database of mib MiB being
// created in one transaction, with room to spare.
func walCapFor(mib int) int64 { return max(int64(mib)<<21, 256<<20) }

// writeFor commits single-row INSERTs for dur at about rate commits per
// second (in bursts between sleeps of at least a millisecond), timing
// each. after, if not nil, runs untimed after each commit.
func writeFor(ctx context.Context, ins *sql.Stmt, dur time.Duration, rate int, after func() error) ([]sample, error) {
	row := make([]byte, RowBytes)
	per := time.Second / time.Duration(max(rate, 1))
	out := make([]sample, 0, int(dur/per)+1)
	start := time.Now()
	for n := 1; ; n++ {
		t0 := time.Now()
		if t0.Sub(start) >= dur {
			return out, nil
		}
		if _, err := ins.ExecContext(ctx, row); err != nil {
			return out, err
		}
		out = append(out, sample{t0, time.Since(t0)})
		if after != nil {
			if err := after(); err != nil {
				return out, err
			}
		}
		if ahead := time.Until(start.Add(time.Duration(n) * per)); ahead > time.Millisecond {
			time.Sleep(ahead)
		}
	}
}

// split sorts the commits into those that overlapped a checkpoint and the
// others. Both lists are in time order.
func split(ss []sample, ivs []interval) (idle, during []time.Duration) {
	j := 0
	for _, s := range ss {
		end := s.at.Add(s.d)
		for j < len(ivs) && ivs[j].end.Before(s.at) {
			j++
		}
		if j < len(ivs) && !ivs[j].start.After(end) {
			during = append(during, s.d)
		} else {
			idle = append(idle, s.d)
		}
	}
	return idle, during
}

func (r *LatencyResult) fill(idle, during []time.Duration) {
	r.IdleCommits, r.DuringCommits = len(idle), len(during)
	r.IdleP50us, r.IdleP99us, r.IdleMaxUs = percentile(idle, 0.5), percentile(idle, 0.99), percentile(idle, 1)
	r.DuringP50us, r.DuringP99us = percentile(during, 0.5), percentile(during, 0.99)
	r.DuringMaxUs = percentile(during, 1)
	if r.IdleP99us > 0 {
		r.P99Ratio = r.DuringP99us / r.IdleP99us
	}
}

// StoreLatency commits single-row INSERTs into a store whose database
// holds about mib MiB, while a goroutine runs Checkpoint over and over
// with pauses as long as the last checkpoint took (so about half the
// commits meet one). Commits that overlap a checkpoint are "during", the
// others "idle": both come from the same run.
func StoreLatency(ctx context.Context, dir string, mib int, dur time.Duration, rate int) (res LatencyResult, err error) {
	res = LatencyResult{Variant: Store, DBMiB: mib, Rate: rate,
		How: "Checkpoint looping in a goroutine, pauses as long as each checkpoint; commits overlapping one are \"during\""}
	s, err := openStore(filepath.Join(dir, "latency-store.db"), store.Options{ManualCheckpoint: true, MaxWALBytes: walCapFor(mib)})
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	db := s.DB()
	if err := seed(ctx, db, mib); err != nil {
		return res, err
	}
	if err := s.Checkpoint(ctx); err != nil {
		return res, err
	}
	ins, err := db.PrepareContext(ctx, "INSERT INTO t(v) VALUES(?)")
	if err != nil {
		return res, err
	}
	defer ins.Close()
	// Warm up: touch the WAL memory and the connections once.
	if _, err := writeFor(ctx, ins, dur/10, rate, nil); err != nil {
		return res, err
	}
	if err := s.Checkpoint(ctx); err != nil {
		return res, err
	}

	var (
		mu   sync.Mutex
		ivs  []interval
		stop = make(chan struct{})
		errc = make(chan error, 1)
	)
	go func() {
		gap := 5 * time.Millisecond
		for {
			select {
			case <-stop:
				errc <- nil
				return
			case <-time.After(gap):
			}
			t0 := time.Now()
			err := s.Checkpoint(ctx)
			t1 := time.Now()
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			ivs = append(ivs, interval{t0, t1})
			mu.Unlock()
			gap = max(t1.Sub(t0), 5*time.Millisecond)
		}
	}()
	t0 := time.Now()
	ss, werr := writeFor(ctx, ins, dur, rate, nil)
	res.Seconds = time.Since(t0).Seconds()
	close(stop)
	if err := <-errc; err != nil {
		return res, fmt.Errorf("checkpoint: %w", err)
	}
	if werr != nil {
		return res, werr
	}
	var total time.Duration
	for _, iv := range ivs {
		total += iv.end.Sub(iv.start)
	}
	res.Checkpoints = len(ivs)
	if len(ivs) > 0 {
		res.CheckpointMs = float64(total.Microseconds()) / 1e3 / float64(len(ivs))
	}
	res.fill(split(ss, ivs))
	return res, nil
}

// StockLatency commits single-row INSERTs into stock SQLite in WAL mode,
// synchronous=NORMAL, default auto-checkpoint (1000 pages), database of
// about mib MiB. SQLite runs the auto-checkpoint inside the commit that
// crosses the threshold: those commits are "during", the others "idle".
// A commit ran a checkpoint when the next one restarted the WAL, which
// SQLite does only once every frame is backfilled; the restart shows as
// a new checkpoint sequence number and salt in the WAL header, read
// (untimed) after every commit.
func StockLatency(ctx context.Context, dir string, mib int, dur time.Duration, rate int) (LatencyResult, error) {
	res := LatencyResult{Variant: WALNormal, DBMiB: mib, Rate: rate,
		How: "SQLite's auto-checkpoint (1000 pages) runs inside a commit; those commits are \"during\""}
	path := filepath.Join(dir, "latency-wal.db")
	db, err := openStock(path, "WAL", "NORMAL")
	if err != nil {
		return res, err
	}
	defer db.Close()
	if err := seed(ctx, db, mib); err != nil {
		return res, err
	}
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return res, err
	}
	ins, err := db.PrepareContext(ctx, "INSERT INTO t(v) VALUES(?)")
	if err != nil {
		return res, err
	}
	defer ins.Close()
	if _, err := writeFor(ctx, ins, dur/10, rate, nil); err != nil {
		return res, err
	}
	wal, err := os.Open(path + "-wal")
	if err != nil {
		return res, err
	}
	defer wal.Close()
	// WAL header: checkpoint sequence number at 12, salts at 16 and 20.
	var prev, cur [24]byte
	wal.ReadAt(prev[:], 0)
	var restarts []int // indexes of the commits after which the WAL restarted
	n := 0
	after := func() error {
		n++
		if _, err := wal.ReadAt(cur[:], 0); err != nil {
			return fmt.Errorf("read WAL header: %w", err)
		}
		if !bytes.Equal(cur[12:], prev[12:]) {
			restarts = append(restarts, n-1)
			prev = cur
		}
		return nil
	}
	t0 := time.Now()
	ss, err := writeFor(ctx, ins, dur, rate, after)
	res.Seconds = time.Since(t0).Seconds()
	if err != nil {
		return res, err
	}
	// The commit before a restart ran the checkpoint.
	host := make(map[int]bool)
	for _, i := range restarts {
		if i > 0 {
			host[i-1] = true
		}
	}
	var idle, during []time.Duration
	var total time.Duration
	for i, s := range ss {
		if host[i] {
			during = append(during, s.d)
			total += s.d
		} else {
			idle = append(idle, s.d)
		}
	}
	res.Checkpoints = len(during)
	if len(during) > 0 {
		res.CheckpointMs = float64(total.Microseconds()) / 1e3 / float64(len(during))
	}
	res.fill(idle, during)
	return res, nil
}
