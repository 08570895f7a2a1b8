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
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if flag&os.O_CREATE != 0 && perm&0o200 == 0 {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	if access == windows.GENERIC_READ {
		// As os.OpenFile: lets a directory be opened for reading.
		attrs |= windows.FILE_FLAG_BACKUP_SEMANTICS
	}
	h, err := windows.CreateFile(p, access,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil, disp, attrs, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(h), name), nil
}
