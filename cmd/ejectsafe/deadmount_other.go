//go:build !linux

package main

// mountPointOf cannot list mounts here; the message names the path.
func mountPointOf(string) string { return "" }
