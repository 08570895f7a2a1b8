// Command ejectsafe inspects, checks and ejects volumes holding ejectsafe
// stores, and recovers, verifies and benchmarks their databases.
//
// Usage: ejectsafe help, or ejectsafe COMMAND --help; the man page is
// ejectsafe man. Every synopsis, help text and flag is in one table
// (cli.go) that help, the man page and shell completion are made from.
//
// Flags may go anywhere on the line. Exit codes: 0 success, 1 the command
// ran and found a problem, 2 usage or operational error (README has the
// table, and the JSON schema every --json follows); commands return
// errors and exit.go maps them to codes.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/ejectsafe/ejectsafe/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage())
		return exitError
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage())
		return exitOK
	case "-version", "--version":
		return lookup("version").exec(args[1:], stdout, stderr)
	case bench.ChildCommand:
		// Hidden: one memory measurement of ejectsafe bench, in a
		// process that does nothing else (bench.MeasureMemory runs it).
		return bench.RunChild(args[1:], stdout)
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "ejectsafe: unknown command %q\n\n%s", args[0], topUsage())
		return exitError
	}
	return c.exec(args[1:], stdout, stderr)
}
