//go:build linux

package yank

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
	"github.com/ejectsafe/ejectsafe/store"
)

// fusefat (0.1a, the only FAT driver for FUSE in Debian) has bugs that
// corrupt files with no pull at all; these probes measure them. The FAT
// yank rounds check for the worst one first (extendBug) and, while it is
// there, count their outcomes instead of asserting them: no database
// can be correct on a driver that loses a file's data when it is
// extended.

// extendBug writes 64 KiB to a new file on the volume, closes it, opens
// it again and appends 8 KiB, then reads it back. It reports whether the
// content is wrong, and what was read. fusefat links the appended
// clusters after the cluster its new handle is positioned at (the first)
// instead of after the last, cutting the file's chain.
func extendBug(t *testing.T, mount string) (bool, string) {
	t.Helper()
	name := filepath.Join(mount, "extend-probe.bin")
	a := bytes.Repeat([]byte("a"), 64<<10)
	b := bytes.Repeat([]byte("b"), 8<<10)
	if err := os.WriteFile(name, a, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(name)
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.WriteAt(b, int64(len(a)))
	if err := f.Close(); werr == nil {
		werr = err
	}
	got, err := os.ReadFile(name)
	want := append(append([]byte{}, a...), b...)
	if werr == nil && err == nil && bytes.Equal(got, want) {
		return false, fmt.Sprintf("read back %d bytes as written", len(got))
	}
	return true, fmt.Sprintf("append err %v; read back %d bytes (wrote %d), first 64 KiB intact: %v, err %v",
		werr, len(got), len(want), len(got) >= len(a) && bytes.Equal(got[:len(a)], a), err)
}

// TestFusefat_Bugs logs what each kind does with write patterns a
// database uses. A FINDING line per pattern; no assertion: the yank
// rounds adapt to what extendBug finds.
func TestFusefat_Bugs(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			v, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			bug, what := extendBug(t, v.Mount)
			t.Logf("FINDING %s: extend a file through a new handle (write 64 KiB, close, reopen, append 8 KiB): corrupted %v: %s", kind, bug, what)
			free, err := device.OS.FreeSpace(v.Mount)
			t.Logf("FINDING %s: device.OS.FreeSpace = %d, %v; statfs reports no sizes: %v", kind, free, err, sizesUnknown(v.Mount))
		})
	}
}

// TestFusefat_StoreWithoutPull runs the store on each kind with no pull
// at all: checkpoint, close, clean unmount, open again. On exFAT it must
// work; on fusefat it shows what extendBug does to the store.
func TestFusefat_StoreWithoutPull(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(string(kind), func(t *testing.T) {
			realfs.Skip(t, kind)
			v, err := realfs.New(t, realfs.Options{Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			bug, _ := extendBug(t, v.Mount)
			path := filepath.Join(v.Mount, dbName)
			var outcome []string
			for i := 0; i < 3; i++ {
				err := openCheckpointClose(path, v.Mount, i)
				outcome = append(outcome, fmt.Sprintf("round %d: %v", i, err))
				if err != nil {
					break
				}
				if err := v.Remount(); err != nil {
					t.Fatal(err)
				}
			}
			if err := v.Unmount(); err != nil {
				t.Fatal(err)
			}
			rep, err := v.Fsck()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("FINDING %s: store with no pull (extend bug %v): %q; fsck after a clean unmount: %s", kind, bug, outcome, fsckSummary(rep))
			if !bug && (len(outcome) < 3 || !rep.Clean) {
				t.Errorf("%s: the store failed with no pull on a driver without the extend bug: %q; fsck: %s", kind, outcome, fsckSummary(rep))
			}
		})
	}
}

// openCheckpointClose opens the store, commits a batch, checkpoints and
// closes.
func openCheckpointClose(path, dir string, i int) error {
	s, err := store.Open(path, &store.Options{ManualCheckpoint: true, FS: fsFor(dir, nil), Logger: quiet})
	if err != nil {
		return err
	}
	if i == 0 {
		if _, err := s.DB().Exec(tableSQL); err != nil {
			s.Abandon()
			return err
		}
	}
	if _, err := s.DB().Exec(insertBatch(256, rowBytes)); err != nil {
		s.Abandon()
		return err
	}
	if err := s.Checkpoint(context.Background()); err != nil {
		s.Abandon()
		return err
	}
	return s.Close()
}
