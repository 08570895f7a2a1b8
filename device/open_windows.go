package device

import (
	"os"

	"golang.org/x/sys/windows"
)

// openFile is os.OpenFile with FILE_SHARE_DELETE added to the share mode
// (os.OpenFile shares read and write only). Without it, a file that is
// open cannot be renamed or deleted by anyone, this process included:
// the checkpoint renames the copy over the database and the journal's
// temp file over the journal while readers may hold them, and Windows
// answers "sharing violation". It supports the flags this package uses:
// O_RDONLY or O_RDWR, with O_CREATE and O_EXCL.
//
// As on unix (open_unix.go), a name on the drive is never followed:
// FILE_FLAG_OPEN_REPARSE_POINT opens a symbolic link or junction itself,
// which is then refused (ErrSymlink), and anything but a file on a disk
// (a directory, a pipe, a device) is refused (ErrNotRegular). Every
// reparse point is refused, not only links and junctions: a cloud
// placeholder is not a file to checkpoint on a removable drive either.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	access := uint32(windows.GENERIC_READ)
	if flag&os.O_RDWR != 0 {
		access |= windows.GENERIC_WRITE
	}
	var disp uint32
	switch {
	case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		disp = windows.CREATE_NEW
	case flag&os.O_CREATE != 0:
		disp = windows.OPEN_ALWAYS
	default:
		disp = windows.OPEN_EXISTING
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL | windows.FILE_FLAG_OPEN_REPARSE_POINT)
	if flag&os.O_CREATE != 0 && perm&0o200 == 0 {
		attrs = windows.FILE_ATTRIBUTE_READONLY | windows.FILE_FLAG_OPEN_REPARSE_POINT
	}
	h, err := windows.CreateFile(p, access,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil, disp, attrs, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if err := checkRegular(h); err != nil {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(h), name), nil
}

// checkRegular refuses a handle that is not a plain file on a disk.
func checkRegular(h windows.Handle) error {
	if t, err := windows.GetFileType(h); err != nil {
		return err
	} else if t != windows.FILE_TYPE_DISK {
		return ErrNotRegular
	}
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		return err
	}
	switch {
	case info.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		return ErrSymlink
	case info.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		return ErrNotRegular
	}
	return nil
}

// openDir opens a directory for listing; a reparse point (link or
// junction) under the name is refused.
func openDir(name string) (*os.File, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 || fi.Mode()&os.ModeIrregular != 0 {
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrSymlink}
	}
	return os.Open(name)
}
