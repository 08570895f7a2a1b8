package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTree writes files (path: content), symlinks (path: "->target",
// target relative to root) and directories (path ending in "/") under a
// new temporary root.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			rel, err := filepath.Rel(filepath.Dir(p), filepath.Join(root, target))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(rel, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestBlockInfo(t *testing.T) {
	const (
		usbHost = "devices/pci0000:00/0000:00:14.0/usb2"
		usbDisk = usbHost + "/2-1/2-1:1.0/host3/target3:0:0/3:0:0:0/block/sdb"
		usbHDD  = usbHost + "/2-2/2-2:1.0/host4/target4:0:0/4:0:0:0/block/sdc"
		nvme    = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"
		sdCard  = "devices/pci0000:00/0000:00:1e.6/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0"
	)
	sys := fakeTree(t, map[string]string{
		"bus/usb/":                    "",
		"class/mmc_host/":             "",
		usbHost + "/subsystem":        "->bus/usb",
		usbHost + "/2-1/subsystem":    "->bus/usb",
		usbHost + "/2-2/subsystem":    "->bus/usb",
		usbDisk + "/removable":        "1\n",
		usbDisk + "/sdb1/partition":   "1\n",
		usbHDD + "/removable":         "0\n",
		nvme + "/removable":           "0\n",
		nvme + "/nvme0n1p2/partition": "2\n",
		"devices/pci0000:00/0000:00:1e.6/mmc_host/mmc0/subsystem": "->class/mmc_host",
		sdCard + "/removable":                           "0\n",
		"devices/virtual/block/loop0/removable":         "0\n",
		"devices/virtual/block/loop0/loop/backing_file": "/home/alice/fat.img\n",
		"devices/virtual/block/dm-0/removable":          "0\n",
		"devices/virtual/block/dm-0/dm/name":            "luks-usb\n",
		"devices/virtual/block/dm-0/slaves/sdb1":        "->" + usbDisk + "/sdb1",
		"class/block/sdb1":                              "->" + usbDisk + "/sdb1",
		"dev/block/8:16":                                "->" + usbDisk,
		"dev/block/8:17":                                "->" + usbDisk + "/sdb1",
		"dev/block/8:32":                                "->" + usbHDD,
		"dev/block/259:2":                               "->" + nvme + "/nvme0n1p2",
		"dev/block/179:0":                               "->" + sdCard,
		"dev/block/7:0":                                 "->devices/virtual/block/loop0",
		"dev/block/253:0":                               "->devices/virtual/block/dm-0",
	})
	tests := []struct {
		name         string
		major, minor uint32
		removable    bool
		usb          bool
		wantNote     string
	}{
		{"usb stick disk", 8, 16, true, true, ""},
		{"usb stick partition", 8, 17, true, true, ""},
		{"usb hard disk", 8, 32, false, true, "not removable (usual for USB hard disks"},
		{"nvme partition", 259, 2, false, false, ""},
		{"sd card", 179, 0, false, false, "SD/MMC card"},
		{"loop", 7, 0, false, false, "loop device backed by /home/alice/fat.img"},
		{"luks on usb", 253, 0, true, true, "device-mapper device luks-usb over sdb1"},
		{"unknown device", 8, 99, false, false, "no sysfs entry for block device 8:99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := blockInfo(sys, tt.major, tt.minor, 0)
			if got.removable != tt.removable || got.usb != tt.usb {
				t.Errorf("removable, usb = %v, %v; want %v, %v", got.removable, got.usb, tt.removable, tt.usb)
			}
			notes := strings.Join(got.notes, "\n")
			if tt.wantNote == "" && notes != "" {
				t.Errorf("notes = %q, want none", notes)
			}
			if !strings.Contains(notes, tt.wantNote) {
				t.Errorf("notes = %q, want %q", notes, tt.wantNote)
			}
		})
	}
}

func TestDetectContainer(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"none", map[string]string{"proc/self/cgroup": "0::/user.slice/user-1000.slice/session-2.scope\n"}, ""},
		{"dockerenv", map[string]string{"root/.dockerenv": ""}, "docker"},
		{"containerenv", map[string]string{"root/run/.containerenv": "engine=\"podman-4.9\"\n"}, "podman"},
		{"systemd", map[string]string{"root/run/systemd/container": "systemd-nspawn\n"}, "systemd-nspawn"},
		{"pid 1 environ", map[string]string{"proc/1/environ": "PATH=/bin\x00container=lxc\x00HOME=/\x00"}, "lxc"},
		{"cgroup v1 docker", map[string]string{"proc/self/cgroup": "12:pids:/docker/0123abcd\n"}, "docker"},
		{"cgroup docker scope", map[string]string{"proc/self/cgroup": "0::/system.slice/docker-0123abcd.scope\n"}, "docker"},
		{"cgroup kubepods", map[string]string{"proc/self/cgroup": "0::/kubepods/besteffort/pod1/abcd\n"}, "kubernetes"},
		{"cgroup libpod", map[string]string{"proc/1/cgroup": "0::/machine.slice/libpod-abcd.scope\n"}, "podman"},
		{"cgroup lxc", map[string]string{"proc/self/cgroup": "0::/lxc.payload.web/init.scope\n"}, "lxc"},
		{"openvz guest", map[string]string{"proc/vz/": ""}, "openvz"},
		{"openvz host node", map[string]string{"proc/vz/": "", "proc/bc/": ""}, ""},
		{"wsl", map[string]string{"proc/sys/kernel/osrelease": "5.15.153.1-microsoft-standard-WSL2\n", "root/.dockerenv": ""}, "wsl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"root/": "", "proc/": ""}
			for k, v := range tt.files {
				files[k] = v
			}
			dir := fakeTree(t, files)
			if got := detectContainer(filepath.Join(dir, "root"), filepath.Join(dir, "proc")); got != tt.want {
				t.Errorf("detectContainer = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDetectVM(t *testing.T) {
	const clocks = "sys/devices/system/clocksource/clocksource0/available_clocksource"
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"bare metal", map[string]string{"sys/class/dmi/id/sys_vendor": "Dell Inc.\n", clocks: "tsc hpet acpi_pm\n",
			"proc/cpuinfo": "flags\t\t: fpu vme de pse tsc\n"}, ""},
		{"qemu with kvm", map[string]string{"sys/class/dmi/id/sys_vendor": "QEMU\n", clocks: "kvm-clock tsc\n"}, "kvm"},
		{"qemu tcg", map[string]string{"sys/class/dmi/id/sys_vendor": "QEMU\n"}, "qemu"},
		{"vmware", map[string]string{"sys/class/dmi/id/sys_vendor": "VMware, Inc.\n"}, "vmware"},
		{"virtualbox", map[string]string{"sys/class/dmi/id/sys_vendor": "innotek GmbH\n"}, "virtualbox"},
		{"hyper-v", map[string]string{"sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
			"sys/class/dmi/id/product_name": "Virtual Machine\n"}, "hyperv"},
		{"surface is not a vm", map[string]string{"sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
			"sys/class/dmi/id/product_name": "Surface Laptop 5\n"}, ""},
		{"xen sysfs", map[string]string{"sys/hypervisor/type": "xen\n"}, "xen"},
		{"xen procfs domU", map[string]string{"proc/xen/capabilities": ""}, "xen"},
		{"xen procfs dom0", map[string]string{"proc/xen/capabilities": "control_d\n"}, ""},
		{"firecracker: no dmi, kvm-clock", map[string]string{clocks: "tsc kvm-clock \n"}, "kvm"},
		{"wsl2: hyperv clock", map[string]string{clocks: "tsc hyperv_clocksource_tsc_page acpi_pm\n"}, "hyperv"},
		{"unnamed", map[string]string{"proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu tsc hypervisor lahf_lm\n"}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"sys/": "", "proc/": ""}
			for k, v := range tt.files {
				files[k] = v
			}
			dir := fakeTree(t, files)
			if got := detectVM(filepath.Join(dir, "sys"), filepath.Join(dir, "proc")); got != tt.want {
				t.Errorf("detectVM = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPath_linux(t *testing.T) {
	t.Run("tmpfs", func(t *testing.T) {
		p, err := Path("/dev/shm")
		if err != nil {
			t.Skip(err)
		}
		if p.FSType != "tmpfs" {
			t.Skipf("/dev/shm is %s here", p.FSType)
		}
		if p.Class != Memory || p.MountPoint != "/dev/shm" {
			t.Errorf("/dev/shm: class %v, mount point %q", p.Class, p.MountPoint)
		}
		if ok, w := p.Verdict(); !ok || !strings.Contains(strings.Join(w, "\n"), "power off") {
			t.Errorf("Verdict = %v, %q", ok, w)
		}
	})
	t.Run("fixture mountinfo", func(t *testing.T) {
		// The fixture's mount points do not exist here; probe paths that
		// do (/ and /proc) against it to check the wiring.
		old := mountinfoPath
		mountinfoPath = filepath.Join("..", "internal", "mountinfo", "testdata", "mountinfo_container.txt")
		t.Cleanup(func() { mountinfoPath = old })
		p, err := Path("/proc")
		if err != nil {
			t.Fatal(err)
		}
		if p.FSType != "proc" || p.MountPoint != "/proc" || p.Class != Unknown {
			t.Errorf("/proc: %+v", p)
		}
		if !strings.Contains(strings.Join(p.Notes, "\n"), "2 lines of") {
			t.Errorf("Notes = %q, want the skipped lines counted", p.Notes)
		}
		p, err = Path("/")
		if err != nil {
			t.Fatal(err)
		}
		if p.FSType != "overlay" || p.Class != Overlay || p.Device != "overlay" ||
			!strings.Contains(strings.Join(p.MountOptions, ","), "upperdir=") {
			t.Errorf("/: %+v", p)
		}
	})
	t.Run("no mountinfo", func(t *testing.T) {
		old := mountinfoPath
		mountinfoPath = filepath.Join(t.TempDir(), "missing")
		t.Cleanup(func() { mountinfoPath = old })
		if _, err := Path("/"); err == nil {
			t.Error("Path without mountinfo succeeded")
		}
	})
}
