//go:build linux

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/probe"
)

// blockDev is the block device holding a directory, as far as the wear
// section counts its writes.
type blockDev struct {
	name string // "loop3", "sda1"; "" when none
	dir  string // the directory measured (for syncfs)
	why  string // why there is none
}

// blockDevice finds the block device under dir: the mount's source when
// it is a /dev node with a /sys/class/block entry. A FUSE mount of a
// block filesystem (exfat-fuse, fuseblk) names its device, a loop device
// for the test images, so its writes are counted there.
func blockDevice(dir string) blockDev {
	p, err := probe.Path(dir)
	if err != nil {
		return blockDev{dir: dir, why: err.Error()}
	}
	src := p.Device
	if r, err := filepath.EvalSymlinks(src); err == nil {
		src = r
	}
	if !strings.HasPrefix(src, "/dev/") {
		return blockDev{dir: dir, why: fmt.Sprintf("the mount's source is %q (filesystem %s)", p.Device, p.FSType)}
	}
	name := filepath.Base(src)
	if _, err := os.Stat(filepath.Join("/sys/class/block", name, "stat")); err != nil {
		return blockDev{dir: dir, why: err.Error()}
	}
	return blockDev{name: name, dir: dir}
}

// written flushes what is cached for the device (the filesystem's dirty
// data by syncfs, the device's own page cache by fsync of its node: where
// a FUSE daemon's buffered writes wait) and returns the bytes written to
// it since boot (field 7 of its stat: 512-byte sectors), or -1.
func (d blockDev) written() int64 {
	if d.name == "" {
		return -1
	}
	if f, err := os.Open(d.dir); err == nil {
		unix.Syncfs(int(f.Fd()))
		f.Close()
	}
	if f, err := os.OpenFile("/dev/"+d.name, os.O_RDONLY, 0); err == nil {
		f.Sync()
		f.Close()
	}
	b, err := os.ReadFile(filepath.Join("/sys/class/block", d.name, "stat"))
	if err != nil {
		return -1
	}
	fs := strings.Fields(string(b))
	if len(fs) < 7 {
		return -1
	}
	n, err := strconv.ParseInt(fs[6], 10, 64)
	if err != nil {
		return -1
	}
	return n * 512
}

// blkioRoot is cgroup v1's blkio hierarchy.
const blkioRoot = "/sys/fs/cgroup/blkio"

// throttle caps the write bandwidth of the FUSE daemon serving dir's
// mount on its block device at mbps MB/s: a cgroup-v1 blkio group of its
// own with blkio.throttle.write_bps_device set for the device, and the
// daemon's process moved into it. The cap applies to the writes the
// daemon's threads submit themselves, which is what its fsyncs (and so
// every durable write on the mount) wait for. undo moves the daemon back
// and removes the group.
func throttle(dir string, d blockDev, mbps float64) (undo func(), what string, err error) {
	if d.name == "" {
		return nil, "", fmt.Errorf("no block device under %s (%s)", dir, d.why)
	}
	if _, err := os.Stat(filepath.Join(blkioRoot, "blkio.throttle.write_bps_device")); err != nil {
		return nil, "", fmt.Errorf("cgroup v1 blkio throttling unavailable: %w", err)
	}
	pid, err := fuseDaemon(d.name)
	if err != nil {
		return nil, "", err
	}
	mm, err := os.ReadFile(filepath.Join("/sys/class/block", d.name, "dev"))
	if err != nil {
		return nil, "", err
	}
	grp := filepath.Join(blkioRoot, fmt.Sprintf("ejectsafe-bench-%d", os.Getpid()))
	if err := os.Mkdir(grp, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, "", err
	}
	bps := int64(mbps * 1e6)
	rule := fmt.Sprintf("%s %d", strings.TrimSpace(string(mm)), bps)
	if err := os.WriteFile(filepath.Join(grp, "blkio.throttle.write_bps_device"), []byte(rule), 0); err != nil {
		os.Remove(grp)
		return nil, "", fmt.Errorf("set %s: %w", rule, err)
	}
	back := blkioGroupOf(pid)
	if err := os.WriteFile(filepath.Join(grp, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		os.Remove(grp)
		return nil, "", fmt.Errorf("move pid %d: %w", pid, err)
	}
	undo = func() {
		os.WriteFile(filepath.Join(back, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		os.Remove(grp)
	}
	return undo, fmt.Sprintf("FUSE daemon pid %d in blkio group %s, write_bps_device %s (%g MB/s)", pid, grp, rule, mbps), nil
}

// blkioGroupOf is the blkio group directory pid is in (from
// /proc/PID/cgroup), or the hierarchy's root when that cannot be told.
func blkioGroupOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return blkioRoot
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || !contains(strings.Split(parts[1], ","), "blkio") {
			continue
		}
		d := filepath.Join(blkioRoot, filepath.Clean("/"+parts[2]))
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return blkioRoot
}

// fuseDaemon finds the process that has /dev/fuse open and the block
// device dev: the FUSE daemon serving a block filesystem on it.
func fuseDaemon(dev string) (int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var found []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		var hasFuse, hasDev bool
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			hasFuse = hasFuse || l == "/dev/fuse"
			hasDev = hasDev || l == "/dev/"+dev
		}
		if hasFuse && hasDev {
			found = append(found, pid)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("no FUSE daemon has /dev/%s open (throttling is for a FUSE mount on a loop device)", dev)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("several FUSE daemons have /dev/%s open: %v", dev, found)
}
