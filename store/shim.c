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
 * Go pointers are never stored here: Go files are named by a uint64 handle,
 * a Store's dbState by the owner id of its database's record.
 *
 * The files: this one is the VFS (which file goes where); shim_registry.c
 * the registry of databases and the by-path API Go calls (shim.h);
 * shim_wal.c the in-memory WAL; shim_shm.c the wal-index and the gate;
 * shim_main.c main files, journals and the main-file locks.
 * shim_internal.h declares what they share.
 */

#include "shim_internal.h"

sqlite3_vfs *gbase; /* the platform VFS we delegate to */
static sqlite3_vfs gvfs;

/* ---- the VFS ---- */

/* xOpen: main files and journals of databases a Store opened go to Go; the
 * WAL comes from the registry. Anything else goes to the platform VFS
 * unchanged: temporary files (never on the drive), and databases no Store
 * owns (VACUUM INTO targets, ATTACHed databases) with their WAL and
 * journal. */
static int esOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *outFlags) {
	es_file *f = (es_file *)pf;
	es_dbstate *n = 0;
	uint64_t owner = 0;
	int rc;
	(void)vfs;
	if (name && (flags & SQLITE_OPEN_WAL)) n = dbRef(name, 4, 0);
	if (name && (flags & SQLITE_OPEN_MAIN_DB)) n = dbRef(name, 0, &owner);
	if (!n && !(name && (flags & SQLITE_OPEN_MAIN_JOURNAL))) {
		return gbase->xOpen(gbase, name, pf, flags, outFlags);
	}
	memset(f, 0, sizeof(*f));
	if (flags & SQLITE_OPEN_WAL) {
		sqlite3_mutex_enter(n->wal.mu);
		n->wal.exists = 1;
		sqlite3_mutex_leave(n->wal.mu);
		f->kind = ES_KIND_WAL;
		f->db = n;
		f->pMethods = &walMethods;
	} else if (flags & SQLITE_OPEN_MAIN_DB) {
		rc = owner ? esGoOpen(owner, (char *)name, flags, ES_KIND_MAIN, &f->h) : SQLITE_CANTOPEN;
		if (rc != SQLITE_OK) {
			dbUnref(n);
			return rc;
		}
		f->kind = ES_KIND_MAIN;
		f->db = n;
		f->pMethods = &mainMethods;
	} else {
		owner = journalOwner(name);
		rc = owner ? esGoOpen(owner, (char *)name, flags, ES_KIND_JOURNAL, &f->h) : ES_NOT_MINE;
		if (rc == ES_NOT_MINE) return gbase->xOpen(gbase, name, pf, flags, outFlags);
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
	uint64_t owner;
	int rc;
	(void)vfs;
	if (isWALName(name)) {
		es_dbstate *n = dbRef(name, 4, 0);
		if (n) {
			sqlite3_mutex_enter(n->wal.mu);
			n->wal.exists = 0;
			__atomic_store_n(&n->wal.size, 0, __ATOMIC_RELAXED);
			if (n->wal.hasLog) {
				/* Everything is checkpointed (SQLite deletes the WAL only
				 * then): the host log goes too. */
				es_hl_remove(n->wal.logPath);
				walDetachLog(&n->wal);
			}
			walFreeChunks(&n->wal, 0);
			sqlite3_mutex_leave(n->wal.mu);
			dbUnref(n);
			return SQLITE_OK;
		}
	}
	owner = journalOwner(name);
	rc = owner ? esGoDelete(owner, (char *)name, syncDir) : ES_NOT_MINE;
	if (rc != ES_NOT_MINE) return rc;
	return gbase->xDelete(gbase, name, syncDir);
}

/* xAccess: a WAL "exists" when it holds bytes, as os_unix.c treats an empty
 * file as absent. */
static int esAccess(sqlite3_vfs *vfs, const char *name, int flags, int *res) {
	uint64_t owner;
	int rc;
	(void)vfs;
	if (isWALName(name)) {
		es_dbstate *n = dbRef(name, 4, 0);
		if (n) {
			sqlite3_mutex_enter(n->wal.mu);
			*res = n->wal.exists && n->wal.size > 0;
			sqlite3_mutex_leave(n->wal.mu);
			dbUnref(n);
			return SQLITE_OK;
		}
	}
	owner = journalOwner(name);
	if (!owner && name) owner = dbOwner(name, strlen(name));
	rc = owner ? esGoAccess(owner, (char *)name, flags, res) : ES_NOT_MINE;
	if (rc != ES_NOT_MINE) return rc;
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
