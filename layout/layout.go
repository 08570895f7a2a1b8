// Package layout is the one table of every file name ejectsafe puts on a
// drive beside a database, or on the host for it. Every package that
// makes, finds or removes one of these names takes it from here, so that
// two packages can never drift apart (a CLI looking for a lock file under
// another name than the Store takes would run recovery under a live
// Store).
//
// None of ejectsafe's own names ends in "-journal", "-wal" or "-shm", in
// any case (FAT and exFAT ignore case): SQLite, its tools and the VFS
// shim treat names with those suffixes as SQLite's own companion files.
//
//	name                                  what                                          made by
//	<db>                                  the database                                  SQLite, checkpoint (rename)
//	<db>.ejectsafe-jrnl                   the checkpoint journal                        checkpoint (jfile.go)
//	<db>.ejectsafe-jrnl.tmp               a new journal before its rename               checkpoint (jfile.go)
//	<db>.ejectsafe-tmp-<gen>              checkpoint gen's copy before its rename       checkpoint (commit.go)
//	<db>.ejectsafe-orphan-<gen>[-<n>]     a copy recovery keeps for a person            checkpoint (recover.go)
//	<db>.ejectsafe-aside-<n>.<kind>       a file moved aside on a person's choice       checkpoint (recover.go)
//	<db>.ejectsafe-lock                   the OS lock a Store holds while open          store (shim.go), CLI recover
//	<db>.ejectsafe-lease                  the lease, when the volume has no lease dir   lease (file.go)
//	<root>/.ejectsafe/leases/<x>.json     the leases of a volume                        lease (file.go, name.go)
//	<lease>.tmp-<pid>                     a lease before its rename                     lease (file.go)
//	<db>-wal, <db>-journal, <db>-shm      stock SQLite's companion files (never ours)   stock SQLite
//	<dir>/.ejectsafe-doctor-<random>/     the doctor's scratch directory                CLI doctor
//	<host dir>/<base>-<hash>.eslog        the host log (on the host, never the drive)   store (hostlog.go)
package layout

import "strconv"

// Beside the database: the checkpoint's files.
const (
	// JournalSuffix follows the database path in the journal's name.
	JournalSuffix = ".ejectsafe-jrnl"
	// JournalTempSuffix follows the journal's name in the name of a new
	// journal written (created, compacted or rebuilt) before its rename
	// over the journal. Recovery removes it: it only ever carries history
	// that is already resolved.
	JournalTempSuffix = ".tmp"
	// CopyInfix follows the database path in a checkpoint copy's name,
	// before the generation in decimal.
	CopyInfix = ".ejectsafe-tmp-"
	// OrphanInfix follows the database path in the name recovery moves a
	// copy to when it cannot vouch for it and there is no database to
	// prefer: the copy is kept for a person, out of the way.
	OrphanInfix = ".ejectsafe-orphan-"
	// AsideInfix follows the database path in the name of a file moved
	// out of the way on a person's choice (recover --keep-drive,
	// --roll-forward, --reset-journal): <db>.ejectsafe-aside-N.KIND.
	AsideInfix = ".ejectsafe-aside-"
)

// Beside the database: the store's and the lease's files.
const (
	// LockSuffix follows the database path in the name of the file a
	// Store holds an OS lock on while it is open.
	LockSuffix = ".ejectsafe-lock"
	// LeaseSuffix follows the database path in the name of its lease
	// when the volume has no lease directory.
	LeaseSuffix = ".ejectsafe-lease"
	// StateDir is ejectsafe's directory below a volume root; it holds
	// only LeaseDir.
	StateDir = ".ejectsafe"
	// LeaseDir is the lease directory, below the volume root.
	LeaseDir = StateDir + "/leases"
	// LeaseExt ends every lease file's name in LeaseDir.
	LeaseExt = ".json"
	// LeaseTempInfix follows a lease's path in the name it is written
	// under before its rename, before the writer's pid.
	LeaseTempInfix = ".tmp-"
	// DoctorDirPrefix starts the name of the doctor's scratch directory.
	DoctorDirPrefix = ".ejectsafe-doctor-"
)

// Stock SQLite's companion files of a database: never written by
// ejectsafe on the drive, but recovery and the shim must recognise them.
const (
	WALSuffix          = "-wal"
	RollbackSuffix     = "-journal"
	SharedMemorySuffix = "-shm"
)

// On the host: the host log of a database (store/hostlog.go).
const (
	// HostLogSuffix ends a host log's name.
	HostLogSuffix = ".eslog"
	// HostLogKeptInfix marks a host log kept aside for a person.
	HostLogKeptInfix = ".kept-"
	// HostLogAbandoningSuffix marks a host log being abandoned.
	HostLogAbandoningSuffix = ".abandoning"
	// HostLogMovingSuffix marks the new file a host log moves to after a
	// failed flush, until it is renamed over the log (store/hostlog.c's
	// ES_HL_MOVING, which must be the same).
	HostLogMovingSuffix = ".moving"
)

// Journal is the journal's path for the database at db.
func Journal(db string) string { return db + JournalSuffix }

// Copy is the path of checkpoint gen's copy of the database at db.
func Copy(db string, gen uint64) string { return db + CopyInfix + strconv.FormatUint(gen, 10) }

// Lock is the lock file's path for the database at db.
func Lock(db string) string { return db + LockSuffix }

// LeaseTemp is the name a lease at path is written under before its
// rename, by process pid.
func LeaseTemp(path string, pid int) string { return path + LeaseTempInfix + strconv.Itoa(pid) }

// How stock SQLite's files start (recovery and the stock-file checks
// recognise them by it).
const (
	// SQLiteHeader starts every SQLite database file.
	SQLiteHeader = "SQLite format 3\x00"
	// RollbackMagic starts the header of a rollback journal SQLite would
	// play back (pager.c's aJournalMagic).
	RollbackMagic = "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"
)
