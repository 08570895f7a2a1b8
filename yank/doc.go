// Package yank holds the surprise-removal tests: real exFAT and FAT
// volumes (faultinject/realfs) pulled under a process that commits and
// checkpoints, for the store and, side by side, for plain SQLite. It has
// no code of its own; the tests are Linux-only and need root, /dev/fuse
// and loop devices (realfs.Skip says what is missing, and fails under CI).
//
//	yank_test.go     TestYank: the rounds (child, pull moment, pull)
//	check_test.go    what is checked after each pull
//	child_test.go    the child process: store (Auto), store-inplace,
//	                 store-copy, wal-normal, delete-full; the batches
//	workload_test.go the parent's model of the table (grow and churn
//	                 batches) and the sig that tells its states apart
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
// Each round commits grow batches (rows appended: the file grows) and
// churn batches (rows rewritten all over the file), so checkpoints have
// dirty pages throughout and change the size, and a pull lands inside
// an in-place checkpoint's redo log's life about one round in three
// (the child reports the log's creation, the parent pulls after it).
// After each pull the stock sqlite3 shell reads a copy of the drive's
// files before store.Open recovers anything, and must see the state of
// the last completed checkpoint or of the one in flight, integrity ok.
//
// Flags: -yank.full (hundreds of pulls, databases up to 256 MiB, and a
// few at 1 GiB on exFAT; give -timeout 3h), -yank.seed and -yank.pulls (replay: every failure prints
// the command), -yank.kinds, -yank.targets. The pull moment is a delay
// after a line from the child, so a replay repeats the decisions, not
// the exact instant.
//
// The store is asserted on FAT as on exFAT. fusefat, the only FAT driver
// for FUSE, loses a file's data when the file is extended through a new
// handle or written below an earlier extension, with no pull at all
// (TestFusefat_Bugs shows it on a volume of its own); the store does
// neither (its copy is one ordered pass, its journal is preallocated, a
// checkpoint that grows the database copies instead of writing in place
// there) and reads back every copy and every in-place write. Plain
// SQLite's outcomes are counted for the summary on every filesystem, never
// failed.
package yank
