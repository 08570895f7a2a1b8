// Command ejectsafe inspects, checks and ejects volumes holding ejectsafe
// stores, and recovers, verifies and benchmarks their databases.
//
// Usage:
//
//	ejectsafe status [--json] PATH
//	ejectsafe check [--json] PATH
//	ejectsafe eject [--timeout D] [--force] [--no-unmount] [--power-off] [--json] PATH
//	ejectsafe recover [--json] PATH
//	ejectsafe verify [--json] PATH
//	ejectsafe doctor [--json] PATH
//	ejectsafe demo [DIR]
//	ejectsafe bench [--dir DIR] [--quick] [--json] [--out FILE]
//	ejectsafe version [--json]
//	ejectsafe help [COMMAND]
//	ejectsafe completion bash
//	ejectsafe man
//
// Flags may go anywhere on the line. Exit codes: 0 success, 1 the command
// ran and found a problem, 2 usage or operational error (README has the
// table, and the JSON schema every --json follows).
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage())
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage())
		return 0
	case "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "ejectsafe: unknown command %q\n\n%s", args[0], topUsage())
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}
