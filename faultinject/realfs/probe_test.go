//go:build linux

package realfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The probes measure what the yank model of this package is worth on each
// filesystem: does an fsync reach the medium, and what does a write that
// was never fsynced leave after a Pull? They log one FINDING line per case
// and fail only where the project relies on the answer.

// probeCase is one way of writing a file before the Pull.
type probeCase struct {
	name  string
	fsync bool // fsync file and directory before the Pull
	close bool // close the file before the Pull
}

var probeCases = []probeCase{
	{"fsync", true, true},
	{"no-fsync-closed", false, true},
	{"no-fsync-open", false, false},
}

func TestProbe_PullDurability(t *testing.T) {
	for _, kind := range Kinds {
		for _, keep := range []bool{false, true} {
			for _, pc := range probeCases {
				model := "strict"
				if keep {
					model = "keep-device-cache"
				}
				t.Run(fmt.Sprintf("%s/%s/%s", kind, model, pc.name), func(t *testing.T) {
					probePull(t, kind, keep, pc)
				})
			}
		}
	}
}

func probePull(t *testing.T, kind Kind, keep bool, pc probeCase) {
	v := newVolume(t, Options{Kind: kind, PullKeepsDeviceCache: keep})
	marker := []byte(fmt.Sprintf("<probe %s %s>", kind, pc.name))
	want := bytes.Repeat(marker, (64<<10)/len(marker))
	name := filepath.Join(v.Mount, "probe.bin")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if pc.fsync {
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		syncDir(t, v.Mount)
	}
	if pc.close {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Where the bytes are at the instant of the Pull: written by the
	// daemon to the loop device (its page cache included), and on the
	// medium (the image file, what the loop driver received).
	onDevice := fileContains(t, v.Device, marker)
	onMedium := fileContains(t, v.Image, marker)
	if err := v.Pull(); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	f.Close()
	rep, err := v.Fsck()
	if err != nil {
		t.Fatalf("Fsck: %v", err)
	}
	if err := v.Remount(); err != nil {
		t.Fatalf("Remount: %v", err)
	}
	got, err := os.ReadFile(name)
	survived := err == nil && bytes.Equal(got, want)
	outcome := "survived"
	if !survived {
		outcome = fmt.Sprintf("lost (%d of %d bytes, err %v)", len(got), len(want), err)
	}
	t.Logf("FINDING %s %s: at Pull the data was on the loop device: %v, on the medium: %v; after Pull+Remount: %s; fsck clean: %v\n%s",
		kind, pc.name, onDevice, onMedium, outcome, rep.Clean, rep.Output)
	switch {
	case pc.fsync && keep && !survived:
		t.Errorf("fsynced data lost although Pull kept the device cache")
	case pc.fsync && fsyncReachesMedium[kind] && !survived:
		t.Errorf("fsynced data lost at Pull, but %s's daemon fsyncs the device", kind)
	case pc.fsync && fsyncReachesMedium[kind] && !onMedium:
		t.Errorf("fsynced data not on the medium before Pull, but %s's daemon fsyncs the device", kind)
	}
}

// fileContains reads a whole file or device and reports whether it holds
// marker.
func fileContains(t *testing.T, name string, marker []byte) bool {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, marker)
}

// TestProbe_TruncateToZero checks O_TRUNC on a file that has clusters,
// which SQLite does to journals (journal_mode=TRUNCATE) and WAL files.
func TestProbe_TruncateToZero(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			v := newVolume(t, Options{Kind: kind})
			name := filepath.Join(v.Mount, "t.bin")
			if err := os.WriteFile(name, bytes.Repeat([]byte("a"), 8192), 0o644); err != nil {
				t.Fatal(err)
			}
			werr := os.WriteFile(name, []byte("short"), 0o644) // O_TRUNC
			fi, serr := os.Stat(name)
			if err := v.Unmount(); err != nil {
				t.Fatalf("Unmount: %v", err)
			}
			rep, err := v.Fsck()
			if err != nil {
				t.Fatalf("Fsck: %v", err)
			}
			size := int64(-1)
			if serr == nil {
				size = fi.Size()
			}
			ok := werr == nil && size == 5 && rep.Clean
			t.Logf("FINDING %s: rewrite with O_TRUNC: write err %v, size %d (want 5), fsck clean after clean unmount: %v\n%s",
				kind, werr, size, rep.Clean, rep.Output)
			if !ok && kind == ExFAT {
				t.Errorf("O_TRUNC rewrite broken on %s", kind)
			}
		})
	}
}
