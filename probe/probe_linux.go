package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ejectsafe/ejectsafe/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Kernel tables Path reads on Linux. Variables so tests can point
// them at fixtures.
var (
	mountinfoPath = "/proc/self/mountinfo"
	sysRoot       = "/sys"
	procRoot      = "/proc"
	rootDir       = "/" // where /.dockerenv and /run/.containerenv live
)

// probePlatform fills in p from /proc/self/mountinfo, sysfs and the
// container and hypervisor hints of this system.
func probePlatform(p *Result) error {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return err
	}
	entries, skipped, err := mountinfo.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", mountinfoPath, err)
	}
	if skipped > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%d lines of %s could not be parsed", skipped, mountinfoPath))
	}
	i := mountinfo.Find(entries, p.Path)
	if i < 0 {
		return fmt.Errorf("no mount in %s holds %s", mountinfoPath, p.Path)
	}
	m := &entries[i]
	p.MountPoint = m.MountPoint
	p.Device = m.Source
	p.FSType = m.FSType
	p.MountOptions = m.Options()
	p.ReadOnly = m.ReadOnly()
	if m.Root != "/" {
		p.Notes = append(p.Notes, fmt.Sprintf("%s mounts %s of %s (a bind mount or a subvolume)", m.MountPoint, m.Root, m.Source))
	}

	// The block device: mountinfo's major:minor, unless it is an
	// anonymous device (major 0: FUSE, btrfs, network filesystems),
	// where the source may still name the block device.
	major, minor := m.Major, m.Minor
	if major == 0 && strings.HasPrefix(m.Source, "/dev/") {
		var st unix.Stat_t
		if err := unix.Stat(m.Source, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			major, minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
		}
	}
	if major != 0 {
		b := blockInfo(sysRoot, major, minor, 0)
		p.Removable, p.USB = b.removable, b.usb
		p.Notes = append(p.Notes, b.notes...)
	}

	p.Container = detectContainer(rootDir, procRoot)
	p.VM = detectVM(sysRoot, procRoot)
	return nil
}

// blockResult is what sysfs says about a block device.
type blockResult struct {
	removable, usb bool
	notes          []string
}

// blockInfo looks a block device up in sysfs: /sys/dev/block/MAJ:MIN
// links to its node under /sys/devices. A partition answers for its
// parent disk. The disk is removable when its "removable" attribute is
// 1, and on USB when a directory above it belongs to the usb subsystem.
// Loop devices are reported not removable: their image file lives on
// some other filesystem. Device-mapper and md devices answer for the
// devices under them (removable or USB if any of those is).
func blockInfo(sys string, major, minor uint32, depth int) blockResult {
	var r blockResult
	node, err := filepath.EvalSymlinks(filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor)))
	if err != nil {
		r.notes = append(r.notes, fmt.Sprintf("no sysfs entry for block device %d:%d: removable and USB unknown", major, minor))
		return r
	}
	return blockInfoAt(sys, node, depth)
}

func blockInfoAt(sys, node string, depth int) blockResult {
	var r blockResult
	disk := node
	if _, err := os.Stat(filepath.Join(node, "partition")); err == nil {
		disk = filepath.Dir(node)
	}
	name := filepath.Base(disk)

	if strings.HasPrefix(name, "loop") {
		backing := readTrim(filepath.Join(disk, "loop", "backing_file"))
		if backing == "" {
			backing = "an unknown file"
		}
		r.notes = append(r.notes, fmt.Sprintf(
			"%s is a loop device backed by %s: reported as not removable; the drive holding that file decides", name, backing))
		return r
	}

	if slaves, err := os.ReadDir(filepath.Join(disk, "slaves")); err == nil && len(slaves) > 0 && depth < 8 {
		var under []string
		for _, s := range slaves {
			under = append(under, s.Name())
			sn, err := filepath.EvalSymlinks(filepath.Join(sys, "class", "block", s.Name()))
			if err != nil {
				continue
			}
			sr := blockInfoAt(sys, sn, depth+1)
			r.removable = r.removable || sr.removable
			r.usb = r.usb || sr.usb
			r.notes = append(r.notes, sr.notes...)
		}
		kind := "a stacked device"
		if dmName := readTrim(filepath.Join(disk, "dm", "name")); dmName != "" {
			kind = "device-mapper device " + dmName
		}
		r.notes = append(r.notes, fmt.Sprintf("%s is %s over %s", name, kind, strings.Join(under, ", ")))
		return r
	}

	r.removable = readTrim(filepath.Join(disk, "removable")) == "1"
	var mmc bool
	for dir := disk; len(dir) > len(sys) && dir != "/"; dir = filepath.Dir(dir) {
		sub, err := os.Readlink(filepath.Join(dir, "subsystem"))
		if err != nil {
			continue
		}
		switch filepath.Base(sub) {
		case "usb":
			r.usb = true
		case "mmc", "mmc_host":
			mmc = true
		}
	}
	if r.usb && !r.removable {
		r.notes = append(r.notes, fmt.Sprintf(
			"%s is on USB but says it is not removable (usual for USB hard disks and SSDs): it can still be pulled", name))
	}
	if mmc {
		r.notes = append(r.notes, fmt.Sprintf("%s is an SD/MMC card", name))
	}
	return r
}

// detectContainer names the container this process runs in, from the
// marker files container engines leave, systemd's container variable,
// cgroup paths and OpenVZ's /proc/vz. root and proc are "/" and "/proc" outside tests.
func detectContainer(root, proc string) string {
	// WSL first: its /proc/sys/kernel/osrelease says so, and a docker
	// container inside WSL is still on WSL's kernel.
	osr := strings.ToLower(readTrim(filepath.Join(proc, "sys", "kernel", "osrelease")))
	if strings.Contains(osr, "microsoft") || strings.Contains(osr, "wsl") {
		return "wsl"
	}
	if exists(filepath.Join(root, ".dockerenv")) {
		return "docker"
	}
	if exists(filepath.Join(root, "run", ".containerenv")) {
		return "podman"
	}
	// systemd's convention: PID 1's environment has container=NAME, and
	// systemd copies it to /run/systemd/container.
	if c := readTrim(filepath.Join(root, "run", "systemd", "container")); c != "" {
		return c
	}
	if env, err := os.ReadFile(filepath.Join(proc, "1", "environ")); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "container="); ok && v != "" {
				return v
			}
		}
	}
	cg := readTrim(filepath.Join(proc, "self", "cgroup")) + "\n" + readTrim(filepath.Join(proc, "1", "cgroup"))
	switch {
	case strings.Contains(cg, "kubepods"):
		return "kubernetes"
	case strings.Contains(cg, "libpod"):
		return "podman"
	case strings.Contains(cg, "/docker/"), strings.Contains(cg, "/docker-"):
		return "docker"
	case strings.Contains(cg, "/lxc/"), strings.Contains(cg, "/lxc.payload"):
		return "lxc"
	}
	// OpenVZ/Virtuozzo: /proc/vz in every guest, /proc/bc only on the
	// host node.
	if exists(filepath.Join(proc, "vz")) && !exists(filepath.Join(proc, "bc")) {
		return "openvz"
	}
	return ""
}

// detectVM names the hypervisor when this kernel is a guest: DMI
// strings first, then Xen's /sys/hypervisor and /proc/xen, then paravirtual clock
// sources, then the cpuinfo "hypervisor" flag ("unknown": a hypervisor
// is there but does not say which). sys and proc are "/sys" and "/proc"
// outside tests.
func detectVM(sys, proc string) string {
	dmi := func(name string) string { return readTrim(filepath.Join(sys, "class", "dmi", "id", name)) }
	clocks := readTrim(filepath.Join(sys, "devices", "system", "clocksource", "clocksource0", "available_clocksource"))
	kvmClock := strings.Contains(clocks, "kvm-clock")
	vendor, product, bios := dmi("sys_vendor"), dmi("product_name"), dmi("bios_vendor")
	all := vendor + "\n" + product + "\n" + bios + "\n" + dmi("board_vendor")
	switch {
	case strings.Contains(all, "KVM"):
		return "kvm"
	case strings.Contains(all, "QEMU"):
		if kvmClock {
			return "kvm"
		}
		return "qemu"
	case strings.Contains(all, "VMware"):
		return "vmware"
	case strings.Contains(all, "innotek GmbH"), strings.Contains(all, "VirtualBox"):
		return "virtualbox"
	case strings.Contains(vendor, "Microsoft Corporation") && strings.Contains(product, "Virtual Machine"):
		return "hyperv"
	case strings.Contains(all, "Xen"):
		return "xen"
	case strings.Contains(all, "Parallels"):
		return "parallels"
	case strings.Contains(all, "BHYVE"):
		return "bhyve"
	case strings.Contains(all, "Amazon EC2"):
		return "amazon"
	case strings.Contains(all, "Google Compute Engine"):
		return "google"
	case strings.Contains(all, "Apple Virtualization"):
		return "apple"
	}
	if readTrim(filepath.Join(sys, "hypervisor", "type")) == "xen" {
		return "xen"
	}
	// Older Xen guests show /proc/xen; dom0, the host, says control_d.
	if exists(filepath.Join(proc, "xen")) && !strings.Contains(readTrim(filepath.Join(proc, "xen", "capabilities")), "control_d") {
		return "xen"
	}
	switch {
	case kvmClock:
		return "kvm"
	case strings.Contains(clocks, "hyperv_clocksource"):
		return "hyperv"
	case strings.Contains(clocks, "xen"):
		return "xen"
	}
	if cpuinfoHasHypervisor(filepath.Join(proc, "cpuinfo")) {
		return "unknown"
	}
	return ""
}

// cpuinfoHasHypervisor reports whether the first "flags" line of
// /proc/cpuinfo lists "hypervisor" (x86: CPUID leaf 1, ECX bit 31).
func cpuinfoHasHypervisor(name string) bool {
	b, err := os.ReadFile(name)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "hypervisor" {
				return true
			}
		}
		return false
	}
	return false
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}
