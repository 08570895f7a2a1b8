//go:build !(linux || darwin || freebsd)

package store

import (
	"errors"
	"os"
	"syscall"
)

// The host log needs a shared file mapping the shim can own; not built
// here: HostLog and HostSync answer ErrHostLogUnsupported, and the
// default level is Checkpoint.

func hlSupported() bool { return false }

var errNoHostLog = errors.New("host log not supported on this platform")

func openPrivate(path string, create bool) (*os.File, error) { return nil, errNoHostLog }
func checkPrivate(path string, dir bool) error               { return errNoHostLog }
func dupFd(f *os.File) (int, error)                          { return -1, errNoHostLog }
func closeFd(fd int)                                         {}
func errnoErr(e int) error                                   { return syscall.Errno(e) }

func freeBytes(dir string) (int64, error) { return 0, errNoHostLog }
