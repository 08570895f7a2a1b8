//go:build !(linux || darwin || freebsd)

package probe

import (
	"errors"
	"fmt"
)

// MapShared is not implemented on this platform: it returns an error
// that satisfies errors.Is(err, errors.ErrUnsupported).
func MapShared(name string, size int) (*SharedMap, error) {
	return nil, fmt.Errorf("probe: map %s: %w", name, errors.ErrUnsupported)
}

func unmap([]byte) error { return errors.ErrUnsupported }
