package device

import (
	"encoding/binary"
	"fmt"
)

// VolumeID identifies the filesystem a path lives on, so that a program
// holding files on a removable drive can tell, after the drive went away
// and something came back at the same mount path, whether it is the same
// drive.
//
// Mount and Dev change whenever the filesystem is mounted again, even for
// the same drive (a FUSE mount gets a new anonymous device; the kernel
// gives every mount a new id): equal values prove "the same mount", a
// cheap check made with one stat. Serial is the filesystem's own identity,
// written when it was formatted (exFAT's and FAT's volume serial number,
// printed as blkid prints it, "7B1F-A80C"): equal serials after a new
// mount mean the same drive was plugged back. Two drives formatted apart
// have different serials with a probability of 1 - 2^-32; cloned images
// share theirs, which is why the database identity is checked too.
//
// Serial is "" when it cannot be read (the block device behind the mount
// is not readable by this process, the filesystem is not FAT or exFAT, or
// the platform has no way to ask); Source then says why. Callers must
// treat "" as "unknown", never as a match.
type VolumeID struct {
	Mount  uint64 // the kernel's mount id (Linux statx: STATX_MNT_ID_UNIQUE, else STATX_MNT_ID); 0 if unknown
	Dev    uint64 // st_dev of the path
	Serial string // the volume serial or UUID; "" if unknown
	Source string // where Serial came from ("boot sector of /dev/loop1"), or why it is unknown
}

// SameMount reports whether a and b were read from the same mount of a
// filesystem: same device number and, where known, same mount id.
func (a VolumeID) SameMount(b VolumeID) bool {
	return a.Dev == b.Dev && a.Mount == b.Mount
}

// String renders the identity for error messages.
func (a VolumeID) String() string {
	s := a.Serial
	if s == "" {
		s = "serial unknown"
	}
	return fmt.Sprintf("volume %s (dev %d:%d, mount %d)", s, a.Dev>>8&0xfff|a.Dev>>32&^0xfff, a.Dev&0xff|a.Dev>>12&^0xff, a.Mount)
}

// VolumeIdentifier is implemented by an FS that can identify the volume
// holding a path (device.OS; on Linux only does it tell volumes apart). FSs
// that do not (faultinject's in-memory one) are single volumes as far as
// the store is concerned.
type VolumeIdentifier interface {
	// Volume identifies the volume holding path. With serial false it
	// makes one stat (Mount and Dev only); with serial true it also
	// finds the volume serial, which can read the mount table, /proc and
	// a sector of the block device.
	Volume(path string, serial bool) (VolumeID, error)
}

// VolumeOf identifies the volume holding path on fsys, or on the FS it
// wraps (Wrapper). An FS that is not a VolumeIdentifier and wraps none
// gives the zero VolumeID and no error.
func VolumeOf(fsys FS, path string, serial bool) (VolumeID, error) {
	if vi, ok := capability[VolumeIdentifier](fsys); ok {
		return vi.Volume(path, serial)
	}
	return VolumeID{}, nil
}

// Boot-sector layouts of the filesystems whose serial parseSerial reads
// (Microsoft's exFAT specification section 3.1; FAT: the BPB of FAT12/16
// and FAT32).
const (
	exfatName       = "EXFAT   " // bytes 3-10
	exfatSerialOff  = 100        // VolumeSerialNumber, 4 bytes
	fat32SigOff     = 66         // BS_BootSig (0x29) on FAT32
	fat32SerialOff  = 67         // BS_VolID
	fat32TypeOff    = 82         // BS_FilSysType "FAT32   "
	fat16SigOff     = 38         // BS_BootSig on FAT12/16
	fat16SerialOff  = 39         // BS_VolID
	fat16TypeOff    = 54         // BS_FilSysType "FAT12   ", "FAT16   ", "FAT     "
	extBootSig      = 0x29       // the extended boot signature: BS_VolID is valid
	bootSectorBytes = 512
)

// parseSerial reads the volume serial from a boot sector: exFAT, FAT32,
// FAT12/16. It returns "" for anything else, or a sector too short; it
// never panics on arbitrary bytes.
func parseSerial(b []byte) string {
	if len(b) < bootSectorBytes || b[510] != 0x55 || b[511] != 0xAA {
		return ""
	}
	format := func(off int) string {
		v := binary.LittleEndian.Uint32(b[off:])
		return fmt.Sprintf("%04X-%04X", v>>16, v&0xffff)
	}
	switch {
	case string(b[3:11]) == exfatName:
		return format(exfatSerialOff)
	case b[fat32SigOff] == extBootSig && string(b[fat32TypeOff:fat32TypeOff+5]) == "FAT32":
		return format(fat32SerialOff)
	case b[fat16SigOff] == extBootSig && string(b[fat16TypeOff:fat16TypeOff+3]) == "FAT":
		return format(fat16SerialOff)
	}
	return ""
}
