//go:build !unix && !windows

package device

import "os"

// openFile is os.OpenFile where the platform has no no-follow open; the
// type check still refuses anything but a regular file.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	return f, nil
}

func openDir(name string) (*os.File, error) { return os.Open(name) }
