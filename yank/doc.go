// Package yank holds the surprise-removal tests: real exFAT and FAT
// volumes (faultinject/realfs) pulled under a process that commits and
// checkpoints, for the store and, side by side, for plain SQLite. It has
// no code of its own; the tests are Linux-only and need root, /dev/fuse
// and loop devices (realfs.Skip says what is missing, and fails under CI).
//
//	yank_test.go     TestYank: the rounds (child, pull moment, pull)
//	check_test.go    what is checked after each pull
//	child_test.go    the child process: store, wal-normal, delete-full
//	main_test.go     flags, the child dispatch, the summary lines
//	fsync_test.go    which call makes a fsynced file survive a pull
//	fusefat_test.go  fusefat's own bugs, and the store with no pull
//	full_test.go     drive full and read-only
//	fs_test.go       the FS the store gets on fusefat (flags truncates to 0)
//
// Run it with -v to see the summary (go test prints a passing package's
// output only in verbose mode):
//
//	go test -count=1 -v ./yank | grep '^yank:'
//	yank: 20 pulls on exfat, 20 on vfat, 0 failures
//	yank: plain SQLite: ...
//
// Flags: -yank.full (hundreds of pulls, databases up to 256 MiB; give
// -timeout 3h), -yank.seed and -yank.pulls (replay: every failure prints
// the command), -yank.kinds, -yank.targets. The pull moment is a delay
// after a line from the child, so a replay repeats the decisions, not
// the exact instant.
//
// The store is asserted on FAT as on exFAT. fusefat, the only FAT driver
// for FUSE, loses a file's data when the file is extended through a new
// handle or written below an earlier extension, with no pull at all
// (TestFusefat_Bugs shows it on a volume of its own); the store does
// neither (its copy is one ordered pass, its journal is preallocated) and
// checks every copy it wrote against what it meant to write. Plain
// SQLite's outcomes are counted for the summary on every filesystem, never
// failed.
package yank
