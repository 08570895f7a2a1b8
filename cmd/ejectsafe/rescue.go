package main

import (
	"fmt"
	"io"

	"github.com/ejectsafe/ejectsafe/store"
)

// runRescue: ejectsafe rescue [--host-dir DIR] list | export LOG BASE DST
// | apply LOG DB. Exit 0 on success, 1 when export or apply refuses a
// log (nothing changed), 2 on usage or operational errors.
func runRescue(args []string, stdout, stderr io.Writer) int {
	in, code := parse("rescue", args, stdout, stderr, 1, 4)
	if in == nil {
		return code
	}
	dir := in.fl.Lookup("host-dir").Value.String()
	want := map[string]int{"list": 1, "export": 4, "apply": 3}
	n, ok := want[in.pos[0]]
	if !ok {
		return in.usageError("want list, export or apply, got %q", in.pos[0])
	}
	if len(in.pos) != n {
		return in.usageError("%s takes %d arguments, got %d", in.pos[0], n-1, len(in.pos)-1)
	}
	switch in.pos[0] {
	case "list":
		logs, err := store.ListHostLogs(dir)
		if err != nil {
			return in.fail(2, err)
		}
		if len(logs) == 0 {
			fmt.Fprintln(stdout, "no host logs")
		}
		for _, l := range logs {
			fmt.Fprintln(stdout, l)
		}
		return 0
	case "export":
		if err := store.ExportHostLog(in.pos[1], in.pos[2], in.pos[3]); err != nil {
			return in.fail(1, err)
		}
		fmt.Fprintf(stdout, "exported %s: %s with the log's transactions\n", in.pos[3], in.pos[2])
		return 0
	}
	if err := store.ApplyHostLog(in.pos[1], in.pos[2], &store.Options{HostDir: dir}); err != nil {
		return in.fail(1, err)
	}
	fmt.Fprintf(stdout, "applied %s to %s\n", in.pos[1], in.pos[2])
	return 0
}
