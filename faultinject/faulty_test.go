package faultinject

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
)

// osDir returns a Faulty over device.OS and a fresh directory on the
// host's disk to use it in.
func osDir(t *testing.T) (*Faulty, string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return Wrap(device.OS, 1), dir
}

// wantErrno checks that err is an injected errno of the OS's shape.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	var pe *os.PathError
	var le *os.LinkError
	if !errors.Is(err, errno) || (!errors.As(err, &pe) && !errors.As(err, &le)) {
		t.Fatalf("%s = %v, want a *os.PathError or *os.LinkError wrapping %v", what, err, errno)
	}
}

func TestFaulty_rulesOnTheOS(t *testing.T) {
	t.Run("a failed write has no effect, once", func(t *testing.T) {
		w, dir := osDir(t)
		name := filepath.Join(dir, "a.db")
		h, err := w.Create(name, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := w.Inject(Fail(syscall.EIO).On(OpWriteAt).Matching("*.db")); err != nil {
			t.Fatal(err)
		}
		_, err = h.WriteAt([]byte("lost"), 0)
		wantErrno(t, "WriteAt", err, syscall.EIO)
		if fi, err := os.Stat(name); err != nil || fi.Size() != 0 {
			t.Fatalf("after a failed WriteAt the file is %v, %v; want it empty", fi.Size(), err)
		}
		if _, err := h.WriteAt([]byte("kept"), 0); err != nil {
			t.Fatalf("second WriteAt (the rule fired once): %v", err)
		}
		if b, err := os.ReadFile(name); err != nil || string(b) != "kept" {
			t.Fatalf("file = %q, %v; want %q", b, err, "kept")
		}
	})

	t.Run("sync fails always, matching the base name only", func(t *testing.T) {
		w, dir := osDir(t)
		if err := w.Inject(Fail(syscall.EIO).On(OpSync | OpSyncDir).Matching("*.db").Always()); err != nil {
			t.Fatal(err)
		}
		db, err := w.Create(filepath.Join(dir, "x.db"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		other, err := w.Create(filepath.Join(dir, "x.journal"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		for range 2 {
			wantErrno(t, "Sync of x.db", db.Sync(), syscall.EIO)
		}
		if err := other.Sync(); err != nil {
			t.Errorf("Sync of x.journal: %v", err)
		}
		if err := w.SyncDir(dir); err != nil {
			t.Errorf("SyncDir of %s: %v", dir, err)
		}
	})

	t.Run("rename matches either name and leaves both names as they were", func(t *testing.T) {
		w, dir := osDir(t)
		from, to := filepath.Join(dir, "copy"), filepath.Join(dir, "app.db")
		for _, n := range []string{from, to} {
			if err := os.WriteFile(n, []byte(filepath.Base(n)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Inject(Fail(syscall.EROFS).On(OpRename).Matching("app.db")); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "Rename", w.Rename(from, to), syscall.EROFS)
		if b, err := os.ReadFile(to); err != nil || string(b) != "app.db" {
			t.Fatalf("app.db = %q, %v after a failed rename", b, err)
		}
		if _, err := os.Stat(from); err != nil {
			t.Fatalf("copy after a failed rename: %v", err)
		}
		if err := w.Rename(from, to); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(to); string(b) != "copy" {
			t.Fatalf("app.db = %q after the rename, want %q", b, "copy")
		}
	})

	t.Run("a failed close still closes", func(t *testing.T) {
		w, dir := osDir(t)
		h, err := w.Create(filepath.Join(dir, "f"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Inject(Fail(syscall.EIO).On(OpClose)); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "Close", h.Close(), syscall.EIO)
		inner := h.(interface{ Unwrap() device.File }).Unwrap()
		if err := inner.Close(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("inner Close after the failed Close = %v, want os.ErrClosed", err)
		}
	})

	t.Run("a failed unlock still releases the lock", func(t *testing.T) {
		w, dir := osDir(t)
		name := filepath.Join(dir, "lock")
		l, err := w.Lock(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := device.OS.Lock(name); !errors.Is(err, device.ErrLocked) {
			t.Fatalf("second lock while held = %v, want ErrLocked", err)
		}
		if err := w.Inject(Fail(syscall.EIO).On(OpUnlock)); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, "lock Close", l.Close(), syscall.EIO)
		l2, err := device.OS.Lock(name)
		if err != nil {
			t.Fatalf("lock after the failed unlock: %v", err)
		}
		l2.Close()
	})

	t.Run("a failed open, create, remove, stat, list, free space reach nothing", func(t *testing.T) {
		w, dir := osDir(t)
		name := filepath.Join(dir, "f")
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w.Inject(Fail(syscall.EACCES).Always()); err != nil {
			t.Fatal(err)
		}
		_, err := w.Open(name, device.ReadOnly)
		wantErrno(t, "Open", err, syscall.EACCES)
		_, err = w.Create(filepath.Join(dir, "new"), 0o644)
		wantErrno(t, "Create", err, syscall.EACCES)
		if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a failed Create made the file: %v", err)
		}
		wantErrno(t, "Remove", w.Remove(name), syscall.EACCES)
		if _, err := os.Stat(name); err != nil {
			t.Fatalf("a failed Remove removed the file: %v", err)
		}
		_, err = w.Stat(name)
		wantErrno(t, "Stat", err, syscall.EACCES)
		_, err = w.List(dir)
		wantErrno(t, "List", err, syscall.EACCES)
		_, err = w.FreeSpace(dir)
		wantErrno(t, "FreeSpace", err, syscall.EACCES)
		_, err = w.Lock(filepath.Join(dir, "lock"))
		wantErrno(t, "Lock", err, syscall.EACCES)
		if _, err := os.Stat(filepath.Join(dir, "lock")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a failed Lock made the lock file: %v", err)
		}
		w.ClearRules()
		if names, err := w.List(dir); err != nil || len(names) != 1 || names[0] != "f" {
			t.Fatalf("List after ClearRules = %q, %v", names, err)
		}
	})

	t.Run("operations are numbered through the Faulty", func(t *testing.T) {
		w, dir := osDir(t)
		name := filepath.Join(dir, "f")
		h, err := w.Create(name, 0o644) // op 0
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if got := w.OpCount(); got != 1 {
			t.Fatalf("OpCount = %d after one operation", got)
		}
		if err := w.Inject(Fail(syscall.ENOSPC).At(2)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt([]byte("a"), 0); err != nil { // op 1
			t.Fatal(err)
		}
		_, err = h.WriteAt([]byte("b"), 1) // op 2
		wantErrno(t, "WriteAt at op 2", err, syscall.ENOSPC)
		if n, err := h.Size(); err != nil || n != 1 { // op 3
			t.Fatalf("Size = %d, %v; want 1", n, err)
		}
	})

	t.Run("a hung operation waits; others go on", func(t *testing.T) {
		w, dir := osDir(t)
		name := filepath.Join(dir, "f")
		h, err := w.Create(name, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		release := make(chan struct{})
		if err := w.Inject(Hang(release).On(OpSync)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- h.Sync() }()
		if _, err := w.Stat(name); err != nil { // not blocked by the hung Sync
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("Sync returned %v before the release", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Sync after the release: %v", err)
		}
	})
}

func TestFaulty_overFS(t *testing.T) {
	inner := newVol(t, Options{})
	w := Wrap(inner, 1)
	if w.Unwrap() != device.FS(inner) {
		t.Fatal("Unwrap does not return the inner FS")
	}
	if err := w.Inject(Fail(syscall.EIO).On(OpCreate)); err != nil {
		t.Fatal(err)
	}
	before := inner.OpCount()
	_, err := w.Create("/vol/a", 0o644)
	wantErrno(t, "Create", err, syscall.EIO)
	if got := inner.OpCount(); got != before {
		t.Fatalf("a failed Create reached the inner FS (%d operations)", got-before)
	}
	h, err := w.Create("/vol/a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.(interface{ Fd() uintptr }); ok {
		t.Error("a Faulty file offers a descriptor: a kernel copy would go around its rules")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Inject(Rule{Index: AnyIndex}); !errors.Is(err, ErrBadRule) {
		t.Errorf("Inject of a rule without an error = %v, want ErrBadRule", err)
	}
}
