package main

import (
	"errors"
	"fmt"
)

// Exit codes, README's table (exitCodes in cli.go). Commands never pick
// one: they return an error of one of the kinds below and codeOf maps
// it, here and nowhere else.
const (
	exitOK      = 0 // success
	exitProblem = 1 // the command ran and found a problem
	exitError   = 2 // usage or operational error
)

// usageError is a bad command line (exit 2): said with the command's
// synopsis, and in JSON under --json.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef makes a usageError.
func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// problemError is an outcome the command found (exit 1): not safe to
// remove, not clean, refused to guess. Anything else a command returns is
// an operational error (exit 2).
type problemError struct{ err error }

func (e *problemError) Error() string { return e.err.Error() }
func (e *problemError) Unwrap() error { return e.err }

// problem marks err as a finding of the command (exit 1).
func problem(err error) error { return &problemError{err} }

// errFound is the finding of a command whose report already says what
// it found (check: not safe; verify: not clean; doctor: a check failed).
var errFound = errors.New("the report names the problem")

// saidError is an error the command already showed, on stderr or in its
// own JSON object (a report, a dead drive's one message): the dispatcher
// prints nothing more and exits with the code of the error inside.
type saidError struct{ err error }

func (e *saidError) Error() string { return e.err.Error() }
func (e *saidError) Unwrap() error { return e.err }

// said marks err as already shown.
func said(err error) error {
	if err == nil {
		return nil
	}
	return &saidError{err}
}

// codeOf maps what a command returned to its exit code.
func codeOf(err error) int {
	var p *problemError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &p):
		return exitProblem
	}
	return exitError
}

// finish shows err as in's command reports errors (unless it was shown
// already) and returns the exit code: a usage error with the synopsis,
// a vanished drive with one message saying what to do (commands whose
// argument is a path), anything else as "ejectsafe CMD: err"; under
// --json also as a JSON object on stdout.
func (in *invocation) finish(err error) int {
	code := codeOf(err)
	var shown *saidError
	var usage *usageError
	switch {
	case err == nil, errors.As(err, &shown):
	case errors.As(err, &usage):
		fmt.Fprintf(in.stderr, "ejectsafe %s: %s\nusage: ejectsafe %s  (ejectsafe %s --help explains)\n",
			in.cmd.name, usage.msg, in.cmd.synopsis, in.cmd.name)
		if in.json {
			writeJSON(in.stdout, errorOut(in.cmd.name, code, usage.msg))
		}
	case in.cmd.args == "path" && len(in.pos) > 0 && deadMount(in.cmd.name, in.pos[0], err, in.json, in.stdout, in.stderr):
		return exitError // the drive is gone: deadMount said so and what to do
	default:
		fmt.Fprintf(in.stderr, "ejectsafe %s: %v\n", in.cmd.name, err)
		if in.json {
			writeJSON(in.stdout, errorOut(in.cmd.name, code, err.Error()))
		}
	}
	return code
}
