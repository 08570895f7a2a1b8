package store

import (
	"os"
	"testing"

	"golang.org/x/sys/windows"
)

// inode is the file's index on its volume (GetFileInformationByHandle),
// Windows' inode number.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &fi); err != nil {
		t.Fatal(err)
	}
	return uint64(fi.FileIndexHigh)<<32 | uint64(fi.FileIndexLow)
}
