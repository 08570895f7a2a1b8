/*
 * The ejectsafe VFS shim: the process-wide registry of databases, keyed by
 * path, and the Go-facing functions that act on one database by path.
 */

#include "shim_internal.h"

static es_node *gnodes;

/* ---- node registry (callers hold gmu) ---- */

es_node *nodeFindLocked(const char *path, size_t n) {
	es_node *p;
	for (p = gnodes; p; p = p->next) {
		if (p->pathLen == n && memcmp(p->path, path, n) == 0) return p;
	}
	return 0;
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

int es_wal_sync(const char *path) {
	es_node *p;
	int rc = 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		if (p->wal.hasLog) {
			if (p->wal.syncErr) rc = p->wal.syncErr;
			else if ((rc = es_hl_sync(p->wal.fd)) != 0) p->wal.syncErr = rc;
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
es_node *nodeRef(const char *name, size_t suffix) {
	size_t n = strlen(name);
	es_node *p = 0;
	if (n < suffix) return 0;
	sqlite3_mutex_enter(GMU);
	p = nodeFindLocked(name, n - suffix);
	if (p) p->refs++;
	sqlite3_mutex_leave(GMU);
	return p;
}

void nodeUnref(es_node *p) {
	sqlite3_mutex_enter(GMU);
	nodeUnrefLocked(p);
	sqlite3_mutex_leave(GMU);
}

int isWALName(const char *name) {
	size_t n = name ? strlen(name) : 0;
	return n > 4 && memcmp(name + n - 4, "-wal", 4) == 0;
}
