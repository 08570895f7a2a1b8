package main

import (
	"syscall"
	"testing"
)

// mountTmpfs mounts a small tmpfs at mp for the test, or skips loudly.
func mountTmpfs(t *testing.T, mp string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", mp, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("SKIP LOUDLY: mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
}
