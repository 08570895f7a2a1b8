//go:build !linux

package realfs

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
)

// tools is empty: volumes exist only on Linux.
type tools struct{}

// UnavailableError lists what keeps a kind from being used. It matches
// ErrUnavailable with errors.Is.
type UnavailableError struct {
	Kind    Kind
	Missing []string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("realfs %s unavailable: %v", e.Kind, e.Missing)
}

func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

var errPlatform = errors.New("loop devices and FUSE mounts are Linux-only, this is " + runtime.GOOS)

// Available always fails off Linux.
func Available(kind Kind) error {
	return &UnavailableError{kind, []string{errPlatform.Error()}}
}

// New always fails off Linux.
func New(t testing.TB, opts Options) (*Volume, error) { return nil, Available(opts.Kind) }

// DaemonPID is 0 off Linux.
func (v *Volume) DaemonPID() int { return 0 }

// Pull fails off Linux.
func (v *Volume) Pull() error { return Available(v.Kind) }

// Fsck fails off Linux.
func (v *Volume) Fsck() (FsckReport, error) { return FsckReport{}, Available(v.Kind) }

// Remount fails off Linux.
func (v *Volume) Remount() error { return Available(v.Kind) }

// RemountReadOnly fails off Linux.
func (v *Volume) RemountReadOnly() error { return Available(v.Kind) }

// Unmount fails off Linux.
func (v *Volume) Unmount() error { return Available(v.Kind) }

// Fill fails off Linux.
func (v *Volume) Fill(leave int64) error { return Available(v.Kind) }

// Unfill fails off Linux.
func (v *Volume) Unfill() error { return Available(v.Kind) }

// Cleanup has nothing to clean off Linux.
func (v *Volume) Cleanup() error { return nil }
