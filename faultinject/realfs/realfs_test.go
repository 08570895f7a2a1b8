//go:build linux

package realfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// newVolume skips loudly (fails in CI) without prerequisites, makes a
// volume under t.TempDir() and checks, after the volume's own cleanup,
// that no loop device or mount under that directory is left.
func newVolume(t *testing.T, opts Options) *Volume {
	t.Helper()
	Skip(t, opts.Kind)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	noLeftovers(t, opts.Dir)
	v, err := New(t, opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return v
}

// noLeftovers compares `losetup -a` and the mount table before and after
// the test, restricted to dir: other packages' tests may attach loop
// devices of their own meanwhile. Registered before New, it runs after
// the volume's cleanup.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	before := loopLines(t, dir)
	if len(before) > 0 {
		t.Fatalf("loop devices under %s before the test: %q", dir, before)
	}
	t.Cleanup(func() {
		if after := loopLines(t, dir); len(after) > 0 {
			t.Errorf("leftover loop devices (losetup -a): %q", after)
		}
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, dir) {
				t.Errorf("leftover mount: %s", l)
			}
		}
	})
}

// loopLines is the lines of `losetup -a` naming a file under dir.
func loopLines(t *testing.T, dir string) []string {
	t.Helper()
	losetup, ok := lookTool("losetup")
	if !ok {
		t.Fatal("losetup not found")
	}
	out, err := exec.Command(losetup, "-a").CombinedOutput()
	if err != nil {
		t.Fatalf("losetup -a: %v: %s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, dir) {
			lines = append(lines, l)
		}
	}
	return lines
}

// writeDurable is the durability sequence: write a temporary file, fsync
// it, rename it over name, fsync the directory.
func writeDurable(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", tmp, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	syncDir(t, dir)
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync dir %s: %v", dir, err)
	}
}

// fsyncReachesMedium records, per kind, whether the daemon fsyncs the
// device when the application fsyncs (see the package documentation and
// probe_test.go). Where it does not, Pull may lose fsynced data and the
// tests log the loss instead of failing.
var fsyncReachesMedium = map[Kind]bool{ExFAT: true, VFAT: false}

func TestVolume_PullRemount(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			v := newVolume(t, Options{Kind: kind})
			hello := filepath.Join(v.Mount, "hello.txt")
			if err := os.WriteFile(hello, []byte("hello"), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(hello); err != nil || string(got) != "hello" {
				t.Fatalf("ReadFile = %q, %v; want %q", got, err, "hello")
			}
			want := bytes.Repeat([]byte("synced data\n"), 1000)
			writeDurable(t, v.Mount, "data.bin", want)

			pid := v.DaemonPID()
			if pid == 0 || !alive(pid) {
				t.Fatalf("DaemonPID() = %d, not a live process", pid)
			}
			// The fallback for kernels without fuse_connection in fdinfo.
			if !cmdlineMatches(fmt.Sprint("/proc/", pid), v.tools.daemon, v.Device, v.Mount) {
				b, _ := os.ReadFile(fmt.Sprint("/proc/", pid, "/cmdline"))
				t.Errorf("daemon %d's command line %q does not match %s %s %s", pid, b, v.tools.daemon, v.Device, v.Mount)
			}
			open, err := os.OpenFile(hello, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer open.Close()

			if err := v.Pull(); err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if alive(pid) {
				t.Errorf("daemon %d alive after Pull", pid)
			}
			if got := v.DaemonPID(); got != 0 {
				t.Errorf("DaemonPID() after Pull = %d, want 0", got)
			}
			// Reads may still be served from the kernel's page cache;
			// writes go through to the (dead) daemon.
			if _, err := open.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("write to a file open across Pull: %v, want ENOTCONN", err)
			}
			if _, err := os.Stat(hello); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("Stat after Pull: %v, want ENOTCONN", err)
			}
			if err := os.WriteFile(filepath.Join(v.Mount, "new.txt"), nil, 0o644); !errors.Is(err, syscall.ENOTCONN) {
				t.Errorf("create after Pull: %v, want ENOTCONN", err)
			}
			if err := v.Fill(0); !errors.Is(err, ErrNotMounted) {
				t.Errorf("Fill after Pull: %v, want ErrNotMounted", err)
			}
			open.Close()

			rep, err := v.Fsck()
			if err != nil {
				t.Fatalf("Fsck after Pull: %v", err)
			}
			t.Logf("%s after Pull: clean=%v exit=%d\n%s", rep.Command, rep.Clean, rep.ExitCode, rep.Output)

			if err := v.Remount(); err != nil {
				t.Fatalf("Remount: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(v.Mount, "data.bin"))
			switch {
			case err == nil && bytes.Equal(got, want):
			case fsyncReachesMedium[kind]:
				t.Errorf("fsynced+renamed data.bin after Pull: %d bytes, %v; want %d bytes", len(got), err, len(want))
			default:
				t.Logf("FINDING %s: fsynced+renamed data.bin lost at Pull (%d bytes, %v): the daemon does not fsync the device", kind, len(got), err)
			}
			if err := os.WriteFile(filepath.Join(v.Mount, "after.txt"), []byte("x"), 0o644); err != nil {
				t.Errorf("write after Remount: %v", err)
			}
		})
	}
}

func TestVolume_UnmountFsck(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			v := newVolume(t, Options{Kind: kind})
			want := []byte("kept by a clean unmount")
			if err := os.WriteFile(filepath.Join(v.Mount, "a.txt"), want, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Fsck(); !errors.Is(err, ErrMounted) {
				t.Errorf("Fsck while mounted: %v, want ErrMounted", err)
			}
			if err := v.Unmount(); err != nil {
				t.Fatalf("Unmount: %v", err)
			}
			if v.Device != "" {
				t.Errorf("Device after Unmount = %q, want empty", v.Device)
			}
			if err := v.Unmount(); !errors.Is(err, ErrNotMounted) {
				t.Errorf("second Unmount: %v, want ErrNotMounted", err)
			}
			rep, err := v.Fsck()
			if err != nil || !rep.Clean {
				t.Fatalf("Fsck after clean Unmount: %+v, %v", rep, err)
			}
			if err := v.Remount(); err != nil {
				t.Fatalf("Remount: %v", err)
			}
			if got, err := os.ReadFile(filepath.Join(v.Mount, "a.txt")); err != nil || !bytes.Equal(got, want) {
				t.Errorf("after Unmount+Remount: %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestVolume_Fill(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			v := newVolume(t, Options{Kind: kind, SizeMiB: 16})
			full := FullErrno[kind]
			// Each write gets a new name: fusefat corrupts a file truncated
			// to zero (O_TRUNC), see probe_test.go.
			if err := v.Fill(0); err != nil {
				t.Fatalf("Fill(0): %v", err)
			}
			if err := writeFile(filepath.Join(v.Mount, "small1.bin"), make([]byte, 4096)); !errors.Is(err, full) {
				t.Errorf("4 KiB write on a full volume: %v, want %v", err, full)
			}
			if err := v.Unfill(); err != nil {
				t.Fatalf("Unfill: %v", err)
			}
			if err := writeFile(filepath.Join(v.Mount, "small2.bin"), make([]byte, 4096)); err != nil {
				t.Errorf("4 KiB write after Unfill: %v", err)
			}
			if err := v.Fill(1 << 20); err != nil {
				t.Fatalf("Fill(1 MiB): %v", err)
			}
			if err := writeFile(filepath.Join(v.Mount, "half.bin"), make([]byte, 256<<10)); err != nil {
				t.Errorf("256 KiB write with 1 MiB left: %v", err)
			}
			if err := writeFile(filepath.Join(v.Mount, "big1.bin"), make([]byte, 2<<20)); !errors.Is(err, full) {
				t.Errorf("2 MiB write with under 1 MiB left: %v, want %v", err, full)
			}
			if err := v.Unfill(); err != nil {
				t.Fatalf("Unfill: %v", err)
			}
			if err := writeFile(filepath.Join(v.Mount, "big2.bin"), make([]byte, 2<<20)); err != nil {
				t.Errorf("2 MiB write after Unfill: %v", err)
			}
			if err := v.Fill(64 << 20); err != nil {
				t.Fatalf("Fill(more than the volume): %v", err)
			}
			if _, err := os.Stat(filepath.Join(v.Mount, fillerName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("filler after Fill(more than the volume): %v, want removed", err)
			}
			if err := v.Unmount(); err != nil {
				t.Fatalf("Unmount: %v", err)
			}
			if rep, err := v.Fsck(); err != nil || !rep.Clean {
				t.Errorf("Fsck after Fill/Unfill and a clean unmount: %v\n%s", err, rep.Output)
			}
		})
	}
}

// writeFile creates name, writes data, fsyncs and closes it, keeping the
// first error.
func writeFile(name string, data []byte) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func TestVolume_RemountReadOnly(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			v := newVolume(t, Options{Kind: kind})
			name := filepath.Join(v.Mount, "r.txt")
			if err := os.WriteFile(name, []byte("before"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := v.RemountReadOnly(); err != nil {
				t.Fatalf("RemountReadOnly: %v", err)
			}
			if got, err := os.ReadFile(name); err != nil || string(got) != "before" {
				t.Errorf("read on read-only mount: %q, %v", got, err)
			}
			if err := os.WriteFile(filepath.Join(v.Mount, "new.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
				t.Errorf("create on read-only mount: %v, want EROFS", err)
			}
			if _, err := os.OpenFile(name, os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
				t.Errorf("open for writing on read-only mount: %v, want EROFS", err)
			}
			if err := v.Fill(0); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Fill on read-only mount: %v, want ErrReadOnly", err)
			}
			if err := v.Remount(); err != nil {
				t.Fatalf("Remount: %v", err)
			}
			if err := os.WriteFile(name, []byte("after"), 0o644); err != nil {
				t.Errorf("write after Remount: %v", err)
			}
		})
	}
}

func TestVolume_Cleanup(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			v := newVolume(t, Options{Kind: kind})
			if err := os.WriteFile(filepath.Join(v.Mount, "x"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := v.Pull(); err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if err := v.Cleanup(); err != nil {
				t.Fatalf("Cleanup after Pull: %v", err)
			}
			if err := v.Cleanup(); err != nil {
				t.Errorf("second Cleanup: %v", err)
			}
			if _, err := os.Stat(filepath.Dir(v.Image)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("volume directory after Cleanup: %v, want not exist", err)
			}
			for name, err := range map[string]error{"Remount": v.Remount(), "Pull": v.Pull(), "Unmount": v.Unmount()} {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("%s after Cleanup: %v, want ErrClosed", name, err)
				}
			}
		})
	}
}

func TestAvailable_UnknownKind(t *testing.T) {
	err := Available("ntfs")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `unknown kind "ntfs"`) {
		t.Errorf("Available(ntfs) = %v", err)
	}
}

// TestFindMount: a mount point with a space (escaped as \040 in
// mountinfo) is found, with its type, and the topmost of two mounts on
// one point wins.
func TestFindMount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP LOUDLY: mounting a tmpfs needs root")
	}
	point := filepath.Join(t.TempDir(), "a b")
	if err := os.Mkdir(point, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := findMount(point); err != nil || ok {
		t.Fatalf("findMount before mounting = %v, %v", ok, err)
	}
	for i, opts := range []string{"size=1m", "size=2m,ro"} {
		flags := uintptr(0)
		if i == 1 {
			flags = syscall.MS_RDONLY
		}
		if err := syscall.Mount("tmpfs", point, "tmpfs", flags, opts); err != nil {
			t.Skipf("SKIP LOUDLY: mount tmpfs: %v", err)
		}
		defer syscall.Unmount(point, syscall.MNT_DETACH)
	}
	m, ok, err := findMount(point)
	if err != nil || !ok || m.fstype != "tmpfs" || m.point != point || !m.readOnly() {
		t.Fatalf("findMount(%q) = %+v, %v, %v; want the read-only tmpfs on top", point, m, ok, err)
	}
}
