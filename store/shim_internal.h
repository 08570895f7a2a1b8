/*
 * What the files of the ejectsafe VFS shim share (shim.c has the overview):
 * the per-database state, the file handle, and the functions one file of
 * the shim calls in another. Not for Go: shim.h is the Go-facing API.
 */
#ifndef EJECTSAFE_SHIM_INTERNAL_H
#define EJECTSAFE_SHIM_INTERNAL_H

#include <stdlib.h>
#include <string.h>

#include "sqlite_abi.h"
#include "shim.h"
#include "hostlog.h"


/* Exported from shim.go; db is the Store's owner id (es_dbstate.owner). */
extern int esGoOpen(uint64_t db, char *name, int flags, int kind, uint64_t *handle);
extern int esGoClose(uint64_t h);
extern int esGoRead(uint64_t h, void *p, int n, long long off);
extern int esGoWrite(uint64_t h, void *p, int n, long long off);
extern int esGoTruncate(uint64_t h, long long size);
extern int esGoSync(uint64_t h, int flags);
extern int esGoFileSize(uint64_t h, long long *size);
extern int esGoFileControl(uint64_t h, int op, long long arg);
extern int esGoDelete(uint64_t db, char *name, int syncDir);
extern int esGoAccess(uint64_t db, char *name, int flags, int *res);

#define ES_KIND_WAL 3 /* after shim.h's ES_KIND_MAIN and ES_KIND_JOURNAL */

#define ES_CHUNK (1 << 20) /* WAL memory grows by 1 MiB chunks that never move */

/* es_wal is one in-memory WAL file. */
typedef struct es_wal {
	sqlite3_mutex *mu;
	int exists;
	long long size;   /* written under mu with relaxed atomic stores: the gate reads it without mu */
	long long max;    /* writes past this answer SQLITE_FULL */
	long long retain; /* chunk bytes kept across truncation */
	long long writes;
	int cut; /* 1: the Store is closing; no frame may enter (es_wal_cut) */
	unsigned char **chunks;
	int nChunk; /* allocated chunks */
	int nSlot;  /* capacity of chunks[] */

	/* The host log (hostlog.c, hostlog.go): when hasLog, the chunks are
	 * a shared mapping of fd, which this WAL owns. */
	int hasLog;
	int fd;
	int synced;  /* HostSync: xSync flushes the log (fdatasync) */
	int syncErr; /* a failed flush: never retried on this fd (walFlushLocked) */
	long long moves;      /* the log moved to a new file after a failed flush */
	long long flushFails; /* failed flushes (es_wal_flush_fails) */
	char *logPath;
} es_wal;

typedef struct es_file es_file;

/* es_dbstate is the C half of a database's state in this process; Go's
 * half is its dbState (shim.go), named by owner. There is one registry of
 * them, this one (shim_registry.c), keyed by the database's path: the Go
 * callbacks are handed owner, never a path to look up. A record outlives
 * its Store while its WAL holds data (owner 0 then), so nothing committed
 * is lost while the process lives. */
typedef struct es_dbstate {
	char *path;
	size_t pathLen;
	int refs;       /* guarded by GMU */
	uint64_t owner; /* guarded by GMU: the open Store's dbState id; 0: none */
	struct es_dbstate *next;

	sqlite3_mutex *mu; /* guards the main-file locks and the wal-index regions below */

	/* Main-file locks between this process's connections. */
	int nShared; /* connections holding SHARED or more */
	int eLock;   /* the strongest lock any connection holds */

	/* wal-index regions; stable addresses while any connection maps them. */
	volatile void **regions;
	int nRegion;
	int nShmUser;
	/* The wal-index lock slots and the gate are atomics, outside mu
	 * (shim_shm.c). */
	int shmLock[SQLITE_SHM_NLOCK]; /* atomic: holders in SHARED, or -1 while one holds it EXCLUSIVE */
	int gate;                      /* atomic: 1: new transactions wait (see gateWait) */
	long long highwater;           /* atomic: >0: new transactions also wait while the WAL is larger */
	long long gateMaxMs;           /* atomic: the longest a transaction waits at the gate (es_gate_limit) */
	long long gateLongestMs;       /* under mu: the longest any did since es_gate_limit */

	es_wal wal;
} es_dbstate;

struct es_file {
	const sqlite3_io_methods *pMethods;
	int kind;
	es_dbstate *db;
	uint64_t h; /* Go handle (main file, journal) */
	int eLock;  /* this connection's main-file lock */
	int shmMapped;
	unsigned shmSharedMask;
	unsigned shmExclMask;
	int nogate; /* ES_FCNTL_NOGATE: this connection never waits at the gate */
};

/* GMU guards the registry: SQLite's static mutex set aside for an
 * application's VFS (SQLite's own mutexes serve every platform; no
 * pthreads). Taken only on open, close and stats, never on a commit. */
#define GMU sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS3)

extern sqlite3_vfs *gbase; /* the platform VFS we delegate to (shim.c) */

/* shim_registry.c */
es_dbstate *dbFindLocked(const char *path, size_t n);
es_dbstate *dbRef(const char *name, size_t suffix, uint64_t *owner);
uint64_t dbOwner(const char *name, size_t n);
uint64_t journalOwner(const char *name);
void dbUnref(es_dbstate *p);
int isWALName(const char *name);

/* shim_wal.c */
extern const sqlite3_io_methods walMethods;
int walGrowLocked(es_wal *w, long long end);
void walCopyLocked(es_wal *w, unsigned char *buf, long long n, long long off, int toWAL);
void walFreeChunks(es_wal *w, int keep);
void walDetachLog(es_wal *w);
int walFlushLocked(es_wal *w);

/* shim_main.c */
extern const sqlite3_io_methods mainMethods;
extern const sqlite3_io_methods journalMethods;
int noLock(sqlite3_file *pf, int lvl);
int noReserved(sqlite3_file *pf, int *res);
int noFileControl(sqlite3_file *pf, int op, void *arg);
int sector4K(sqlite3_file *pf);
int noCaps(sqlite3_file *pf);
int mainUnlock(sqlite3_file *pf, int lvl);

/* shim_shm.c */
int mainShmMap(sqlite3_file *pf, int iRegion, int szRegion, int extend, void volatile **pp);
int mainShmLock(sqlite3_file *pf, int ofst, int cnt, int flags);
int gateQuietState(es_dbstate *p);
void mainShmBarrier(sqlite3_file *pf);
int mainShmUnmap(sqlite3_file *pf, int deleteFlag);
void shmUnmapLocked(es_file *f);

#endif
