package main

import (
	"fmt"

	"github.com/ejectsafe/ejectsafe/store"
)

// runRescue lists the host logs, exports one as a database or applies
// one to its database; a log export or apply refuses is a finding
// (nothing changed).
func runRescue(in *invocation) error {
	stdout := in.stdout
	dir := in.fl.Lookup("host-dir").Value.String()
	want := map[string]int{"list": 1, "export": 4, "apply": 3}
	n, ok := want[in.pos[0]]
	if !ok {
		return usagef("want list, export or apply, got %q", in.pos[0])
	}
	if len(in.pos) != n {
		return usagef("%s takes %d arguments, got %d", in.pos[0], n-1, len(in.pos)-1)
	}
	switch in.pos[0] {
	case "list":
		logs, err := store.ListHostLogs(dir)
		if err != nil {
			return err
		}
		if len(logs) == 0 {
			fmt.Fprintln(stdout, "no host logs")
		}
		for _, l := range logs {
			fmt.Fprintln(stdout, l)
		}
		return nil
	case "export":
		if err := store.ExportHostLog(in.pos[1], in.pos[2], in.pos[3]); err != nil {
			return problem(err)
		}
		fmt.Fprintf(stdout, "exported %s: %s with the log's transactions\n", in.pos[3], in.pos[2])
		return nil
	}
	if err := store.ApplyHostLog(in.pos[1], in.pos[2], &store.Options{HostDir: dir}); err != nil {
		return problem(err)
	}
	fmt.Fprintf(stdout, "applied %s to %s\n", in.pos[1], in.pos[2])
	return nil
}
