package faultinject

import "errors"

// Filesystem operations fail like the OS implementation: with an
// *os.PathError (or *os.LinkError for Rename) wrapping a syscall.Errno,
// so errors.Is(err, syscall.EIO) and errors.Is(err, fs.ErrNotExist) work;
// with os.ErrClosed on a closed handle; with a *device.LockedError from
// Lock. The sentinels below are the harness's own errors.
var (
	// ErrBadRule means Inject was given a rule without an error number,
	// with a probability outside [0, 1] or with a malformed glob.
	ErrBadRule = errors.New("faultinject: invalid rule")

	// ErrBadMatrix means a MatrixConfig lacks Setup, Workload or Oracle,
	// asks for Compound without Recover, or names a point outside the
	// workload.
	ErrBadMatrix = errors.New("faultinject: invalid matrix config")

	// ErrWorkload means Setup, or the workload's clean counting run,
	// failed: the matrix cannot start, since a workload that fails
	// without a crash proves nothing about crashes.
	ErrWorkload = errors.New("faultinject: workload failed without a crash")

	// ErrNondeterministic means a crash case did not reach its crash
	// point: the workload performed fewer operations than in the counting
	// run. Crash points are only meaningful for workloads whose operation
	// sequence is the same on every run.
	ErrNondeterministic = errors.New("faultinject: workload did not reach the crash point")

	// ErrRecovery means the clean recovery run after a crash failed.
	ErrRecovery = errors.New("faultinject: recovery failed")

	// ErrOracle means the oracle rejected a crash image.
	ErrOracle = errors.New("faultinject: oracle rejected the crash image")

	// ErrPanic means the workload, recovery or oracle panicked during a
	// crash case; the failure's message holds the panic value and stack.
	ErrPanic = errors.New("faultinject: panic")
)
