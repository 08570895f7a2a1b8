//go:build darwin || freebsd

package probe

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// probePlatform fills in p from statfs(2), which names the mount point,
// source and type of the filesystem holding a path, and says whether it
// is local (MNT_LOCAL). Removable and USB would need IOKit (darwin) or
// CAM/geom (FreeBSD): not probed, and a Note says so.
func probePlatform(p *Result) error {
	var st unix.Statfs_t
	err := unix.Statfs(p.Path, &st)
	for err == unix.EINTR {
		err = unix.Statfs(p.Path, &st)
	}
	if err != nil {
		return err
	}
	p.FSType = unix.ByteSliceToString(st.Fstypename[:])
	p.MountPoint = unix.ByteSliceToString(st.Mntonname[:])
	p.Device = unix.ByteSliceToString(st.Mntfromname[:])
	flags := uint64(st.Flags)
	p.ReadOnly = flags&unix.MNT_RDONLY != 0
	for _, o := range []struct {
		bit  uint64
		name string
	}{
		{unix.MNT_RDONLY, "rdonly"}, {unix.MNT_LOCAL, "local"}, {unix.MNT_NOSUID, "nosuid"},
		{unix.MNT_NOEXEC, "noexec"}, {unix.MNT_SYNCHRONOUS, "synchronous"}, {unix.MNT_ASYNC, "async"},
	} {
		if flags&o.bit != 0 {
			p.MountOptions = append(p.MountOptions, o.name)
		}
	}
	var note string
	p.Class, note = classifyFS(p.FSType)
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	if flags&unix.MNT_LOCAL == 0 && (p.Class == Local || p.Class == Unknown) {
		p.Class = Network
		p.Notes = append(p.Notes, p.FSType+" on "+p.MountPoint+" is not marked local (MNT_LOCAL) by the kernel")
	}
	p.Notes = append(p.Notes, "removable and USB are not probed on "+runtime.GOOS)
	p.VM, p.Container = bsdVirt()
	return nil
}

// bsdVirt names the hypervisor and the jail, from sysctls: darwin's
// kern.hv_vmm_present, FreeBSD's kern.vm_guest and security.jail.jailed.
func bsdVirt() (vm, container string) {
	if runtime.GOOS == "darwin" {
		if v, err := unix.SysctlUint32("kern.hv_vmm_present"); err == nil && v != 0 {
			vm = "apple"
		}
		return vm, ""
	}
	if g, err := unix.Sysctl("kern.vm_guest"); err == nil && g != "" && g != "none" {
		vm = g
	}
	if j, err := unix.SysctlUint32("security.jail.jailed"); err == nil && j != 0 {
		container = "jail"
	}
	return vm, container
}
