package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/ejectsafe/ejectsafe/probe"
)

// syncAll has nothing to do on Windows: there is no sync(2), and the
// eject below makes the storage stack flush the volume before it lets go.
func syncAll() {}

// systemVolume: the volume Windows runs from.
func systemVolume(mp string) bool {
	dir, err := windows.GetWindowsDirectory()
	if err != nil {
		return true // cannot tell: refuse, the safe answer
	}
	return strings.EqualFold(filepath.VolumeName(mp), filepath.VolumeName(dir))
}

var (
	cfgmgr32               = windows.NewLazySystemDLL("cfgmgr32.dll")
	procGetIfaceProperty   = cfgmgr32.NewProc("CM_Get_Device_Interface_PropertyW")
	procLocateDevNode      = cfgmgr32.NewProc("CM_Locate_DevNodeW")
	procGetParent          = cfgmgr32.NewProc("CM_Get_Parent")
	procRequestDeviceEject = cfgmgr32.NewProc("CM_Request_Device_EjectW")
)

// GUID_DEVINTERFACE_DISK and DEVPKEY_Device_InstanceId, from the SDK's
// ntddstor.h and devpkey.h.
var (
	guidDevInterfaceDisk = windows.GUID{Data1: 0x53f56307, Data2: 0xb6bf, Data3: 0x11d0,
		Data4: [8]byte{0x94, 0xf2, 0x00, 0xa0, 0xc9, 0x1e, 0xfb, 0x8b}}
	devpkeyInstanceID = windows.DEVPROPKEY{FmtID: windows.DEVPROPGUID{Data1: 0x78c34fc8, Data2: 0x104a,
		Data3: 0x4aca, Data4: [8]byte{0x9e, 0xa4, 0x52, 0x4d, 0x52, 0x99, 0x6e, 0x57}}, PID: 256}
)

const ioctlStorageGetDeviceNumber = 0x2D1080

type storageDeviceNumber struct {
	DeviceType      uint32
	DeviceNumber    uint32
	PartitionNumber uint32
}

// unmount asks Plug and Play to eject the disk holding the volume
// (CM_Request_Device_EjectW on the disk's parent device), which is what
// "Safely Remove Hardware" does: Windows flushes and dismounts every
// volume on it, and refuses (a veto, reported as busy) while a process
// has files open there. The device is then stopped, so powerOffDrive has
// nothing left to do.
func unmount(p probe.Result) (method string, err error) {
	if err := ejectDisk(p); err != nil {
		return "", err
	}
	return "CM_Request_Device_Eject", nil
}

// ejectDisk requests the eject of the disk holding p's volume.
func ejectDisk(p probe.Result) error {
	num, err := deviceNumber(`\\.\` + strings.TrimSuffix(p.MountPoint, `\`))
	if err != nil {
		return fmt.Errorf("volume %s: %w", p.MountPoint, err)
	}
	inst, err := diskInstance(num)
	if err != nil {
		return err
	}
	var devinst, parent uint32
	id, err := windows.UTF16PtrFromString(inst)
	if err != nil {
		return err
	}
	if err := cmCall(procLocateDevNode, uintptr(unsafe.Pointer(&devinst)), uintptr(unsafe.Pointer(id)), 0); err != nil {
		return fmt.Errorf("disk %s: %w", inst, err)
	}
	if err := cmCall(procGetParent, uintptr(unsafe.Pointer(&parent)), uintptr(devinst), 0); err != nil {
		return fmt.Errorf("parent of disk %s: %w", inst, err)
	}
	var veto uint32
	name := make([]uint16, windows.MAX_PATH)
	err = cmCall(procRequestDeviceEject, uintptr(parent), uintptr(unsafe.Pointer(&veto)),
		uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), 0)
	if veto != 0 {
		return fmt.Errorf("%w: Windows vetoed the removal (veto type %d, by %s); close the files open on it and eject again",
			errBusy, veto, windows.UTF16ToString(name))
	}
	if err != nil {
		return fmt.Errorf("eject disk %s: %w", inst, err)
	}
	return nil
}

// powerOffDrive: the eject in unmount already stopped the device.
func powerOffDrive(probe.Result) error { return nil }

// canPowerOff: the eject itself stops the device.
func canPowerOff() error { return nil }

// deviceNumber is the disk number of a volume or disk (its storage
// device number).
func deviceNumber(path string) (uint32, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, err
	}
	// No access rights are needed to ask a device its number.
	h, err := windows.CreateFile(p, 0, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE, nil, windows.OPEN_EXISTING, 0, 0)
	if err != nil {
		return 0, err
	}
	defer windows.CloseHandle(h)
	var sdn storageDeviceNumber
	var n uint32
	if err := windows.DeviceIoControl(h, ioctlStorageGetDeviceNumber, nil, 0,
		(*byte)(unsafe.Pointer(&sdn)), uint32(unsafe.Sizeof(sdn)), &n, nil); err != nil {
		return 0, err
	}
	return sdn.DeviceNumber, nil
}

// diskInstance finds the present disk with device number num and returns
// its device instance id.
func diskInstance(num uint32) (string, error) {
	ifaces, err := windows.CM_Get_Device_Interface_List("", &guidDevInterfaceDisk, windows.CM_GET_DEVICE_INTERFACE_LIST_PRESENT)
	if err != nil {
		return "", fmt.Errorf("listing disks: %w", err)
	}
	for _, iface := range ifaces {
		if n, err := deviceNumber(iface); err != nil || n != num {
			continue
		}
		p, err := windows.UTF16PtrFromString(iface)
		if err != nil {
			return "", err
		}
		var typ uint32
		id := make([]uint16, 512)
		n := uint32(len(id) * 2)
		if err := cmCall(procGetIfaceProperty, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&devpkeyInstanceID)),
			uintptr(unsafe.Pointer(&typ)), uintptr(unsafe.Pointer(&id[0])), uintptr(unsafe.Pointer(&n)), 0); err != nil {
			return "", fmt.Errorf("disk %s: %w", iface, err)
		}
		return windows.UTF16ToString(id), nil
	}
	return "", fmt.Errorf("no present disk has number %d", num)
}

// cmCall calls a Configuration Manager function and turns its CONFIGRET
// into an error.
func cmCall(p *windows.LazyProc, args ...uintptr) error {
	if err := p.Find(); err != nil {
		return err
	}
	r, _, _ := p.Call(args...)
	if r != 0 {
		return errors.New(windows.CONFIGRET(r).Error())
	}
	return nil
}
