/*
 * The ejectsafe VFS shim, C half.
 *
 * Three kinds of file go through this VFS:
 *
 *   the WAL        kept in heap memory here, in a process-wide registry keyed
 *                  by the database path, so it outlives any one connection;
 *                  dropped only by xDelete. Never touches the drive.
 *   the wal-index  (xShm*) kept in heap memory here too, shared by every
 *                  connection of this process to the same database. No -shm
 *                  file, no mmap.
 *   the main file  locks are kept here, in process; every byte of I/O goes to
 *                  Go (shim.go), which sends it through device.FS and the
 *                  checkpoint hooks. Rollback journals go to Go as well.
 *
 * Everything else (temporary files, which SQLite names NULL) is delegated
 * to the platform's default VFS and never lands on the drive.
 *
 * The commit path (WAL frame writes, wal-index reads and locks) stays in C:
 * a C-to-Go call costs 100-200 ns and a commit makes several such calls.
 * Main-file I/O happens on cache misses and checkpoints only.
 *
 * Go pointers are never stored here: Go files are named by a uint64 handle.
 */

#include <stdlib.h>
#include <string.h>

#include "sqlite_abi.h"
#include "shim.h"
#include "hostlog.h"

#ifndef SQLITE_MISUSE
#define SQLITE_MISUSE 21
#endif
#ifndef SQLITE_IOERR_FSYNC
#define SQLITE_IOERR_FSYNC (SQLITE_IOERR | (4 << 8))
#endif

/* Exported from shim.go. */
extern int esGoOpen(char *name, int flags, int kind, uint64_t *handle);
extern int esGoClose(uint64_t h);
extern int esGoRead(uint64_t h, void *p, int n, long long off);
extern int esGoWrite(uint64_t h, void *p, int n, long long off);
extern int esGoTruncate(uint64_t h, long long size);
extern int esGoSync(uint64_t h, int flags);
extern int esGoFileSize(uint64_t h, long long *size);
extern int esGoFileControl(uint64_t h, int op, long long arg);
extern int esGoDelete(char *name, int syncDir);
extern int esGoAccess(char *name, int flags, int *res);

#define ES_KIND_MAIN 1
#define ES_KIND_JOURNAL 2
#define ES_KIND_WAL 3

#define ES_CHUNK (1 << 20) /* WAL memory grows by 1 MiB chunks that never move */

/* es_wal is one in-memory WAL file. */
typedef struct es_wal {
	sqlite3_mutex *mu;
	int exists;
	long long size;
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

/* es_node is the in-process state of one database. */
typedef struct es_node {
	char *path;
	size_t pathLen;
	int refs; /* guarded by gmu */
	struct es_node *next;

	sqlite3_mutex *mu; /* guards locks and wal-index below */

	/* Main-file locks between this process's connections. */
	int nShared; /* connections holding SHARED or more */
	int eLock;   /* the strongest lock any connection holds */

	/* wal-index regions; stable addresses while any connection maps them. */
	volatile void **regions;
	int nRegion;
	int nShmUser;
	int shmShared[SQLITE_SHM_NLOCK]; /* holders of each slot in SHARED */
	int shmExcl[SQLITE_SHM_NLOCK];   /* 1 while a connection holds it EXCLUSIVE */
	int gate;                        /* 1: new transactions wait (see gateWaitLocked) */
	long long highwater;             /* >0: new transactions also wait while the WAL is larger */
	long long gateMaxMs;             /* the longest a transaction waits at the gate (es_gate_limit) */
	long long gateLongestMs;         /* the longest any did since es_gate_limit */

	es_wal wal;
} es_node;

struct es_file {
	const sqlite3_io_methods *pMethods;
	int kind;
	es_node *node;
	uint64_t h; /* Go handle (main file, journal) */
	int eLock;  /* this connection's main-file lock */
	int shmMapped;
	unsigned shmSharedMask;
	unsigned shmExclMask;
	int nogate; /* ES_FCNTL_NOGATE: this connection never waits at the gate */
};

static int walGrowLocked(es_wal *w, long long end);
static void walCopyLocked(es_wal *w, unsigned char *buf, long long n, long long off, int toWAL);

/* GMU guards the node registry: SQLite's static mutex set aside for an
 * application's VFS (SQLite's own mutexes serve every platform; no
 * pthreads). Taken only on open, close and stats, never on a commit. */
#define GMU sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS3)
static es_node *gnodes;
static sqlite3_vfs *gbase; /* the platform VFS we delegate to */
static sqlite3_vfs gvfs;

/* ---- node registry (callers hold gmu) ---- */

static es_node *nodeFindLocked(const char *path, size_t n) {
	es_node *p;
	for (p = gnodes; p; p = p->next) {
		if (p->pathLen == n && memcmp(p->path, path, n) == 0) return p;
	}
	return 0;
}

static void walFreeChunks(es_wal *w, int keep) {
	while (w->nChunk > keep) {
		w->nChunk--;
		if (w->hasLog) es_hl_unmap(w->chunks[w->nChunk], ES_CHUNK);
		else free(w->chunks[w->nChunk]);
		w->chunks[w->nChunk] = 0;
	}
}

/* walDetachLog unmaps the host log and closes it; the file stays (for
 * the next Open's replay) unless the caller removes it. */
static void walDetachLog(es_wal *w) {
	if (!w->hasLog) return;
	walFreeChunks(w, 0);
	es_hl_close(w->fd);
	w->hasLog = 0;
	w->synced = 0;
	w->syncErr = 0;
	free(w->logPath);
	w->logPath = 0;
}

/* nodeUnrefLocked drops a reference; a node whose WAL holds data is kept so
 * nothing committed is lost while the process lives. */
static void nodeUnrefLocked(es_node *p) {
	es_node **pp;
	p->refs--;
	if (p->refs > 0) return;
	if (p->wal.exists && p->wal.size > 0) return;
	for (pp = &gnodes; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	walDetachLog(&p->wal);
	walFreeChunks(&p->wal, 0);
	free(p->wal.chunks);
	free((void *)p->regions);
	sqlite3_mutex_free(p->wal.mu);
	sqlite3_mutex_free(p->mu);
	free(p->path);
	free(p);
}

int es_node_acquire(const char *path, long long maxWAL, long long retainWAL) {
	size_t n = strlen(path);
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, n);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p || !(p->path = malloc(n + 1))) {
			free(p);
			sqlite3_mutex_leave(GMU);
			return SQLITE_NOMEM;
		}
		p->mu = sqlite3_mutex_alloc(SQLITE_MUTEX_FAST);
		p->wal.mu = sqlite3_mutex_alloc(SQLITE_MUTEX_FAST);
		if (!p->mu || !p->wal.mu) {
			sqlite3_mutex_free(p->mu);
			sqlite3_mutex_free(p->wal.mu);
			free(p->path);
			free(p);
			sqlite3_mutex_leave(GMU);
			return SQLITE_NOMEM;
		}
		memcpy(p->path, path, n + 1);
		p->pathLen = n;
		p->next = gnodes;
		gnodes = p;
	}
	sqlite3_mutex_enter(p->wal.mu);
	p->wal.max = maxWAL;
	p->wal.retain = retainWAL;
	p->wal.cut = 0; /* a new Store: writes are welcome again */
	sqlite3_mutex_leave(p->wal.mu);
	p->refs++;
	sqlite3_mutex_leave(GMU);
	return SQLITE_OK;
}

void es_node_release(const char *path) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) nodeUnrefLocked(p);
	sqlite3_mutex_leave(GMU);
}

/* Offsets in wal-index region 0 (SQLite's documented wal-index format,
 * walformat.html): the first header copy's szPage and mxFrame, and the
 * checkpoint info's nBackfill. */
#define WI_SZPAGE 14
#define WI_MXFRAME 16
#define WI_NBACKFILL 96
#define WAL_FRAME_HDR 24

int es_wal_stat(const char *path, es_wal_stats *out) {
	es_node *p;
	memset(out, 0, sizeof(*out));
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		if (p->nRegion > 0) {
			const volatile unsigned char *hdr = p->regions[0];
			unsigned mx = *(const volatile unsigned *)(hdr + WI_MXFRAME);
			unsigned bf = *(const volatile unsigned *)(hdr + WI_NBACKFILL);
			unsigned sz = *(const volatile unsigned short *)(hdr + WI_SZPAGE);
			if (sz == 1) sz = 65536;
			if (mx > bf) out->dirty = (long long)(mx - bf) * (sz + WAL_FRAME_HDR);
		}
		sqlite3_mutex_leave(p->mu);
		sqlite3_mutex_enter(p->wal.mu);
		out->size = p->wal.size;
		out->allocated = (long long)p->wal.nChunk * ES_CHUNK;
		out->writes = p->wal.writes;
		out->exists = p->wal.exists;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

int es_wal_load(const char *path, const void *data, long long n) {
	es_node *p;
	int rc = SQLITE_CANTOPEN;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		rc = walGrowLocked(&p->wal, n);
		if (rc == SQLITE_OK) {
			walCopyLocked(&p->wal, (unsigned char *)data, n, 0, 1);
			p->wal.size = n;
			p->wal.exists = 1;
		}
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return rc;
}

void es_wal_discard(const char *path) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		p->wal.exists = 0;
		p->wal.size = 0;
		walDetachLog(&p->wal); /* the log file stays, for the next Open */
		walFreeChunks(&p->wal, 0);
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
}

int es_wal_attach(const char *path, int fd, const char *logPath, int synced, long long size) {
	es_node *p;
	int rc = SQLITE_CANTOPEN;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		if (p->wal.hasLog || p->wal.nChunk > 0 || p->wal.size > 0) {
			rc = SQLITE_MISUSE; /* a WAL already in memory */
		} else if (!es_hl_supported()) {
			rc = SQLITE_CANTOPEN;
		} else if (!(p->wal.logPath = malloc(strlen(logPath) + 1))) {
			rc = SQLITE_NOMEM;
		} else {
			memcpy(p->wal.logPath, logPath, strlen(logPath) + 1);
			p->wal.hasLog = 1;
			p->wal.fd = fd;
			p->wal.synced = synced;
			p->wal.syncErr = 0;
			rc = walGrowLocked(&p->wal, size);
			if (rc == SQLITE_OK) {
				p->wal.size = size;
				p->wal.exists = size > 0;
			} else {
				walFreeChunks(&p->wal, 0);
				free(p->wal.logPath);
				p->wal.logPath = 0;
				p->wal.hasLog = 0;
			}
		}
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return rc;
}

void es_wal_limits(const char *path, long long maxWAL, long long retainWAL) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		p->wal.max = maxWAL;
		p->wal.retain = retainWAL;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
}

/* walMoveLocked moves a host log whose flush failed to a new file (never
 * flushing the old one again): the new file is written from the mapping
 * and flushed, mapped whole, then renamed over the log's name; only then
 * are the old chunks unmapped and the old fd closed. On any failure the
 * WAL stays on the old mapping with syncErr set, and the next flush
 * tries a move again. */
static void walMoveLocked(es_wal *w) {
	unsigned char **nc;
	int fd, i, e;
	if (!w->logPath) return;
	fd = es_hl_move_prepare(w->fd, w->logPath, w->chunks, w->size, ES_CHUNK);
	if (fd < 0) return;
	nc = calloc((size_t)(w->nChunk > 0 ? w->nChunk : 1), sizeof(*nc));
	for (i = 0; nc && i < w->nChunk; i++) {
		if (!(nc[i] = es_hl_map(fd, i, ES_CHUNK))) break;
	}
	if (!nc || i < w->nChunk || (e = es_hl_move_commit(w->logPath)) > 0) {
		while (nc && i > 0) es_hl_unmap(nc[--i], ES_CHUNK);
		free(nc);
		es_hl_close(fd);
		es_hl_remove_moving(w->logPath);
		return;
	}
	for (i = 0; i < w->nChunk; i++) {
		es_hl_unmap(w->chunks[i], ES_CHUNK);
		w->chunks[i] = nc[i];
	}
	free(nc);
	es_hl_close(w->fd);
	w->fd = fd;
	/* Renamed, but the directory's flush failed: the name may not survive
	 * a power cut. The next flush moves again rather than trust it. */
	w->syncErr = e < 0 ? -e : 0;
	w->moves++;
}

/* walFlushLocked flushes a host log; it returns 0 or the errno of a
 * failed flush, which fails the operation in progress. The log is then
 * moved to a new file, so later flushes (of the new file) may succeed. */
static int walFlushLocked(es_wal *w) {
	int e;
	if (!w->syncErr) w->syncErr = es_hl_sync(w->fd);
	if (!w->syncErr) return 0;
	e = w->syncErr;
	w->flushFails++;
	walMoveLocked(w);
	return e;
}

long long es_wal_flush_fails(const char *path) {
	es_node *p;
	long long n = 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		n = p->wal.flushFails;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return n;
}

int es_wal_sync(const char *path) {
	es_node *p;
	int rc = 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		if (p->wal.hasLog) rc = walFlushLocked(&p->wal);
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return rc;
}

int es_wal_head(const char *path, const void *buf, long long n, long long off, long long *moves) {
	es_node *p;
	int rc = 2; /* ENOENT: no log attached */
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		if (p->wal.hasLog) {
			rc = es_hl_pwrite(p->wal.fd, buf, n, off);
			*moves = p->wal.moves;
		}
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return rc;
}

int es_lock_state(const char *path, int *nShared, int *eLock, int *nShmUser) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		*nShared = p->nShared;
		*eLock = p->eLock;
		*nShmUser = p->nShmUser;
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

/* nodeRef finds the node of a WAL name ("<db>-wal") and takes a ref. */
static es_node *nodeRef(const char *name, size_t suffix) {
	size_t n = strlen(name);
	es_node *p = 0;
	if (n < suffix) return 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(name, n - suffix);
	if (p) p->refs++;
	sqlite3_mutex_leave(GMU);
	return p;
}

static void nodeUnref(es_node *p) {
	sqlite3_mutex_enter(GMU);
	nodeUnrefLocked(p);
	sqlite3_mutex_leave(GMU);
}

static int isWALName(const char *name) {
	size_t n = name ? strlen(name) : 0;
	return n > 4 && memcmp(name + n - 4, "-wal", 4) == 0;
}

/* ---- the in-memory WAL ---- */

/* walGrowLocked makes chunks cover [0, end). */
static int walGrowLocked(es_wal *w, long long end) {
	int need = (int)((end + ES_CHUNK - 1) / ES_CHUNK);
	if (need > w->nSlot) {
		int slots = w->nSlot ? w->nSlot : 16;
		unsigned char **c;
		while (slots < need) slots *= 2;
		c = realloc(w->chunks, (size_t)slots * sizeof(*c));
		if (!c) return SQLITE_IOERR_NOMEM;
		memset(c + w->nSlot, 0, (size_t)(slots - w->nSlot) * sizeof(*c));
		w->chunks = c;
		w->nSlot = slots;
	}
	while (w->nChunk < need) {
		unsigned char *m;
		if (w->hasLog) {
			/* Blocks reserved when mapped: a full host disk is SQLITE_FULL
			 * here, never a SIGBUS on a later store into the mapping. */
			m = es_hl_map(w->fd, w->nChunk, ES_CHUNK);
			if (!m) return SQLITE_FULL;
		} else {
			m = malloc(ES_CHUNK);
		}
		if (!m) return SQLITE_IOERR_NOMEM;
		w->chunks[w->nChunk++] = m;
	}
	return SQLITE_OK;
}

/* walCopyLocked copies n bytes between the WAL at off and buf. */
static void walCopyLocked(es_wal *w, unsigned char *buf, long long n, long long off, int toWAL) {
	while (n > 0) {
		long long ci = off / ES_CHUNK, co = off % ES_CHUNK;
		long long k = ES_CHUNK - co;
		if (k > n) k = n;
		if (toWAL) {
			if (buf) memcpy(w->chunks[ci] + co, buf, (size_t)k);
			else memset(w->chunks[ci] + co, 0, (size_t)k);
		} else {
			memcpy(buf, w->chunks[ci] + co, (size_t)k);
		}
		if (buf) buf += k;
		off += k;
		n -= k;
	}
}

/* xRead: SQLite's contract: fill the buffer; past the end, zero-fill and
 * answer SQLITE_IOERR_SHORT_READ. */
static int walRead(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off) {
	es_wal *w = &((es_file *)pf)->node->wal;
	int rc = SQLITE_OK;
	long long avail;
	sqlite3_mutex_enter(w->mu);
	avail = w->size - off;
	if (avail < 0) avail = 0;
	if (avail < amt) {
		memset((unsigned char *)buf + avail, 0, (size_t)(amt - avail));
		rc = SQLITE_IOERR_SHORT_READ;
	} else {
		avail = amt;
	}
	walCopyLocked(w, buf, avail, off, 0);
	sqlite3_mutex_leave(w->mu);
	return rc;
}

/* xWrite: extend as needed; past the configured cap, SQLITE_FULL. */
static int walWrite(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off) {
	es_wal *w = &((es_file *)pf)->node->wal;
	long long end = off + amt;
	int rc;
	sqlite3_mutex_enter(w->mu);
	if (w->cut) {
		/* Close began: no transaction commits after the cut, so the
		 * checkpoint Close reports on holds every acknowledged one. */
		sqlite3_mutex_leave(w->mu);
		return SQLITE_READONLY;
	}
	if (w->max > 0 && end > w->max) {
		sqlite3_mutex_leave(w->mu);
		return SQLITE_FULL;
	}
	rc = walGrowLocked(w, end);
	if (rc == SQLITE_OK) {
		if (off > w->size) walCopyLocked(w, 0, off - w->size, w->size, 1);
		walCopyLocked(w, (unsigned char *)buf, amt, off, 1);
		if (end > w->size) w->size = end;
		w->writes++;
		/* A host log past the retained size (a big transaction): the
		 * chunk this write finished leaves the process's memory. */
		if (w->hasLog && (end - 1) / ES_CHUNK > off / ES_CHUNK && off / ES_CHUNK >= (w->retain + ES_CHUNK - 1) / ES_CHUNK) {
			es_hl_drop(w->chunks[off / ES_CHUNK], ES_CHUNK);
		}
	}
	sqlite3_mutex_leave(w->mu);
	return rc;
}

/* xTruncate: memory up to the retained working set is kept for reuse (fresh
 * memory costs a page fault per page); the rest is returned. */
static int walTruncate(sqlite3_file *pf, sqlite3_int64 size) {
	es_wal *w = &((es_file *)pf)->node->wal;
	int rc = SQLITE_OK;
	sqlite3_mutex_enter(w->mu);
	if (size > w->size) {
		rc = walGrowLocked(w, size);
		if (rc == SQLITE_OK) {
			walCopyLocked(w, 0, size - w->size, w->size, 1);
			w->size = size;
		}
	} else {
		long long keep = size > w->retain ? size : w->retain;
		int keepChunks = (int)((keep + ES_CHUNK - 1) / ES_CHUNK);
		/* A WAL truncated below its header holds no log: zero the header
		 * so that bytes left from before (in a host log, on disk) are
		 * never taken for frames. Past a header, SQLite's salts and
		 * checksums end the log at its true end. */
		if (size < 32 && w->nChunk > 0) memset(w->chunks[0] + size, 0, (size_t)(32 - size));
		w->size = size;
		if (w->hasLog && w->nChunk > keepChunks) {
			walFreeChunks(w, keepChunks);
			es_hl_shrink(w->fd, keepChunks, ES_CHUNK);
		}
		walFreeChunks(w, keepChunks);
	}
	sqlite3_mutex_leave(w->mu);
	return rc;
}

/* xSync: a WAL in memory, or a host log at HostLog, is made durable by
 * the checkpoint; at HostSync the log is flushed to the host's disk
 * (SQLite calls this per commit at synchronous=FULL). A failed flush
 * fails that commit and is never retried on that file: the log moves to
 * a new one (walMoveLocked). */
static int walSync(sqlite3_file *pf, int flags) {
	es_wal *w = &((es_file *)pf)->node->wal;
	int rc = SQLITE_OK;
	(void)flags;
	sqlite3_mutex_enter(w->mu);
	if (w->hasLog && w->synced && walFlushLocked(w) != 0) rc = SQLITE_IOERR_FSYNC;
	sqlite3_mutex_leave(w->mu);
	return rc;
}

static int walFileSize(sqlite3_file *pf, sqlite3_int64 *size) {
	es_wal *w = &((es_file *)pf)->node->wal;
	sqlite3_mutex_enter(w->mu);
	*size = w->size;
	sqlite3_mutex_leave(w->mu);
	return SQLITE_OK;
}

static int walClose(sqlite3_file *pf) {
	nodeUnref(((es_file *)pf)->node);
	return SQLITE_OK;
}

/* WAL files are never locked by SQLite: the wal-index locks guard them. */
static int noLock(sqlite3_file *pf, int lvl) {
	(void)pf;
	(void)lvl;
	return SQLITE_OK;
}

static int noReserved(sqlite3_file *pf, int *res) {
	(void)pf;
	*res = 0;
	return SQLITE_OK;
}

static int noFileControl(sqlite3_file *pf, int op, void *arg) {
	(void)pf;
	(void)op;
	(void)arg;
	return SQLITE_NOTFOUND;
}

static int sector4K(sqlite3_file *pf) {
	(void)pf;
	return 4096;
}

/* The WAL is heap memory, so it may claim what memory gives: sequential,
 * safe-append, powersafe overwrite (no frame padding). */
static int walCaps(sqlite3_file *pf) {
	/* At HostSync the log is a file on a local disk that must survive a
	 * power cut: claim what os_unix.c claims for one (powersafe
	 * overwrite), so SQLite syncs a new WAL header before its frames. */
	if (((es_file *)pf)->node->wal.synced) return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
	return SQLITE_IOCAP_SEQUENTIAL | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

/* Files on the drive claim nothing: removable media give no powersafe
 * overwrite and no atomic writes. */
static int noCaps(sqlite3_file *pf) {
	(void)pf;
	return 0;
}

/* ---- Go-backed files: main database and rollback journal ---- */

static int goRead(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off) {
	return esGoRead(((es_file *)pf)->h, buf, amt, off);
}

static int goWrite(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off) {
	return esGoWrite(((es_file *)pf)->h, (void *)buf, amt, off);
}

static int goTruncate(sqlite3_file *pf, sqlite3_int64 size) {
	return esGoTruncate(((es_file *)pf)->h, size);
}

static int goSync(sqlite3_file *pf, int flags) {
	return esGoSync(((es_file *)pf)->h, flags);
}

static int goFileSize(sqlite3_file *pf, sqlite3_int64 *size) {
	long long n = 0;
	int rc = esGoFileSize(((es_file *)pf)->h, &n);
	*size = n;
	return rc;
}

static int journalClose(sqlite3_file *pf) {
	return esGoClose(((es_file *)pf)->h);
}

/* ---- main file: locks between this process's connections ---- */

static void shmUnmapLocked(es_file *f);
static int mainUnlock(sqlite3_file *pf, int lvl);

/* xClose: like os_unix.c, give up this connection's locks first. */
static int mainClose(sqlite3_file *pf) {
	es_file *f = (es_file *)pf;
	int rc;
	mainUnlock(pf, SQLITE_LOCK_NONE);
	sqlite3_mutex_enter(f->node->mu);
	shmUnmapLocked(f);
	sqlite3_mutex_leave(f->node->mu);
	rc = esGoClose(f->h);
	nodeUnref(f->node);
	return rc;
}

/* xLock follows SQLite's five-state protocol (as os_unix.c does between
 * processes), here between the connections of one process: another
 * connection's PENDING or stronger lock blocks SHARED; RESERVED and up are
 * exclusive to one connection; EXCLUSIVE waits (as PENDING) for the other
 * SHARED holders to leave. */
static int mainLock(sqlite3_file *pf, int lvl) {
	es_file *f = (es_file *)pf;
	es_node *n = f->node;
	int rc = SQLITE_OK;
	if (f->eLock >= lvl) return SQLITE_OK;
	sqlite3_mutex_enter(n->mu);
	if (n->eLock != f->eLock && (n->eLock >= SQLITE_LOCK_PENDING || lvl > SQLITE_LOCK_SHARED)) {
		rc = SQLITE_BUSY;
	} else if (lvl == SQLITE_LOCK_SHARED) {
		n->nShared++;
		if (n->eLock < SQLITE_LOCK_SHARED) n->eLock = SQLITE_LOCK_SHARED;
		f->eLock = SQLITE_LOCK_SHARED;
	} else if (lvl == SQLITE_LOCK_RESERVED) {
		n->eLock = f->eLock = SQLITE_LOCK_RESERVED;
	} else if (n->nShared > 1) {
		n->eLock = f->eLock = SQLITE_LOCK_PENDING;
		rc = SQLITE_BUSY;
	} else {
		n->eLock = f->eLock = lvl;
	}
	sqlite3_mutex_leave(n->mu);
	return rc;
}

static int mainUnlock(sqlite3_file *pf, int lvl) {
	es_file *f = (es_file *)pf;
	es_node *n = f->node;
	if (f->eLock <= lvl) return SQLITE_OK;
	sqlite3_mutex_enter(n->mu);
	if (f->eLock > SQLITE_LOCK_SHARED) n->eLock = SQLITE_LOCK_SHARED;
	if (lvl == SQLITE_LOCK_NONE) {
		n->nShared--;
		if (n->nShared == 0) n->eLock = SQLITE_LOCK_NONE;
	}
	f->eLock = lvl;
	sqlite3_mutex_leave(n->mu);
	return SQLITE_OK;
}

static int mainReserved(sqlite3_file *pf, int *res) {
	es_node *n = ((es_file *)pf)->node;
	sqlite3_mutex_enter(n->mu);
	*res = n->eLock > SQLITE_LOCK_SHARED;
	sqlite3_mutex_leave(n->mu);
	return SQLITE_OK;
}

/* xFileControl: the checkpoint's markers go to Go's hooks; HAS_MOVED is
 * answered here (after a checkpoint's rename the path still names this
 * database, so it has not moved, and the close-time checkpoint runs). */
static int mainFileControl(sqlite3_file *pf, int op, void *arg) {
	es_file *f = (es_file *)pf;
	switch (op) {
	case SQLITE_FCNTL_CKPT_START:
	case SQLITE_FCNTL_CKPT_DONE:
		return esGoFileControl(f->h, op, 0);
	case SQLITE_FCNTL_SIZE_HINT:
		return esGoFileControl(f->h, op, *(sqlite3_int64 *)arg);
	case SQLITE_FCNTL_HAS_MOVED:
		*(int *)arg = 0;
		return SQLITE_OK;
	case SQLITE_FCNTL_LOCKSTATE:
		*(int *)arg = f->eLock;
		return SQLITE_OK;
	case ES_FCNTL_NOGATE:
		sqlite3_mutex_enter(f->node->mu);
		f->nogate = *(int *)arg != 0;
		sqlite3_mutex_leave(f->node->mu);
		return SQLITE_OK;
	}
	return SQLITE_NOTFOUND;
}

/* ---- wal-index in heap memory ---- */

/* xShmMap: regions are allocated zeroed and never move while mapped. */
static int mainShmMap(sqlite3_file *pf, int iRegion, int szRegion, int extend, void volatile **pp) {
	es_file *f = (es_file *)pf;
	es_node *n = f->node;
	int rc = SQLITE_OK;
	sqlite3_mutex_enter(n->mu);
	if (!f->shmMapped) {
		f->shmMapped = 1;
		n->nShmUser++;
	}
	*pp = 0;
	if (iRegion >= n->nRegion && extend) {
		volatile void **r = realloc((void *)n->regions, (size_t)(iRegion + 1) * sizeof(*r));
		if (!r) {
			rc = SQLITE_IOERR_NOMEM;
		} else {
			n->regions = r;
			while (n->nRegion <= iRegion) {
				void *m = calloc(1, (size_t)szRegion);
				if (!m) {
					rc = SQLITE_IOERR_NOMEM;
					break;
				}
				n->regions[n->nRegion++] = m;
			}
		}
	}
	if (rc == SQLITE_OK && iRegion < n->nRegion) *pp = n->regions[iRegion];
	sqlite3_mutex_leave(n->mu);
	return rc;
}

/* ---- the gate: lets the Store's WAL rewind in between transactions ---- */

/* SQLite restarts the WAL only when a transaction begins with every frame
 * backfilled and no reader on a WAL snapshot (wal.c walRestartLog), or when
 * a TRUNCATE checkpoint gets the writer lock and every reader lock. With
 * transactions back to back neither happens, and the WAL runs into its
 * cap. So the Store closes the gate (es_gate), waits until no transaction
 * holds a lock (es_gate_quiet), rewinds, and opens it again.
 *
 * A connection beginning a transaction takes its first wal-index lock on
 * a reader slot (WAL_READ_LOCK(i), slots 3-7; the writer slot 0 when it
 * must rebuild the index) while holding none: that request waits here
 * while the gate is closed. Connections holding locks (a transaction in
 * progress) pass, and so does a checkpoint, whose first lock is
 * WAL_CKPT_LOCK (slot 1): the gate never blocks what the rewind waits
 * for. The wait is bounded (gateMaxMs): past it the transaction goes on,
 * and the rewind may then not get in.
 *
 * The gate also closes by itself while the WAL is larger than a high-water
 * mark the Store sets (es_gate): new transactions then wait for the
 * Store's checkpointer to rewind the WAL instead of running it into the
 * cap. The Store sets the mark only while a checkpoint can rewind: always
 * with automatic checkpoints, for the length of each checkpoint with
 * ManualCheckpoint.
 *
 * The Store's own connection, on which its checkpoints and rewinds run,
 * never waits here (ES_FCNTL_NOGATE): its statements are what opens the
 * gate. Everyone else waits at most gateMaxMs (the Store's BusyTimeout,
 * es_gate_limit), timed on the platform VFS's clock (milliseconds); the
 * longest wait is kept for the Store's Stats. */
#define ES_READ_LOCK0 3
#define ES_GATE_POLL_US 50
#define ES_GATE_MAX_MS 1000 /* until es_gate_limit */

static int gateClosedLocked(es_node *n) {
	long long size;
	if (n->gate) return 1;
	if (n->highwater <= 0) return 0;
	sqlite3_mutex_enter(n->wal.mu);
	size = n->wal.size;
	sqlite3_mutex_leave(n->wal.mu);
	return size > n->highwater;
}

static long long nowMs(void) {
	sqlite3_int64 t = 0;
	if (gbase->iVersion >= 2 && gbase->xCurrentTimeInt64) {
		gbase->xCurrentTimeInt64(gbase, &t);
	} else {
		double d = 0;
		gbase->xCurrentTime(gbase, &d);
		t = (sqlite3_int64)(d * 86400000.0);
	}
	return (long long)t;
}

static void gateWaitLocked(es_file *f) {
	es_node *n = f->node;
	long long start, waited = 0, bound;
	if (f->nogate || f->shmSharedMask || f->shmExclMask) return;
	if (!gateClosedLocked(n)) return;
	start = nowMs();
	bound = n->gateMaxMs > 0 ? n->gateMaxMs : ES_GATE_MAX_MS;
	do {
		sqlite3_mutex_leave(n->mu);
		gbase->xSleep(gbase, ES_GATE_POLL_US);
		sqlite3_mutex_enter(n->mu);
		waited = nowMs() - start;
	} while (waited < bound && gateClosedLocked(n));
	if (waited > n->gateLongestMs) n->gateLongestMs = waited;
}

int es_gate_limit(const char *path, long long maxWaitMs) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		p->gateMaxMs = maxWaitMs;
		p->gateLongestMs = 0;
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

long long es_gate_longest(const char *path) {
	es_node *p;
	long long ms = 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		ms = p->gateLongestMs;
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return ms;
}

int es_gate(const char *path, int closed, long long highwater) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		if (closed >= 0) p->gate = closed;
		if (highwater >= 0) p->highwater = highwater;
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

int es_wal_cut(const char *path, int cut) {
	es_node *p;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		p->wal.cut = cut;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

int es_writer_busy(const char *path) {
	es_node *p;
	int busy = 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		busy = p->shmExcl[0];
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return busy;
}

int es_gate_quiet(const char *path) {
	es_node *p;
	int i, quiet = 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		quiet = !p->shmExcl[0] && !p->shmShared[0];
		for (i = ES_READ_LOCK0; i < SQLITE_SHM_NLOCK; i++) {
			if (p->shmShared[i] || p->shmExcl[i]) quiet = 0;
		}
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return quiet;
}

/* xShmLock: SQLite's lock slots. SHARED is taken one slot at a time and
 * fails while another connection holds the slot EXCLUSIVE; EXCLUSIVE fails
 * while any other connection holds any of the slots in any mode. */
static int mainShmLock(sqlite3_file *pf, int ofst, int cnt, int flags) {
	es_file *f = (es_file *)pf;
	es_node *n = f->node;
	unsigned mask = ((1u << (ofst + cnt)) - 1u) & ~((1u << ofst) - 1u);
	int i, rc = SQLITE_OK;
	if (ofst < 0 || cnt < 1 || ofst + cnt > SQLITE_SHM_NLOCK) return SQLITE_IOERR;
	sqlite3_mutex_enter(n->mu);
	if (!(flags & SQLITE_SHM_UNLOCK) && (ofst == 0 || ofst >= ES_READ_LOCK0)) gateWaitLocked(f);
	if (flags & SQLITE_SHM_UNLOCK) {
		for (i = ofst; i < ofst + cnt; i++) {
			unsigned bit = 1u << i;
			if (f->shmSharedMask & bit) n->shmShared[i]--;
			if (f->shmExclMask & bit) n->shmExcl[i] = 0;
		}
		f->shmSharedMask &= ~mask;
		f->shmExclMask &= ~mask;
	} else if (flags & SQLITE_SHM_SHARED) {
		for (i = ofst; i < ofst + cnt && rc == SQLITE_OK; i++) {
			if (n->shmExcl[i] && !(f->shmExclMask & (1u << i))) rc = SQLITE_BUSY;
		}
		if (rc == SQLITE_OK) {
			for (i = ofst; i < ofst + cnt; i++) {
				if (!(f->shmSharedMask & (1u << i))) n->shmShared[i]++;
			}
			f->shmSharedMask |= mask;
		}
	} else {
		for (i = ofst; i < ofst + cnt && rc == SQLITE_OK; i++) {
			unsigned bit = 1u << i;
			int others = n->shmShared[i] - ((f->shmSharedMask & bit) ? 1 : 0);
			if (others > 0 || (n->shmExcl[i] && !(f->shmExclMask & bit))) rc = SQLITE_BUSY;
		}
		if (rc == SQLITE_OK) {
			for (i = ofst; i < ofst + cnt; i++) n->shmExcl[i] = 1;
			f->shmExclMask |= mask;
		}
	}
	sqlite3_mutex_leave(n->mu);
	return rc;
}

/* xShmBarrier: a full memory barrier. All connections share the same
 * memory, so ordering is all SQLite asks for. */
static void mainShmBarrier(sqlite3_file *pf) {
	(void)pf;
	__sync_synchronize();
}

/* shmUnmapLocked detaches a connection; the last one frees the regions, so
 * the next connection rebuilds the wal-index from the in-memory WAL, as
 * SQLite does after the last process leaves a -shm file. */
static void shmUnmapLocked(es_file *f) {
	es_node *n = f->node;
	int i;
	if (!f->shmMapped) return;
	for (i = 0; i < SQLITE_SHM_NLOCK; i++) {
		unsigned bit = 1u << i;
		if (f->shmSharedMask & bit) n->shmShared[i]--;
		if (f->shmExclMask & bit) n->shmExcl[i] = 0;
	}
	f->shmSharedMask = f->shmExclMask = 0;
	f->shmMapped = 0;
	if (--n->nShmUser == 0) {
		for (i = 0; i < n->nRegion; i++) free((void *)n->regions[i]);
		free((void *)n->regions);
		n->regions = 0;
		n->nRegion = 0;
	}
}

static int mainShmUnmap(sqlite3_file *pf, int deleteFlag) {
	es_node *n = ((es_file *)pf)->node;
	(void)deleteFlag;
	sqlite3_mutex_enter(n->mu);
	shmUnmapLocked((es_file *)pf);
	sqlite3_mutex_leave(n->mu);
	return SQLITE_OK;
}

static const sqlite3_io_methods mainMethods = {
    2,          mainClose,       goRead,          goWrite,        goTruncate,   goSync,
    goFileSize, mainLock,        mainUnlock,      mainReserved,   mainFileControl,
    sector4K,   noCaps,          mainShmMap,      mainShmLock,    mainShmBarrier,
    mainShmUnmap, 0,             0};

static const sqlite3_io_methods walMethods = {
    1,           walClose, walRead,    walWrite,      walTruncate, walSync, walFileSize,
    noLock,      noLock,   noReserved, noFileControl, sector4K,    walCaps, 0,
    0,           0,        0,          0,             0};

static const sqlite3_io_methods journalMethods = {
    1,          journalClose, goRead,     goWrite,       goTruncate, goSync, goFileSize,
    noLock,     noLock,       noReserved, noFileControl, sector4K,   noCaps, 0,
    0,          0,            0,          0,             0};

/* ---- the VFS ---- */

/* xOpen: main files and journals of databases a Store opened go to Go; the
 * WAL comes from the registry. Anything else goes to the platform VFS
 * unchanged: temporary files (never on the drive), and databases no Store
 * owns (VACUUM INTO targets, ATTACHed databases) with their WAL and
 * journal. */
static int esOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *outFlags) {
	es_file *f = (es_file *)pf;
	es_node *n = 0;
	int rc;
	(void)vfs;
	if (name && (flags & SQLITE_OPEN_WAL)) n = nodeRef(name, 4);
	if (name && (flags & SQLITE_OPEN_MAIN_DB)) n = nodeRef(name, 0);
	if (!n && !(name && (flags & SQLITE_OPEN_MAIN_JOURNAL))) {
		return gbase->xOpen(gbase, name, pf, flags, outFlags);
	}
	memset(f, 0, sizeof(*f));
	if (flags & SQLITE_OPEN_WAL) {
		sqlite3_mutex_enter(n->wal.mu);
		n->wal.exists = 1;
		sqlite3_mutex_leave(n->wal.mu);
		f->kind = ES_KIND_WAL;
		f->node = n;
		f->pMethods = &walMethods;
	} else if (flags & SQLITE_OPEN_MAIN_DB) {
		rc = esGoOpen((char *)name, flags, ES_KIND_MAIN, &f->h);
		if (rc != SQLITE_OK) {
			nodeUnref(n);
			return rc;
		}
		f->kind = ES_KIND_MAIN;
		f->node = n;
		f->pMethods = &mainMethods;
	} else {
		rc = esGoOpen((char *)name, flags, ES_KIND_JOURNAL, &f->h);
		if (rc < 0) return gbase->xOpen(gbase, name, pf, flags, outFlags);
		if (rc != SQLITE_OK) return rc;
		f->kind = ES_KIND_JOURNAL;
		f->pMethods = &journalMethods;
	}
	if (outFlags) *outFlags = flags;
	return SQLITE_OK;
}

/* xDelete: deleting the WAL drops its memory; other names of a Store's
 * database go through device.FS; the rest to the platform VFS. */
static int esDelete(sqlite3_vfs *vfs, const char *name, int syncDir) {
	int rc;
	(void)vfs;
	if (isWALName(name)) {
		es_node *n = nodeRef(name, 4);
		if (n) {
			sqlite3_mutex_enter(n->wal.mu);
			n->wal.exists = 0;
			n->wal.size = 0;
			if (n->wal.hasLog) {
				/* Everything is checkpointed (SQLite deletes the WAL only
				 * then): the host log goes too. */
				es_hl_remove(n->wal.logPath);
				walDetachLog(&n->wal);
			}
			walFreeChunks(&n->wal, 0);
			sqlite3_mutex_leave(n->wal.mu);
			nodeUnref(n);
			return SQLITE_OK;
		}
	}
	rc = esGoDelete((char *)name, syncDir);
	if (rc >= 0) return rc;
	return gbase->xDelete(gbase, name, syncDir);
}

/* xAccess: a WAL "exists" when it holds bytes, as os_unix.c treats an empty
 * file as absent. */
static int esAccess(sqlite3_vfs *vfs, const char *name, int flags, int *res) {
	int rc;
	(void)vfs;
	if (isWALName(name)) {
		es_node *n = nodeRef(name, 4);
		if (n) {
			sqlite3_mutex_enter(n->wal.mu);
			*res = n->wal.exists && n->wal.size > 0;
			sqlite3_mutex_leave(n->wal.mu);
			nodeUnref(n);
			return SQLITE_OK;
		}
	}
	rc = esGoAccess((char *)name, flags, res);
	if (rc >= 0) return rc;
	return gbase->xAccess(gbase, name, flags, res);
}

/* xFullPathname: the Store hands SQLite absolute, cleaned paths; keep them
 * byte for byte so registry keys match. On Windows the URI's path arrives
 * as "/C:/dir/app.db": give back "C:\\dir\\app.db", the Store's key. */
static int esFullPathname(sqlite3_vfs *vfs, const char *name, int nOut, char *out) {
	size_t n = strlen(name);
	(void)vfs;
#ifdef _WIN32
	if (name[0] == '/' && name[1] && name[2] == ':' &&
	    ((name[1] >= 'A' && name[1] <= 'Z') || (name[1] >= 'a' && name[1] <= 'z'))) {
		size_t i;
		if ((int)n > nOut) return SQLITE_CANTOPEN;
		for (i = 1; i <= n; i++) out[i - 1] = name[i] == '/' ? '\\' : name[i];
		return SQLITE_OK;
	}
#endif
	if (name[0] != '/') return gbase->xFullPathname(gbase, name, nOut, out);
	if ((int)n + 1 > nOut) return SQLITE_CANTOPEN;
	memcpy(out, name, n + 1);
	return SQLITE_OK;
}

static int gregistered;
static int gregisterRC = SQLITE_ERROR;

static void registerOnce(void) {
	gbase = sqlite3_vfs_find(0);
	if (!gbase) return;
	gvfs = *gbase;
	gvfs.iVersion = gbase->iVersion < 2 ? gbase->iVersion : 2;
	gvfs.szOsFile = gbase->szOsFile > (int)sizeof(es_file) ? gbase->szOsFile : (int)sizeof(es_file);
	gvfs.pNext = 0;
	gvfs.zName = "ejectsafe";
	gvfs.pAppData = 0;
	gvfs.xOpen = esOpen;
	gvfs.xDelete = esDelete;
	gvfs.xAccess = esAccess;
	gvfs.xFullPathname = esFullPathname;
	gregisterRC = sqlite3_vfs_register(&gvfs, 0);
}

int es_register(void) {
	int rc;
	sqlite3_mutex_enter(GMU);
	if (!gregistered) {
		registerOnce();
		gregistered = 1;
	}
	rc = gregisterRC;
	sqlite3_mutex_leave(GMU);
	return rc;
}
