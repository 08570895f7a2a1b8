/*
 * The C half of the ejectsafe VFS shim: what Go calls. See shim.c.
 */
#ifndef EJECTSAFE_SHIM_H
#define EJECTSAFE_SHIM_H

#include <stdint.h>

/* es_register registers the "ejectsafe" VFS once; it returns an SQLite code. */
int es_register(void);

/* The kinds of file the shim hands to Go (esGoOpen in shim.go). */
#define ES_KIND_MAIN 1
#define ES_KIND_JOURNAL 2

/* ES_NOT_MINE is what the Go callbacks answer for a name no Store owns:
 * the shim then hands it to the platform's VFS. */
#define ES_NOT_MINE (-1)

/* The suffixes the shim recognises on its own, as in package layout's
 * table (store's TestLayout_cNames compares them). */
#define ES_JOURNAL_SUFFIX "-journal"
#define ES_WAL_SUFFIX "-wal"

/*
 * es_db_acquire enters the database at path in the shim's registry, the
 * one registry of databases this process opened (making its state or
 * finding what an earlier Store left), takes a reference on it and names
 * owner, the id of the opening Store's dbState (shim.go), as its owner:
 * the id every Go callback about the database is handed. It answers
 * SQLITE_BUSY when another Store of this process owns it. maxWAL caps
 * the in-memory WAL (xWrite past it answers SQLITE_FULL); retainWAL is
 * how much WAL memory survives a truncation, so the next transactions
 * reuse touched pages. es_db_release undoes it: no owner, one reference
 * less.
 */
int es_db_acquire(const char *path, uint64_t owner, long long maxWAL, long long retainWAL);
void es_db_release(const char *path);

/* es_wal_stats reports the in-memory WAL of path; it returns 0 when unknown. */
typedef struct es_wal_stats {
	long long size;      /* logical bytes in the WAL */
	long long allocated; /* bytes of memory held for it */
	long long writes;    /* xWrite calls ever made to it */
	long long dirty;     /* bytes of frames not yet backfilled (wal-index) */
	int exists;          /* opened and not deleted */
} es_wal_stats;
int es_wal_stat(const char *path, es_wal_stats *out);

/* es_wal_load fills the in-memory WAL of path with n bytes of a WAL file
 * that stock SQLite left on the drive, before any connection opens; the
 * cap does not apply. It returns an SQLite code. */
int es_wal_load(const char *path, const void *data, long long n);

/* es_wal_discard drops the in-memory WAL of path: its committed frames
 * are lost. Only for a Store being abandoned, with no connection open. */
void es_wal_discard(const char *path);

/*
 * es_wal_attach backs the WAL of path with the host log open on fd (see
 * hostlog.go), before any connection opens: the WAL's chunks become a
 * shared mapping of the file, whose first size bytes (after its header)
 * are taken as the WAL (a replay), or none. The WAL owns fd from then on.
 * synced (HostSync) makes SQLite's xSync of the WAL flush the file.
 * xDelete of the WAL removes logPath; es_wal_discard keeps it. It returns
 * an SQLite code.
 */
int es_wal_attach(const char *path, int fd, const char *logPath, int synced, long long size);

/* es_wal_limits sets the cap and retained size of the WAL of path. */
void es_wal_limits(const char *path, long long maxWAL, long long retainWAL);

/* es_wal_sync flushes the host log of path; it returns 0 or an errno. A
 * failed flush is never retried on that file: the log moves to a new one,
 * which later calls flush. */
int es_wal_sync(const char *path);

/* es_wal_head writes n bytes at off to the host log of path (the header:
 * the file the WAL maps now, which a failed flush may have moved) and
 * sets *moves to the number of such moves; it returns 0 or an errno. */
int es_wal_head(const char *path, const void *buf, long long n, long long off, long long *moves);

/* es_wal_flush_fails counts the failed flushes of the host log of path
 * (SQLite's xSync of the WAL and es_wal_sync alike). */
long long es_wal_flush_fails(const char *path);

/* es_shm_selftest exercises the wal-index lock slots on a database state
 * of its own (for tests): 0, or the number of the first check that
 * failed. */
int es_shm_selftest(void);

/* es_lock_state reports the main-file lock table of path (for tests). */
int es_lock_state(const char *path, int *nShared, int *eLock, int *nShmUser);

/*
 * es_gate sets the gate of path: closed=1 closes it, 0 opens it, -1 leaves
 * it; highwater>0 makes it close by itself while the WAL is larger, 0 turns
 * that off, -1 leaves it. While it is closed, a connection beginning a
 * transaction waits (up to es_gate_limit's bound) before its first
 * wal-index lock.
 * es_gate_quiet answers 1 when no connection holds the writer lock or any
 * reader lock, so a TRUNCATE checkpoint gets in at once. Both return 0
 * when path is unknown. See shim.c.
 */
int es_gate(const char *path, int closed, long long highwater);
int es_gate_quiet(const char *path);

/* es_gate_limit bounds the wait at the gate of path (milliseconds; 0 gives
 * 1 s) and forgets the longest wait; es_gate_longest reports the longest
 * wait since, in milliseconds. */
int es_gate_limit(const char *path, long long maxWaitMs);
long long es_gate_longest(const char *path);

/* es_gate_mark reports the high-water mark es_gate set on path (0: off;
 * -1: path unknown). */
long long es_gate_mark(const char *path);

/* ES_FCNTL_NOGATE, an xFileControl opcode of the ejectsafe VFS's main
 * files (sqlite3_file_control with a pointer to an int): nonzero makes
 * the connection pass the gate without waiting (the Store's own
 * connection, on which its checkpoints run), 0 undoes it. Far above
 * SQLite's own SQLITE_FCNTL_ opcodes. */
#define ES_FCNTL_NOGATE 0x45530001

/*
 * es_wal_cut with cut=1 makes every later write to the in-memory WAL of
 * path answer SQLITE_READONLY: no transaction commits after it (Close's
 * clean cut). es_db_acquire clears it. es_writer_busy answers 1 while a
 * connection holds the WAL writer lock (a transaction writing, or
 * publishing its commit). Both return 0 when path is unknown.
 */
int es_wal_cut(const char *path, int cut);
int es_writer_busy(const char *path);

#endif
