package main

import (
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/probe"
)

// syncAll flushes every filesystem's dirty data (sync(2)).
func syncAll() { unix.Sync() }

// systemVolume: the parts of the macOS system volume group, mounted
// below /System/Volumes ("/" is checked by the caller).
func systemVolume(mp string) bool { return strings.HasPrefix(mp, "/System/Volumes/") }

// unmount asks diskutil, which goes through Disk Arbitration as Finder's
// eject does, so other applications may dissent (reported as busy).
func unmount(p probe.Result) (method string, err error) {
	out, err := exec.Command("diskutil", "unmount", p.MountPoint).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if strings.Contains(msg, "dissent") || strings.Contains(msg, "busy") {
			return "", fmt.Errorf("%w: a process still has files open on it (%s); close them and eject again", errBusy, msg)
		}
		return "", fmt.Errorf("diskutil unmount: %v: %s", err, msg)
	}
	return "diskutil", nil
}

// canPowerOff: diskutil is part of macOS.
func canPowerOff() error { return nil }

// powerOffDrive ejects the whole disk (diskutil eject), which spins it
// down or lets a USB stick be pulled.
func powerOffDrive(p probe.Result) error {
	out, err := exec.Command("diskutil", "eject", p.Device).CombinedOutput()
	if err != nil {
		return fmt.Errorf("diskutil eject: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
