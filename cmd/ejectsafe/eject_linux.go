//go:build linux

package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/probe"
)

// syncAll flushes every filesystem's dirty data (sync(2)).
func syncAll() { unix.Sync() }

// systemVolume: on Linux, "/" (checked by the caller) is the only volume
// eject refuses outright.
func systemVolume(string) bool { return false }

// isBusy reports whether an unmount failed because the volume is in use.
func isBusy(err error) bool { return errors.Is(err, unix.EBUSY) }

// unmount unmounts p's volume and says how: through udisks where it can
// act (what a desktop user may do without root), else umount(2) (root),
// else fusermount -u for a FUSE mount of this user. udisks cannot act
// when udisksctl is missing, its daemon is not running, or it does not
// manage the device (a loop device it did not set up): then umount(2) is
// tried, and a failure reports both.
func unmount(p probe.Result) (method string, err error) {
	var udisksErr error
	if bin, lerr := exec.LookPath(udisksctl); lerr == nil && strings.HasPrefix(p.Device, "/dev/") {
		out, err := exec.Command(bin, "unmount", "--no-user-interaction", "-b", p.Device).CombinedOutput()
		if err == nil {
			return "udisksctl", nil
		}
		udisksErr = fmt.Errorf("udisksctl: %v: %s", err, strings.TrimSpace(string(out)))
	}
	err = unix.Unmount(p.MountPoint, 0)
	if errors.Is(err, unix.EPERM) && p.Class == probe.FUSE {
		out, ferr := exec.Command("fusermount", "-u", p.MountPoint).CombinedOutput()
		if ferr == nil {
			return "fusermount", nil
		}
		err = fmt.Errorf("%w; fusermount -u: %v: %s", err, ferr, strings.TrimSpace(string(out)))
	}
	switch {
	case err == nil:
		return "umount", nil
	case errors.Is(err, unix.EBUSY):
		err = fmt.Errorf("busy: a process still has files open on it (%w)", err)
	}
	if udisksErr != nil {
		err = fmt.Errorf("%w (after %v)", err, udisksErr)
	}
	return "", err
}

// canPowerOff says why --power-off cannot be done, before anything is.
func canPowerOff() error {
	bin, err := exec.LookPath(udisksctl)
	if err != nil {
		return errors.New("--power-off needs udisksctl (Debian package udisks2), which is not installed; nothing was done")
	}
	out, err := exec.Command(bin, "status").CombinedOutput()
	if err != nil {
		return fmt.Errorf("--power-off needs the udisks daemon, which udisksctl cannot reach (%v: %s); nothing was done",
			err, strings.TrimSpace(string(out)))
	}
	return nil
}

func powerOffDrive(p probe.Result) error {
	out, err := exec.Command(udisksctl, "power-off", "--no-user-interaction", "-b", p.Device).CombinedOutput()
	if err != nil {
		return fmt.Errorf("udisksctl: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
