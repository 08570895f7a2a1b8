/*
 * The ejectsafe VFS shim: the process-wide registry of databases, keyed by
 * path, and the Go-facing functions that act on one database by path.
 */

#include "shim_internal.h"

static es_dbstate *gdbs;

/* ---- the registry (callers hold GMU) ---- */

es_dbstate *dbFindLocked(const char *path, size_t n) {
	es_dbstate *p;
	for (p = gdbs; p; p = p->next) {
		if (p->pathLen == n && memcmp(p->path, path, n) == 0) return p;
	}
	return 0;
}

/* dbUnrefLocked drops a reference; a database whose WAL holds data is kept so
 * nothing committed is lost while the process lives. */
static void dbUnrefLocked(es_dbstate *p) {
	es_dbstate **pp;
	p->refs--;
	if (p->refs > 0) return;
	if (p->wal.exists && p->wal.size > 0) return;
	for (pp = &gdbs; *pp; pp = &(*pp)->next) {
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

int es_db_acquire(const char *path, uint64_t owner, long long maxWAL, long long retainWAL) {
	size_t n = strlen(path);
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, n);
	if (p && p->owner) {
		sqlite3_mutex_leave(GMU);
		return SQLITE_BUSY; /* another Store of this process has it open */
	}
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
		p->next = gdbs;
		gdbs = p;
	}
	sqlite3_mutex_enter(p->wal.mu);
	p->wal.max = maxWAL;
	p->wal.retain = retainWAL;
	sqlite3_mutex_leave(p->wal.mu);
	p->owner = owner;
	p->refs++;
	sqlite3_mutex_leave(GMU);
	return SQLITE_OK;
}

void es_db_release(const char *path) {
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		p->owner = 0; /* the Store is gone: Go's half with it */
		dbUnrefLocked(p);
	}
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
	es_dbstate *p;
	memset(out, 0, sizeof(*out));
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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
	es_dbstate *p;
	int rc = SQLITE_CANTOPEN;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		rc = walGrowLocked(&p->wal, n);
		if (rc == SQLITE_OK) {
			walCopyLocked(&p->wal, (unsigned char *)data, n, 0, 1);
			__atomic_store_n(&p->wal.size, n, __ATOMIC_RELAXED);
			p->wal.exists = 1;
		}
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return rc;
}

void es_wal_discard(const char *path) {
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		p->wal.exists = 0;
		__atomic_store_n(&p->wal.size, 0, __ATOMIC_RELAXED);
		walDetachLog(&p->wal); /* the log file stays, for the next Open */
		walFreeChunks(&p->wal, 0);
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
}

int es_wal_attach(const char *path, int fd, const char *logPath, int synced, long long size) {
	es_dbstate *p;
	int rc = SQLITE_CANTOPEN;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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
				__atomic_store_n(&p->wal.size, size, __ATOMIC_RELAXED);
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
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		p->wal.max = maxWAL;
		p->wal.retain = retainWAL;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
}

long long es_wal_flush_fails(const char *path) {
	es_dbstate *p;
	long long n = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		n = p->wal.flushFails;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return n;
}

int es_wal_sync(const char *path) {
	es_dbstate *p;
	int rc = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		if (p->wal.hasLog) rc = walFlushLocked(&p->wal);
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return rc;
}

int es_wal_head(const char *path, const void *buf, long long n, long long off, long long *moves) {
	es_dbstate *p;
	int rc = 2; /* ENOENT: no log attached */
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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

/* dbRef finds the database of name less its last suffix bytes ("-wal":
 * 4) and takes a reference; owner, when given, gets its owner. */
es_dbstate *dbRef(const char *name, size_t suffix, uint64_t *owner) {
	size_t n = strlen(name);
	es_dbstate *p = 0;
	if (n < suffix) return 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(name, n - suffix);
	if (p) p->refs++;
	if (p && owner) *owner = p->owner;
	sqlite3_mutex_leave(GMU);
	return p;
}

/* dbOwner answers the owner of the database named by the first n bytes
 * of name: the id of its open Store's dbState, 0 when none. */
uint64_t dbOwner(const char *name, size_t n) {
	es_dbstate *p;
	uint64_t owner = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(name, n);
	if (p) owner = p->owner;
	sqlite3_mutex_leave(GMU);
	return owner;
}

/* journalOwner answers the owner of the database whose rollback journal
 * ("<db>-journal") name is; 0 when name is no open Store's journal. */
uint64_t journalOwner(const char *name) {
	static const char suffix[] = ES_JOURNAL_SUFFIX;
	size_t n = name ? strlen(name) : 0, k = sizeof(suffix) - 1;
	if (n < k || memcmp(name + n - k, suffix, k) != 0) return 0;
	return dbOwner(name, n - k);
}

void dbUnref(es_dbstate *p) {
	sqlite3_mutex_enter(GMU);
	dbUnrefLocked(p);
	sqlite3_mutex_leave(GMU);
}

int isWALName(const char *name) {
	size_t n = name ? strlen(name) : 0, k = sizeof(ES_WAL_SUFFIX) - 1;
	return n > k && memcmp(name + n - k, ES_WAL_SUFFIX, k) == 0;
}
