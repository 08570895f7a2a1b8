/*
 * The ejectsafe VFS shim: the wal-index in heap memory (xShm*) and the gate.
 */

#include "shim_internal.h"

/* ---- wal-index in heap memory ---- */

/* xShmMap: regions are allocated zeroed and never move while mapped. */
int mainShmMap(sqlite3_file *pf, int iRegion, int szRegion, int extend, void volatile **pp) {
	es_file *f = (es_file *)pf;
	es_dbstate *n = f->db;
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

static int gateClosedLocked(es_dbstate *n) {
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
	es_dbstate *n = f->db;
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
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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
	es_dbstate *p;
	long long ms = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		ms = p->gateLongestMs;
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return ms;
}

int es_gate(const char *path, int closed, long long highwater) {
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->wal.mu);
		p->wal.cut = cut;
		sqlite3_mutex_leave(p->wal.mu);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

int es_writer_busy(const char *path) {
	es_dbstate *p;
	int busy = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		busy = p->shmExcl[0];
		sqlite3_mutex_leave(p->mu);
	}
	sqlite3_mutex_leave(GMU);
	return busy;
}

int es_gate_quiet(const char *path) {
	es_dbstate *p;
	int i, quiet = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
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
int mainShmLock(sqlite3_file *pf, int ofst, int cnt, int flags) {
	es_file *f = (es_file *)pf;
	es_dbstate *n = f->db;
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
void mainShmBarrier(sqlite3_file *pf) {
	(void)pf;
	__sync_synchronize();
}

/* shmUnmapLocked detaches a connection; the last one frees the regions, so
 * the next connection rebuilds the wal-index from the in-memory WAL, as
 * SQLite does after the last process leaves a -shm file. */
void shmUnmapLocked(es_file *f) {
	es_dbstate *n = f->db;
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

int mainShmUnmap(sqlite3_file *pf, int deleteFlag) {
	es_dbstate *n = ((es_file *)pf)->db;
	(void)deleteFlag;
	sqlite3_mutex_enter(n->mu);
	shmUnmapLocked((es_file *)pf);
	sqlite3_mutex_leave(n->mu);
	return SQLITE_OK;
}
