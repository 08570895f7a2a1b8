package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// The command line: one table of commands drives parsing, `help`,
// `CMD --help`, the top-level usage, shell completion and the man page,
// so they cannot disagree. Parsing is the standard library's flag
// package, with flags allowed anywhere on the line (`status /mnt
// --json`): the few dozen lines that takes were preferred to a
// dependency (cobra, pflag) that would have to be linked into every
// build for the same result.

// command is one subcommand.
type command struct {
	name     string
	synopsis string // after "ejectsafe ", flags included
	short    string // one line for the command list
	long     string // the help text, wrapped by hand at 72 columns
	// flags declares the command's flags; a flag whose usage is empty is
	// hidden (internal: not in help, completion or the man page).
	flags func(fl *flag.FlagSet)
	// args is what completes positional arguments: "path", "dir" or "".
	args string
	// minArgs and maxArgs bound the positional arguments (maxArgs < 0:
	// no limit); parse refuses others with a usage error.
	minArgs, maxArgs int
	// run does the command; what it returns decides the exit code
	// (exit.go).
	run func(in *invocation) error
}

const jsonFlagUsage = "print one JSON object on stdout (schema: README, \"JSON output\")"

func jsonFlag(fl *flag.FlagSet) { fl.Bool("json", false, jsonFlagUsage) }

// commands is the table, in the order help lists them.
var commands []*command

func init() {
	commands = []*command{
		{
			name: "status", synopsis: "status [--json] PATH", args: "path",
			short: "the volume holding PATH, every lease on it and every process using it",
			long: `Describe the volume holding PATH (mount point, device, filesystem,
removable or not), every ejectsafe lease on it (holder pid and host, state,
bytes not yet checkpointed, asked through the holder's control endpoint:
all holders at once, within a second in all), and every other process
with files open on it. A lease whose holder answers for another database
or volume (copied from another drive, or planted) is reported invalid and
not followed; another user's lease, which only they and root may read, is
reported unreadable.`,
			flags: jsonFlag, minArgs: 1, maxArgs: 1, run: runStatus,
		},
		{
			name: "check", synopsis: "check [--json] PATH", args: "path",
			short: "exit 0 only when the volume holding PATH is safe to remove now",
			long: `Say whether pulling the volume holding PATH now would lose nothing
anyone wrote. Safe (exit 0) when it is not mounted, or when no live
ejectsafe holder has it, no process has a file open on it (named, as
fuser -m does, from /proc/*/fd, cwd, root, exe and maps), and the
kernel's cached writes have been flushed (check runs sync(2)). Not safe
(exit 1) names every holder and process. Stale and invalid leases are
reported and do not block; another user's lease, unreadable to this
user, counts as a live holder while the process its file name names
runs (a fallback lease: while its database's lock is held). PATH may be the block device (/dev/sdb1).`,
			flags: jsonFlag, minArgs: 1, maxArgs: 1, run: runCheck,
		},
		{
			name: "eject", synopsis: "eject [--timeout D] [--force] [--no-unmount] [--power-off] [--json] PATH", args: "path",
			short: "ask every holder to checkpoint and release, then unmount",
			long: `Make the volume holding PATH safe to remove. First, before anything is
asked of anyone, refuse when processes other than ejectsafe holders have
files open on the volume (named; --force goes on). Then ask every live
holder, all at once, to checkpoint and release, waiting at most
--timeout in all: only a holder that proved it holds its lease's
database on this volume is asked, and the request names that database
(a holder releases nothing else); then sync and unmount (udisksctl when it can act,
else umount(2), else fusermount -u) and, with --power-off, power the
drive off (udisksctl; refused before anything is done when it is
missing). A volume the kernel does not call removable is refused unless
PATH is its mount point or --force is given. PATH may be the block
device; one that is not mounted has nothing to unmount (exit 0).`,
			flags: func(fl *flag.FlagSet) {
				fl.Duration("timeout", 30*time.Second, "how long to wait for all holders together")
				fl.Bool("force", false, "go on when processes are busy, holders refuse or the volume is not removable")
				fl.Bool("no-unmount", false, "only make the holders release; leave the volume mounted")
				fl.Bool("power-off", false, "power the drive off after unmounting (needs udisksctl)")
				jsonFlag(fl)
			},
			minArgs: 1, maxArgs: 1, run: runEject,
		},
		{
			name: "recover", synopsis: "recover [--json] [--keep-drive | --roll-forward] [--reset-journal] PATH", args: "path",
			short: "roll an interrupted checkpoint back or forward",
			long: `Bring a database's directory to a clean state after a crash or a pull:
roll an interrupted checkpoint back or forward, deciding by checksums,
and remove leftovers. PATH must be an existing SQLite database (or an
empty file); anything else is refused with exit 2 and nothing is
created. A database a live store holds is refused.

Recovery acts only on what it can prove. When the drive was written
elsewhere after the pull (the database is neither the checkpoint's base
nor its copy, or stock SQLite left a -wal or -journal beside it), it
changes nothing, names the files and exits 1; a person then chooses:
--keep-drive keeps the database as it is on the drive (with its -wal or
-journal, folded in at the next open) and moves the checkpoint's copy
aside (refused when there is no database to keep); --roll-forward takes the checkpoint's copy and moves the
database and its -wal, -journal and -shm aside. A checkpoint journal
recover cannot use (larger than any ejectsafe writes, a newer format)
is refused the same way; --reset-journal moves it and any copies aside,
after integrity_check proves the database itself sound. Nothing is
deleted: what is set aside is named <db>.ejectsafe-aside-N.KIND or
<db>.ejectsafe-orphan-GEN.`,
			flags: func(fl *flag.FlagSet) {
				fl.Bool("keep-drive", false, "settle a refused checkpoint by keeping the database as it is on the drive; the copy goes aside")
				fl.Bool("roll-forward", false, "settle a refused checkpoint by taking its copy; the database and its -wal, -journal, -shm go aside")
				fl.Bool("reset-journal", false, "move an unusable checkpoint journal and its copies aside (the database must pass integrity_check)")
				jsonFlag(fl)
			},
			minArgs: 1, maxArgs: 1, run: runRecover,
		},
		{
			name: "verify", synopsis: "verify [--json] PATH", args: "path",
			short: "read-only: journal state, checksum, integrity_check",
			long: `Read-only: the checkpoint journal's state, what recover would do,
whether the database is what the last checkpoint wrote (size and
checksum), SQLite's integrity_check of the database file as it is on
the drive, and whether a -wal or -journal stock SQLite left beside it
belongs to it (for a -wal, the fold is tried on copies in a temporary
directory). Anything not clean exits 1 with the report: a corrupt
database, a foreign -wal or -journal, a checkpoint to settle. PATH must
be an existing SQLite database (or a damaged one with a checkpoint
journal beside it); anything else is refused with exit 2.`,
			flags: jsonFlag, minArgs: 1, maxArgs: 1, run: runVerify,
		},
		{
			name: "doctor", synopsis: "doctor [--json] PATH", args: "path",
			short: "is the filesystem holding PATH safe for ejectsafe? (live probes)",
			long:  doctorLong,
			flags: func(fl *flag.FlagSet) {
				jsonFlag(fl)
				fl.String("mmap-child", "", "") // hidden: the other process of the shm probe
			},
			minArgs: 0, maxArgs: -1, run: runDoctor,
		},
		{
			name: "rescue", synopsis: "rescue [--host-dir DIR] list | export LOG BASE DST | apply LOG DB", args: "path",
			short: "host logs: list them, export one as a database, apply one to its database",
			long: `The commits a store kept in its host log (Durability HostLog or
HostSync) when its drive is gone, or in a log an open kept aside. list
names each log in DIR (default: the user's cache directory, ejectsafe):
its database, the checkpoint it continues, its level and how many
committed transactions it holds. export writes DST, a complete SQLite
database: BASE (the database, from the drive when readable) with LOG's
transactions on top, proven to continue BASE; LOG and BASE are only
read. apply replays LOG onto its database DB, and refuses (exit 1, DB
unchanged) a log of another database or another generation of it.`,
			flags: func(fl *flag.FlagSet) {
				fl.String("host-dir", "", "the host-log directory (default: the user's cache directory/ejectsafe)")
			},
			minArgs: 1, maxArgs: 4, run: runRescue,
		},
		{
			name: "demo", synopsis: "demo [DIR]", args: "dir",
			short: "a store in DIR: concurrent commits, the file unchanged until a checkpoint",
			long: `Open a store in DIR (default: a fresh temporary directory), commit rows
from several goroutines, show that the database file does not change
until a checkpoint, then read it back.`,
			flags: func(*flag.FlagSet) {}, minArgs: 0, maxArgs: 1, run: runDemo,
		},
		{
			name: "bench", synopsis: "bench [--dir DIR] [--quick] [--json] [--out FILE] [--wear [--wear-mib N] [--wear-rate N] [--wear-for DUR]] [--modes-table [--modes-mib LIST] [--modes-iters N]] [--throttle MBPS]",
			short: "measure the store against stock SQLite on a filesystem",
			long: `Measure the store against stock SQLite on DIR's filesystem: progress
on stderr, Markdown tables on stdout (with --json the JSON report on
stdout and the tables on stderr).

With --wear, measure only the wear section: a database of --wear-mib MiB
takes random single-row UPDATEs at --wear-rate commits per second for
--wear-for, in the store and in stock SQLite (WAL NORMAL and FULL,
rollback journal FULL); reported per mode: bytes written to the block
device under DIR, bytes per commit, checkpoints and their duration, and
the longest time a commit waited to become durable on the drive.
--throttle MBPS caps the writes of the FUSE daemon serving DIR's mount
(exFAT on a loop device, say) at MBPS MB/s through a cgroup-v1 blkio
group: an emulated slow stick (needs root; skipped, loudly, elsewhere).

With --modes-table, measure only the checkpoint-modes table (or it and
the wear section, with --wear): checkpoint time and bytes written (to the
block device under DIR, and by write calls) for each CheckpointMode
(Copy, InPlace, Auto), for databases of each size in --modes-mib (a
comma-separated list of MiB; 16 MiB to 1 GiB by default) at 0.1%, 1%,
10% and 50% of pages dirty, --modes-iters iterations each; per row, the
in-place bytes over 2.1 x the dirty pages + 64 KiB, and Auto over the
better fixed mode. --throttle applies to it too. The full run (without
--quick) includes a 16 MiB table.`,
			flags: func(fl *flag.FlagSet) {
				fl.String("dir", "", "measure on DIR's filesystem (default: a temporary directory)")
				fl.Bool("quick", false, "small databases and few iterations: under a minute")
				jsonFlag(fl)
				fl.String("out", "", "also write the report to FILE, and an SVG chart next to it")
				fl.Bool("wear", false, "measure only the wear section (device bytes written by a steady workload)")
				fl.Int("wear-mib", 128, "wear: database size in MiB")
				fl.Int("wear-rate", 20, "wear: commits per second")
				fl.Duration("wear-for", time.Minute, "wear: how long each mode commits")
				fl.Bool("modes-table", false, "measure only the checkpoint-modes table (with --wear: and the wear section)")
				fl.String("modes-mib", "16,64,256,1024", "modes table: database sizes in MiB, comma-separated")
				fl.Int("modes-iters", 3, "modes table: iterations per mode, size and dirty share")
				fl.Float64("throttle", 0, "wear, modes table: cap the FUSE daemon's device writes at MBPS MB/s (cgroup-v1 blkio; root)")
			},
			minArgs: 0, maxArgs: 0, run: runBench,
		},
		{
			name: "version", synopsis: "version [--json]",
			short: "print the version of ejectsafe, Go and SQLite",
			long:  `Print ejectsafe's version and the Go and SQLite versions it was built with.`,
			flags: jsonFlag, minArgs: 0, maxArgs: 0, run: runVersion,
		},
		{
			name: "help", synopsis: "help [COMMAND]", args: "command",
			short: "this list, or the full help of COMMAND",
			long:  `Print the list of commands, or the full help of COMMAND (as COMMAND --help does).`,
			flags: func(*flag.FlagSet) {}, minArgs: 0, maxArgs: 1, run: runHelp,
		},
		{
			name: "completion", synopsis: "completion bash", args: "shell",
			short: "print a bash completion script",
			long: `Print a bash completion script for ejectsafe. Load it in the current
shell with: source <(ejectsafe completion bash); or install it as
/etc/bash_completion.d/ejectsafe.`,
			flags: func(*flag.FlagSet) {}, minArgs: 1, maxArgs: 1, run: runCompletion,
		},
		{
			name: "man", synopsis: "man",
			short: "print the manual page (roff)",
			long:  `Print ejectsafe's manual page in roff; view it with: ejectsafe man | man -l -`,
			flags: func(*flag.FlagSet) {}, minArgs: 0, maxArgs: 0, run: runMan,
		},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// exitCodes is README's exit-code table; help prints it and a test
// checks README against testdata/exit_codes.golden.
const exitCodes = `exit codes:
  0  success; check: safe to remove now; eject: unmounted (or, with
     --no-unmount, every holder released)
  1  the command ran and found a problem: check: not safe (holders and
     processes named); eject: busy processes, a holder that refused or
     did not answer, or a failed unmount (named); verify: the database
     is not clean; recover: it cannot tell what is right and changed
     nothing; doctor: a check the store depends on failed; rescue:
     export or apply refused the log (nothing changed)
  2  usage or operational error: bad flags, a missing path, a directory
     or a file that is not a database where one is needed, a volume
     eject refuses (not removable, the root filesystem), --power-off
     without udisksctl
`

// commandList is the list of commands, one line each, as help prints it
// (README shows it too, tested).
func commandList() string {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.short)
	}
	return b.String()
}

func topUsage() string {
	var b strings.Builder
	b.WriteString("usage: ejectsafe <command> [arguments]   (flags may go anywhere)\n\ncommands:\n")
	b.WriteString(commandList())
	b.WriteString("\nejectsafe help COMMAND (or COMMAND --help) explains one.\n\n")
	b.WriteString(exitCodes)
	return b.String()
}

// visibleFlags returns c's documented flags, sorted by name.
func visibleFlags(c *command) []*flag.Flag {
	fl := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(fl)
	var out []*flag.Flag
	fl.VisitAll(func(f *flag.Flag) {
		if f.Usage != "" {
			out = append(out, f)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// flagArg is the placeholder for f's value in help: "" for a boolean.
func flagArg(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	switch f.Name {
	case "timeout":
		return "D"
	case "dir":
		return "DIR"
	case "out":
		return "FILE"
	case "wear-mib", "wear-rate", "modes-iters":
		return "N"
	case "modes-mib":
		return "LIST"
	case "wear-for":
		return "DUR"
	case "throttle":
		return "MBPS"
	}
	return "VALUE"
}

// commandUsage is c's one usage block: synopsis, text, flags, exit codes.
func commandUsage(c *command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: ejectsafe %s\n\n%s\n", c.synopsis, strings.TrimSpace(c.long))
	if fs := visibleFlags(c); len(fs) > 0 {
		b.WriteString("\nflags:\n")
		for _, f := range fs {
			name := "--" + f.Name
			if a := flagArg(f); a != "" {
				name += " " + a
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(&b, "  %-14s %s%s\n", name, f.Usage, def)
		}
	}
	b.WriteString("\n" + exitCodes)
	return b.String()
}

// invocation is a parsed command line.
type invocation struct {
	cmd    *command
	args   []string // as given, after the command's name
	fl     *flag.FlagSet
	pos    []string
	json   bool
	stdout io.Writer
	stderr io.Writer
}

func (in *invocation) bool(name string) bool {
	return in.fl.Lookup(name).Value.(flag.Getter).Get().(bool)
}
func (in *invocation) str(name string) string { return in.fl.Lookup(name).Value.String() }
func (in *invocation) dur(name string) time.Duration {
	return in.fl.Lookup(name).Value.(flag.Getter).Get().(time.Duration)
}

// exec parses args for c and runs it; it returns the exit code.
func (c *command) exec(args []string, stdout, stderr io.Writer) int {
	in, err := parse(c, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, commandUsage(c))
		return exitOK
	}
	if err == nil {
		err = c.run(in)
	}
	return in.finish(err)
}

// parse parses args for the command c, flags anywhere. It returns
// flag.ErrHelp for --help, or a usage error (with the invocation, to
// report it).
func parse(c *command, args []string, stdout, stderr io.Writer) (*invocation, error) {
	in := &invocation{cmd: c, args: args, stdout: stdout, stderr: stderr}
	in.fl = flag.NewFlagSet(c.name, flag.ContinueOnError)
	in.fl.SetOutput(io.Discard)
	in.fl.Usage = func() {}
	c.flags(in.fl)
	in.json = wantsJSON(args) && in.fl.Lookup("json") != nil
	for {
		if err := in.fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return in, err
			}
			return in, usagef("%v", err)
		}
		rest := in.fl.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			in.pos = append(in.pos, rest...) // after "--", everything is positional
			break
		}
		in.pos = append(in.pos, rest[0])
		args = rest[1:]
	}
	if j := in.fl.Lookup("json"); j != nil {
		in.json = j.Value.(flag.Getter).Get().(bool)
	}
	minArgs, maxArgs := c.minArgs, c.maxArgs
	switch {
	case len(in.pos) < minArgs && minArgs == maxArgs && minArgs == 1:
		return in, usagef("want exactly one PATH, got %d", len(in.pos))
	case len(in.pos) < minArgs:
		return in, usagef("want at least %d arguments, got %d", minArgs, len(in.pos))
	case maxArgs >= 0 && len(in.pos) > maxArgs && maxArgs == 1 && minArgs == 1:
		return in, usagef("want exactly one PATH, got %d", len(in.pos))
	case maxArgs >= 0 && len(in.pos) > maxArgs:
		return in, usagef("unexpected argument %q", in.pos[maxArgs])
	}
	return in, nil
}

// wantsJSON reports whether args ask for JSON, before they are parsed,
// so that a usage error can be answered in JSON too.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "-json", "--json=true", "-json=true", "--json=1", "-json=1":
			return true
		}
	}
	return false
}
