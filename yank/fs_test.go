//go:build linux

package yank

import (
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ejectsafe/ejectsafe/device"
)

// yankFS is device.OS with two test-side additions:
//
//  1. FreeSpace answers math.MaxInt64 ("unknown: let the writes tell")
//     where device.OS answers 0 only because statfs reports no sizes at
//     all (f_blocks = 0). fusefat's statfs does that, and device.OS's 0
//     makes every checkpoint on FAT through fusefat fail with
//     checkpoint.ErrNoSpace before it writes anything (TestFreeSpace_fusefat
//     shows it). The fix belongs in device.freeSpace; until it lands,
//     this is what lets the store run on fusefat at all. On a filesystem
//     that reports sizes it changes nothing.
//  2. Truncate to size 0 of a file that holds data is reported to
//     onTruncZero before it is done: fusefat corrupts such a file
//     (faultinject/realfs, "Findings"), so the store must never do it.
type yankFS struct {
	device.FS
	onTruncZero func(name string, size int64)
}

// fsFor returns device.OS, or a yankFS where dir's filesystem reports no
// sizes (fusefat). Only then: a wrapped FS changes more than FreeSpace
// (the store keeps its lease next to the database when its FS is not
// device.OS), and device.OS is what an application uses.
func fsFor(dir string, onTruncZero func(name string, size int64)) device.FS {
	if n, err := device.OS.FreeSpace(dir); err == nil && n == 0 && sizesUnknown(dir) {
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

func (y yankFS) FreeSpace(name string) (int64, error) {
	n, err := y.FS.FreeSpace(name)
	if err == nil && n == 0 && sizesUnknown(name) {
		return math.MaxInt64, nil
	}
	return n, err
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
