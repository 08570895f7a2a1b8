package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/store"
)

// Checkpoint methods, in report order.
const (
	CkptStore  = "store"  // the store's Checkpoint (two-phase: copy, apply, fsync, journal, rename)
	CkptRaw    = "raw"    // copy + fsync + rename + directory fsync: the floor
	CkptVacuum = "vacuum" // VACUUM INTO a new file
	CkptBackup = "backup" // SQLite's online backup API into a new file
)

// CkptMethods lists the checkpoint methods in report order.
var CkptMethods = []string{CkptStore, CkptRaw, CkptVacuum, CkptBackup}

// CkptSample is one iteration: each method's time and the bytes it
// passed to write-type system calls (-1 where the platform does not say).
type CkptSample struct {
	Frames int64 // WAL frames the dirtying UPDATE wrote
	Time   map[string]time.Duration
	Bytes  map[string]int64
}

// CheckpointResult is the medians over the iterations of one case.
type CheckpointResult struct {
	DBMiB      int     `json:"db_mib"`
	DBBytes    int64   `json:"db_bytes"`
	DirtyPct   float64 `json:"dirty_pct"`
	DirtyPages int64   `json:"dirty_pages"` // WAL frames the dirtying UPDATE wrote
	Iterations int     `json:"iterations"`
	StoreMs    float64 `json:"store_ms"`
	RawMs      float64 `json:"raw_ms"`
	VacuumMs   float64 `json:"vacuum_ms"`
	BackupMs   float64 `json:"backup_ms"`
	// Bytes written per operation (write, pwrite, copy_file_range), -1
	// where the platform does not say.
	StoreBytes  int64 `json:"store_bytes"`
	RawBytes    int64 `json:"raw_bytes"`
	VacuumBytes int64 `json:"vacuum_bytes"`
	BackupBytes int64 `json:"backup_bytes"`
	// Median over iterations of the store's time over each baseline's.
	StoreVsRaw    float64 `json:"store_vs_raw"`
	StoreVsVacuum float64 `json:"store_vs_vacuum"`
	StoreVsBackup float64 `json:"store_vs_backup"`
}

// CkptDB is a store database of a given size in its own directory, for
// timing checkpoints against the baselines.
type CkptDB struct {
	dir, path string
	mib       int
	s         *store.Store
	iter      int
}

// NewCkptDB builds a database of about mib MiB (1000-byte rows) in dir,
// checkpointed.
func NewCkptDB(ctx context.Context, dir string, mib int) (*CkptDB, error) {
	c := &CkptDB{dir: dir, path: filepath.Join(dir, "ckpt.db"), mib: mib}
	s, err := openStore(c.path, store.Options{ManualCheckpoint: true, MaxWALBytes: walCapFor(mib), CheckpointMode: store.CheckpointCopy})
	if err != nil {
		return nil, err
	}
	c.s = s
	if err := seed(ctx, s.DB(), mib); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Checkpoint(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the store.
func (c *CkptDB) Close() error { return c.s.Close() }

// Size is the database file's size.
func (c *CkptDB) Size() int64 {
	fi, err := os.Stat(c.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Dirty updates rows so that about pct% of the pages are dirty in the WAL
// (untimed by callers), and returns the WAL frames that made.
func (c *CkptDB) Dirty(ctx context.Context, pct float64) (int64, error) {
	// Rows are about a quarter of a 4 KiB page: touching every k-th row
	// dirties about pct% of the pages.
	// At least one row: the residue is one that some id has.
	every := max(1, int(100/pct)*4)
	rows := c.mib << 20 / 1000
	before := c.s.Stats().DirtyBytes
	residue := 0
	if every > 1 {
		residue = 1 + c.iter%max(1, min(every-1, rows))
	}
	_, err := c.s.DB().ExecContext(ctx, "UPDATE t SET v = randomblob(1000) WHERE id % ? = ?", every, residue)
	c.iter++
	return (c.s.Stats().DirtyBytes - before) / (4096 + 24), err
}

// Sample dirties pct% of the pages, then times each method once, in an
// order that rotates with i so that none always runs first.
func (c *CkptDB) Sample(ctx context.Context, pct float64, i int) (CkptSample, error) {
	out := CkptSample{Time: map[string]time.Duration{}, Bytes: map[string]int64{}}
	var err error
	if out.Frames, err = c.Dirty(ctx, pct); err != nil {
		return out, err
	}
	ops := map[string]func() error{
		CkptStore: func() error { return c.s.Checkpoint(ctx) },
		CkptRaw:   func() error { return RawCopy(c.path, filepath.Join(c.dir, "raw.tmp"), filepath.Join(c.dir, "raw.db")) },
		CkptVacuum: func() error {
			_, err := c.s.DB().ExecContext(ctx, "VACUUM INTO ?", filepath.Join(c.dir, "vacuum.db"))
			return err
		},
		CkptBackup: func() error { return Backup(ctx, c.s.DB(), filepath.Join(c.dir, "backup.db")) },
	}
	for k := range CkptMethods {
		m := CkptMethods[(k+i)%len(CkptMethods)]
		// VACUUM INTO and the backup write new files; raw renames over
		// the copy it made last time, as a checkpoint renames over the
		// database (freeing the old file's blocks is part of its cost).
		for _, name := range []string{"vacuum.db", "backup.db", "backup.db-journal"} {
			os.Remove(filepath.Join(c.dir, name))
		}
		w0 := bytesWritten()
		t0 := time.Now()
		if err := ops[m](); err != nil {
			return out, fmt.Errorf("%s: %w", m, err)
		}
		out.Time[m] = time.Since(t0)
		if w1 := bytesWritten(); w0 >= 0 && w1 >= 0 {
			out.Bytes[m] = w1 - w0
		} else {
			out.Bytes[m] = -1
		}
	}
	return out, nil
}

// MeasureCheckpoints builds one database of mib MiB and runs iters
// samples for each dirty share.
func MeasureCheckpoints(ctx context.Context, dir string, mib int, dirty []float64, iters int, log func(string, ...any)) ([]CheckpointResult, error) {
	t0 := time.Now()
	c, err := NewCkptDB(ctx, dir, mib)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	log("built %s in %s", mibStr(c.Size()), roundDur(time.Since(t0)))
	var out []CheckpointResult
	for _, pct := range dirty {
		log("%g%% dirty, %d iterations ...", pct, iters)
		res := CheckpointResult{DBMiB: mib, DBBytes: c.Size(), DirtyPct: pct, Iterations: iters}
		var ss []CkptSample
		for i := 0; i < iters; i++ {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			s, err := c.Sample(ctx, pct, i)
			if err != nil {
				return out, err
			}
			ss = append(ss, s)
		}
		res.summarize(ss)
		out = append(out, res)
		log("%g%% dirty: store %.1f ms, raw %.1f ms (%.2fx), VACUUM INTO %.1f ms (%.2fx), backup %.1f ms (%.2fx)",
			pct, res.StoreMs, res.RawMs, res.StoreVsRaw, res.VacuumMs, res.StoreVsVacuum, res.BackupMs, res.StoreVsBackup)
	}
	return out, c.Close()
}

func (r *CheckpointResult) summarize(ss []CkptSample) {
	med := func(m string) float64 {
		var xs []float64
		for _, s := range ss {
			xs = append(xs, float64(s.Time[m].Microseconds())/1e3)
		}
		return median(xs)
	}
	medBytes := func(m string) int64 {
		var xs []float64
		for _, s := range ss {
			if s.Bytes[m] < 0 {
				return -1
			}
			xs = append(xs, float64(s.Bytes[m]))
		}
		return int64(median(xs))
	}
	ratio := func(m string) float64 {
		var xs []float64
		for _, s := range ss {
			xs = append(xs, float64(s.Time[CkptStore])/float64(s.Time[m]))
		}
		return median(xs)
	}
	var frames []float64
	for _, s := range ss {
		frames = append(frames, float64(s.Frames))
	}
	r.DirtyPages = int64(median(frames))
	r.StoreMs, r.RawMs, r.VacuumMs, r.BackupMs = med(CkptStore), med(CkptRaw), med(CkptVacuum), med(CkptBackup)
	r.StoreBytes, r.RawBytes, r.VacuumBytes, r.BackupBytes = medBytes(CkptStore), medBytes(CkptRaw), medBytes(CkptVacuum), medBytes(CkptBackup)
	r.StoreVsRaw, r.StoreVsVacuum, r.StoreVsBackup = ratio(CkptRaw), ratio(CkptVacuum), ratio(CkptBackup)
}

// RawCopy is the floor for a checkpoint that never writes the database
// in place: copy src to tmp (copy_file_range where offered, as the
// store's copy), fsync the copy, rename it to dst (over the previous
// copy, if any), fsync the directory.
func RawCopy(src, tmp, dst string) error {
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
	if runtime.GOOS == "windows" {
		// No directory fsync there: the store's rename is MoveFileEx with
		// write-through, standing in for it (device/os_windows.go).
		if err := device.OS.Rename(tmp, dst); err != nil {
			return err
		}
		return device.OS.SyncDir(filepath.Dir(dst))
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

// Backup copies src's main database into a new database file at dst with
// SQLite's online backup API, in one step; the destination commits with
// synchronous=FULL, so the copy is fsynced.
func Backup(ctx context.Context, src *sql.DB, dst string) error {
	ddb, err := sql.Open("sqlite3", fileURI(dst)+"?_sync=FULL")
	if err != nil {
		return err
	}
	defer ddb.Close()
	dc, err := ddb.Conn(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	sc, err := src.Conn(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	return dc.Raw(func(d any) error {
		return sc.Raw(func(s any) error {
			dconn, ok1 := d.(*sqlite3.SQLiteConn)
			sconn, ok2 := s.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return fmt.Errorf("backup: not mattn/go-sqlite3 connections (%T, %T)", d, s)
			}
			bk, err := dconn.Backup("main", sconn, "main")
			if err != nil {
				return err
			}
			if _, err := bk.Step(-1); err != nil {
				bk.Finish()
				return err
			}
			return bk.Finish()
		})
	})
}
