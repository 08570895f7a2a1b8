//go:build !linux

package main

import "errors"

// errBusy marks an unmount refused because the volume is in use.
var errBusy = errors.New("busy")

// isBusy reports whether an unmount failed because the volume is in use.
func isBusy(err error) bool { return errors.Is(err, errBusy) }
