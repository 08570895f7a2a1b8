package store

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// linkCount returns the number of hard links of a file the OS described:
// os.FileInfo does not carry it on Windows, so the file is asked through
// a handle opened for its attributes only (shared with every other
// opener, deleters included). A FileInfo from another device.FS is not
// the OS's: no count.
func linkCount(path string, fi os.FileInfo) (uint64, bool) {
	if _, ok := fi.Sys().(*syscall.Win32FileAttributeData); !ok {
		return 0, false
	}
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, false
	}
	h, err := windows.CreateFile(p, windows.FILE_READ_ATTRIBUTES,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return 0, false
	}
	defer windows.CloseHandle(h)
	var d windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &d); err != nil {
		return 0, false
	}
	return uint64(d.NumberOfLinks), true
}
