/*
 * The "limit" arm of the commit benchmarks: the fastest SQLite's WAL code
 * can commit through this driver. A minimal VFS, "eslimit", whose every
 * file (database, WAL, temporary) is a bare malloc'd buffer: no I/O, no
 * locks (the connection runs in exclusive locking mode, so SQLite keeps
 * the wal-index in its own heap and never calls xShm*), xSync a no-op.
 * Buffers keep their capacity when truncated, so a WAL that restarts
 * reuses memory already touched, as the store's does.
 *
 * Only the benchmarks use it: it keeps nothing and is not safe for more
 * than one connection per database.
 */
#include <stdlib.h>
#include <string.h>

#include "../store/sqlite_abi.h"
#include "limitvfs.h"

#define LIM_OPEN_WAL 0x00080000
#define LIM_OPEN_MAIN_DB 0x00000100

typedef struct lim_buf {
	char *name; /* NULL for a temporary file */
	unsigned char *p;
	long long size, cap;
	int refs;
	struct lim_buf *next;
} lim_buf;

typedef struct lim_file {
	const sqlite3_io_methods *pMethods;
	lim_buf *b;
	int caps;
} lim_file;

/* SQLite's own static mutex, so that this builds wherever SQLite does. */
#define LMU sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS2)
static lim_buf *lbufs;
static sqlite3_vfs *lbase;
static sqlite3_vfs lvfs;

static lim_buf **findLocked(const char *name) {
	lim_buf **pp;
	for (pp = &lbufs; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) return pp;
	}
	return 0;
}

static void freeBuf(lim_buf *b) {
	free(b->p);
	free(b->name);
	free(b);
}

static int limRead(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off) {
	lim_buf *b = ((lim_file *)pf)->b;
	long long avail = b->size - off;
	if (avail < 0) avail = 0;
	if (avail >= amt) {
		memcpy(buf, b->p + off, (size_t)amt);
		return SQLITE_OK;
	}
	if (avail > 0) memcpy(buf, b->p + off, (size_t)avail);
	memset((unsigned char *)buf + avail, 0, (size_t)(amt - avail));
	return SQLITE_IOERR_SHORT_READ;
}

static int limWrite(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off) {
	lim_buf *b = ((lim_file *)pf)->b;
	long long end = off + amt;
	if (end > b->cap) {
		long long c = b->cap ? b->cap : 1 << 16;
		unsigned char *p;
		while (c < end) c *= 2;
		p = realloc(b->p, (size_t)c);
		if (!p) return SQLITE_FULL;
		b->p = p;
		b->cap = c;
	}
	if (off > b->size) memset(b->p + b->size, 0, (size_t)(off - b->size));
	memcpy(b->p + off, buf, (size_t)amt);
	if (end > b->size) b->size = end;
	return SQLITE_OK;
}

static int limTruncate(sqlite3_file *pf, sqlite3_int64 size) {
	lim_buf *b = ((lim_file *)pf)->b;
	if (size < b->size) b->size = size; /* the capacity stays, for reuse */
	return SQLITE_OK;
}

static int limSync(sqlite3_file *pf, int flags) {
	(void)pf;
	(void)flags;
	return SQLITE_OK;
}

static int limFileSize(sqlite3_file *pf, sqlite3_int64 *size) {
	*size = ((lim_file *)pf)->b->size;
	return SQLITE_OK;
}

static int limLock(sqlite3_file *pf, int lvl) {
	(void)pf;
	(void)lvl;
	return SQLITE_OK;
}

static int limReserved(sqlite3_file *pf, int *res) {
	(void)pf;
	*res = 0;
	return SQLITE_OK;
}

static int limFileControl(sqlite3_file *pf, int op, void *arg) {
	(void)pf;
	(void)op;
	(void)arg;
	return SQLITE_NOTFOUND;
}

static int limSector(sqlite3_file *pf) {
	(void)pf;
	return 4096;
}

static int limCaps(sqlite3_file *pf) { return ((lim_file *)pf)->caps; }

static int limClose(sqlite3_file *pf) {
	lim_buf *b = ((lim_file *)pf)->b;
	sqlite3_mutex_enter(LMU);
	b->refs--;
	if (!b->name && b->refs == 0) freeBuf(b);
	sqlite3_mutex_leave(LMU);
	return SQLITE_OK;
}

static const sqlite3_io_methods limMethods = {
    1,         limClose,    limRead,   limWrite,       limTruncate, limSync, limFileSize,
    limLock,   limLock,     limReserved, limFileControl, limSector,   limCaps, 0,
    0,         0,           0,         0,              0};

/* xOpen: named files live in the registry until xDelete (SQLite reopens
 * the WAL by name); temporary ones until closed. The WAL claims what the
 * store's in-memory WAL claims; the database file claims nothing, as the
 * store's main file. */
static int limOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *outFlags) {
	lim_file *f = (lim_file *)pf;
	lim_buf *b = 0, **pp;
	(void)vfs;
	memset(f, 0, sizeof(*f));
	sqlite3_mutex_enter(LMU);
	if (name && (pp = findLocked(name))) b = *pp;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b) {
			sqlite3_mutex_leave(LMU);
			return SQLITE_NOMEM;
		}
		if (name) {
			b->name = malloc(strlen(name) + 1);
			if (!b->name) {
				free(b);
				sqlite3_mutex_leave(LMU);
				return SQLITE_NOMEM;
			}
			strcpy(b->name, name);
			b->next = lbufs;
			lbufs = b;
		}
	}
	b->refs++;
	sqlite3_mutex_leave(LMU);
	f->b = b;
	f->caps = (flags & LIM_OPEN_WAL) ? (SQLITE_IOCAP_SEQUENTIAL | SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_POWERSAFE_OVERWRITE) : 0;
	f->pMethods = &limMethods;
	if (outFlags) *outFlags = flags;
	return SQLITE_OK;
}

static int limDelete(sqlite3_vfs *vfs, const char *name, int syncDir) {
	lim_buf **pp;
	(void)vfs;
	(void)syncDir;
	sqlite3_mutex_enter(LMU);
	pp = findLocked(name);
	if (pp) {
		lim_buf *b = *pp;
		if (b->refs == 0) {
			*pp = b->next;
			freeBuf(b);
		} else {
			b->size = 0;
		}
	}
	sqlite3_mutex_leave(LMU);
	return SQLITE_OK;
}

static int limAccess(sqlite3_vfs *vfs, const char *name, int flags, int *res) {
	lim_buf **pp;
	(void)vfs;
	(void)flags;
	sqlite3_mutex_enter(LMU);
	pp = findLocked(name);
	*res = pp && (*pp)->size > 0;
	sqlite3_mutex_leave(LMU);
	return SQLITE_OK;
}

static int limFullPathname(sqlite3_vfs *vfs, const char *name, int nOut, char *out) {
	size_t n = strlen(name);
	(void)vfs;
	if ((int)n + 1 > nOut) return SQLITE_CANTOPEN;
	memcpy(out, name, n + 1);
	return SQLITE_OK;
}

static int lregistered;
static int lrc = SQLITE_ERROR;

static void limRegister(void) {
	lbase = sqlite3_vfs_find(0);
	if (!lbase) return;
	lvfs = *lbase; /* randomness, sleep, time: the platform's */
	lvfs.iVersion = lbase->iVersion < 2 ? lbase->iVersion : 2;
	lvfs.szOsFile = (int)sizeof(lim_file);
	lvfs.pNext = 0;
	lvfs.zName = "eslimit";
	lvfs.pAppData = 0;
	lvfs.xOpen = limOpen;
	lvfs.xDelete = limDelete;
	lvfs.xAccess = limAccess;
	lvfs.xFullPathname = limFullPathname;
	lrc = sqlite3_vfs_register(&lvfs, 0);
}

int es_limit_register(void) {
	sqlite3_mutex_enter(LMU);
	if (!lregistered) {
		lregistered = 1;
		limRegister();
	}
	sqlite3_mutex_leave(LMU);
	return lrc;
}

void es_limit_drop(const char *prefix) {
	lim_buf **pp;
	size_t n = strlen(prefix);
	sqlite3_mutex_enter(LMU);
	for (pp = &lbufs; *pp;) {
		lim_buf *b = *pp;
		if (b->refs == 0 && strncmp(b->name, prefix, n) == 0) {
			*pp = b->next;
			freeBuf(b);
		} else {
			pp = &b->next;
		}
	}
	sqlite3_mutex_leave(LMU);
}
