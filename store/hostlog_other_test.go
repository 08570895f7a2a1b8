//go:build !linux

package store

// The host-log tests are unix-only (no host log elsewhere); TestMain
// still names their child.
const hostLogChildEnv = "EJECTSAFE_HOSTLOG_CHILD"

func hostLogChild(string) int { return 2 }
