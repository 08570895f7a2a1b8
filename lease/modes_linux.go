package lease

import "golang.org/x/sys/unix"

// Filesystem magic numbers (statfs f_type) of filesystems whose file
// modes and owners are made up by the mount (FAT, exFAT, NTFS; FUSE, whose
// daemons for these do the same), not stored per file.
const (
	msdosMagic = 0x4d44
	exfatMagic = 0x2011bab0
	ntfsMagic  = 0x5346544e
	ntfs3Magic = 0x7366746e
	fuseMagic  = 0x65735546
)

// modesMadeUp reports whether the filesystem of the open directory fd
// has no modes of its own (every directory looks alike; chmod does
// nothing lasting): the checks on who may write a lease directory mean
// nothing there.
func modesMadeUp(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case msdosMagic, exfatMagic, ntfsMagic, ntfs3Magic, fuseMagic:
		return true
	}
	return false
}
