//go:build !linux

package main

import "errors"

// volumeUsers is Linux only (/proc): elsewhere check and eject cannot
// see other processes and say so.
func volumeUsers(mountPoint string) ([]user, int, error) {
	return nil, 0, errors.ErrUnsupported
}
