package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mattn/go-sqlite3"

	"github.com/ejectsafe/ejectsafe/store"
)

// ChildCommand is the hidden subcommand that runs one memory
// measurement: MeasureMemory re-executes os.Executable as
// "EXE bench-child SPEC", so the peak RSS it reads is of a process that
// did nothing else. Every program that calls MeasureMemory dispatches it
// to RunChild before anything else runs: ejectsafe's main does, and so
// does the TestMain of each test binary that measures memory.
const ChildCommand = "bench-child"

// RunChild is the child side of MeasureMemory: args is the one argument
// after ChildCommand, a JSON childSpec; the result, a JSON childResult,
// goes to stdout. It returns the process's exit code: 0, or 1 when the
// measurement failed (the result says why).
func RunChild(args []string, stdout io.Writer) int {
	var cs childSpec
	var res childResult
	err := errors.New("bench-child: want one argument, the measurement's JSON spec")
	if len(args) == 1 {
		err = json.Unmarshal([]byte(args[0]), &cs)
	}
	if err == nil {
		res, err = memChild(cs)
	}
	if err != nil {
		res.Err = err.Error()
	}
	if json.NewEncoder(stdout).Encode(res) != nil || err != nil {
		return 1
	}
	return 0
}

// childSpec is what a child measures: a store in Dir with a WAL cap of
// Cap bytes, filled to the cap or not.
type childSpec struct {
	Dir  string `json:"dir"`
	Cap  int64  `json:"cap"`
	Fill bool   `json:"fill"`
}

type childResult struct {
	PeakRSS      int64  `json:"peak_rss"`
	WALBytes     int64  `json:"wal_bytes"`
	WALAllocated int64  `json:"wal_allocated"`
	Err          string `json:"err,omitempty"`
}

// memChild opens a store, creates the table and commits one row; with
// Fill, it then commits until the WAL is at its cap (the commit that
// would pass it fails with SQLITE_FULL, and smaller ones follow to fill
// the rest). It reads the peak RSS and drops the store without a
// checkpoint (nothing here is worth the drive's time).
func memChild(cs childSpec) (childResult, error) {
	var res childResult
	name := "base.db"
	if cs.Fill {
		name = "fill.db"
	}
	// The WAL in memory (Durability Checkpoint): this measures the heap
	// WAL at its cap, and the Abandon below would otherwise leave a host
	// log with these rows in the user's cache directory.
	s, err := openStore(filepath.Join(cs.Dir, name), store.Options{ManualCheckpoint: true, MaxWALBytes: cs.Cap, Durability: store.Checkpoint})
	if err != nil {
		return res, err
	}
	defer s.Abandon()
	db := s.DB()
	if _, err := db.Exec(Schema); err != nil {
		return res, err
	}
	if _, err := db.Exec("INSERT INTO t(v) VALUES(randomblob(1000))"); err != nil {
		return res, err
	}
	if cs.Fill {
		for _, n := range []int{256, 16, 1} {
			q := fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) INSERT INTO t(v) SELECT randomblob(1000) FROM c", n)
			for {
				_, err := db.Exec(q)
				var se sqlite3.Error
				if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
					break
				}
				if err != nil {
					return res, err
				}
			}
		}
	}
	st := s.Stats()
	res.WALBytes, res.WALAllocated = st.WALBytes, st.WALAllocated
	if res.PeakRSS = peakRSS(); res.PeakRSS < 0 {
		return res, errors.New("peak RSS: not available on this platform")
	}
	return res, nil
}

// MemoryResult is peak RSS against the WAL bytes held at the cap.
type MemoryResult struct {
	CapBytes     int64 `json:"cap_bytes"`
	WALBytes     int64 `json:"wal_bytes"`
	WALAllocated int64 `json:"wal_allocated"`
	// BaseRSS is the peak RSS of a process that opened an empty store;
	// PeakRSS that of one that filled the WAL to the cap.
	BaseRSS  int64 `json:"base_rss"`
	PeakRSS  int64 `json:"peak_rss"`
	ExtraRSS int64 `json:"extra_rss"` // PeakRSS - BaseRSS
	// RSSPerWAL is ExtraRSS / WALBytes.
	RSSPerWAL float64 `json:"rss_per_wal"`
}

// MeasureMemory runs two children of this executable (ChildCommand:
// the executable must dispatch it to RunChild): one opens an empty store
// (the base), one fills the WAL to walCap. Each reports its peak RSS
// (VmHWM).
func MeasureMemory(ctx context.Context, dir string, walCap int64) (MemoryResult, error) {
	res := MemoryResult{CapBytes: walCap}
	base, err := child(ctx, childSpec{Dir: dir, Cap: walCap})
	if err != nil {
		return res, fmt.Errorf("base child: %w", err)
	}
	fill, err := child(ctx, childSpec{Dir: dir, Cap: walCap, Fill: true})
	if err != nil {
		return res, fmt.Errorf("fill child: %w", err)
	}
	res.WALBytes, res.WALAllocated = fill.WALBytes, fill.WALAllocated
	res.BaseRSS, res.PeakRSS = base.PeakRSS, fill.PeakRSS
	res.ExtraRSS = res.PeakRSS - res.BaseRSS
	if res.WALBytes > 0 {
		res.RSSPerWAL = float64(res.ExtraRSS) / float64(res.WALBytes)
	}
	return res, nil
}

func child(ctx context.Context, cs childSpec) (childResult, error) {
	var res childResult
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	spec, err := json.Marshal(cs)
	if err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, exe, ChildCommand, string(spec))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("%s: %v: %w (stdout %q, stderr %q)", exe, runErr, err, stdout.String(), stderr.String())
	}
	if res.Err != "" {
		return res, errors.New(res.Err)
	}
	return res, runErr
}
