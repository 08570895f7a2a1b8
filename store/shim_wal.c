/*
 * The ejectsafe VFS shim: the in-memory WAL (heap chunks, or a mapping of
 * the host log).
 */

#include "shim_internal.h"

void walFreeChunks(es_wal *w, int keep) {
	while (w->nChunk > keep) {
		w->nChunk--;
		if (w->hasLog) es_hl_unmap(w->chunks[w->nChunk], ES_CHUNK);
		else free(w->chunks[w->nChunk]);
		w->chunks[w->nChunk] = 0;
	}
}

/* walDetachLog unmaps the host log and closes it; the file stays (for
 * the next Open's replay) unless the caller removes it. */
void walDetachLog(es_wal *w) {
	if (!w->hasLog) return;
	walFreeChunks(w, 0);
	es_hl_close(w->fd);
	w->hasLog = 0;
	w->synced = 0;
	w->syncErr = 0;
	free(w->logPath);
	w->logPath = 0;
}

/* walMoveLocked moves a host log whose flush failed to a new file (never
 * flushing the old one again): the new file is written from the mapping
 * and flushed, mapped whole, then renamed over the log's name; only then
 * are the old chunks unmapped and the old fd closed. On any failure the
 * WAL stays on the old mapping with syncErr set, and the next flush
 * tries a move again. */
static void walMoveLocked(es_wal *w) {
	unsigned char **nc;
	int fd, i, e = 0;
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
int walFlushLocked(es_wal *w) {
	int e;
	if (!w->syncErr) w->syncErr = es_hl_sync(w->fd);
	if (!w->syncErr) return 0;
	e = w->syncErr;
	w->flushFails++;
	walMoveLocked(w);
	return e;
}

/* ---- the in-memory WAL ---- */

/* walGrowLocked makes chunks cover [0, end). */
int walGrowLocked(es_wal *w, long long end) {
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
void walCopyLocked(es_wal *w, unsigned char *buf, long long n, long long off, int toWAL) {
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

/* walRetainEnd is where the chunks a host log may drop begin: those
 * past the retained working set (walWrite). */
static long long walRetainEnd(es_wal *w) {
	return (w->retain + ES_CHUNK - 1) / ES_CHUNK * ES_CHUNK;
}

/* xRead: SQLite's contract: fill the buffer; past the end, zero-fill and
 * answer SQLITE_IOERR_SHORT_READ. */
static int walRead(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off) {
	es_wal *w = &((es_file *)pf)->db->wal;
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
	if (w->hasLog && avail > 0 && off + avail > walRetainEnd(w)) {
		/* Past the retained chunks of a host log (a big transaction,
		 * whose chunks walWrite dropped): read the file, so that a
		 * checkpoint reading every frame does not fault them all back
		 * into the process. */
		long long head = walRetainEnd(w) - off;
		if (head < 0) head = 0;
		walCopyLocked(w, buf, head, off, 0);
		if (es_hl_pread(w->fd, (unsigned char *)buf + head, avail - head, off + head) != 0) rc = SQLITE_IOERR_READ;
	} else {
		walCopyLocked(w, buf, avail, off, 0);
	}
	sqlite3_mutex_leave(w->mu);
	return rc;
}

/* xWrite: extend as needed; past the configured cap, SQLITE_FULL. */
static int walWrite(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off) {
	es_wal *w = &((es_file *)pf)->db->wal;
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
		if (end > w->size) __atomic_store_n(&w->size, end, __ATOMIC_RELAXED);
		w->writes++;
		/* A host log past the retained size (a big transaction): the
		 * chunk this write finished leaves the process's memory. */
		if (w->hasLog && (end - 1) / ES_CHUNK > off / ES_CHUNK && off >= walRetainEnd(w)) {
			es_hl_drop(w->chunks[off / ES_CHUNK], ES_CHUNK);
		}
	}
	sqlite3_mutex_leave(w->mu);
	return rc;
}

/* xTruncate: memory up to the retained working set is kept for reuse (fresh
 * memory costs a page fault per page); the rest is returned. */
static int walTruncate(sqlite3_file *pf, sqlite3_int64 size) {
	es_wal *w = &((es_file *)pf)->db->wal;
	int rc = SQLITE_OK;
	sqlite3_mutex_enter(w->mu);
	if (size > w->size) {
		rc = walGrowLocked(w, size);
		if (rc == SQLITE_OK) {
			walCopyLocked(w, 0, size - w->size, w->size, 1);
			__atomic_store_n(&w->size, size, __ATOMIC_RELAXED);
		}
	} else {
		long long keep = size > w->retain ? size : w->retain;
		int keepChunks = (int)((keep + ES_CHUNK - 1) / ES_CHUNK);
		/* A WAL truncated below its header holds no log: zero the header
		 * so that bytes left from before (in a host log, on disk) are
		 * never taken for frames. Past a header, SQLite's salts and
		 * checksums end the log at its true end. */
		if (size < 32 && w->nChunk > 0) memset(w->chunks[0] + size, 0, (size_t)(32 - size));
		__atomic_store_n(&w->size, size, __ATOMIC_RELAXED);
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
	es_wal *w = &((es_file *)pf)->db->wal;
	int rc = SQLITE_OK;
	(void)flags;
	sqlite3_mutex_enter(w->mu);
	if (w->hasLog && w->synced && walFlushLocked(w) != 0) rc = SQLITE_IOERR_FSYNC;
	sqlite3_mutex_leave(w->mu);
	return rc;
}

static int walFileSize(sqlite3_file *pf, sqlite3_int64 *size) {
	es_wal *w = &((es_file *)pf)->db->wal;
	sqlite3_mutex_enter(w->mu);
	*size = w->size;
	sqlite3_mutex_leave(w->mu);
	return SQLITE_OK;
}

static int walClose(sqlite3_file *pf) {
	dbUnref(((es_file *)pf)->db);
	return SQLITE_OK;
}

/* The WAL is heap memory, so it may claim what memory gives: sequential,
 * safe-append, powersafe overwrite (no frame padding). */
static int walCaps(sqlite3_file *pf) {
	/* At HostSync the log is a file on a local disk that must survive a
	 * power cut: claim what os_unix.c claims for one (powersafe
	 * overwrite), so SQLite syncs a new WAL header before its frames. */
	if (((es_file *)pf)->db->wal.synced) return SQLITE_IOCAP_POWERSAFE_OVERWRITE;
	return SQLITE_IOCAP_SEQUENTIAL | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

/* The WAL: in memory (or the host log's mapping), never on the drive. */
const sqlite3_io_methods walMethods = {
	.iVersion = 1,
	.xClose = walClose,                 /* drop the reference; the WAL stays */
	.xRead = walRead,                   /* fill the buffer; short read zero-filled */
	.xWrite = walWrite,                 /* grow as needed; SQLITE_FULL past the cap */
	.xTruncate = walTruncate,           /* keep the retained memory */
	.xSync = walSync,                   /* HostSync: flush the host log */
	.xFileSize = walFileSize,           /* its logical size */
	.xLock = noLock,                    /* the wal-index locks guard the WAL */
	.xUnlock = noLock,                  /* likewise */
	.xCheckReservedLock = noReserved,   /* never reserved */
	.xFileControl = noFileControl,      /* SQLITE_NOTFOUND: none answered */
	.xSectorSize = sector4K,            /* 4096 */
	.xDeviceCharacteristics = walCaps,  /* what memory (or the host's disk) gives */
};
