//go:build darwin || freebsd

package device

import "os"

// lockHolder cannot tell who holds a flock on darwin or FreeBSD: the
// kernel exports no table of flock holders. PID 0 means unknown.
func lockHolder(*os.File) int { return 0 }
