//go:build unix

package lease

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sharedDirMode is the mode of a lease directory ejectsafe creates: like
// /tmp, anyone may add a lease (several users share one stick) and only a
// lease's owner may remove or replace it (the sticky bit). A lease file
// itself is 0600: only its owner (and root) reads where the holder's
// endpoint is.
const sharedDirMode = 0o777 | unix.S_ISVTX

// ErrLeaseDir wraps the reasons the volume's lease directory is refused:
// a component that is a link or not a directory, one on another
// filesystem (a link the kernel followed for us, a mount), or a directory
// this process cannot write. The lease then goes next to the database.
var ErrLeaseDir = errors.New("lease: the volume's lease directory is refused")

// leaseDir makes root/.ejectsafe/leases, one component at a time relative
// to the directory above it (mkdirat, openat with O_NOFOLLOW): a
// component that is a symbolic link is never followed, so a `.ejectsafe`
// pointing off the volume gets no lease written through it. A component
// on a device other than root's is refused too. Directories it creates
// get sharedDirMode (chmod, past the umask; filesystems without modes
// ignore it), and so do existing ones this user owns (a 0755 directory
// from an older version becomes shared); an existing directory is
// refused when others could replace the leases in it (checkShared).
// Finally the directory must be writable by this process: that is found
// here, before a Store creates anything.
func leaseDir(root string) (string, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer func() { unix.Close(fd) }()
	var rootSt unix.Stat_t
	if err := unix.Fstat(fd, &rootSt); err != nil {
		return "", &os.PathError{Op: "stat", Path: root, Err: err}
	}
	dir := root
	for _, name := range strings.Split(DirName, "/") {
		dir = filepath.Join(dir, name)
		merr := unix.Mkdirat(fd, name, 0o700) // opened up below, once it is ours and a directory
		if merr != nil && merr != unix.EEXIST {
			return "", &os.PathError{Op: "mkdir", Path: dir, Err: merr}
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR || err == unix.ELOOP {
			return "", fmt.Errorf("%w: %s is a link or not a directory; not followed", ErrLeaseDir, dir)
		}
		if err != nil {
			return "", &os.PathError{Op: "open", Path: dir, Err: err}
		}
		unix.Close(fd)
		fd = nfd
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return "", &os.PathError{Op: "stat", Path: dir, Err: err}
		}
		if st.Dev != rootSt.Dev {
			return "", fmt.Errorf("%w: %s is on another filesystem than %s", ErrLeaseDir, dir, root)
		}
		if err := checkShared(fd, &st, dir); err != nil {
			return "", err
		}
	}
	if err := unix.Faccessat(fd, ".", unix.W_OK|unix.X_OK, 0); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrLeaseDir, dir, err)
	}
	return dir, nil
}

// checkShared makes dir (open as fd, st its stat) shared when this user
// owns it, and refuses it when another user could replace or remove the
// leases in it: it is not sticky and others may write it, or it is not
// sticky and owned by another user than this one and root (who could
// then do anything in it). A sticky directory owned by another user is
// accepted: its owner may remove entries, which is the price of a stick
// several users share (a lease removed makes its database look free to
// eject; the OS lock, not the lease, still keeps a second process out).
// On filesystems whose modes are made up by the mount (FAT, exFAT, NTFS,
// FUSE) nothing is checked: there, every user can do everything the
// mount allows, wherever the lease goes.
func checkShared(fd int, st *unix.Stat_t, dir string) error {
	if modesMadeUp(fd) {
		unix.Fchmod(fd, sharedDirMode) // best effort, as ever
		return nil
	}
	me := uint32(unix.Geteuid())
	if st.Uid == me && st.Mode&0o7777 != sharedDirMode {
		if err := unix.Fchmod(fd, sharedDirMode); err == nil {
			unix.Fstat(fd, st)
		}
	}
	sticky := st.Mode&unix.S_ISVTX != 0
	switch {
	case !sticky && st.Mode&0o022 != 0:
		return fmt.Errorf("%w: %s can be written by other users and is not sticky (mode %#o): they could replace leases in it",
			ErrLeaseDir, dir, st.Mode&0o7777)
	case !sticky && st.Uid != me && st.Uid != 0:
		return fmt.Errorf("%w: %s belongs to uid %d and is not sticky: that user could replace leases in it",
			ErrLeaseDir, dir, st.Uid)
	}
	return nil
}
