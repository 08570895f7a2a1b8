/*
 * The ejectsafe VFS shim: main files and rollback journals (their bytes go
 * to Go) and the main-file locks between this process's connections.
 */

#include "shim_internal.h"

/* WAL files are never locked by SQLite: the wal-index locks guard them. */
int noLock(sqlite3_file *pf, int lvl) {
	(void)pf;
	(void)lvl;
	return SQLITE_OK;
}

int noReserved(sqlite3_file *pf, int *res) {
	(void)pf;
	*res = 0;
	return SQLITE_OK;
}

int noFileControl(sqlite3_file *pf, int op, void *arg) {
	(void)pf;
	(void)op;
	(void)arg;
	return SQLITE_NOTFOUND;
}

int sector4K(sqlite3_file *pf) {
	(void)pf;
	return 4096;
}

/* Files on the drive claim nothing: removable media give no powersafe
 * overwrite and no atomic writes. */
int noCaps(sqlite3_file *pf) {
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

/* xClose: like os_unix.c, give up this connection's locks first. */
static int mainClose(sqlite3_file *pf) {
	es_file *f = (es_file *)pf;
	int rc;
	mainUnlock(pf, SQLITE_LOCK_NONE);
	sqlite3_mutex_enter(f->db->mu);
	shmUnmapLocked(f);
	sqlite3_mutex_leave(f->db->mu);
	rc = esGoClose(f->h);
	dbUnref(f->db);
	return rc;
}

/* xLock follows SQLite's five-state protocol (as os_unix.c does between
 * processes), here between the connections of one process: another
 * connection's PENDING or stronger lock blocks SHARED; RESERVED and up are
 * exclusive to one connection; EXCLUSIVE waits (as PENDING) for the other
 * SHARED holders to leave. */
static int mainLock(sqlite3_file *pf, int lvl) {
	es_file *f = (es_file *)pf;
	es_dbstate *n = f->db;
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

int mainUnlock(sqlite3_file *pf, int lvl) {
	es_file *f = (es_file *)pf;
	es_dbstate *n = f->db;
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
	es_dbstate *n = ((es_file *)pf)->db;
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
		sqlite3_mutex_enter(f->db->mu);
		f->nogate = *(int *)arg != 0;
		sqlite3_mutex_leave(f->db->mu);
		return SQLITE_OK;
	}
	return SQLITE_NOTFOUND;
}

/* A main database file: its bytes through Go, its locks and wal-index
 * here. Version 2: the xShm* methods (WAL mode), no xFetch (the drive is
 * never memory-mapped). */
const sqlite3_io_methods mainMethods = {
	.iVersion = 2,
	.xClose = mainClose,                 /* give up locks and wal-index, then Go's handle */
	.xRead = goRead,                     /* fill the buffer; short read zero-filled */
	.xWrite = goWrite,                   /* to the Store's main file (checkpoint) */
	.xTruncate = goTruncate,             /* likewise */
	.xSync = goSync,                     /* the checkpoint commits */
	.xFileSize = goFileSize,             /* the database as SQLite sees it */
	.xLock = mainLock,                   /* five-state lock between connections */
	.xUnlock = mainUnlock,               /* down to the level asked */
	.xCheckReservedLock = mainReserved,  /* RESERVED or more held anywhere */
	.xFileControl = mainFileControl,     /* checkpoint markers, HAS_MOVED, NOGATE */
	.xSectorSize = sector4K,             /* 4096 */
	.xDeviceCharacteristics = noCaps,    /* removable media promise nothing */
	.xShmMap = mainShmMap,               /* wal-index regions in heap memory */
	.xShmLock = mainShmLock,             /* SQLite's eight lock slots; the gate */
	.xShmBarrier = mainShmBarrier,       /* a full memory barrier */
	.xShmUnmap = mainShmUnmap,           /* the last one out frees the regions */
};

/* A rollback journal: a file on the drive, through Go. */
const sqlite3_io_methods journalMethods = {
	.iVersion = 1,
	.xClose = journalClose,             /* close Go's handle */
	.xRead = goRead,                    /* fill the buffer; short read zero-filled */
	.xWrite = goWrite,                  /* through device.FS */
	.xTruncate = goTruncate,            /* likewise */
	.xSync = goSync,                    /* fsync through device.FS */
	.xFileSize = goFileSize,            /* its size on the drive */
	.xLock = noLock,                    /* journals are not locked */
	.xUnlock = noLock,                  /* likewise */
	.xCheckReservedLock = noReserved,   /* never reserved */
	.xFileControl = noFileControl,      /* SQLITE_NOTFOUND: none answered */
	.xSectorSize = sector4K,            /* 4096 */
	.xDeviceCharacteristics = noCaps,   /* removable media promise nothing */
};
