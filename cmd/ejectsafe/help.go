package main

import "fmt"

// runHelp prints the list of commands, or one command's usage block.
func runHelp(in *invocation) error {
	if len(in.pos) == 0 {
		fmt.Fprint(in.stdout, topUsage())
		return nil
	}
	c := lookup(in.pos[0])
	if c == nil {
		return usagef("unknown command %q", in.pos[0])
	}
	fmt.Fprint(in.stdout, commandUsage(c))
	return nil
}
