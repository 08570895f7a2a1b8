//go:build linux

package yank

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// flushCase is one way of making a file durable before a Pull.
type flushCase struct {
	name string
	// device: write, Sync and SyncDir through device.OS (the project's
	// path, with its workaround for filesystems that drop fsync); else
	// write with the os package, fsync file and directory, then flush.
	device bool
	flush  func(t *testing.T, v *realfs.Volume, f *os.File)
}

var flushCases = []flushCase{
	{name: "fsync", flush: func(*testing.T, *realfs.Volume, *os.File) {}},
	{name: "fsync+syncfs", flush: func(t *testing.T, _ *realfs.Volume, f *os.File) {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			t.Logf("syncfs: %v", err)
		}
	}},
	{name: "fsync+fsync-blockdev", flush: func(t *testing.T, v *realfs.Volume, _ *os.File) {
		b, err := os.Open(v.Device) // root only in general
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Sync(); err != nil {
			t.Logf("fsync %s: %v", v.Device, err)
		}
	}},
	{name: "fsync+sync", flush: func(*testing.T, *realfs.Volume, *os.File) { unix.Sync() }},
	{name: "device.OS", device: true},
}

// TestFsync_PullDurability measures which call makes a file that was
// written and fsynced durable against a Pull, on each filesystem, and
// asserts that device.OS's File.Sync plus SyncDir do. The FINDING lines
// are the evidence behind the fusefat workaround in device/os_linux.go.
func TestFsync_PullDurability(t *testing.T) {
	for _, kind := range kinds() {
		for _, fc := range flushCases {
			t.Run(string(kind)+"/"+fc.name, func(t *testing.T) {
				realfs.Skip(t, kind)
				v, err := realfs.New(t, realfs.Options{Kind: kind})
				if err != nil {
					t.Fatal(err)
				}
				marker := []byte(fmt.Sprintf("<flush %s %s>", kind, fc.name))
				want := bytes.Repeat(marker, (256<<10)/len(marker))
				name := filepath.Join(v.Mount, "probe.bin")
				if fc.device {
					writeDevice(t, name, want)
				} else {
					writeOS(t, v, name, want, fc.flush)
				}
				if err := v.Pull(); err != nil {
					t.Fatalf("Pull: %v", err)
				}
				if err := v.Remount(); err != nil {
					t.Fatalf("Remount: %v", err)
				}
				got, err := os.ReadFile(name)
				survived := err == nil && bytes.Equal(got, want)
				t.Logf("FINDING %s %s: survived a Pull: %v (%d of %d bytes, err %v)", kind, fc.name, survived, len(got), len(want), err)
				if fc.device && !survived {
					t.Errorf("%s: data written and synced through device.OS lost at Pull", kind)
				}
			})
		}
	}
}

func writeDevice(t *testing.T, name string, data []byte) {
	t.Helper()
	f, err := device.OS.Create(name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := device.OS.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatalf("SyncDir: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeOS(t *testing.T, v *realfs.Volume, name string, data []byte, flush func(*testing.T, *realfs.Volume, *os.File)) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	d, err := os.Open(v.Mount)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync dir: %v", err)
	}
	flush(t, v, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
