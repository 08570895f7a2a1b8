package probe

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ejectsafe/ejectsafe/internal/mountinfo"
)

func TestClassifyFS(t *testing.T) {
	for _, tt := range []struct {
		fstype   string
		want     Class
		wantNote bool
	}{
		{"ext4", Local, false},
		{"xfs", Local, false},
		{"btrfs", Local, false},
		{"vfat", Local, true},
		{"exfat", Local, true},
		{"ntfs3", Local, false},
		{"NTFS", Local, false},
		{"FAT32", Local, true},
		{"apfs", Local, false},
		{"fuseblk", FUSE, false},
		{"fuse.exfat", FUSE, true},
		{"fuse", FUSE, false},
		{"fusefs", FUSE, false},
		{"macfuse", FUSE, false},
		{"fuse.sshfs", Network, false},
		{"fuse.grpcfuse", Network, true},
		{"nfs", Network, false},
		{"nfs4", Network, false},
		{"cifs", Network, false},
		{"smb3", Network, false},
		{"smbfs", Network, false},
		{"9p", Network, true},
		{"virtiofs", Network, true},
		{"vboxsf", Network, true},
		{"ceph", Network, false},
		{"glusterfs", Network, false},
		{"afs", Network, false},
		{"overlay", Overlay, false},
		{"fuse.fuse-overlayfs", Overlay, false},
		{"tmpfs", Memory, false},
		{"ramfs", Memory, false},
		{"squashfs", Unknown, false},
		{"", Unknown, false},
	} {
		got, note := classifyFS(tt.fstype)
		if got != tt.want || (note != "") != tt.wantNote {
			t.Errorf("classifyFS(%q) = %v, note %q; want %v, note %v", tt.fstype, got, note, tt.want, tt.wantNote)
		}
	}
}

func TestClass_String(t *testing.T) {
	for c, want := range map[Class]string{
		Unknown: "unknown", Local: "local", FUSE: "fuse", Network: "network",
		Overlay: "overlay", Memory: "memory", Class(42): "Class(42)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
	b, err := json.Marshal(struct{ C Class }{Network})
	if err != nil || string(b) != `{"C":"network"}` {
		t.Errorf("json = %s, %v", b, err)
	}
	var back struct{ C Class }
	if err := json.Unmarshal(b, &back); err != nil || back.C != Network {
		t.Errorf("json round trip = %v, %v", back.C, err)
	}
	if err := json.Unmarshal([]byte(`{"C":"floppy"}`), &back); err == nil {
		t.Error("unmarshal of an unknown class succeeded")
	}
}

func TestResult_Verdict(t *testing.T) {
	tests := []struct {
		name         string
		p            Result
		wantOK       bool
		wantWarnings []string // substrings, one per warning, in order
	}{
		{"local usb stick", Result{FSType: "vfat", Class: Local, Removable: true, USB: true}, true, nil},
		{"nfs refused", Result{FSType: "nfs4", MountPoint: "/mnt/nas", Class: Network}, false,
			[]string{"nfs4 on /mnt/nas is a network filesystem"}},
		{"9p refused, in a vm", Result{FSType: "9p", MountPoint: "/mnt/host", Class: Network, VM: "kvm"}, false,
			[]string{"9p on /mnt/host is a network filesystem", "virtual machine (kvm)"}},
		{"fuse", Result{FSType: "fuseblk", Class: FUSE}, true, []string{"fuseblk is a FUSE filesystem"}},
		{"overlay in docker", Result{FSType: "overlay", Class: Overlay, Container: "docker"}, true,
			[]string{"overlay", "docker container"}},
		{"tmpfs", Result{FSType: "tmpfs", Class: Memory}, true, []string{"lost at power off"}},
		{"read-only", Result{FSType: "ext4", MountPoint: "/mnt/ro", Class: Local, ReadOnly: true}, true,
			[]string{"/mnt/ro is mounted read-only"}},
		{"unknown", Result{FSType: "squashfs"}, true, []string{`"squashfs" is not one ejectsafe knows`}},
		{"everything", Result{FSType: "tmpfs", Class: Memory, ReadOnly: true, Container: "podman", VM: "vmware"}, true,
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
			// The refusal is the filesystem's; how a program overrides
			// it is the caller's to say (store names its option).
			if !ok && strings.Contains(warnings[0], "Options") {
				t.Errorf("refusal %q names an option of a layer above", warnings[0])
			}
			for i, w := range tt.wantWarnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
			}
		})
	}
}

func TestPath(t *testing.T) {
	for _, path := range []string{"/", t.TempDir()} {
		if runtime.GOOS == "windows" && path == "/" {
			continue
		}
		t.Run(path, func(t *testing.T) {
			p, err := Path(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", p)
			want, _ := filepath.EvalSymlinks(path)
			if p.Path != want {
				t.Errorf("Path = %q, want %q", p.Path, want)
			}
			if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
				if p.MountPoint == "" || p.FSType == "" || !mountinfo.Under(p.Path, p.MountPoint) {
					t.Errorf("mount point %q, type %q for %q", p.MountPoint, p.FSType, p.Path)
				}
			}
			if path == "/" && p.MountPoint != "/" && runtime.GOOS == "linux" {
				t.Errorf("MountPoint of / = %q", p.MountPoint)
			}
		})
	}
}

func TestPath_missing(t *testing.T) {
	dir := t.TempDir()
	p, err := Path(filepath.Join(dir, "no", "such", "app.db"))
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

// TestClassify_desktop classifies every mount of a desktop's mount table
// as Path would find it.
func TestClassify_desktop(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "internal", "mountinfo", "testdata", "mountinfo_desktop.txt"))
	if err != nil {
		t.Fatal(err)
	}
	entries, skipped, err := mountinfo.Parse(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 0 || len(entries) != 20 {
		t.Fatalf("parsed %d entries, skipped %d; want 20, 0", len(entries), skipped)
	}
	tests := []struct {
		path       string
		mountPoint string
		fstype     string
		source     string
		class      Class
		readOnly   bool
	}{
		{"/", "/", "ext4", "/dev/nvme0n1p2", Local, false},
		{"/home/alice/notes.db", "/", "ext4", "/dev/nvme0n1p2", Local, false},
		{"/dev/shm/x", "/dev/shm", "tmpfs", "tmpfs", Memory, false},
		{"/dev/null", "/dev", "devtmpfs", "udev", Memory, false},
		{"/tmp/t.db", "/tmp", "tmpfs", "tmpfs", Memory, false},
		{"/run/media/alice/USB STICK/app.db", "/run/media/alice/USB STICK", "vfat", "/dev/sdb1", Local, false},
		{"/run/media/alice/USB STICK", "/run/media/alice/USB STICK", "vfat", "/dev/sdb1", Local, false},
		{"/run/media/alice/USB", "/run", "tmpfs", "tmpfs", Memory, false},
		{"/media/alice/SDXC/db/app.db", "/media/alice/SDXC", "fuseblk", "/dev/sdc1", FUSE, false},
		{"/media/alice/SDXC2/app.db", "/", "ext4", "/dev/nvme0n1p2", Local, false}, // prefix, not parent
		{"/media/alice/EXFAT/app.db", "/media/alice/EXFAT", "fuse.exfat", "/dev/sdd1", FUSE, true},
		{"/mnt/nas/app.db", "/mnt/nas", "nfs4", "nas.local:/export/home", Network, false},
		{"/mnt/share/app.db", "/mnt/share", "cifs", "//fileserver/share", Network, false},
		{"/mnt/host/app.db", "/mnt/host", "9p", "hostshare", Network, false},
		{"/mnt/vm/app.db", "/mnt/vm", "virtiofs", "myfs", Network, false},
		{"/home/alice/remote/app.db", "/home/alice/remote", "fuse.sshfs", "alice@build:/home/alice", Network, false},
		{"/var/lib/docker/overlay2/3f1c/merged/app.db", "/var/lib/docker/overlay2/3f1c/merged", "overlay", "overlay", Overlay, false},
		{"/mnt/backup/app.db", "/mnt/backup", "ext4", "/dev/sde1", Local, true}, // ro per mount, rw superblock
		{"/boot/efi/EFI", "/boot/efi", "vfat", "/dev/nvme0n1p1", Local, false},
		{"/run/user/1000/app.db", "/run/user/1000", "tmpfs", "tmpfs", Memory, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			i := mountinfo.Find(entries, tt.path)
			if i < 0 {
				t.Fatalf("Find(%q) found nothing", tt.path)
			}
			m := entries[i]
			if m.MountPoint != tt.mountPoint || m.FSType != tt.fstype || m.Source != tt.source {
				t.Errorf("Find(%q) = %q %s %q, want %q %s %q",
					tt.path, m.MountPoint, m.FSType, m.Source, tt.mountPoint, tt.fstype, tt.source)
			}
			if got := m.ReadOnly(); got != tt.readOnly {
				t.Errorf("readOnly = %v, want %v", got, tt.readOnly)
			}
			if got, _ := classifyFS(m.FSType); got != tt.class {
				t.Errorf("classifyFS(%q) = %v, want %v", m.FSType, got, tt.class)
			}
		})
	}

	// The escaped root of a bind mount.
	i := mountinfo.Find(entries, "/srv/db/x")
	if got, want := entries[i].Root, "/home/alice/db\\odd\tname"; got != want {
		t.Errorf("bind mount root = %q, want %q", got, want)
	}
}
