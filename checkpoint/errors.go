package checkpoint

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/ejectsafe/ejectsafe/journal"
)

// The errors of this package; test them with errors.Is. Errors from the
// drive are wrapped, not replaced, so errors.Is(err, syscall.EIO) and
// errors.Is(err, fs.ErrNotExist) see the cause too.
var (
	// ErrClosed means the Main was closed.
	ErrClosed = errors.New("checkpoint: main file closed")

	// ErrCommit is wrapped by every error that Commit, Sync and Prepare
	// return (as a *CommitError). The database on the drive is still a
	// committed state and the Main still serves every write since the
	// last successful commit from memory; a later Commit retries with a
	// new generation and a new copy. CommitError.Durable reports the one
	// exception, where the checkpoint did reach the drive.
	ErrCommit = errors.New("checkpoint: commit failed")

	// ErrNoSpace means the drive has too little free space for the copy
	// of the database that a commit writes. Nothing is lost. It wraps
	// syscall.ENOSPC; an ENOSPC from the drive during a commit also
	// satisfies errors.Is(err, ErrNoSpace).
	ErrNoSpace = fmt.Errorf("checkpoint: not enough free space for the copy: %w", syscall.ENOSPC)

	// ErrDriveCorrupted means the drive returned other bytes than were
	// written: a commit read its copy back and the checksum differed from
	// that of the bytes it wrote (fusefat does this to files written out
	// of order; a failing drive or a bad cable can too). The commit was
	// aborted before any journal record claimed the copy: nothing was
	// renamed, the copy is removed, and the writes are kept in memory; a
	// later Commit retries with a new copy. If it keeps happening, the
	// drive cannot be trusted with the database.
	ErrDriveCorrupted = errors.New("checkpoint: the drive returned other bytes than were written")

	// ErrUnsure means a commit failed at the rename or at the directory
	// fsync after it, so the database name may hold either the old or the
	// new content. The Main keeps serving the right content from memory;
	// the next Commit (or Recover, after Close) decides by checksums which
	// file is there before it does anything else.
	ErrUnsure = errors.New("checkpoint: outcome of the rename unknown")

	// ErrRecoveryNeeded means Open found a checkpoint in flight or a
	// damaged journal: Recover must run first.
	ErrRecoveryNeeded = errors.New("checkpoint: recovery needed")

	// ErrUnrecoverable means recovery found no file that matches what the
	// journal says, or a damaged journal next to a database that does not
	// look like one. Recovery modified nothing; the *UnrecoverableError
	// names the files and their checksums, for a human to decide.
	ErrUnrecoverable = errors.New("checkpoint: unrecoverable")

	// ErrJournal means the journal is of a newer format version, holds
	// a record that a broken writer produced, or is larger than any
	// journal this package writes (MaxJournalSize; refused without
	// reading it). Recovery refuses to act on it, or to overwrite it, and
	// modifies nothing; ResetJournal ("ejectsafe recover
	// --reset-journal") moves it aside.
	ErrJournal = errors.New("checkpoint: journal not usable")
)

// CommitError is the error of a failed Commit or Prepare. It satisfies
// errors.Is(err, ErrCommit), errors.Is(err, ErrNoSpace) when the cause is
// ENOSPC, and errors.Is for its cause.
type CommitError struct {
	Gen uint64 // the generation that failed
	Op  string // the step that failed: "copy", "fsync copy", "rename", ...
	// Durable reports that the checkpoint reached the drive even so: the
	// rename and the directory fsync succeeded, and only reopening the new
	// database failed. Reads keep being served correctly from memory.
	Durable bool
	Err     error
}

func (e *CommitError) Error() string {
	return fmt.Sprintf("checkpoint gen=%d: %s: %v", e.Gen, e.Op, e.Err)
}

func (e *CommitError) Unwrap() error { return e.Err }

// Is reports ErrCommit, and ErrNoSpace for an ENOSPC cause.
func (e *CommitError) Is(target error) bool {
	return target == ErrCommit || (target == ErrNoSpace && errors.Is(e.Err, syscall.ENOSPC))
}

// FileSum describes one file recovery looked at.
type FileSum struct {
	Name   string
	Exists bool
	Size   int64
	Sum    uint64
	Summed bool // Sum was computed (only when the size could match)
}

func (f FileSum) String() string {
	switch {
	case !f.Exists:
		return f.Name + " (missing)"
	case f.Summed:
		return fmt.Sprintf("%s size=%d sum=%#016x", f.Name, f.Size, f.Sum)
	}
	return fmt.Sprintf("%s size=%d", f.Name, f.Size)
}

// UnrecoverableError says why recovery refused to act. It satisfies
// errors.Is(err, ErrUnrecoverable).
type UnrecoverableError struct {
	DB     string
	Reason string
	Began  journal.Record // the checkpoint in flight, if any
	Ready  journal.Record
	Files  []FileSum
}

func (e *UnrecoverableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint: cannot recover %s: %s", e.DB, e.Reason)
	if e.Began.Kind != 0 {
		fmt.Fprintf(&b, "; journal: %v", e.Began)
	}
	if e.Ready.Kind != 0 {
		fmt.Fprintf(&b, ", %v", e.Ready)
	}
	for i, f := range e.Files {
		if i == 0 {
			b.WriteString("; files: ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(f.String())
	}
	b.WriteString("; nothing was modified")
	return b.String()
}

// Is reports ErrUnrecoverable.
func (e *UnrecoverableError) Is(target error) bool { return target == ErrUnrecoverable }
