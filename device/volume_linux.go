package device

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/ejectsafe/ejectsafe/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Volume identifies the volume holding path (see VolumeID). Mount and Dev
// come from one statx(2), which a kernel older than 4.11 does not have. The serial is found, with serial true, through
// the block device behind the mount: /dev/disk/by-uuid when udev made it,
// else the device's boot sector, which needs read access to the device
// (root, or the disk group). The device is the mount's source in
// /proc/self/mountinfo (exfat-fuse's fuseblk mounts, kernel filesystems);
// for a FUSE mount whose source is not a device (fusefat), it is the block
// device the FUSE daemon serving the mount holds open, found through
// /proc: the daemon holds /dev/fuse with the mount's connection number.
func (osFS) Volume(path string, serial bool) (VolumeID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return VolumeID{}, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	v := VolumeID{Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor)}
	// The unique mount id (Linux 6.8) is never reused. The older one is
	// the lowest free number, so a drive mounted right after another
	// one's mount went away often gets its id (and a FUSE mount its
	// anonymous st_dev, a re-attached loop device its number): then only
	// the serial and the database identity tell them apart.
	if stx.Mask&(unix.STATX_MNT_ID_UNIQUE|unix.STATX_MNT_ID) != 0 {
		v.Mount = stx.Mnt_id
	}
	if serial {
		v.Serial, v.Source = volumeSerial(stx.Dev_major, stx.Dev_minor)
	}
	return v, nil
}

// volumeSerial finds the serial of the volume whose st_dev is
// major:minor, or "" and why not.
func volumeSerial(major, minor uint32) (serial, source string) {
	dev, why := blockDeviceOf(major, minor)
	if dev == "" {
		return "", why
	}
	if s := serialByUUID(dev); s != "" {
		return s, "/dev/disk/by-uuid link to " + dev
	}
	b, err := readBootSector(dev)
	if err != nil {
		return "", fmt.Sprintf("unknown: read boot sector of %s: %v", dev, err)
	}
	if s := parseSerial(b); s != "" {
		return s, "boot sector of " + dev
	}
	return "", "unknown: " + dev + " is not FAT or exFAT"
}

// blockDeviceOf returns the block device holding the filesystem whose
// st_dev is major:minor, or "" and why not.
func blockDeviceOf(major, minor uint32) (string, string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Sprintf("unknown: %v", err)
	}
	entries, _, err := mountinfo.Parse(f)
	f.Close()
	if err != nil {
		return "", fmt.Sprintf("unknown: mountinfo: %v", err)
	}
	var e *mountinfo.Entry
	for i := range entries {
		if entries[i].Major == major && entries[i].Minor == minor {
			e = &entries[i]
		}
	}
	switch {
	case e == nil:
		return "", fmt.Sprintf("unknown: no mount of device %d:%d", major, minor)
	case isBlockDevice(e.Source):
		return e.Source, ""
	case e.FSType == "fuse" || strings.HasPrefix(e.FSType, "fuse."):
		if dev := fuseDaemonDevice(uint64(major)<<20 | uint64(minor)); dev != "" {
			return dev, ""
		}
		return "", "unknown: no readable FUSE daemon holding a block device for " + e.MountPoint
	}
	return "", fmt.Sprintf("unknown: %s on %s has no block device", e.FSType, e.MountPoint)
}

func isBlockDevice(name string) bool {
	if !strings.HasPrefix(name, "/dev/") {
		return false
	}
	fi, err := os.Stat(name)
	return err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
}

// fuseDaemonDevice finds the process holding /dev/fuse for connection
// conn and returns the one block device it holds open, or "". Processes
// of other users are not readable without privilege: then "".
func fuseDaemonDevice(conn uint64) string {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	want := strconv.FormatUint(conn, 10)
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		serves := false
		var devs []string
		for _, fd := range fds {
			target, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err != nil {
				continue
			}
			if target == "/dev/fuse" {
				info, _ := os.ReadFile(dir + "/fdinfo/" + fd.Name())
				for _, line := range strings.Split(string(info), "\n") {
					if k, v, ok := strings.Cut(line, ":"); ok && k == "fuse_connection" && strings.TrimSpace(v) == want {
						serves = true
					}
				}
			} else if isBlockDevice(target) {
				devs = append(devs, target)
			}
		}
		if serves {
			if len(devs) == 1 {
				return devs[0]
			}
			return ""
		}
	}
	return ""
}

// serialByUUID returns the name of the /dev/disk/by-uuid link that
// resolves to dev, or "".
func serialByUUID(dev string) string {
	const dir = "/dev/disk/by-uuid"
	links, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, l := range links {
		if t, err := filepath.EvalSymlinks(filepath.Join(dir, l.Name())); err == nil && t == dev {
			return strings.ToUpper(l.Name())
		}
	}
	return ""
}

// readBootSector reads the first sector of dev with O_DIRECT: a loop
// device's page cache can outlive the image it was attached to, and a
// device node reused for another drive would then show the old drive's
// boot sector. Without O_DIRECT (refused by some devices) it reads
// through the cache.
func readBootSector(dev string) ([]byte, error) {
	const align = 4096
	raw := make([]byte, 2*align)
	off := align - int(uintptr(unsafe.Pointer(&raw[0]))&(align-1))
	buf := raw[off : off+align]
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		f, err := os.Open(dev)
		if err != nil {
			return nil, err
		}
		defer f.Close() // read-only
		b := make([]byte, bootSectorBytes)
		_, err = f.ReadAt(b, 0)
		return b, err
	}
	defer unix.Close(fd)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return nil, &os.PathError{Op: "pread", Path: dev, Err: err}
	}
	if n < bootSectorBytes {
		return nil, fmt.Errorf("%s: short read of %d bytes", dev, n)
	}
	return buf[:bootSectorBytes], nil
}
