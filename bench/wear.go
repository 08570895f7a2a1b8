package bench

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ejectsafe/ejectsafe/store"
)

// The wear section (issue 11, item 5): a realistic application on the
// filesystem measured, for each way of keeping the database there. A
// database of WearPlan.MiB MiB takes random single-row UPDATEs at
// WearPlan.Rate commits per second for WearPlan.Duration, each mode with
// its defaults. Measured per mode:
//
//   - device bytes written: sectors written to the block device holding
//     the directory (/sys/class/block/DEV/stat; for a FUSE mount on a loop
//     device, the loop device), from after the database is in place to
//     after the mode closed it and the device's cache was flushed; -1
//     where the directory is not on a block device this can read;
//   - bytes per commit: those bytes over the commits made;
//   - checkpoints: how many ran during the workload and how long they
//     took (for stock WAL NORMAL: the commits that ran SQLite's
//     auto-checkpoint, seen in the wal-index's backfill count);
//   - the longest wait for durability: from a commit's return to the end
//     of the first fsync that made it durable on the drive (0 for modes
//     that fsync every commit; for the store, the end of the first
//     checkpoint that started after the commit returned; for stock WAL
//     NORMAL, the end of the next auto-checkpoint, or of the close-time
//     checkpoint for the last commits).
//
// --throttle emulates a slow stick: the FUSE daemon serving the mount is
// put in a cgroup-v1 blkio group whose write bandwidth on the loop device
// is capped (throttle_linux.go).

// Wear modes, in report order.
const (
	WearStoreAuto    = "store, Auto (default)"
	WearStoreInPlace = "store, InPlace"
	WearStoreCopy    = "store, Copy"
	WearWALNormal    = "stock WAL, synchronous=NORMAL"
	WearWALFull      = "stock WAL, synchronous=FULL"
	WearRollback     = "stock rollback journal, synchronous=FULL"
)

// wearMode is one way of keeping the database: how to open it, and how
// its durability is observed.
type wearMode struct {
	name string
	// store, when not nil, opens a store with these options; else stock
	// SQLite with journal and sync.
	store         *store.Options
	journal, sync string
}

// WearModes lists the modes measured, in report order: the store in
// each Options.CheckpointMode, then stock SQLite.
var wearModes = []wearMode{
	{name: WearStoreAuto, store: &store.Options{CheckpointMode: store.CheckpointAuto}},
	{name: WearStoreInPlace, store: &store.Options{CheckpointMode: store.CheckpointInPlace}},
	{name: WearStoreCopy, store: &store.Options{CheckpointMode: store.CheckpointCopy}},
	{name: WearWALNormal, journal: "WAL", sync: "NORMAL"},
	{name: WearWALFull, journal: "WAL", sync: "FULL"},
	{name: WearRollback, journal: "DELETE", sync: "FULL"},
}

// WearPlan is the workload of the wear section.
type WearPlan struct {
	MiB      int           // database size
	Rate     int           // commits per second
	Duration time.Duration // how long each mode commits
	// ThrottleMBps, when > 0, caps the FUSE daemon's writes to the loop
	// device at this many MB/s (10^6 bytes) for the whole section.
	ThrottleMBps float64
	// Modes restricts the modes run (names above); nil runs them all.
	Modes []string
}

// WearResult is one mode's row.
type WearResult struct {
	Mode    string  `json:"mode"`
	Commits int     `json:"commits"`
	Seconds float64 `json:"seconds"` // the workload, close and flush included
	// DeviceBytes written to the block device; -1 when not measurable.
	DeviceBytes    int64   `json:"device_bytes"`
	BytesPerCommit float64 `json:"bytes_per_commit"` // -1 when DeviceBytes is
	Checkpoints    int     `json:"checkpoints"`
	// InPlace is how many of the store's checkpoints went in place
	// (Stats.InPlaceCheckpoints); 0 for stock SQLite.
	InPlace    int     `json:"in_place_checkpoints"`
	CkptMeanMs float64 `json:"checkpoint_mean_ms"`
	CkptMaxMs  float64 `json:"checkpoint_max_ms"`
	// MaxDurableWaitMs is the longest a commit waited, after it returned,
	// to be durable on the drive.
	MaxDurableWaitMs float64 `json:"max_durable_wait_ms"`
	CommitP99Ms      float64 `json:"commit_p99_ms"`
	CommitMaxMs      float64 `json:"commit_max_ms"`
}

// WearReport is the wear section of a report.
type WearReport struct {
	Plan     WearPlan     `json:"plan"`
	Device   string       `json:"device"`   // the block device counted, or ""
	Throttle string       `json:"throttle"` // what --throttle did, or why not
	Results  []WearResult `json:"results"`
}

// commitRec is one commit: when it returned and how long it took.
type commitRec struct {
	end time.Time
	d   time.Duration
}

// measureOn finds the block device under dir, whose counters give device
// bytes, and applies the write throttle asked for (mbps > 0), saying
// loudly what it could not do (without: what is measured instead). It
// returns the device, the throttle's description for the report, and
// what undoes the throttle, for the caller to defer.
func measureOn(dir string, mbps float64, without string, log func(string, ...any)) (dev blockDev, throttled string, undo func()) {
	undo = func() {}
	dev = blockDevice(dir)
	if dev.name == "" {
		log("SKIP LOUDLY: %s is not on a block device whose /sys/class/block/*/stat this can read: %s (%s)", dir, without, dev.why)
	}
	if mbps <= 0 {
		return dev, "", undo
	}
	u, what, err := throttle(dir, dev, mbps)
	if err != nil {
		log("SKIP LOUDLY: --throttle %g: %v; measuring unthrottled", mbps, err)
		return dev, "not applied: " + err.Error(), undo
	}
	log("throttle: %s", what)
	return dev, what, u
}

// MeasureWear runs the wear workload in dir for each mode of p.
func MeasureWear(ctx context.Context, dir string, p WearPlan, log func(string, ...any)) (*WearReport, error) {
	if p.MiB <= 0 || p.Rate <= 0 || p.Duration <= 0 {
		return nil, fmt.Errorf("bench: wear: size, rate and duration must be positive (got %d MiB, %d/s, %s)", p.MiB, p.Rate, p.Duration)
	}
	rep := &WearReport{Plan: p}
	dev, throttled, undo := measureOn(dir, p.ThrottleMBps, "device bytes not measured", log)
	defer undo()
	rep.Device, rep.Throttle = dev.name, throttled
	seedPath := filepath.Join(dir, "seed.db")
	log("building a %d MiB database", p.MiB)
	if err := BuildClean(ctx, seedPath, p.MiB); err != nil {
		return rep, err
	}
	rows := p.MiB << 20 / 1000
	for _, m := range wearModes {
		if p.Modes != nil && !contains(p.Modes, m.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		path := filepath.Join(dir, "wear.db")
		if err := copyFileSync(seedPath, path); err != nil {
			return rep, err
		}
		res, err := wearOne(ctx, m, path, dev, rows, p)
		removeDB(path)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", m.name, err)
		}
		log("%s: %d commits, device %s (%s/commit), %d checkpoints (mean %s ms, max %s ms), longest wait for durability %s ms",
			m.name, res.Commits, bytesStr(res.DeviceBytes), bytesStr(int64(res.BytesPerCommit)), res.Checkpoints,
			msStr(res.CkptMeanMs), msStr(res.CkptMaxMs), msStr(res.MaxDurableWaitMs))
		rep.Results = append(rep.Results, res)
	}
	os.Remove(seedPath)
	return rep, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// removeDB removes a database and every file SQLite or the store keeps
// beside it.
func removeDB(path string) {
	matches, _ := filepath.Glob(path + "*")
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

// copyFileSync copies src to dst (replacing it) and fsyncs dst, so the
// copy's writes are not counted as the mode's.
func copyFileSync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// wearDB is one mode's open database during the workload.
type wearDB interface {
	exec(ctx context.Context, id int, v []byte) error
	// observe is called after each commit with its record.
	observe(c commitRec)
	// finish ends the workload: closes the database (the store waits for
	// its checkpoint of the last commits first) and returns the
	// checkpoints seen and when each commit became durable.
	finish(commits []commitRec) (ckpts []interval, durable []time.Time, err error)
	// inPlace is how many checkpoints went in place (after finish).
	inPlace() int
}

func wearOne(ctx context.Context, m wearMode, path string, dev blockDev, rows int, p WearPlan) (WearResult, error) {
	res := WearResult{Mode: m.name, DeviceBytes: -1, BytesPerCommit: -1}
	var db wearDB
	var err error
	if m.store != nil {
		db, err = openWearStore(path, *m.store)
	} else {
		db, err = openWearStock(path, m.journal, m.sync)
	}
	if err != nil {
		return res, err
	}
	before := dev.written()
	rng := rand.New(rand.NewSource(1)) // every mode updates the same rows in the same order
	v := make([]byte, 1000)
	var commits []commitRec
	start := time.Now()
	next := start
	for time.Since(start) < p.Duration && ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(time.Second / time.Duration(p.Rate))
		rng.Read(v)
		t0 := time.Now()
		if err := db.exec(ctx, 1+rng.Intn(rows), v); err != nil {
			db.finish(commits)
			return res, err
		}
		c := commitRec{end: time.Now()}
		c.d = c.end.Sub(t0)
		commits = append(commits, c)
		db.observe(c)
	}
	ckpts, durable, err := db.finish(commits)
	if err != nil {
		return res, err
	}
	if after := dev.written(); before >= 0 && after >= 0 {
		res.DeviceBytes = after - before
		if len(commits) > 0 {
			res.BytesPerCommit = float64(res.DeviceBytes) / float64(len(commits))
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.Commits = len(commits)
	res.Checkpoints = len(ckpts)
	res.InPlace = db.inPlace()
	var sum time.Duration
	for _, iv := range ckpts {
		d := iv.end.Sub(iv.start)
		sum += d
		res.CkptMaxMs = max(res.CkptMaxMs, ms(d))
	}
	if len(ckpts) > 0 {
		res.CkptMeanMs = ms(sum) / float64(len(ckpts))
	}
	ds := make([]time.Duration, len(commits))
	for i, c := range commits {
		ds[i] = c.d
		res.CommitMaxMs = max(res.CommitMaxMs, ms(c.d))
		if w := durable[i].Sub(c.end); w > 0 {
			res.MaxDurableWaitMs = max(res.MaxDurableWaitMs, ms(w))
		}
	}
	res.CommitP99Ms = percentile(ds, 0.99) / 1e3
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// wearStore is the store under the workload. A goroutine polls Stats to
// see each checkpoint end (Checkpoints, LastCheckpoint and its duration).
type wearStore struct {
	s     *store.Store
	stop  chan struct{}
	done  chan []interval
	iv    time.Duration // the store's CheckpointInterval
	ckErr error
	// inPlace0 and inPlace1: Stats.InPlaceCheckpoints at open and
	// before Close.
	inPlace0, inPlace1 int64
}

func openWearStore(path string, o store.Options) (*wearStore, error) {
	s, err := openStore(path, o)
	if err != nil {
		return nil, err
	}
	w := &wearStore{s: s, stop: make(chan struct{}), done: make(chan []interval, 1), iv: store.DefaultCheckpointInterval}
	if o.CheckpointInterval > 0 {
		w.iv = o.CheckpointInterval
	}
	w.inPlace0 = s.Stats().InPlaceCheckpoints
	go w.poll()
	return w, nil
}

func (w *wearStore) inPlace() int { return int(w.inPlace1 - w.inPlace0) }

func (w *wearStore) poll() {
	var ivs []interval
	seen := w.s.Stats().Checkpoints
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			w.done <- ivs
			return
		case <-t.C:
		}
		st := w.s.Stats()
		if st.Checkpoints == seen {
			continue
		}
		// A checkpoint ended since the last look. Were two to end between
		// two looks (2 ms apart), the earlier is counted with the later's
		// times: a later end, so a longer wait, never a shorter one.
		for ; seen < st.Checkpoints; seen++ {
			ivs = append(ivs, interval{start: st.LastCheckpoint.Add(-st.LastCheckpointDuration), end: st.LastCheckpoint})
		}
	}
}

func (w *wearStore) exec(ctx context.Context, id int, v []byte) error {
	_, err := w.s.DB().ExecContext(ctx, "UPDATE t SET v = ? WHERE id = ?", v, id)
	return err
}

func (w *wearStore) observe(commitRec) {}

func (w *wearStore) finish(commits []commitRec) ([]interval, []time.Time, error) {
	// Let the store's own policy checkpoint the last commits (idle, or
	// the interval), as an application that stopped writing would see.
	deadline := time.Now().Add(w.iv + 5*time.Second)
	for w.s.Stats().DirtyBytes > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the poller's last look
	close(w.stop)
	ivs := <-w.done
	w.inPlace1 = w.s.Stats().InPlaceCheckpoints
	closeStart := time.Now()
	err := w.s.Close()
	closeEnd := time.Now()
	if err != nil {
		return nil, nil, err
	}
	// A checkpoint covers the commits that returned before it started;
	// one returned while it ran is counted as covered by the next.
	durable := make([]time.Time, len(commits))
	for i, c := range commits {
		durable[i] = closeEnd
		for _, iv := range ivs {
			if c.end.Before(iv.start) {
				durable[i] = iv.end
				break
			}
		}
		if durable[i] == closeEnd && c.end.After(closeStart) {
			return nil, nil, errors.New("bench: wear: a commit returned after Close began")
		}
	}
	return ivs, durable, nil
}

// wearStock is stock SQLite on its default VFS, one connection.
type wearStock struct {
	db        *sql.DB
	path      string
	upd       *sql.Stmt
	walNormal bool
	backfill  uint32 // the wal-index's backfill count after the last commit
	ckpts     []interval
	ckptAt    []int // index of the commit that ran each checkpoint
	n         int
}

func openWearStock(path, journal, sync string) (*wearStock, error) {
	db, err := openStock(path, journal, sync)
	if err != nil {
		return nil, err
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, journal) {
		db.Close()
		return nil, fmt.Errorf("bench: wear: journal_mode %q, want %s (%v)", mode, journal, err)
	}
	upd, err := db.Prepare("UPDATE t SET v = ? WHERE id = ?")
	if err != nil {
		db.Close()
		return nil, err
	}
	w := &wearStock{db: db, path: path, upd: upd, walNormal: journal == "WAL" && sync == "NORMAL"}
	w.backfill, _ = walBackfill(path)
	return w, nil
}

func (w *wearStock) inPlace() int { return 0 }

func (w *wearStock) exec(ctx context.Context, id int, v []byte) error {
	_, err := w.upd.ExecContext(ctx, v, id)
	return err
}

// observe notes, for WAL NORMAL, whether the commit ran SQLite's
// auto-checkpoint: the wal-index's backfill count (how many WAL frames
// are copied into the database) moved to a non-zero value. A WAL restart
// sets it to 0, and SQLite's auto-checkpoint (1000 pages) never runs in
// two commits in a row at this workload's size.
func (w *wearStock) observe(c commitRec) {
	w.n++
	if !w.walNormal {
		return
	}
	nb, err := walBackfill(w.path)
	if err != nil {
		return
	}
	if nb != 0 && nb != w.backfill {
		w.ckpts = append(w.ckpts, interval{start: c.end.Add(-c.d), end: c.end})
		w.ckptAt = append(w.ckptAt, w.n-1)
	}
	w.backfill = nb
}

func (w *wearStock) finish(commits []commitRec) ([]interval, []time.Time, error) {
	w.upd.Close()
	err := w.db.Close() // the last connection's close checkpoints a WAL
	closeEnd := time.Now()
	durable := make([]time.Time, len(commits))
	for i, c := range commits {
		durable[i] = c.end // synchronous=FULL: fsynced before the commit returned
		if !w.walNormal {
			continue
		}
		// NORMAL: durable when the next checkpoint synced the WAL.
		k := sort.SearchInts(w.ckptAt, i)
		if k < len(w.ckptAt) {
			durable[i] = w.ckpts[k].end
		} else {
			durable[i] = closeEnd
		}
	}
	return w.ckpts, durable, err
}

func bytesStr(n int64) string {
	switch {
	case n < 0:
		return "n/a"
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// walBackfill reads the backfill count (nBackfill: WAL frames copied
// into the database) from the wal-index beside path: the first field of
// the checkpoint info that follows the index header's two 48-byte copies,
// in the host's byte order (SQLite's walformat.html, "The WAL-Index
// File Format").
func walBackfill(path string) (uint32, error) {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.ReadAt(b[:], 96); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint32(b[:]), nil
}
