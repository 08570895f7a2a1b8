package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
	"github.com/ejectsafe/ejectsafe/layout"
)

// errNotDatabase is what recover and verify say of a path that is not an
// SQLite database (exit 2, nothing created).
var errNotDatabase = errors.New("not an SQLite database")

// runRecover brings the database at PATH to a clean state. When recovery
// cannot tell what is right (nothing modified) that is its finding; a
// missing path, a directory or a file that is not a database is an error,
// refused before anything is created.
func runRecover(in *invocation) error {
	path, err := dbPath(in)
	if err != nil {
		return err
	}
	choice := checkpoint.ChooseNothing
	switch keep, fwd := in.bool("keep-drive"), in.bool("roll-forward"); {
	case keep && fwd:
		return usagef("--keep-drive and --roll-forward exclude each other")
	case keep:
		choice = checkpoint.ChooseKeepDrive
	case fwd:
		choice = checkpoint.ChooseRollForward
	}
	// A live Store must not be recovered under its feet: take its lock.
	lock, err := device.OS.Lock(layout.Lock(path))
	if err != nil {
		return err
	}
	defer lock.Close()
	var moved []string
	if in.bool("reset-journal") {
		// Without a journal nothing vouches for the database: prove it
		// sound first, as SQLite reads it alone.
		integrity, err := integrityCheck(path)
		if err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		if integrity != "ok" {
			return problem(fmt.Errorf("%s: integrity_check: %s; the journal is kept, nothing was changed", path, integrity))
		}
		if moved, err = checkpoint.ResetJournal(device.OS, path); err != nil {
			return err
		}
	}
	rep, err := checkpoint.RecoverWith(device.OS, path, choice)
	rep.MovedAside = append(moved, rep.MovedAside...)
	return report(in, rep, err)
}

// dbPath is the PATH of the database commands, its symlinks resolved,
// once it is proven an SQLite database (or an empty file, which SQLite
// takes for an empty database).
func dbPath(in *invocation) (string, error) {
	abs, err := realPath(in.pos[0]) // the names the Store derives: symlinks resolved
	if err == nil {
		err = checkDatabase(abs)
	}
	if err != nil {
		return "", err
	}
	return abs, nil
}

// checkDatabase refuses a path that is missing, a directory, not a
// regular file, or a file whose header is not SQLite's. It only reads.
func checkDatabase(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such database", path)
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory; give the database file inside it", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: %w: not a regular file (%s)", path, errNotDatabase, fi.Mode().Type())
	case fi.Size() == 0:
		return nil
	}
	// As every file on the drive: no link followed, no blocking on a
	// FIFO swapped in since the stat, a regular file only.
	f, err := device.OS.Open(path, device.ReadOnly)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, 16)
	if n, err := f.ReadAt(hdr, 0); n < len(hdr) || string(hdr) != "SQLite format 3\x00" {
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return err
		}
		return fmt.Errorf("%s: %w (its header is not SQLite's)", path, errNotDatabase)
	}
	return nil
}

// report prints a recovery report and err, the outcome: a refusal to
// guess is a finding, any other error an error. It returns err, shown.
func report(in *invocation, rep checkpoint.Report, err error) error {
	var unrecoverable *checkpoint.UnrecoverableError
	if errors.As(err, &unrecoverable) || errors.Is(err, checkpoint.ErrUnrecoverable) || errors.Is(err, checkpoint.ErrJournal) {
		err = problem(err)
	}
	code := codeOf(err)
	if in.json {
		out := reportJSON(in.cmd.name, code, rep)
		if err != nil {
			out.Error = err.Error()
			fmt.Fprintf(in.stderr, "ejectsafe %s: %v\n", in.cmd.name, err)
		}
		writeJSON(in.stdout, out)
		return said(err)
	}
	if err != nil {
		// A refusal (a finding) still reports what was found.
		if code == exitProblem {
			fmt.Fprintln(in.stdout, rep)
		}
		fmt.Fprintf(in.stderr, "ejectsafe %s: %v\n", in.cmd.name, err)
		return said(err)
	}
	fmt.Fprintln(in.stdout, rep)
	return nil
}
