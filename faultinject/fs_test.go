package faultinject

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sync"
	"syscall"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
)

func TestFS_Operations(t *testing.T) {
	t.Run("read what was written, EOF past the end", func(t *testing.T) {
		f := newVol(t, Options{})
		h := mustCreate(t, f, "/vol/a")
		mustWrite(t, h, 2, "xyz")
		buf := make([]byte, 8)
		n, err := h.ReadAt(buf, 0)
		if got, want := string(buf[:n]), "\x00\x00xyz"; got != want || err != io.EOF {
			t.Fatalf("ReadAt = %q, %v; want %q, io.EOF", got, err, want)
		}
		if n, err := h.ReadAt(buf[:2], 1); n != 2 || err != nil {
			t.Fatalf("ReadAt inside = %d, %v", n, err)
		}
		if _, err := h.ReadAt(buf, 5); err != io.EOF {
			t.Fatalf("ReadAt at end: %v, want io.EOF", err)
		}
		mustOK(t, h.Truncate(3))
		if size, _ := h.Size(); size != 3 {
			t.Fatalf("Size = %d, want 3", size)
		}
		mustOK(t, h.Truncate(5))
		if got := content(t, f, "/vol/a"); got != "\x00\x00x\x00\x00" {
			t.Fatalf("after shrink and grow: %q", got)
		}
		if h.Name() != "/vol/a" {
			t.Fatalf("Name = %q", h.Name())
		}
	})
	t.Run("errors look like the OS's", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/a", "a")
		_, err := f.Open("/vol/missing", device.ReadOnly)
		var pe *os.PathError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("Open missing: %#v", err)
		}
		if _, err := f.Create("/vol/a", 0o644); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Create existing: %v", err)
		}
		if _, err := f.Create("/nodir/a", 0o644); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Create in missing dir: %v", err)
		}
		var le *os.LinkError
		if err := f.Rename("/vol/missing", "/vol/b"); !errors.As(err, &le) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Rename missing: %#v", err)
		}
		if _, err := f.List("/vol/a"); !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("List file: %v", err)
		}
		if _, err := f.Stat("/vol/a/b"); !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("Stat under a file: %v", err)
		}
		h := mustOpen(t, f, "/vol/a", device.ReadOnly)
		if _, err := h.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EBADF) {
			t.Fatalf("write on read-only handle: %v", err)
		}
		mustOK(t, h.Close())
		if _, err := h.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
		if err := h.Close(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
	})
	t.Run("stat and list", func(t *testing.T) {
		f := newVol(t, Options{})
		mustOK(t, f.MkdirAll("/vol/sub"))
		mustWriteFile(t, f, "/vol/b", "bb")
		mustWriteFile(t, f, "/vol/a", "a")
		names, err := f.List("/vol")
		if want := []string{"a", "b", "sub"}; err != nil || !reflect.DeepEqual(names, want) {
			t.Fatalf("List = %v, %v; want %v", names, err, want)
		}
		fi, err := f.Stat("/vol/b")
		if err != nil || fi.Size() != 2 || fi.IsDir() || fi.Name() != "b" {
			t.Fatalf("Stat file = %v, %v", fi, err)
		}
		if fi, err := f.Stat("/vol/sub"); err != nil || !fi.IsDir() {
			t.Fatalf("Stat dir = %v, %v", fi, err)
		}
	})
	t.Run("open handles follow the file, not the name", func(t *testing.T) {
		f := newVol(t, Options{})
		mustWriteFile(t, f, "/vol/db", "old")
		mustWriteFile(t, f, "/vol/tmp", "new")
		old := mustOpen(t, f, "/vol/db", device.ReadOnly)
		gone := mustOpen(t, f, "/vol/tmp", device.ReadWrite)
		mustOK(t, f.Rename("/vol/tmp", "/vol/db"))
		mustOK(t, f.Remove("/vol/db"))
		buf := make([]byte, 3)
		if _, err := old.ReadAt(buf, 0); err != nil || string(buf) != "old" {
			t.Fatalf("replaced file read = %q, %v", buf, err)
		}
		mustWrite(t, gone, 0, "NEW")
		if _, err := gone.ReadAt(buf, 0); err != nil || string(buf) != "NEW" {
			t.Fatalf("removed file read = %q, %v", buf, err)
		}
		if got := content(t, f, "/vol/db"); got != "<missing>" {
			t.Fatalf("/vol/db = %q", got)
		}
	})
	t.Run("lock is exclusive per open description", func(t *testing.T) {
		f := newVol(t, Options{})
		l, err := f.Lock("/vol/lock")
		mustOK(t, err)
		_, err = f.Lock("/vol/lock")
		var le *device.LockedError
		if !errors.As(err, &le) || !errors.Is(err, device.ErrLocked) || le.PID != os.Getpid() {
			t.Fatalf("second Lock: %v", err)
		}
		mustOK(t, l.Close())
		if err := l.Close(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("second unlock: %v", err)
		}
		l2, err := f.Lock("/vol/lock")
		mustOK(t, err)
		mustOK(t, l2.Close())
		if got := content(t, f, "/vol/lock"); got != "" {
			t.Fatalf("lock file = %q, want created empty", got)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		f := newVol(t, Options{Capacity: 100})
		mustWriteFile(t, f, "/vol/a", string(make([]byte, 60)))
		if free, err := f.FreeSpace("/vol"); err != nil || free != 40 {
			t.Fatalf("FreeSpace = %d, %v; want 40", free, err)
		}
		h := mustCreate(t, f, "/vol/b")
		mustWrite(t, h, 0, string(make([]byte, 40)))
		if _, err := h.WriteAt([]byte{1}, 40); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write past capacity: %v", err)
		}
		if err := h.Truncate(41); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("truncate past capacity: %v", err)
		}
		mustWrite(t, h, 0, "overwrite in place fits")
		if free, _ := New(Options{}).FreeSpace("/"); free != unlimitedFree {
			t.Fatalf("unlimited FreeSpace = %d", free)
		}
	})
}

// TestFS_Concurrent is for the race detector: SQLite calls the FS from
// many goroutines.
func TestFS_Concurrent(t *testing.T) {
	f := newVol(t, Options{Capacity: 1 << 30})
	shared := mustCreate(t, f, "/vol/shared")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("/vol/f%d", g)
			h, err := f.Create(name, 0o644)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 50 {
				if _, err := shared.WriteAt([]byte{byte(g)}, int64(g*50+i)); err != nil {
					t.Error(err)
				}
				if _, err := h.WriteAt([]byte("x"), int64(i)); err != nil {
					t.Error(err)
				}
				_, _ = shared.ReadAt(make([]byte, 4), int64(i))
				_, _ = f.Stat(name)
				_, _ = f.List("/vol")
				_, _ = f.FreeSpace("/vol")
				if i%10 == 0 {
					_ = h.Sync()
					_ = f.SyncDir("/vol")
					_ = f.CrashImage(CutTail, int64(i))
				}
			}
			_ = h.Close()
		}()
	}
	wg.Wait()
	if got, want := f.OpCount(), len(f.Trace()); got != want {
		t.Fatalf("OpCount = %d, trace has %d", got, want)
	}
	for i, ev := range f.Trace() {
		if ev.Index != i {
			t.Fatalf("trace[%d].Index = %d", i, ev.Index)
		}
	}
}

func TestFS_MkdirAll(t *testing.T) {
	t.Run("relative paths and files in the way", func(t *testing.T) {
		f := New(Options{})
		mustOK(t, f.MkdirAll("rel/dir"))
		mustWriteFile(t, f, "rel/dir/a", "a")
		if got := content(t, f, "rel/dir/a"); got != "a" {
			t.Fatalf("rel/dir/a = %q", got)
		}
		if err := f.MkdirAll("rel/dir/a/b"); !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("MkdirAll through a file: %v", err)
		}
		mustOK(t, f.MkdirAll("/"))
	})
}
