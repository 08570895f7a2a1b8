// Package probe finds out what holds a path: the mount, its filesystem
// type and what that type means for ejectsafe's guarantee (Class), whether
// the drive is removable or on USB, whether this process runs in a
// container or a virtual machine, and the caveats all that implies
// (Result.Verdict). It reads kernel tables and writes nothing; it is not
// part of the filesystem seam (package device), which never probes.
// SharedMap, for `ejectsafe doctor`, tests a filesystem's shared mappings.
package probe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Class groups filesystem types by what they mean for ejectsafe's
// guarantee. The zero value is Unknown.
type Class int

const (
	// Unknown is a filesystem type this package does not recognise.
	Unknown Class = iota
	// Local is an in-kernel filesystem on a local block device
	// (ext4, xfs, btrfs, vfat, exfat, ntfs3, apfs, NTFS, ...).
	Local
	// FUSE is a filesystem served by a user-space daemon (fuseblk,
	// fuse.exfat, ...). Killing the daemon looks like a pulled drive.
	FUSE
	// Network is a filesystem whose data lives on another kernel:
	// NFS, SMB, 9p, virtiofs, sshfs, VM and Docker Desktop shared
	// folders. ejectsafe refuses it (see Result.Verdict).
	Network
	// Overlay is a union filesystem, typically a container's root.
	Overlay
	// Memory is a filesystem in RAM (tmpfs, ramfs): nothing on it
	// survives a power cut.
	Memory
)

var classNames = [...]string{
	Unknown: "unknown",
	Local:   "local",
	FUSE:    "fuse",
	Network: "network",
	Overlay: "overlay",
	Memory:  "memory",
}

// String returns the lowercase name of c: "local", "fuse", "network",
// "overlay", "memory" or "unknown".
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return fmt.Sprintf("Class(%d)", int(c))
	}
	return classNames[c]
}

// MarshalText encodes c as its String, so JSON shows "network", not 3.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText decodes what MarshalText encodes.
func (c *Class) UnmarshalText(b []byte) error {
	for i, name := range classNames {
		if string(b) == name {
			*c = Class(i)
			return nil
		}
	}
	return fmt.Errorf("probe: unknown filesystem class %q", b)
}

// Result is what Path found out about the filesystem holding a path.
// Fields the platform cannot tell are left zero and explained in Notes.
type Result struct {
	// Path is the probed path: absolute, with symlinks resolved. When
	// the path given does not exist, it is its nearest existing parent.
	Path string `json:"path"`
	// MountPoint is the mount holding Path.
	MountPoint string `json:"mount_point"`
	// Device is the mount's source as the kernel reports it: /dev/sdb1,
	// server:/export, //server/share, a volume GUID path on Windows.
	Device string `json:"device"`
	// FSType is the filesystem type as the kernel reports it (ext4,
	// vfat, exfat, fuseblk, fuse.exfat, nfs4, cifs, 9p, virtiofs,
	// overlay, tmpfs; apfs, msdos on darwin; NTFS, FAT32 on Windows).
	FSType string `json:"fs_type"`
	// MountOptions are the mount's options; on Linux the per-mount
	// options followed by the superblock options not already listed.
	MountOptions []string `json:"mount_options"`
	// ReadOnly is true when the mount or its superblock is read-only.
	ReadOnly bool `json:"read_only"`
	// Removable is the kernel's removable flag for the disk under the
	// mount (Linux: /sys/class/block/<disk>/removable; a partition
	// answers for its disk; loop devices are reported not removable).
	// Many USB hard disks and SSDs say 0 here: see USB.
	Removable bool `json:"removable"`
	// USB is true when the disk hangs off a USB bus.
	USB bool `json:"usb"`
	// Class is what FSType means for ejectsafe.
	Class Class `json:"class"`
	// Container names the container this process runs in: "docker",
	// "podman", "lxc", "kubernetes", "wsl", "jail", ... or "" for none
	// found.
	Container string `json:"container"`
	// VM names the hypervisor when this process runs in a guest: "kvm",
	// "qemu", "vmware", "virtualbox", "hyperv", "xen", ... "unknown"
	// when a hypervisor is present but unnamed, "" for none found.
	VM string `json:"vm"`
	// Notes are human-readable caveats found while probing.
	Notes []string `json:"notes"`
}

// Path describes the filesystem holding path: its mount, type,
// options, whether the drive is removable or on USB, and whether this
// process runs in a container or a virtual machine.
//
// path need not exist (a database about to be created): its nearest
// existing parent is probed instead and a Note says so. Path reads
// only kernel tables (/proc, /sys on Linux); it writes nothing. An error
// means the path could not be resolved or the mount table could not be
// read; anything less is a Note.
func Path(path string) (Result, error) {
	var p Result
	abs, note, err := resolveExisting(path)
	if err != nil {
		return p, fmt.Errorf("probe %s: %w", path, err)
	}
	p.Path = abs
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	if err := probePlatform(&p); err != nil {
		return p, fmt.Errorf("probe %s: %w", path, err)
	}
	if p.Class == Unknown && p.FSType != "" {
		var cnote string
		p.Class, cnote = classifyFS(p.FSType)
		if cnote != "" {
			p.Notes = append(p.Notes, cnote)
		}
	}
	return p, nil
}

// resolveExisting makes path absolute and resolves its symlinks. If path
// does not exist, it walks up to the nearest existing directory and says
// so in note.
func resolveExisting(path string) (abs, note string, err error) {
	abs, err = filepath.Abs(path)
	if err != nil {
		return "", "", err
	}
	for p := abs; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			if p != abs {
				note = fmt.Sprintf("%s does not exist; probed its nearest existing parent %s", abs, real)
			}
			return real, note, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", "", err
		}
		p = parent
	}
}

// Filesystem types by class, lowercase. Names are the kernel's (Linux
// /proc/self/mountinfo, darwin and FreeBSD statfs f_fstypename, Windows
// GetVolumeInformation).
var (
	networkFS = setOf(
		"nfs", "nfs4", "cifs", "smb3", "smbfs", "smb2", "ceph", "glusterfs",
		"afs", "ncpfs", "coda", "lustre", "beegfs", "gpfs",
		"afpfs", "webdav", // darwin
	)
	// hostSharedFS are folders shared from the host of a VM or of
	// Docker Desktop: another kernel writes them, as with a network.
	hostSharedFS = setOf(
		"9p", "virtiofs", "vboxsf", "vmhgfs", "prl_fs", "drvfs", "fakeowner",
		"fuse.vmhgfs-fuse", "fuse.grpcfuse", "fuse.osxfs",
	)
	networkFUSE = setOf(
		"fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "fuse.ceph-fuse",
		"fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs",
		"fuse.cephfs", "fuse.davfs", "fuse.goofys", "fuse.mount-s3",
	)
	overlayFS = setOf("overlay", "overlayfs", "aufs", "unionfs", "fuse.fuse-overlayfs")
	memoryFS  = setOf("tmpfs", "ramfs", "devtmpfs")
	localFS   = setOf(
		"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "reiserfs",
		"nilfs2", "bcachefs", "zfs", "ufs", "ffs", "udf", "iso9660", "minix",
		"vfat", "msdos", "fat", "fat12", "fat16", "fat32", "exfat",
		"ntfs", "ntfs3", "refs", "hfs", "hfsplus", "apfs",
	)
	fatFS = setOf("vfat", "msdos", "fat", "fat12", "fat16", "fat32", "exfat", "fuse.exfat")
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// classifyFS maps a kernel filesystem type to its class, with a note
// when the type deserves one.
func classifyFS(fstype string) (Class, string) {
	t := strings.ToLower(fstype)
	var note string
	if fatFS[t] {
		note = fstype + ": FAT-family filesystems cannot rename over an existing name atomically; ejectsafe's checkpoint journal recovers by checksums, not names"
	}
	switch {
	case hostSharedFS[t]:
		return Network, fstype + " is a folder shared from a VM or container host: the host's kernel caches and writes it"
	case networkFS[t], networkFUSE[t]:
		return Network, note
	case overlayFS[t]:
		return Overlay, note
	case strings.HasPrefix(t, "fuse"), t == "macfuse", t == "osxfuse":
		return FUSE, note
	case memoryFS[t]:
		return Memory, note
	case localFS[t]:
		return Local, note
	}
	return Unknown, note
}

// Verdict says whether ejectsafe can keep its guarantee on the probed
// filesystem. ok is false only for a network filesystem; the first
// string then explains the refusal (why, not how to override it: that is
// the caller's policy to offer). The other strings are warnings:
// ejectsafe works there, with the caveat they name.
func (p Result) Verdict() (ok bool, warnings []string) {
	ok = true
	fst := p.FSType
	if fst == "" {
		fst = "this filesystem"
	}
	switch p.Class {
	case Network:
		ok = false
		warnings = append(warnings, fmt.Sprintf(
			"%s on %s is a network filesystem: SQLite's locks and fsync are not reliable there "+
				"(locks can be emulated per process or lost when the connection drops, fsync can "+
				"return before the server has the data, other hosts cache pages of their own), "+
				"so ejectsafe cannot keep its guarantee; use a local or removable drive",
			fst, p.MountPoint))
	case FUSE:
		warnings = append(warnings, fmt.Sprintf(
			"%s is a FUSE filesystem: durability rests on the user-space daemon honouring fsync "+
				"and rename, and a killed daemon fails every operation like a pulled drive; "+
				"ejectsafe keeps its WAL and wal-index in memory, so it does not depend on "+
				"shared-memory coherence there", fst))
	case Overlay:
		warnings = append(warnings, fmt.Sprintf(
			"%s is an overlay (container layer): its writes usually vanish with the container, "+
				"and a lower-layer file is copied up before it changes; put databases on a volume "+
				"or bind mount of the real drive", fst))
	case Memory:
		warnings = append(warnings, fmt.Sprintf(
			"%s keeps files in RAM: everything on it is lost at power off or reboot, "+
				"and fsync does nothing", fst))
	case Unknown:
		warnings = append(warnings, fmt.Sprintf(
			"filesystem type %q is not one ejectsafe knows: it cannot tell whether fsync and "+
				"rename are reliable there", p.FSType))
	}
	if p.ReadOnly {
		warnings = append(warnings, fmt.Sprintf(
			"%s is mounted read-only: databases there open read-only and checkpoints fail", p.MountPoint))
	}
	if p.Container != "" {
		warnings = append(warnings, fmt.Sprintf(
			"running in a %s container: the drive is seen through the container's mounts, and "+
				"where the container runs in a VM of its own (Docker Desktop, WSL) processes on the "+
				"host do not see ejectsafe's lock; eject the drive on the host only after this "+
				"process has closed its stores", p.Container))
	}
	if p.VM != "" {
		warnings = append(warnings, fmt.Sprintf(
			"running in a virtual machine (%s): fsync reaches the drive only if the hypervisor "+
				"passes flushes through (a disk image with a write-back or unsafe cache does not); "+
				"a USB drive passed through as a device is fine, a shared folder is not", p.VM))
	}
	return ok, warnings
}

// readTrim reads a small kernel file and trims its whitespace. Errors
// read as "" : callers treat a missing attribute as unknown.
func readTrim(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
