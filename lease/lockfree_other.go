//go:build !unix

package lease

import (
	"errors"
	"fmt"
)

func lockFree(name string) (bool, error) {
	return false, fmt.Errorf("lease: probing %s: %w", name, errors.ErrUnsupported)
}
