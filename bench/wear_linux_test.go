//go:build linux

package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/faultinject/realfs"
)

// TestMeasureWear_exFAT runs the wear section on exFAT on a loop device:
// it counts the loop device's writes (a copy checkpoint writes at least
// the whole database each time; in place and stock WAL NORMAL write
// something, and less), and --throttle puts the mount's FUSE daemon in a blkio group
// that is gone afterwards.
func TestMeasureWear_exFAT(t *testing.T) {
	realfs.Skip(t, realfs.ExFAT)
	v, err := realfs.New(t, realfs.Options{Kind: realfs.ExFAT, SizeMiB: 128})
	if err != nil {
		t.Fatal(err)
	}
	pid := v.DaemonPID()
	before := blkioGroupOf(pid)
	var logs []string
	rep, err := MeasureWear(context.Background(), v.Mount, WearPlan{MiB: 4, Rate: 20, Duration: 2 * time.Second,
		ThrottleMBps: 40, Modes: []string{WearStoreInPlace, WearStoreCopy, WearWALNormal}},
		func(f string, a ...any) { logs = append(logs, f) })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.Device, filepath.Base(v.Device); got != want {
		t.Errorf("device %q, want %q", got, want)
	}
	if want := "FUSE daemon pid " + strconv.Itoa(pid) + " "; !strings.HasPrefix(rep.Throttle, want) {
		t.Errorf("throttle %q, want it to start with %q", rep.Throttle, want)
	}
	if len(rep.Results) != 3 {
		t.Fatalf("%d results, want 3", len(rep.Results))
	}
	ip, st, wal := rep.Results[0], rep.Results[1], rep.Results[2]
	// In place on exFAT: every checkpoint goes in place, and writes less
	// than the copies do.
	if ip.Checkpoints < 1 || ip.InPlace != ip.Checkpoints || ip.DeviceBytes <= 0 || ip.DeviceBytes >= st.DeviceBytes {
		t.Errorf("store InPlace: %d of %d checkpoints in place, %d device bytes (Copy: %d)", ip.InPlace, ip.Checkpoints, ip.DeviceBytes, st.DeviceBytes)
	}
	if st.Checkpoints < 1 || st.DeviceBytes < int64(st.Checkpoints)*4<<20 {
		t.Errorf("store: %d checkpoints wrote %d device bytes; each copies the whole 4 MiB database", st.Checkpoints, st.DeviceBytes)
	}
	if wal.DeviceBytes <= 0 || wal.DeviceBytes >= st.DeviceBytes {
		t.Errorf("stock WAL NORMAL wrote %d device bytes, the store %d: want some, fewer", wal.DeviceBytes, st.DeviceBytes)
	}
	// The daemon is back in its blkio group, and ours is gone.
	if got := blkioGroupOf(pid); got != before {
		t.Errorf("the daemon is in blkio group %s, was in %s", got, before)
	}
	if _, err := os.Stat(ownGroup()); err == nil {
		t.Errorf("blkio group %s left behind", ownGroup())
	}
}

// TestThrottle_refusesWithoutFUSE: a directory not on a FUSE mount of a
// block device is refused with an error naming why, and nothing is made.
func TestThrottle_refusesWithoutFUSE(t *testing.T) {
	dir := t.TempDir()
	undo, _, err := throttle(dir, blockDevice(dir), 20)
	if err == nil {
		undo()
		t.Fatalf("throttle on %s (not a FUSE mount) succeeded", dir)
	}
	if _, err := os.Stat(ownGroup()); err == nil {
		t.Errorf("blkio group %s left behind", ownGroup())
	}
}

// ownGroup is the blkio group this process's throttle makes.
func ownGroup() string {
	return filepath.Join(blkioRoot, "ejectsafe-bench-"+strconv.Itoa(os.Getpid()))
}
