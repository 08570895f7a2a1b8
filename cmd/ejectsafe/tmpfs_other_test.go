//go:build !linux

package main

import "testing"

// mountTmpfs: tmpfs is Linux's.
func mountTmpfs(t *testing.T, mp string) {
	t.Helper()
	t.Skip("SKIP LOUDLY: tmpfs mounts are Linux-only")
}
