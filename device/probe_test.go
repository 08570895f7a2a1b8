package device

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// loadMountinfo parses a fixture from testdata.
func loadMountinfo(t *testing.T, name string) (entries []mountEntry, skipped int) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, skipped, err = parseMountinfo(f)
	if err != nil {
		t.Fatal(err)
	}
	return entries, skipped
}

func TestParseMountinfoLine(t *testing.T) {
	line := `40 27 8:17 / /run/media/alice/USB\040STICK rw,nosuid,relatime shared:150 master:3 - vfat /dev/sdb1 rw,uid=1000,flush`
	got, err := parseMountinfoLine(line)
	if err != nil {
		t.Fatal(err)
	}
	want := mountEntry{
		ID: 40, Parent: 27, Major: 8, Minor: 17, Root: "/",
		MountPoint:   "/run/media/alice/USB STICK",
		MountOptions: []string{"rw", "nosuid", "relatime"},
		Optional:     []string{"shared:150", "master:3"},
		FSType:       "vfat", Source: "/dev/sdb1",
		SuperOptions: []string{"rw", "uid=1000", "flush"},
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("parseMountinfoLine =\n%s\nwant\n%s", gj, wj)
	}
	if got, want := got.options(), []string{"rw", "nosuid", "relatime", "uid=1000", "flush"}; !slices.Equal(got, want) {
		t.Errorf("options() = %q, want %q", got, want)
	}

	for _, bad := range []string{
		"",
		"this line is not mountinfo",
		"1 2 8:1 / /mnt rw shared:1 ext4 /dev/sda1 rw",   // no separator
		"x 2 8:1 / /mnt rw - ext4 /dev/sda1 rw",          // bad id
		"1 2 81 / /mnt rw - ext4 /dev/sda1 rw",           // bad dev
		"1 2 8:1 / mnt rw - ext4 /dev/sda1 rw",           // relative mount point
		"1 2 8:1 / /mnt rw -",                            // nothing after the separator
		"1 2 8:1 / /mnt rw - ext4",                       // no source
		"1 2 8:1:3 / /mnt rw - ext4 /dev/sda1 rw",        // three-part dev
		"1 2 -8:1 / /mnt rw - ext4 /dev/sda1 rw",         // negative major
		"1 2 8:99999999999 / /mnt rw - ext4 /dev/sda rw", // minor overflows
	} {
		if _, err := parseMountinfoLine(bad); err == nil {
			t.Errorf("parseMountinfoLine(%q) succeeded", bad)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/USB\040STICK`, `/USB STICK`},
		{`/a\011b\012c`, "/a\tb\nc"},
		{`/back\134slash`, `/back\slash`},
		{`/trailing\04`, `/trailing\04`},
		{`/not\0x0octal`, `/not\0x0octal`},
		{`/too\777big`, `/too\777big`},
		{`\040\040`, `  `},
	} {
		if got := unescapeMountinfo(tt.in); got != tt.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFindMount_desktop(t *testing.T) {
	entries, skipped := loadMountinfo(t, "mountinfo_desktop.txt")
	if skipped != 0 || len(entries) != 20 {
		t.Fatalf("parsed %d entries, skipped %d; want 20, 0", len(entries), skipped)
	}
	tests := []struct {
		path       string
		mountPoint string
		fstype     string
		source     string
		class      FSClass
		readOnly   bool
	}{
		{"/", "/", "ext4", "/dev/nvme0n1p2", ClassLocal, false},
		{"/home/alice/notes.db", "/", "ext4", "/dev/nvme0n1p2", ClassLocal, false},
		{"/dev/shm/x", "/dev/shm", "tmpfs", "tmpfs", ClassMemory, false},
		{"/dev/null", "/dev", "devtmpfs", "udev", ClassMemory, false},
		{"/tmp/t.db", "/tmp", "tmpfs", "tmpfs", ClassMemory, false},
		{"/run/media/alice/USB STICK/app.db", "/run/media/alice/USB STICK", "vfat", "/dev/sdb1", ClassLocal, false},
		{"/run/media/alice/USB STICK", "/run/media/alice/USB STICK", "vfat", "/dev/sdb1", ClassLocal, false},
		{"/run/media/alice/USB", "/run", "tmpfs", "tmpfs", ClassMemory, false},
		{"/media/alice/SDXC/db/app.db", "/media/alice/SDXC", "fuseblk", "/dev/sdc1", ClassFUSE, false},
		{"/media/alice/SDXC2/app.db", "/", "ext4", "/dev/nvme0n1p2", ClassLocal, false}, // prefix, not parent
		{"/media/alice/EXFAT/app.db", "/media/alice/EXFAT", "fuse.exfat", "/dev/sdd1", ClassFUSE, true},
		{"/mnt/nas/app.db", "/mnt/nas", "nfs4", "nas.local:/export/home", ClassNetwork, false},
		{"/mnt/share/app.db", "/mnt/share", "cifs", "//fileserver/share", ClassNetwork, false},
		{"/mnt/host/app.db", "/mnt/host", "9p", "hostshare", ClassNetwork, false},
		{"/mnt/vm/app.db", "/mnt/vm", "virtiofs", "myfs", ClassNetwork, false},
		{"/home/alice/remote/app.db", "/home/alice/remote", "fuse.sshfs", "alice@build:/home/alice", ClassNetwork, false},
		{"/var/lib/docker/overlay2/3f1c/merged/app.db", "/var/lib/docker/overlay2/3f1c/merged", "overlay", "overlay", ClassOverlay, false},
		{"/mnt/backup/app.db", "/mnt/backup", "ext4", "/dev/sde1", ClassLocal, true}, // ro per mount, rw superblock
		{"/boot/efi/EFI", "/boot/efi", "vfat", "/dev/nvme0n1p1", ClassLocal, false},
		{"/run/user/1000/app.db", "/run/user/1000", "tmpfs", "tmpfs", ClassMemory, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			i := findMount(entries, tt.path)
			if i < 0 {
				t.Fatalf("findMount(%q) found nothing", tt.path)
			}
			m := entries[i]
			if m.MountPoint != tt.mountPoint || m.FSType != tt.fstype || m.Source != tt.source {
				t.Errorf("findMount(%q) = %q %s %q, want %q %s %q",
					tt.path, m.MountPoint, m.FSType, m.Source, tt.mountPoint, tt.fstype, tt.source)
			}
			if got := m.readOnly(); got != tt.readOnly {
				t.Errorf("readOnly = %v, want %v", got, tt.readOnly)
			}
			if got, _ := classifyFS(m.FSType); got != tt.class {
				t.Errorf("classifyFS(%q) = %v, want %v", m.FSType, got, tt.class)
			}
		})
	}

	// The escaped root of a bind mount.
	i := findMount(entries, "/srv/db/x")
	if got, want := entries[i].Root, "/home/alice/db\\odd\tname"; got != want {
		t.Errorf("bind mount root = %q, want %q", got, want)
	}
}

func TestFindMount_container(t *testing.T) {
	entries, skipped := loadMountinfo(t, "mountinfo_container.txt")
	if skipped != 2 || len(entries) != 8 {
		t.Fatalf("parsed %d entries, skipped %d; want 8, 2", len(entries), skipped)
	}
	for _, tt := range []struct{ path, mountPoint, fstype, root string }{
		{"/app/data.db", "/", "overlay", "/"},
		{"/data/app.db", "/data", "ext4", "/home/alice/data"},
		{"/dev/shm/x", "/dev/shm", "tmpfs", "/"},
		{"/etc/resolv.conf", "/etc/resolv.conf", "ext4", "/var/lib/docker/containers/9a8b/resolv.conf"},
		// Two mounts on /data/usb: the later one is on top.
		{"/data/usb/app.db", "/data/usb", "tmpfs", "/"},
	} {
		i := findMount(entries, tt.path)
		if i < 0 {
			t.Errorf("findMount(%q) found nothing", tt.path)
			continue
		}
		m := entries[i]
		if m.MountPoint != tt.mountPoint || m.FSType != tt.fstype || m.Root != tt.root {
			t.Errorf("findMount(%q) = %q %s root %q, want %q %s root %q",
				tt.path, m.MountPoint, m.FSType, m.Root, tt.mountPoint, tt.fstype, tt.root)
		}
	}
	if got := findMount(nil, "/x"); got != -1 {
		t.Errorf("findMount(nil) = %d, want -1", got)
	}
}

func TestParseMountinfo_longLine(t *testing.T) {
	// Overlay lines with many layers exceed bufio.Scanner's 64 KiB.
	lower := strings.Repeat("/var/lib/docker/overlay2/l/ABCDEFGHIJKLMNOPQRSTUVWXYZ:", 2000)
	in := "1 0 0:60 / / rw - overlay overlay rw,lowerdir=" + lower + "x\n2 1 0:5 / /dev rw - tmpfs tmpfs rw"
	entries, skipped, err := parseMountinfo(strings.NewReader(in))
	if err != nil || skipped != 0 || len(entries) != 2 {
		t.Fatalf("parseMountinfo: %d entries, %d skipped, %v; want 2, 0, nil", len(entries), skipped, err)
	}
}

func TestClassifyFS(t *testing.T) {
	for _, tt := range []struct {
		fstype   string
		want     FSClass
		wantNote bool
	}{
		{"ext4", ClassLocal, false},
		{"xfs", ClassLocal, false},
		{"btrfs", ClassLocal, false},
		{"vfat", ClassLocal, true},
		{"exfat", ClassLocal, true},
		{"ntfs3", ClassLocal, false},
		{"NTFS", ClassLocal, false},
		{"FAT32", ClassLocal, true},
		{"apfs", ClassLocal, false},
		{"fuseblk", ClassFUSE, false},
		{"fuse.exfat", ClassFUSE, true},
		{"fuse", ClassFUSE, false},
		{"fusefs", ClassFUSE, false},
		{"macfuse", ClassFUSE, false},
		{"fuse.sshfs", ClassNetwork, false},
		{"fuse.grpcfuse", ClassNetwork, true},
		{"nfs", ClassNetwork, false},
		{"nfs4", ClassNetwork, false},
		{"cifs", ClassNetwork, false},
		{"smb3", ClassNetwork, false},
		{"smbfs", ClassNetwork, false},
		{"9p", ClassNetwork, true},
		{"virtiofs", ClassNetwork, true},
		{"vboxsf", ClassNetwork, true},
		{"ceph", ClassNetwork, false},
		{"glusterfs", ClassNetwork, false},
		{"afs", ClassNetwork, false},
		{"overlay", ClassOverlay, false},
		{"fuse.fuse-overlayfs", ClassOverlay, false},
		{"tmpfs", ClassMemory, false},
		{"ramfs", ClassMemory, false},
		{"squashfs", ClassUnknown, false},
		{"", ClassUnknown, false},
	} {
		got, note := classifyFS(tt.fstype)
		if got != tt.want || (note != "") != tt.wantNote {
			t.Errorf("classifyFS(%q) = %v, note %q; want %v, note %v", tt.fstype, got, note, tt.want, tt.wantNote)
		}
	}
}

func TestFSClass_String(t *testing.T) {
	for c, want := range map[FSClass]string{
		ClassUnknown: "unknown", ClassLocal: "local", ClassFUSE: "fuse", ClassNetwork: "network",
		ClassOverlay: "overlay", ClassMemory: "memory", FSClass(42): "FSClass(42)",
	} {
		if got := c.String(); got != want {
			t.Errorf("FSClass(%d).String() = %q, want %q", int(c), got, want)
		}
	}
	b, err := json.Marshal(struct{ C FSClass }{ClassNetwork})
	if err != nil || string(b) != `{"C":"network"}` {
		t.Errorf("json = %s, %v", b, err)
	}
	var back struct{ C FSClass }
	if err := json.Unmarshal(b, &back); err != nil || back.C != ClassNetwork {
		t.Errorf("json round trip = %v, %v", back.C, err)
	}
	if err := json.Unmarshal([]byte(`{"C":"floppy"}`), &back); err == nil {
		t.Error("unmarshal of an unknown class succeeded")
	}
}

func TestProbe_Verdict(t *testing.T) {
	tests := []struct {
		name         string
		p            Probe
		wantOK       bool
		wantWarnings []string // substrings, one per warning, in order
	}{
		{"local usb stick", Probe{FSType: "vfat", Class: ClassLocal, Removable: true, USB: true}, true, nil},
		{"nfs refused", Probe{FSType: "nfs4", MountPoint: "/mnt/nas", Class: ClassNetwork}, false,
			[]string{"nfs4 on /mnt/nas is a network filesystem"}},
		{"9p refused, in a vm", Probe{FSType: "9p", Class: ClassNetwork, VM: "kvm"}, false,
			[]string{"AllowNetworkFS", "virtual machine (kvm)"}},
		{"fuse", Probe{FSType: "fuseblk", Class: ClassFUSE}, true, []string{"fuseblk is a FUSE filesystem"}},
		{"overlay in docker", Probe{FSType: "overlay", Class: ClassOverlay, Container: "docker"}, true,
			[]string{"overlay", "docker container"}},
		{"tmpfs", Probe{FSType: "tmpfs", Class: ClassMemory}, true, []string{"lost at power off"}},
		{"read-only", Probe{FSType: "ext4", MountPoint: "/mnt/ro", Class: ClassLocal, ReadOnly: true}, true,
			[]string{"/mnt/ro is mounted read-only"}},
		{"unknown", Probe{FSType: "squashfs"}, true, []string{`"squashfs" is not one ejectsafe knows`}},
		{"everything", Probe{FSType: "tmpfs", Class: ClassMemory, ReadOnly: true, Container: "podman", VM: "vmware"}, true,
			[]string{"RAM", "read-only", "podman", "vmware"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, warnings := tt.p.Verdict()
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			if len(warnings) != len(tt.wantWarnings) {
				t.Fatalf("warnings = %q, want %d of them", warnings, len(tt.wantWarnings))
			}
			for i, w := range tt.wantWarnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
			}
		})
	}
}

func TestProbePath(t *testing.T) {
	for _, path := range []string{"/", t.TempDir()} {
		if runtime.GOOS == "windows" && path == "/" {
			continue
		}
		t.Run(path, func(t *testing.T) {
			p, err := ProbePath(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", p)
			want, _ := filepath.EvalSymlinks(path)
			if p.Path != want {
				t.Errorf("Path = %q, want %q", p.Path, want)
			}
			if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
				if p.MountPoint == "" || p.FSType == "" || !underMount(p.Path, p.MountPoint) {
					t.Errorf("mount point %q, type %q for %q", p.MountPoint, p.FSType, p.Path)
				}
			}
			if path == "/" && p.MountPoint != "/" && runtime.GOOS == "linux" {
				t.Errorf("MountPoint of / = %q", p.MountPoint)
			}
		})
	}
}

func TestProbePath_missing(t *testing.T) {
	dir := t.TempDir()
	p, err := ProbePath(filepath.Join(dir, "no", "such", "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(dir)
	if p.Path != want {
		t.Errorf("Path = %q, want the nearest existing parent %q", p.Path, want)
	}
	if len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "does not exist") {
		t.Errorf("Notes = %q, want one saying the path does not exist", p.Notes)
	}
}

func TestSharedMap(t *testing.T) {
	name := filepath.Join(t.TempDir(), "shm")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m1, err := MapShared(name, 4096)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	m2, err := MapShared(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.Len(); got != 4096 {
		t.Errorf("Len = %d, want 4096", got)
	}
	if err := m1.StoreUint32(8, 0xdeadbeef); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.LoadUint32(8); err != nil || got != 0xdeadbeef {
		t.Errorf("second mapping reads %#x, %v; want 0xdeadbeef", got, err)
	}
	if fi, err := os.Stat(name); err != nil || fi.Size() != 4096 {
		t.Errorf("file not extended to 4096: %v %v", fi, err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := m2.LoadUint32(0); err == nil {
		t.Error("LoadUint32 after Close succeeded")
	}

	// A fault (the file shrank under the mapping: SIGBUS) is an error,
	// not a crash.
	if runtime.GOOS == "linux" {
		if err := os.Truncate(name, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := m1.LoadUint32(0); err == nil {
			t.Error("LoadUint32 past the end of a truncated file succeeded")
		} else {
			t.Log(err)
		}
	}

	if _, err := MapShared(filepath.Join(t.TempDir(), "missing"), 4096); err == nil {
		t.Error("MapShared of a missing file succeeded")
	}
	if _, err := MapShared(name, 0); err == nil {
		t.Error("MapShared with size 0 succeeded")
	}
}
