// Command ejectsafe demonstrates and inspects ejectsafe stores.
//
// Usage:
//
//	ejectsafe demo [DIR]
//	ejectsafe status [--json] PATH
//	ejectsafe check [--json] PATH
//	ejectsafe eject [--timeout D] [--force] [--no-unmount] [--power-off] PATH
//	ejectsafe recover [--json] PATH
//	ejectsafe verify [--json] PATH
//	ejectsafe doctor [--json] PATH
//	ejectsafe bench [--dir DIR] [--quick] [--json] [--out FILE]
//
// Exit codes: 0 success, 1 the command ran and found a problem, 2 usage or
// operational error.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: ejectsafe <command> [arguments]

commands:
  demo [DIR]   open a store in DIR (default: a fresh temporary directory),
               commit rows from several goroutines, show that the database
               file does not change until a checkpoint, then read it back
  status PATH  the volume holding PATH and every lease on it: holder,
               state, bytes not yet checkpointed (--json)
  check PATH   exit 0 when the volume is safe to remove, 1 when a live
               holder has it (named), 2 on error (--json)
  eject [--timeout D] [--force] [--no-unmount] [--power-off] PATH
               ask every holder to checkpoint and release, then sync and
               unmount (udisksctl, else umount); exit 1 naming holders that
               refused or did not answer, or when the unmount failed
  recover PATH bring a database's directory to a clean state after a crash
               or a pull: roll an interrupted checkpoint back or forward,
               deciding by checksums; remove leftovers (--json)
  verify PATH  read-only: journal state, what recover would do, whether
               the database is what the last checkpoint wrote (checksum),
               and integrity_check of the database file (--json)
  doctor PATH  check whether PATH's filesystem is safe for ejectsafe (--json)
  bench        store vs stock SQLite on a filesystem (--dir DIR --quick --json --out FILE)

exit codes: 0 success, 1 a problem was found, 2 usage or operational error
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "eject":
		return runEject(args[1:], stdout, stderr)
	case "recover":
		return runRecover(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "doctor":
		return runDoctor(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "ejectsafe: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
