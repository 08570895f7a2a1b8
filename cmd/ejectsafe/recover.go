package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ejectsafe/ejectsafe/checkpoint"
	"github.com/ejectsafe/ejectsafe/device"
)

// lockSuffix names the lock file a Store holds next to its database.
const lockSuffix = ".ejectsafe-lock"

// runRecover: ejectsafe recover [--json] PATH. Exit 0 when the database is
// in a clean state afterwards, 1 when recovery cannot tell what is right
// (nothing modified), 2 on usage or operational errors.
func runRecover(args []string, stdout, stderr io.Writer) int {
	path, asJSON, code := dbArg("recover", args, stderr)
	if code != 0 {
		return code
	}
	// A live Store must not be recovered under its feet: take its lock.
	lock, err := device.OS.Lock(path + lockSuffix)
	if err != nil {
		if deadMount("recover", path, err, false, stdout, stderr) {
			return 2
		}
		fmt.Fprintf(stderr, "ejectsafe recover: %v\n", err)
		return 2
	}
	defer lock.Close()
	rep, err := checkpoint.Recover(device.OS, path)
	if err != nil && deadMount("recover", path, err, false, stdout, stderr) {
		return 2
	}
	return report("recover", rep, err, asJSON, stdout, stderr)
}

// dbArg parses [--json] PATH for the database commands.
func dbArg(name string, args []string, stderr io.Writer) (path string, asJSON bool, code int) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.BoolVar(&asJSON, "json", false, "print a JSON object")
	if err := fl.Parse(args); err != nil {
		return "", false, 2
	}
	if fl.NArg() != 1 {
		fmt.Fprintf(stderr, "usage: ejectsafe %s [--json] PATH\n", name)
		return "", false, 2
	}
	abs, err := realPath(fl.Arg(0)) // the names the Store derives: symlinks resolved
	if err != nil {
		if deadMount(name, fl.Arg(0), err, false, io.Discard, stderr) {
			return "", false, 2
		}
		fmt.Fprintf(stderr, "ejectsafe %s: %v\n", name, err)
		return "", false, 2
	}
	return abs, asJSON, 0
}

// report prints a recovery report and maps the outcome to an exit code.
func report(name string, rep checkpoint.Report, err error, asJSON bool, stdout, stderr io.Writer) int {
	code := 0
	var unrecoverable *checkpoint.UnrecoverableError
	switch {
	case errors.As(err, &unrecoverable), errors.Is(err, checkpoint.ErrUnrecoverable), errors.Is(err, checkpoint.ErrJournal):
		code = 1
	case err != nil:
		code = 2
	}
	if asJSON {
		out := struct {
			checkpoint.Report
			Error string `json:"error,omitempty"`
		}{Report: rep}
		if err != nil {
			out.Error = err.Error()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "ejectsafe %s: %v\n", name, err)
		return code
	}
	fmt.Fprintln(stdout, rep)
	return code
}
