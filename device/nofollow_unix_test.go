//go:build unix

package device

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bounded runs fn and fails the test if it has not returned within a
// minute: a FIFO opened for reading blocks until a writer comes, so a
// hang here is the failure being tested, not slowness.
func bounded(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s: still blocked after a minute", what)
		return nil
	}
}

// hostile makes, in dir, one name of each kind a drive can carry where a
// regular file is expected, and a sentinel file outside it that links
// point at. It returns the names by kind and the sentinel's path.
func hostile(t *testing.T, dir string) (map[string]string, string) {
	t.Helper()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("root:$6$secret-hash:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{
		"symlink":          filepath.Join(dir, "symlink"),
		"dangling symlink": filepath.Join(dir, "dangling"),
		"fifo":             filepath.Join(dir, "fifo"),
		"directory":        filepath.Join(dir, "directory"),
		"under linked dir": filepath.Join(dir, "linkdir", "secret"),
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(secret, names["symlink"]))
	must(os.Symlink(filepath.Join(outside, "created-by-us"), names["dangling symlink"]))
	must(syscall.Mkfifo(names["fifo"], 0o644))
	must(os.Mkdir(names["directory"], 0o755))
	must(os.Symlink(outside, filepath.Join(dir, "linkdir")))
	return names, secret
}

// TestOS_OpenNoFollow: Open (both modes) and Lock refuse a link, a FIFO
// and a directory where a regular file is expected, at once (a FIFO does
// not block them), without creating anything where a link points, and
// with an error that names the kind, never a byte of what the link
// points at. Before openFile, Open followed the link (and read
// /etc/shadow's stand-in), blocked on the FIFO for reading, and Lock
// created the dangling link's target.
func TestOS_OpenNoFollow(t *testing.T) {
	names, secret := hostile(t, t.TempDir())
	for kind, name := range names {
		if kind == "under linked dir" && runtime.GOOS != "linux" {
			continue // only openat2 checks the directories above the last element
		}
		for _, op := range []string{"open ro", "open rw", "lock"} {
			t.Run(kind+"/"+op, func(t *testing.T) {
				err := bounded(t, op, func() error {
					var err error
					switch op {
					case "open ro":
						var f File
						if f, err = OS.Open(name, ReadOnly); err == nil {
							f.Close()
						}
					case "open rw":
						var f File
						if f, err = OS.Open(name, ReadWrite); err == nil {
							f.Close()
						}
					case "lock":
						var l interface{ Close() error }
						if l, err = OS.Lock(name); err == nil {
							l.Close()
						}
					}
					return err
				})
				if err == nil {
					t.Fatalf("%s of a %s: no error", op, kind)
				}
				switch kind {
				case "symlink", "dangling symlink", "under linked dir":
					if !errors.Is(err, ErrSymlink) || !errors.Is(err, syscall.ELOOP) {
						t.Errorf("%s: %v, want ErrSymlink and ELOOP", op, err)
					}
				case "directory":
					if op == "open ro" && !errors.Is(err, ErrNotRegular) {
						t.Errorf("%s: %v, want ErrNotRegular", op, err)
					}
				case "fifo":
					if !errors.Is(err, ErrNotRegular) {
						t.Errorf("%s: %v, want ErrNotRegular", op, err)
					}
				}
				if strings.Contains(err.Error(), "secret-hash") || strings.Contains(err.Error(), "root:") {
					t.Errorf("the error quotes the link's target: %v", err)
				}
			})
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(secret), "created-by-us")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lock created the file a dangling link points at (stat: %v)", err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "root:$6$secret-hash:19000::::::\n" {
		t.Errorf("the link's target changed: %q", b)
	}
}

// TestOS_OpenRegularStillWorks: after the checks, a regular file opened
// read-write reads and writes as before (O_NONBLOCK cleared) and Lock
// still creates a missing lock file.
func TestOS_OpenRegularStillWorks(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	f, err := OS.Create(name, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	g, err := OS.Open(name, ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.WriteAt([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	fd := int(g.(interface{ Fd() uintptr }).Fd())
	fl, err := fcntlGetfl(fd)
	if err != nil {
		t.Fatal(err)
	}
	if fl&syscall.O_NONBLOCK != 0 {
		t.Errorf("O_NONBLOCK still set on a regular file")
	}
	l, err := OS.Lock(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestOS_ListNoFollow: List refuses a FIFO (without blocking) and a link
// to a directory; before openDir, the FIFO hung List.
func TestOS_ListNoFollow(t *testing.T) {
	names, _ := hostile(t, t.TempDir())
	for _, kind := range []string{"fifo", "symlink"} {
		err := bounded(t, "List "+kind, func() error { _, err := OS.List(names[kind]); return err })
		if err == nil {
			t.Errorf("List of a %s: no error", kind)
		}
	}
	linkDir := filepath.Dir(names["under linked dir"])
	if _, err := OS.List(linkDir); !errors.Is(err, ErrSymlink) {
		t.Errorf("List of a link to a directory: %v, want ErrSymlink", err)
	}
}

func fcntlGetfl(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// TestOS_OpenLargeFile (review of issue 17): a database larger than
// 2 GiB opens. openat2 does not add O_LARGEFILE as open(2) does on 64-bit
// kernels, and Go's unix.O_LARGEFILE is 0 on amd64 and arm64, so the
// openat2 path answered EOVERFLOW for such a file. (A sparse file: no
// space is used.)
func TestOS_OpenLargeFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "big.db")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil {
		f.Close()
		t.Skipf("SKIP LOUDLY: no sparse 3 GiB file here: %v", err)
	}
	f.Close()
	for _, mode := range []OpenMode{ReadOnly, ReadWrite} {
		g, err := OS.Open(name, mode)
		if err != nil {
			t.Fatalf("open of a 3 GiB file (mode %v): %v", mode, err)
		}
		n, err := g.Size()
		g.Close()
		if err != nil || n != 3<<30 {
			t.Errorf("size %d, %v; want 3 GiB", n, err)
		}
	}
}
