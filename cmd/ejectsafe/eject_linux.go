package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/device"
)

// syncAll flushes every filesystem's dirty data (sync(2)).
func syncAll() { unix.Sync() }

// systemVolume: on Linux, "/" (checked by the caller) is the only volume
// eject refuses outright.
func systemVolume(string) bool { return false }

// unmount uses udisksctl where it is installed (what a desktop user may
// do), else umount(2) (root), else fusermount -u for FUSE mounts.
func unmount(p device.Probe) error {
	if bin, err := exec.LookPath("udisksctl"); err == nil && strings.HasPrefix(p.Device, "/dev/") {
		out, err := exec.Command(bin, "unmount", "-b", p.Device).CombinedOutput()
		if err != nil {
			return fmt.Errorf("udisksctl: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	err := unix.Unmount(p.MountPoint, 0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("busy: a process still has files open on it (%w); close them and eject again", err)
	case errors.Is(err, unix.EPERM) && p.Class == device.ClassFUSE:
		out, ferr := exec.Command("fusermount", "-u", p.MountPoint).CombinedOutput()
		if ferr != nil {
			return fmt.Errorf("fusermount -u: %v: %s", ferr, strings.TrimSpace(string(out)))
		}
		return nil
	}
	return err
}

func powerOffDrive(p device.Probe) error {
	bin, err := exec.LookPath("udisksctl")
	if err != nil {
		return errors.New("powering a drive off needs udisksctl (Debian package udisks2)")
	}
	out, err := exec.Command(bin, "power-off", "-b", p.Device).CombinedOutput()
	if err != nil {
		return fmt.Errorf("udisksctl: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
