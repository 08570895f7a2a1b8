package faultinject

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const (
	oldData = "old"
	newData = "new content"
)

func replaceSetup() (*FS, error) {
	f := New(Options{})
	if err := f.MkdirAll("/vol"); err != nil {
		return nil, err
	}
	return f, f.WriteFile("/vol/data", []byte(oldData), 0o644)
}

// atomicReplace is the durability sequence: write a copy, fsync it,
// rename it over the target, fsync the directory. Without the fsync it is
// the classic bug that leaves an empty or torn file.
func atomicReplace(fsync bool) func(f *FS) error {
	return func(f *FS) error {
		h, err := f.Create("/vol/data.tmp", 0o644)
		if err != nil {
			return err
		}
		if _, err := h.WriteAt([]byte(newData), 0); err != nil {
			_ = h.Close()
			return err
		}
		if fsync {
			if err := h.Sync(); err != nil {
				_ = h.Close()
				return err
			}
		}
		if err := h.Close(); err != nil {
			return err
		}
		if err := f.Rename("/vol/data.tmp", "/vol/data"); err != nil {
			return err
		}
		return f.SyncDir("/vol")
	}
}

func oldOrNew(img *FS) error {
	b, err := img.ReadFile("/vol/data")
	if err != nil {
		return err
	}
	if s := string(b); s != oldData && s != newData {
		return fmt.Errorf("/vol/data = %q, want %q or %q", s, oldData, newData)
	}
	return nil
}

// removeTemp is an idempotent recovery: discard a stray copy.
func removeTemp(f *FS) error {
	if _, err := f.Stat("/vol/data.tmp"); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := f.Remove("/vol/data.tmp"); err != nil {
		return err
	}
	return f.SyncDir("/vol")
}

func oldOrNewNoTemp(img *FS) error {
	if _, err := img.ReadFile("/vol/data.tmp"); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stray copy after recovery: %v", err)
	}
	return oldOrNew(img)
}

func TestRunMatrix(t *testing.T) {
	t.Run("atomic replace survives every crash", func(t *testing.T) {
		sum, err := RunMatrix(MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Oracle: oldOrNew, Seeds: 3})
		mustOK(t, err)
		// 6 operations: 7 points; 2 fixed policies + 4 random x 3 seeds.
		if got, want := sum.String(), "crash matrix: 7 points x 6 policies = 98 cases, 0 failures"; got != want {
			t.Fatalf("got %q, want %q\n%v", got, want, sum.Err())
		}
	})
	t.Run("replace without fsync fails, and failures replay", func(t *testing.T) {
		cfg := MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(false), Oracle: oldOrNew, Seeds: 3, Workers: 2}
		sum, err := RunMatrix(cfg)
		mustOK(t, err)
		t.Log(sum)
		if len(sum.Failures) == 0 || sum.Err() == nil {
			t.Fatal("the matrix found no failure in a replace without fsync")
		}
		for _, fl := range sum.Failures {
			if !errors.Is(fl.Err, ErrOracle) || fl.RecoveryPoint != -1 {
				t.Fatalf("unexpected failure %s", fl)
			}
			f, _ := replaceSetup()
			f.CrashAt(fl.Point, fl.Policy, fl.Seed)
			_ = cfg.Workload(f)
			img := f.CrashedImage()
			if img == nil {
				img = f.CrashImage(fl.Policy, fl.Seed)
			}
			if err := oldOrNew(img); err == nil {
				t.Fatalf("replay of %s passed", fl)
			}
		}
		again, err := RunMatrix(cfg)
		mustOK(t, err)
		if !reflect.DeepEqual(failureKeys(sum), failureKeys(again)) {
			t.Fatal("two runs of the same matrix found different failures")
		}
	})
	t.Run("compound mode crashes the recovery too", func(t *testing.T) {
		cfg := MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Recover: removeTemp,
			Oracle: oldOrNewNoTemp, Policies: []Policy{DropAll, KeepAll, CutTail}, Seeds: 2, Compound: true}
		sum, err := RunMatrix(cfg)
		mustOK(t, err)
		t.Log(sum)
		if len(sum.Failures) != 0 || sum.Points != 7 || sum.Policies != 3 || sum.Cases <= 7*4*2 {
			t.Fatalf("%s\n%v", sum, sum.Err())
		}
	})
	t.Run("compound mode catches a recovery that is not idempotent", func(t *testing.T) {
		markOnce := func(f *FS) error {
			h, err := f.Create("/vol/recovered", 0o644) // fails if a crashed recovery left it
			if err != nil {
				return err
			}
			if err := h.Sync(); err != nil {
				return err
			}
			if err := f.SyncDir("/vol"); err != nil {
				return err
			}
			if err := h.Close(); err != nil {
				return err
			}
			return removeTemp(f)
		}
		cfg := MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Recover: markOnce,
			Oracle: oldOrNewNoTemp, Policies: []Policy{DropAll}}
		plain, err := RunMatrix(cfg)
		mustOK(t, err)
		if len(plain.Failures) != 0 {
			t.Fatalf("plain run: %v", plain.Err())
		}
		cfg.Compound = true
		sum, err := RunMatrix(cfg)
		mustOK(t, err)
		t.Log(sum)
		if len(sum.Failures) == 0 {
			t.Fatal("compound matrix missed the non-idempotent recovery")
		}
		for _, fl := range sum.Failures {
			if !errors.Is(fl.Err, ErrRecovery) || fl.RecoveryPoint < 0 {
				t.Fatalf("unexpected failure %s", fl)
			}
		}
	})
	t.Run("Before sees every image as the crash left it", func(t *testing.T) {
		var mu sync.Mutex
		calls, withTemp := 0, 0
		noteTemp := func(img *FS) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if _, err := img.ReadFile("/vol/data.tmp"); err == nil {
				withTemp++ // removeTemp has not run yet
			}
			return oldOrNew(img)
		}
		cfg := MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Before: noteTemp, Recover: removeTemp,
			Oracle: oldOrNewNoTemp, Policies: []Policy{DropAll, KeepAll, CutTail}, Seeds: 2, Compound: true, Workers: 2}
		sum, err := RunMatrix(cfg)
		mustOK(t, err)
		if err := sum.Err(); err != nil {
			t.Fatal(err)
		}
		if calls != sum.Cases || withTemp == 0 {
			t.Fatalf("Before ran %d times for %d cases, saw the stray copy %d times; want once per case, some with the copy", calls, sum.Cases, withTemp)
		}
	})
	t.Run("Before rejects an image", func(t *testing.T) {
		noTemp := func(img *FS) error {
			if _, err := img.ReadFile("/vol/data.tmp"); err == nil {
				return errors.New("stray copy")
			}
			return nil
		}
		sum, err := RunMatrix(MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Before: noTemp, Recover: removeTemp,
			Oracle: oldOrNewNoTemp, Policies: []Policy{KeepAll}})
		mustOK(t, err)
		if len(sum.Failures) == 0 {
			t.Fatalf("%s: Before's verdict was ignored", sum)
		}
		for _, fl := range sum.Failures {
			if !errors.Is(fl.Err, ErrOracle) || !strings.Contains(fl.Err.Error(), "before recovery: stray copy") {
				t.Fatalf("unexpected failure %s", fl)
			}
		}
	})
	t.Run("workers do not change the outcome", func(t *testing.T) {
		cfg := MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(false), Oracle: oldOrNew,
			Recover: removeTemp, Compound: true, Seeds: 2}
		one, err := RunMatrix(cfg)
		mustOK(t, err)
		cfg.Workers = 2
		two, err := RunMatrix(cfg)
		mustOK(t, err)
		if one.String() != two.String() || !reflect.DeepEqual(failureKeys(one), failureKeys(two)) {
			t.Fatalf("1 worker: %s; 2 workers: %s", one, two)
		}
	})
	t.Run("a subset of points", func(t *testing.T) {
		sum, err := RunMatrix(MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(false), Oracle: oldOrNew,
			Policies: []Policy{DropAll}, Points: []int{5}})
		mustOK(t, err)
		if got, want := sum.String(), "crash matrix: 1 points x 1 policies = 1 cases, 1 failures"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("a nondeterministic workload is reported", func(t *testing.T) {
		runs := 0
		shrinking := func(f *FS) error {
			runs++
			for i := 0; i < 5-runs; i++ {
				if _, err := f.Stat("/vol/data"); err != nil {
					return err
				}
			}
			return nil
		}
		sum, err := RunMatrix(MatrixConfig{Setup: replaceSetup, Workload: shrinking, Oracle: oldOrNew, Policies: []Policy{KeepAll}})
		mustOK(t, err)
		if len(sum.Failures) == 0 || !errors.Is(sum.Failures[len(sum.Failures)-1].Err, ErrNondeterministic) {
			t.Fatalf("%s\n%v", sum, sum.Err())
		}
	})
	t.Run("a panic is a failure, not a crash of the test", func(t *testing.T) {
		sum, err := RunMatrix(MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true),
			Oracle: func(img *FS) error {
				if b, _ := img.ReadFile("/vol/data"); string(b) == newData {
					panic("oracle bug")
				}
				return nil
			}, Policies: []Policy{KeepAll}})
		mustOK(t, err)
		if len(sum.Failures) == 0 || !errors.Is(sum.Failures[0].Err, ErrPanic) {
			t.Fatalf("%s\n%v", sum, sum.Err())
		}
	})
	t.Run("a matrix that cannot run", func(t *testing.T) {
		for _, tc := range []struct {
			cfg  MatrixConfig
			want error
		}{
			{MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true)}, ErrBadMatrix},
			{MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Oracle: oldOrNew, Compound: true}, ErrBadMatrix},
			{MatrixConfig{Setup: replaceSetup, Workload: atomicReplace(true), Oracle: oldOrNew, Points: []int{99}}, ErrBadMatrix},
			{MatrixConfig{Setup: replaceSetup, Workload: func(*FS) error { return errors.New("boom") }, Oracle: oldOrNew}, ErrWorkload},
		} {
			if _, err := RunMatrix(tc.cfg); !errors.Is(err, tc.want) {
				t.Fatalf("RunMatrix = %v, want %v", err, tc.want)
			}
		}
	})
}

func failureKeys(s *Summary) []string {
	var out []string
	for _, f := range s.Failures {
		out = append(out, fmt.Sprintf("%d/%s/%d/%d", f.Point, f.Policy, f.Seed, f.RecoveryPoint))
	}
	return out
}
