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

// runRecover: ejectsafe recover [--json] [--keep-drive | --roll-forward]
// [--reset-journal] PATH. Exit 0 when the database is in a clean state
// afterwards, 1 when recovery cannot tell what is right (nothing
// modified), 2 on usage or operational errors (a missing path, a
// directory, a file that is not a database: refused before anything is
// created).
func runRecover(args []string, stdout, stderr io.Writer) int {
	in, path, code := dbArg("recover", args, stdout, stderr)
	if in == nil {
		return code
	}
	choice := checkpoint.ChooseNothing
	switch keep, fwd := in.bool("keep-drive"), in.bool("roll-forward"); {
	case keep && fwd:
		return in.usageError("--keep-drive and --roll-forward exclude each other")
	case keep:
		choice = checkpoint.ChooseKeepDrive
	case fwd:
		choice = checkpoint.ChooseRollForward
	}
	// A live Store must not be recovered under its feet: take its lock.
	lock, err := device.OS.Lock(layout.Lock(path))
	if err != nil {
		return in.fail(2, err)
	}
	defer lock.Close()
	var moved []string
	if in.bool("reset-journal") {
		// Without a journal nothing vouches for the database: prove it
		// sound first, as SQLite reads it alone.
		integrity, err := integrityCheck(path)
		if err != nil {
			return in.fail(2, fmt.Errorf("integrity check: %w", err))
		}
		if integrity != "ok" {
			return in.fail(1, fmt.Errorf("%s: integrity_check: %s; the journal is kept, nothing was changed", path, integrity))
		}
		if moved, err = checkpoint.ResetJournal(device.OS, path); err != nil {
			return in.fail(2, err)
		}
	}
	rep, err := checkpoint.RecoverWith(device.OS, path, choice)
	rep.MovedAside = append(moved, rep.MovedAside...)
	return report(in, rep, err)
}

// dbArg parses [--json] PATH for the database commands and checks that
// PATH is an SQLite database (or an empty file, which SQLite takes for an
// empty database).
func dbArg(name string, args []string, stdout, stderr io.Writer) (*invocation, string, int) {
	in, code := parse(name, args, stdout, stderr, 1, 1)
	if in == nil {
		return nil, "", code
	}
	abs, err := realPath(in.pos[0]) // the names the Store derives: symlinks resolved
	if err == nil {
		err = checkDatabase(abs)
	}
	if err != nil {
		return nil, "", in.fail(2, err)
	}
	return in, abs, 0
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

// report prints a recovery report and maps the outcome to an exit code.
func report(in *invocation, rep checkpoint.Report, err error) int {
	code := 0
	var unrecoverable *checkpoint.UnrecoverableError
	switch {
	case errors.As(err, &unrecoverable), errors.Is(err, checkpoint.ErrUnrecoverable), errors.Is(err, checkpoint.ErrJournal):
		code = 1
	case err != nil:
		code = 2
	}
	if in.json {
		out := reportJSON(in.cmd.name, code, rep)
		if err != nil {
			out.Error = err.Error()
			fmt.Fprintf(in.stderr, "ejectsafe %s: %v\n", in.cmd.name, err)
		}
		writeJSON(in.stdout, out)
		return code
	}
	if err != nil {
		// A refusal (exit 1) still reports what was found.
		if code == 1 {
			fmt.Fprintln(in.stdout, rep)
		}
		fmt.Fprintf(in.stderr, "ejectsafe %s: %v\n", in.cmd.name, err)
		return code
	}
	fmt.Fprintln(in.stdout, rep)
	return code
}
