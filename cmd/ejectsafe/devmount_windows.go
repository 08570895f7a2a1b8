package main

import (
	"errors"
	"fmt"
)

// deviceMount: Windows names volumes, not block device files; PATH must
// be on a mounted volume.
func deviceMount(path string) (dev, mountPoint string, err error) {
	return "", "", fmt.Errorf("%s: a device path: %w on windows; give a path on the volume", path, errors.ErrUnsupported)
}
