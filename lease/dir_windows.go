package lease

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrLeaseDir wraps the reasons the volume's lease directory is refused
// (see dir_unix.go).
var ErrLeaseDir = errors.New("lease: the volume's lease directory is refused")

// leaseDir makes root\.ejectsafe\leases a component at a time, refusing
// a component that is a reparse point (a link or junction) or not a
// directory. Windows has no modes to open up; access is by ACL.
func leaseDir(root string) (string, error) {
	dir := root
	for _, name := range strings.Split(DirName, "/") {
		dir = filepath.Join(dir, name)
		if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			return "", err
		}
		if !fi.IsDir() || fi.Mode()&(os.ModeSymlink|os.ModeIrregular) != 0 {
			return "", fmt.Errorf("%w: %s is a link or not a directory; not followed", ErrLeaseDir, dir)
		}
	}
	return dir, nil
}
