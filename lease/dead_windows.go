package lease

import (
	"errors"
	"fmt"
)

// EndpointGone: a named pipe vanishes with the process that made it, so
// a lease naming one is judged by its holder's identity alone.
func EndpointGone(endpoint string) bool { return false }

// SweepEndpoints has nothing to sweep on Windows: named pipes leave no
// file behind.
func SweepEndpoints() (removed []string, err error) { return nil, nil }

// Endpoints cannot list this user's stores on Windows yet: named pipes
// are not enumerated.
func Endpoints() ([]Endpoint, error) {
	return nil, fmt.Errorf("lease: listing control endpoints: %w on windows", errors.ErrUnsupported)
}
