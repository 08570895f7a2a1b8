package faultinject

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// MatrixConfig describes a crash matrix. A case is one crash point, one
// policy and one seed: Setup builds a fresh FS, the workload runs with a
// cut armed at the point (its errors after the cut are expected and
// ignored), and the crash image goes to Before (if set), Recover (if
// set) and then the Oracle.
//
// The points are the workload's operations 0..N-1 (crash before that
// operation) plus N (crash after the workload returned, dropping what it
// left unsynced), counted relative to the FS's OpCount after Setup.
type MatrixConfig struct {
	// Setup returns the FS the workload starts from: directories made,
	// files written (MkdirAll, WriteFile). Called once per case. Required.
	Setup func() (*FS, error)
	// Workload is the code under test. It must perform the same
	// operations on every run (single goroutine, or a fixed order):
	// crash points are operation indexes. Required.
	Workload func(fs *FS) error
	// Before judges a crash image as it is, before Recover touches it:
	// nil if it is a state the workload allows there (for an independent
	// reader that never runs our recovery, such as the stock sqlite3
	// shell). It must not modify the image. In compound mode it also
	// sees each image a crashed recovery left. Optional.
	Before func(img *FS) error
	// Recover runs on the crash image before the Oracle, as the next
	// open would; it must succeed. Optional, required for Compound.
	Recover func(fs *FS) error
	// Oracle judges a crash image (after Recover): nil if it is a state
	// the workload allows. Required.
	Oracle func(img *FS) error
	// Policies to crash under; nil means AllPolicies().
	Policies []Policy
	// Seeds is the number of seeds per random policy (Policy.Random);
	// 0 means 1. Deterministic policies run with one seed.
	Seeds int
	// Seed is the first seed; seeds are Seed, Seed+1, ...
	Seed int64
	// Compound also crashes the recovery: for each case, Recover runs once
	// cleanly (then Oracle), then once per recovery point j in 0..M (M
	// its operation count), crashed there under the case's policy and
	// seed RecoverySeed(seed, j); the second image gets a clean Recover
	// and the Oracle.
	Compound bool
	// Points restricts the crash points (relative indexes in 0..N); nil
	// means all. A cheap CI slice of an expensive matrix.
	Points []int
	// Workers runs cases in parallel; 0 means 1.
	Workers int
}

// Failure is one failed case, with what replays it exactly: Setup,
// CrashAt(Point, Policy, Seed), Workload, CrashedImage; in compound mode
// then CrashAt(img.OpCount()+RecoveryPoint, Policy, RecoverySeed), Recover.
type Failure struct {
	Point         int    // absolute operation index of the crash
	Op            string // the operation at Point in the counting run
	Policy        Policy
	Seed          int64
	RecoveryPoint int // relative recovery operation index; -1 if not crashed there
	RecoverySeed  int64
	Err           error
}

func (f Failure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "crash at %s policy=%s seed=%d", f.Op, f.Policy, f.Seed)
	if f.RecoveryPoint >= 0 {
		fmt.Fprintf(&b, ", recovery crashed at op +%d seed=%d", f.RecoveryPoint, f.RecoverySeed)
	}
	fmt.Fprintf(&b, ": %v", f.Err)
	return b.String()
}

// Summary is a matrix's outcome.
type Summary struct {
	Points   int // crash points in the workload
	Policies int
	Cases    int // images judged, recovery crashes included
	Failures []Failure
}

// String is "crash matrix: <points> points x <policies> policies = <cases>
// cases, <failures> failures".
func (s *Summary) String() string {
	return fmt.Sprintf("crash matrix: %d points x %d policies = %d cases, %d failures",
		s.Points, s.Policies, s.Cases, len(s.Failures))
}

// Err returns nil, or an error listing the summary and the first failures.
func (s *Summary) Err() error {
	if len(s.Failures) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(s.String())
	for i, f := range s.Failures {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... %d more", len(s.Failures)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s", f)
	}
	return errors.New(b.String())
}

// RecoverySeed derives the seed of a compound case's second crash.
func RecoverySeed(seed int64, j int) int64 {
	return seed*1_000_003 + int64(j) + 1
}

type matrixCase struct {
	point  int // relative
	policy Policy
	seed   int64
}

type caseResult struct {
	cases    int
	failures []Failure
}

// RunMatrix counts the workload's operations on a clean run, then crashes
// it at every point under every policy and seed. It returns an error only
// if the matrix cannot run (ErrBadMatrix, ErrWorkload); failed cases are in
// the Summary.
func RunMatrix(cfg MatrixConfig) (*Summary, error) {
	if cfg.Setup == nil || cfg.Workload == nil || cfg.Oracle == nil || (cfg.Compound && cfg.Recover == nil) {
		return nil, fmt.Errorf("%w: Setup, Workload and Oracle are required, and Recover with Compound", ErrBadMatrix)
	}
	policies := cfg.Policies
	if policies == nil {
		policies = AllPolicies()
	}
	seeds := max(cfg.Seeds, 1)

	fs, err := cfg.Setup()
	if err != nil {
		return nil, fmt.Errorf("%w: setup: %w", ErrWorkload, err)
	}
	base := fs.OpCount()
	if err := cfg.Workload(fs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWorkload, err)
	}
	n := fs.OpCount() - base
	trace := fs.Trace()
	label := func(abs int) string {
		for _, ev := range trace {
			if ev.Index == abs {
				return ev.String()
			}
		}
		return fmt.Sprintf("#%d (end of workload)", abs)
	}

	points := cfg.Points
	if points == nil {
		for i := 0; i <= n; i++ {
			points = append(points, i)
		}
	}
	var cases []matrixCase
	for _, pt := range points {
		if pt < 0 || pt > n {
			return nil, fmt.Errorf("%w: point %d outside 0..%d", ErrBadMatrix, pt, n)
		}
		for _, p := range policies {
			k := 1
			if p.Random() {
				k = seeds
			}
			for s := range k {
				cases = append(cases, matrixCase{point: pt, policy: p, seed: cfg.Seed + int64(s)})
			}
		}
	}

	results := make([]caseResult, len(cases))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(cfg.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = runCase(&cfg, cases[i], n, label)
			}
		}()
	}
	for i := range cases {
		next <- i
	}
	close(next)
	wg.Wait()

	sum := &Summary{Points: len(points), Policies: len(policies)}
	for _, r := range results {
		sum.Cases += r.cases
		sum.Failures = append(sum.Failures, r.failures...)
	}
	return sum, nil
}

// runCase runs one crash case and, in compound mode, its recovery crashes.
func runCase(cfg *MatrixConfig, c matrixCase, n int, label func(int) string) caseResult {
	var res caseResult
	fail := func(abs, rp int, rseed int64, err error) {
		res.failures = append(res.failures, Failure{Point: abs, Op: label(abs), Policy: c.policy,
			Seed: c.seed, RecoveryPoint: rp, RecoverySeed: rseed, Err: err})
	}
	abs := -1
	var img *FS
	err := guard(func() error {
		fs, err := cfg.Setup()
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		abs = fs.OpCount() + c.point
		fs.CrashAt(abs, c.policy, c.seed)
		_ = cfg.Workload(fs) // errors after the cut are the point
		if img = fs.CrashedImage(); img == nil {
			if c.point < n {
				return fmt.Errorf("%w: ran %d operations", ErrNondeterministic, fs.OpCount()-abs+c.point)
			}
			img = fs.CrashImage(c.policy, c.seed)
		}
		return nil
	})
	res.cases++
	if err != nil {
		fail(abs, -1, 0, err)
		return res
	}

	// judge asks Before, recovers an image and asks the oracle; ops is
	// the number of operations the recovery performed.
	judge := func(im *FS) (ops int, err error) {
		err = guard(func() error {
			if cfg.Before != nil {
				if err := cfg.Before(im); err != nil {
					return fmt.Errorf("%w: before recovery: %w\n%s", ErrOracle, err, im.Dump())
				}
			}
			if cfg.Recover != nil {
				start := im.OpCount()
				err := cfg.Recover(im)
				ops = im.OpCount() - start
				if err != nil {
					return fmt.Errorf("%w: %w", ErrRecovery, err)
				}
			}
			if err := cfg.Oracle(im); err != nil {
				return fmt.Errorf("%w: %w\n%s", ErrOracle, err, im.Dump())
			}
			return nil
		})
		return ops, err
	}
	// img is reused below: judge a copy.
	m, err := judge(img.CrashImage(DropAll, 0))
	if err != nil {
		fail(abs, -1, 0, err)
	}
	if !cfg.Compound {
		return res
	}
	for j := 0; j <= m; j++ {
		rseed := RecoverySeed(c.seed, j)
		res.cases++
		err := guard(func() error {
			r := img.CrashImage(DropAll, 0)
			r.CrashAt(r.OpCount()+j, c.policy, rseed)
			_ = cfg.Recover(r)
			second := r.CrashedImage()
			if second == nil {
				second = r.CrashImage(c.policy, rseed)
			}
			_, err := judge(second)
			return err
		})
		if err != nil {
			fail(abs, j, rseed, err)
		}
	}
	return res
}

// guard runs fn, turning a panic into an ErrPanic error with the stack.
func guard(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, v, debug.Stack())
		}
	}()
	return fn()
}
