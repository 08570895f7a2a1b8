package probe

import (
	"strings"

	"golang.org/x/sys/windows"
)

// probePlatform fills in p from the volume holding p.Path: its mount
// point (GetVolumePathName), volume GUID path, filesystem name and
// read-only flag (GetVolumeInformation), and drive type (GetDriveType:
// removable, remote, RAM disk). USB, containers and hypervisors are not
// probed; a Note says so.
func probePlatform(p *Result) error {
	path, err := windows.UTF16PtrFromString(p.Path)
	if err != nil {
		return err
	}
	buf := make([]uint16, windows.MAX_LONG_PATH)
	if err := windows.GetVolumePathName(path, &buf[0], uint32(len(buf))); err != nil {
		return err
	}
	root := windows.UTF16ToString(buf)
	p.MountPoint = root
	rootp, err := windows.UTF16PtrFromString(root)
	if err != nil {
		return err
	}
	vol := make([]uint16, windows.MAX_PATH+1)
	if err := windows.GetVolumeNameForVolumeMountPoint(rootp, &vol[0], uint32(len(vol))); err == nil {
		p.Device = windows.UTF16ToString(vol)
	} else {
		p.Device = strings.TrimSuffix(root, `\`)
	}
	var flags uint32
	fsName := make([]uint16, windows.MAX_PATH+1)
	if err := windows.GetVolumeInformation(rootp, nil, 0, nil, nil, &flags, &fsName[0], uint32(len(fsName))); err != nil {
		return err
	}
	p.FSType = windows.UTF16ToString(fsName)
	p.ReadOnly = flags&windows.FILE_READ_ONLY_VOLUME != 0
	if p.ReadOnly {
		p.MountOptions = append(p.MountOptions, "read-only")
	}
	var note string
	p.Class, note = classifyFS(p.FSType)
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	switch windows.GetDriveType(rootp) {
	case windows.DRIVE_REMOVABLE:
		p.Removable = true
	case windows.DRIVE_REMOTE:
		p.Class = Network
		p.Notes = append(p.Notes, root+" is a network drive")
	case windows.DRIVE_RAMDISK:
		p.Class = Memory
	}
	p.Notes = append(p.Notes, "USB bus, containers and hypervisors are not probed on windows")
	return nil
}
