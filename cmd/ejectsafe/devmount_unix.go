//go:build unix

package main

import (
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// deviceMount resolves the block device path (symlinks such as
// /dev/disk/by-label/X followed) and returns where it is mounted: the
// last mount listed whose source is the device or whose device number is
// its own; "" when it is not mounted.
func deviceMount(path string) (dev, mountPoint string, err error) {
	dev, err = filepath.EvalSymlinks(path)
	if err != nil {
		return "", "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", "", &os.PathError{Op: "stat", Path: dev, Err: err}
	}
	major, minor := int(unix.Major(uint64(st.Rdev))), int(unix.Minor(uint64(st.Rdev)))
	mounts, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return !(i.Source == dev || (i.Major == major && i.Minor == minor)), false
	})
	if err != nil {
		return "", "", err
	}
	if len(mounts) == 0 {
		return dev, "", nil
	}
	return dev, mounts[len(mounts)-1].Mountpoint, nil
}
