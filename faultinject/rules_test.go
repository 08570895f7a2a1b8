package faultinject

import (
	"errors"
	"io"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
)

// ruleFixture opens two handles (ops 0 and 1), arms rules, then runs ops
// 2..12 and returns the error number of each failed op by index.
func ruleFixture(t *testing.T, opts Options, rules ...Rule) map[int]syscall.Errno {
	t.Helper()
	f := newVol(t, opts)
	mustWriteFile(t, f, "/vol/x.db", "db")
	mustWriteFile(t, f, "/vol/x.txt", "txt")
	hdb := mustOpen(t, f, "/vol/x.db", device.ReadWrite)
	htxt := mustOpen(t, f, "/vol/x.txt", device.ReadWrite)
	mustOK(t, f.Inject(rules...))
	_, _ = hdb.WriteAt([]byte("a"), 0)       // 2
	_, _ = hdb.WriteAt([]byte("b"), 1)       // 3
	_ = hdb.Sync()                           // 4
	_, _ = htxt.WriteAt([]byte("c"), 0)      // 5
	_ = htxt.Sync()                          // 6
	_ = f.SyncDir("/vol")                    // 7
	_, _ = f.Stat("/vol/x.db")               // 8
	_ = f.Rename("/vol/x.txt", "/vol/y.txt") // 9
	_, _ = f.Stat("/vol/y.txt")              // 10
	_ = hdb.Close()                          // 11
	_ = htxt.Close()                         // 12
	failed := map[int]syscall.Errno{}
	for _, ev := range f.Trace() {
		if ev.Err != 0 && ev.Err != syscall.ENOENT {
			failed[ev.Index] = ev.Err
		}
	}
	return failed
}

func indexes(m map[int]syscall.Errno) []int {
	var out []int
	for i := range 13 {
		if _, ok := m[i]; ok {
			out = append(out, i)
		}
	}
	return out
}

func TestFS_Inject(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []Rule
		want  []int
	}{
		{"by index", []Rule{Fail(syscall.EIO).At(5)}, []int{5}},
		{"by kind, persistent", []Rule{Fail(syscall.EIO).On(OpSync).Always()}, []int{4, 6}},
		{"by kind, once", []Rule{Fail(syscall.EIO).On(OpSync)}, []int{4}},
		{"several kinds", []Rule{Fail(syscall.EIO).On(OpSync | OpSyncDir).Always()}, []int{4, 6, 7}},
		{"close", []Rule{Fail(syscall.EIO).On(OpClose).Always()}, []int{11, 12}},
		{"base-name glob", []Rule{Fail(syscall.EACCES).Matching("*.db").Always()}, []int{2, 3, 4, 8, 11}},
		{"full-path glob matches either rename name", []Rule{Fail(syscall.EROFS).Matching("/vol/y.*").Always()}, []int{9, 10}},
		{"kind and glob", []Rule{Fail(syscall.EIO).On(OpWriteAt).Matching("*.txt")}, []int{5}},
		{"index and kind that disagree", []Rule{Fail(syscall.EIO).On(OpSync).At(5)}, nil},
		{"probability 1", []Rule{Fail(syscall.EIO).On(OpStat).WithProb(1).Always()}, []int{8, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := indexes(ruleFixture(t, Options{}, tc.rules...)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("failed ops %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("first matching rule wins, once rules disarm", func(t *testing.T) {
		got := ruleFixture(t, Options{},
			Fail(syscall.ENOSPC).On(OpWriteAt),
			Fail(syscall.EIO).On(OpWriteAt).Always())
		want := map[int]syscall.Errno{2: syscall.ENOSPC, 3: syscall.EIO, 5: syscall.EIO}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("seeded probability replays", func(t *testing.T) {
		pattern := func(seed int64) []bool {
			f := newVol(t, Options{Seed: seed})
			h := mustCreate(t, f, "/vol/a")
			mustOK(t, f.Inject(Fail(syscall.EIO).On(OpWriteAt).WithProb(0.5).Always()))
			var out []bool
			for i := range 200 {
				_, err := h.WriteAt([]byte("x"), int64(i))
				out = append(out, err != nil)
			}
			return out
		}
		a, b, c := pattern(7), pattern(7), pattern(8)
		if !reflect.DeepEqual(a, b) {
			t.Fatal("same seed, different firing pattern")
		}
		if reflect.DeepEqual(a, c) {
			t.Fatal("different seeds, same firing pattern")
		}
		n := 0
		for _, fired := range a {
			if fired {
				n++
			}
		}
		if n < 60 || n > 140 {
			t.Fatalf("fired %d of 200 at p=0.5", n)
		}
	})
	t.Run("every errno on every kind", func(t *testing.T) {
		for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EROFS, syscall.ENODEV, syscall.EACCES} {
			for kind, run := range opRunners() {
				f := newVol(t, Options{})
				mustWriteFile(t, f, "/vol/a", "aaaa")
				h := mustOpen(t, f, "/vol/a", device.ReadWrite)
				l, err := f.Lock("/vol/lock")
				mustOK(t, err)
				mustOK(t, f.Inject(Fail(errno).On(kind)))
				if err := run(f, h, l); !errors.Is(err, errno) {
					t.Fatalf("%s with %s armed: %v", kind, errnoName(errno), err)
				}
				if err := run(f, h, l); kind != OpClose && kind != OpUnlock && err != nil {
					t.Fatalf("%s failed again after a once rule: %v", kind, err)
				}
			}
		}
	})
	t.Run("failed close and unlock release anyway", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/a")
		l, err := f.Lock("/vol/lock")
		mustOK(t, err)
		mustOK(t, f.Inject(Fail(syscall.EIO).On(OpClose|OpUnlock).Always()))
		if err := h.Close(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Close: %v", err)
		}
		if err := l.Close(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("unlock: %v", err)
		}
		f.ClearRules()
		if err := h.Close(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		l2, err := f.Lock("/vol/lock")
		mustOK(t, err)
		mustOK(t, l2.Close())
	})
	t.Run("invalid rules are refused", func(t *testing.T) {
		f := New(Options{})
		for _, r := range []Rule{{}, Fail(syscall.EIO).WithProb(2), Fail(syscall.EIO).Matching("["), Fail(syscall.EIO).At(-5)} {
			if err := f.Inject(r); !errors.Is(err, ErrBadRule) {
				t.Fatalf("Inject(%v) = %v, want ErrBadRule", r, err)
			}
		}
	})
}

// opRunners performs one operation of each kind.
func opRunners() map[OpKind]func(f *FS, h device.File, l io.Closer) error {
	return map[OpKind]func(f *FS, h device.File, l io.Closer) error{
		OpOpen: func(f *FS, _ device.File, _ io.Closer) error {
			_, err := f.Open("/vol/a", device.ReadOnly)
			return err
		},
		OpCreate: func(f *FS, _ device.File, _ io.Closer) error {
			_, err := f.Create("/vol/new", 0o644)
			if errors.Is(err, syscall.EEXIST) {
				err = nil
			}
			return err
		},
		OpReadAt: func(_ *FS, h device.File, _ io.Closer) error {
			_, err := h.ReadAt(make([]byte, 2), 0)
			return err
		},
		OpWriteAt: func(_ *FS, h device.File, _ io.Closer) error {
			_, err := h.WriteAt([]byte("w"), 0)
			return err
		},
		OpTruncate: func(_ *FS, h device.File, _ io.Closer) error { return h.Truncate(2) },
		OpSize: func(_ *FS, h device.File, _ io.Closer) error {
			_, err := h.Size()
			return err
		},
		OpSync:   func(_ *FS, h device.File, _ io.Closer) error { return h.Sync() },
		OpClose:  func(_ *FS, h device.File, _ io.Closer) error { return h.Close() },
		OpRename: func(f *FS, _ device.File, _ io.Closer) error { return f.Rename("/vol/a", "/vol/a") },
		OpRemove: func(f *FS, _ device.File, _ io.Closer) error {
			err := f.Remove("/vol/a")
			if errors.Is(err, syscall.ENOENT) {
				err = nil
			}
			return err
		},
		OpStat: func(f *FS, _ device.File, _ io.Closer) error {
			_, err := f.Stat("/vol")
			return err
		},
		OpList: func(f *FS, _ device.File, _ io.Closer) error {
			_, err := f.List("/vol")
			return err
		},
		OpSyncDir: func(f *FS, _ device.File, _ io.Closer) error { return f.SyncDir("/vol") },
		OpLock: func(f *FS, _ device.File, _ io.Closer) error {
			l, err := f.Lock("/vol/lock2")
			if err == nil {
				err = l.Close()
			}
			return err
		},
		OpUnlock: func(_ *FS, _ device.File, l io.Closer) error { return l.Close() },
		OpFreeSpace: func(f *FS, _ device.File, _ io.Closer) error {
			_, err := f.FreeSpace("/vol")
			return err
		},
	}
}

func TestFS_Pull(t *testing.T) {
	t.Run("every operation from the chosen one fails like a pulled drive", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "old")
		l, err := f.Lock("/vol/lock") // op 0
		mustOK(t, err)
		h := mustOpen(t, f, "/vol/a", device.ReadWrite) // op 1
		mustWrite(t, h, 0, "new")                       // op 2
		f.PullAt(4)
		if _, err := f.Stat("/vol/a"); err != nil { // op 3
			t.Fatalf("op before the pull failed: %v", err)
		}
		if f.Dead() {
			t.Fatal("dead before the pull point")
		}
		runners := opRunners()
		for kind := OpOpen; kind < OpAny; kind <<= 1 {
			want := syscall.ENODEV
			if kind.handleOp() {
				want = syscall.EIO
			}
			if err := runners[kind](f, h, l); !errors.Is(err, want) {
				t.Fatalf("%s after the pull: %v, want %s", kind, err, errnoName(want))
			}
		}
		if !f.Dead() {
			t.Fatal("not dead after the pull point")
		}
		for _, ev := range f.Trace()[4:] {
			if ev.Err == 0 {
				t.Fatalf("op succeeded after the pull: %s", ev)
			}
		}
		if got := content(t, f, "/vol/a"); got != "old" {
			t.Fatalf("after the pull the drive holds %q, want old", got)
		}
		if img := f.CrashImage(KeepAll, 9); content(t, img, "/vol/a") != "old" {
			t.Fatal("CrashImage after the pull still holds unsynced data")
		}
		if err := f.MkdirAll("/vol/x"); !errors.Is(err, syscall.ENODEV) {
			t.Fatalf("MkdirAll after pull: %v", err)
		}
	})
	t.Run("Pull now", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/a")
		mustSync(t, h)
		f.Pull()
		if err := h.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Sync after pull: %v", err)
		}
		if img := f.CrashedImage(); img == nil || content(t, img, "/vol/a") != "<missing>" {
			t.Fatal("the unsynced entry survived the pull")
		}
	})
	t.Run("CrashAt takes the image under its policy", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/a") // op 0
		f.CrashAt(2, KeepAll, 0)
		mustWrite(t, h, 0, "kept")       // op 1
		_, _ = h.WriteAt([]byte("X"), 0) // op 2: never happens
		img := f.CrashedImage()
		if img == nil {
			t.Fatal("no crash image")
		}
		if got := content(t, img, "/vol/a"); got != "kept" {
			t.Fatalf("crash image /vol/a = %q", got)
		}
	})
}

// TestFS_HoldUntil: a held operation waits for its release while other
// operations go on, then succeeds.
func TestFS_HoldUntil(t *testing.T) {
	f := newVol(t, Options{})
	mustWriteFile(t, f, "/vol/x.db", "db")
	h := mustOpen(t, f, "/vol/x.db", device.ReadWrite)
	release := make(chan struct{})
	mustOK(t, f.Inject(HoldUntil(release).On(OpSync).Matching("*.db")))
	before := f.OpCount()
	done := make(chan error, 1)
	go func() { done <- h.Sync() }()
	for f.OpCount() == before { // then the Sync has its index: it is waiting
		time.Sleep(time.Millisecond)
	}
	if _, err := f.Stat("/vol/x.db"); err != nil {
		t.Fatalf("Stat while a Sync is held: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the held Sync returned before its release: %v", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("held Sync = %v; want nil once released", err)
	}
	if err := h.Sync(); err != nil { // the rule fired once
		t.Errorf("second Sync = %v", err)
	}
	if got := HoldUntil(release).String(); got != "hold once" {
		t.Errorf("String = %q", got)
	}
}
