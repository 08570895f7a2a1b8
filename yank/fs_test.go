//go:build linux

package yank

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/device"
)

// yankFS is device.OS with one test-side addition: a Truncate to size 0
// of a file that holds data is reported to onTruncZero before it is done:
// fusefat corrupts such a file (faultinject/realfs, "Findings"), so the
// store must never do it.
type yankFS struct {
	device.FS
	onTruncZero func(name string, size int64)
}

// fsFor returns device.OS, or a yankFS where dir's filesystem reports no
// sizes (fusefat, device.ErrFreeSpaceUnknown). Only then: a wrapped FS
// changes more than the truncate check (the store keeps its lease next to
// the database when its FS is not device.OS), and device.OS is what an
// application uses.
func fsFor(dir string, onTruncZero func(name string, size int64)) device.FS {
	if _, err := device.OS.FreeSpace(dir); errors.Is(err, device.ErrFreeSpaceUnknown) {
		return yankFS{FS: device.OS, onTruncZero: onTruncZero}
	}
	return device.OS
}

func (y yankFS) Open(name string, mode device.OpenMode) (device.File, error) {
	f, err := y.FS.Open(name, mode)
	if err != nil {
		return nil, err
	}
	return yankFile{File: f, fs: y}, nil
}

func (y yankFS) Create(name string, perm os.FileMode) (device.File, error) {
	f, err := y.FS.Create(name, perm)
	if err != nil {
		return nil, err
	}
	return yankFile{File: f, fs: y}, nil
}

// sizesUnknown reports whether statfs of name reports no blocks at all.
func sizesUnknown(name string) bool {
	var st unix.Statfs_t
	return unix.Statfs(name, &st) == nil && st.Blocks == 0
}

// yankFile reports truncations to zero and keeps Fd, so that package
// checkpoint still copies with copy_file_range as it does on device.OS.
type yankFile struct {
	device.File
	fs yankFS
}

func (f yankFile) Truncate(size int64) error {
	if size == 0 && f.fs.onTruncZero != nil {
		if cur, err := f.File.Size(); err == nil && cur > 0 {
			f.fs.onTruncZero(f.Name(), cur)
		}
	}
	return f.File.Truncate(size)
}

// Fd returns the OS descriptor of the wrapped device.OS file.
func (f yankFile) Fd() uintptr { return f.File.(interface{ Fd() uintptr }).Fd() }

// Unwrap returns the wrapped file.
func (f yankFile) Unwrap() device.File { return f.File }

// Volume passes the volume identity through, so that the store proves its
// drive and reattaches on fusefat as it does on device.OS.
func (y yankFS) Volume(path string, serial bool) (device.VolumeID, error) {
	return device.VolumeOf(y.FS, path, serial)
}
