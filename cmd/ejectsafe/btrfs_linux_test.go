package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/lease"
)

// mountBtrfs formats a 160 MiB image as btrfs and mounts it through a
// loop device for the test, or skips loudly (no root, no mkfs.btrfs, no
// btrfs in the kernel).
func mountBtrfs(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("SKIP LOUDLY: mounting a loop device needs root")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP LOUDLY: %s not found (apt-get install btrfs-progs)", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "btrfs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 160<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Skipf("SKIP LOUDLY: mkfs.btrfs: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Skipf("SKIP LOUDLY: losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	mp := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(loop, mp, "btrfs", 0, ""); err != nil {
		t.Skipf("SKIP LOUDLY: mount btrfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
	return mp
}

// TestStatus_btrfsSubvolume (review of issue 17): a database in a btrfs
// subvolume has a device number of its own, under the mount of the
// volume root. Its holder identified its volume from the database's
// directory; status, check and eject compared that with the volume
// ROOT's, found another device, and reported the holder's lease invalid
// ("on another volume"): check said safe and eject did not ask it.
// They now compare it with the volume of the database's directory.
func TestStatus_btrfsSubvolume(t *testing.T) {
	mp := mountBtrfs(t)
	sub := filepath.Join(mp, "sub")
	if out, err := exec.Command("btrfs", "subvolume", "create", sub).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v: %s", err, out)
	}
	var a, b syscall.Stat_t
	if syscall.Stat(mp, &a) != nil || syscall.Stat(sub, &b) != nil || a.Dev == b.Dev {
		t.Fatalf("the subvolume's device %d is the volume root's %d: not the case under test", b.Dev, a.Dev)
	}
	db := filepath.Join(sub, "app.db")
	holder := startHolder(t, db, "")
	code, out, errs := runCmd(t, "status", mp)
	if code != 0 || !strings.Contains(out, "held:") || strings.Contains(out, "invalid") {
		t.Errorf("status of a volume whose holder's database is in a subvolume = %d; want it held:\n%s%s", code, out, errs)
	}
	if code, out, errs := runCmd(t, "check", mp); code != 1 {
		t.Errorf("check with a live holder in a subvolume = %d; want 1:\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd(t, "eject", "--no-unmount", "--timeout", "20s", mp)
	if code != 0 || !strings.Contains(out, "released") {
		t.Errorf("eject --no-unmount = %d; want the holder released:\n%s%s", code, out, errs)
	}
	stopProc(t, holder)
}

// TestEject_nestedMountLease (review of issue 17): volume B mounted at
// A/sub, and a lease planted on A naming B's holder with database
// "sub/app.db". The path is the holder's, but its database is on another
// mount than A's: eject A reports the lease and does not ask the holder,
// whose store stays open. (Guards the comparison with the database's
// directory's volume made for btrfs subvolumes: that directory is on B.)
func TestEject_nestedMountLease(t *testing.T) {
	a := t.TempDir()
	mountTmpfs(t, a)
	sub := filepath.Join(a, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, sub)
	db := filepath.Join(sub, "app.db")
	holder := startHolder(t, db, "")
	_, found, err := lease.Find(sub)
	if err != nil || len(found) != 1 || found[0].Err != nil {
		t.Fatalf("the holder's lease on B: %+v, %v", found, err)
	}
	planted := found[0].Lease
	planted.DB = "sub/app.db"
	place := lease.PlaceFor(device.OS, filepath.Join(a, "planted.db"))
	if place.Root != a {
		t.Fatalf("lease place on A: %+v", place)
	}
	if err := lease.Write(device.OS, filepath.Join(filepath.Dir(place.Path), "0000000000000000.json"), planted); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "eject", "--no-unmount", "--timeout", "10s", a)
	if !strings.Contains(out+errs, "mounted below") || strings.Contains(out+errs, "released in") {
		t.Errorf("eject of A = %d; want the planted lease reported, nothing released:\n%s%s", code, out, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if resp, err := lease.Ask(ctx, planted.Endpoint, lease.Request{Op: "status"}); err != nil || resp.Status == nil || resp.Status.State != lease.StateOpen || !alive(holder) {
		t.Errorf("B's holder after eject of A: %+v, %v; want its store open", resp, err)
	}
}
