package store

import (
	"context"
	"testing"
	"time"
)

// TestCheckpoint_deadlineAfterDurable (issue 17, finding 13): a
// Checkpoint whose deadline passes after every frame is backfilled, while
// the rewind runs, has made the data durable: it reports success and no
// failure is counted; the rows are on the drive.
func TestCheckpoint_deadlineAfterDurable(t *testing.T) {
	s, path := openT(t, &Options{ManualCheckpoint: true, MaxWALBytes: 4 << 20})
	db := s.DB()
	mustExec(t, db, "CREATE TABLE t(x BLOB)")
	// About 1.6 MiB of WAL: above rewindAt (a quarter of the cap), so the
	// checkpoint goes on to rewind after its backfill.
	mustExec(t, db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400) INSERT INTO t SELECT randomblob(4000) FROM n")

	// A deadline that passes exactly between the backfill and the rewind,
	// whatever the machine's speed: the hook makes it pass.
	ctx := &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
	ran := false
	testHookBeforeRewind = func(context.Context) {
		ran = true
		close(ctx.done)
	}
	defer func() { testHookBeforeRewind = nil }()
	err := s.Checkpoint(ctx)
	if !ran {
		t.Fatal("the checkpoint never reached the rewind: the test proves nothing")
	}
	if err != nil {
		t.Fatalf("Checkpoint = %v; want nil: the data is durable", err)
	}
	st := s.Stats()
	if st.CheckpointFailures != 0 || st.LastCheckpointError != nil || st.Checkpoints != 1 {
		t.Errorf("stats: %d failures (%v), %d checkpoints; want 0 and 1", st.CheckpointFailures, st.LastCheckpointError, st.Checkpoints)
	}
	if got := sqlite3CLI(t, path, "SELECT count(*) FROM t"); got != "400" {
		t.Errorf("rows on the drive = %s, want 400", got)
	}
	var ms int64
	if err := s.pin.QueryRowContext(context.Background(), "PRAGMA busy_timeout").Scan(&ms); err != nil || ms != s.opts.BusyTimeout.Milliseconds() {
		t.Errorf("busy_timeout after the checkpoint = %d, %v; want %d", ms, err, s.opts.BusyTimeout.Milliseconds())
	}
}

// deadlineCtx is a context with a deadline that passes when done is
// closed.
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (c *deadlineCtx) Done() <-chan struct{}       { return c.done }
func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
