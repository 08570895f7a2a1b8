//go:build !linux

package checkpoint

import (
	"errors"
	"os"
)

// openUnnamed is Linux's O_TMPFILE; elsewhere newSpill names a file and
// removes the name at once.
func openUnnamed(string) (*os.File, error) { return nil, errors.ErrUnsupported }
