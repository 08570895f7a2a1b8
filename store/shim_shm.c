/*
 * The ejectsafe VFS shim: the wal-index in heap memory (xShm*) and the gate.
 */

#include "shim_internal.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <time.h>
#endif

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
 * es_gate_limit), timed on a monotonic clock (nowMs: a wall clock set
 * back would stretch the wait); the longest wait is kept for the Store's
 * Stats. */
#define ES_READ_LOCK0 3
#define ES_GATE_POLL_US 50
#define ES_GATE_MAX_MS 1000 /* until es_gate_limit */

/* The lock slots are atomics (es_dbstate.shmLock), not guarded by mu: a
 * commit takes and gives up six of them, and a mutex pair around each was
 * most of the shim's cost per commit (BENCHMARKS.md, issue 12). A slot is
 * a count of SHARED holders, or -1 while one connection holds it
 * EXCLUSIVE; which slots a connection holds, and how, is in its own
 * masks, which only its own calls touch (SQLite calls a connection's
 * methods one at a time). Every access is sequentially consistent: a lock
 * is at least an acquire and an unlock a release, which is what wal.c
 * needs of them (it calls xShmBarrier where it needs a full fence), and
 * the gate below relies on the single order of all of them.
 *
 * The gate and the locks are ordered as a pair of flags: a gated
 * transaction takes its lock, then looks at the gate, and gives the lock
 * back if it closed; the Store closes the gate, then looks at the locks
 * (es_gate_quiet, which reads them in an order that a transaction moving
 * between slots cannot slip through). One of the two sees the other, so
 * the Store never rewinds beside a transaction that got past a closed
 * gate. */

static int gateClosed(es_dbstate *n) {
	long long hw;
	if (__atomic_load_n(&n->gate, __ATOMIC_SEQ_CST)) return 1;
	hw = __atomic_load_n(&n->highwater, __ATOMIC_SEQ_CST);
	/* wal.size is written under wal.mu; an aligned 64-bit load, which is
	 * all the gate needs (a size a moment old closes it a moment late). */
	return hw > 0 && __atomic_load_n(&n->wal.size, __ATOMIC_RELAXED) > hw;
}

/* nowMs is a monotonic clock in milliseconds, for the gate's bound only:
 * the platform VFS's xCurrentTime is the wall clock, which a person or
 * NTP may set back; it is used only if the monotonic clock fails. */
static long long nowMs(void) {
#ifdef _WIN32
	return (long long)GetTickCount64();
#else
	struct timespec ts;
	sqlite3_int64 t = 0;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (gbase->iVersion >= 2 && gbase->xCurrentTimeInt64) {
		gbase->xCurrentTimeInt64(gbase, &t);
	} else {
		double d = 0;
		gbase->xCurrentTime(gbase, &d);
		t = (sqlite3_int64)(d * 86400000.0);
	}
	return (long long)t;
#endif
}

/* gateBound is the longest a transaction waits at the gate. */
static long long gateBound(es_dbstate *n) {
	long long bound = __atomic_load_n(&n->gateMaxMs, __ATOMIC_SEQ_CST);
	return bound > 0 ? bound : ES_GATE_MAX_MS;
}

/* gateWait waits while the gate is closed, at most what is left of the
 * bound since *start (0: not started). It returns 1 when the bound ran
 * out: the transaction then goes on past a closed gate. */
static int gateWait(es_dbstate *n, long long *start) {
	long long waited, bound;
	if (!gateClosed(n)) return 0;
	if (*start == 0) *start = nowMs();
	bound = gateBound(n);
	do {
		gbase->xSleep(gbase, ES_GATE_POLL_US);
		waited = nowMs() - *start;
	} while (waited < bound && gateClosed(n));
	sqlite3_mutex_enter(n->mu);
	if (waited > n->gateLongestMs) n->gateLongestMs = waited;
	sqlite3_mutex_leave(n->mu);
	return waited >= bound;
}

int es_gate_limit(const char *path, long long maxWaitMs) {
	es_dbstate *p;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) {
		sqlite3_mutex_enter(p->mu);
		__atomic_store_n(&p->gateMaxMs, maxWaitMs, __ATOMIC_SEQ_CST);
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
		if (closed >= 0) __atomic_store_n(&p->gate, closed, __ATOMIC_SEQ_CST);
		if (highwater >= 0) __atomic_store_n(&p->highwater, highwater, __ATOMIC_SEQ_CST);
	}
	sqlite3_mutex_leave(GMU);
	return p != 0;
}

long long es_gate_mark(const char *path) {
	es_dbstate *p;
	long long hw = -1;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) hw = __atomic_load_n(&p->highwater, __ATOMIC_SEQ_CST);
	sqlite3_mutex_leave(GMU);
	return hw;
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
	if (p) busy = __atomic_load_n(&p->shmLock[0], __ATOMIC_SEQ_CST) < 0;
	sqlite3_mutex_leave(GMU);
	return busy;
}

/* readersFree: no connection holds a reader slot, in any mode. */
static int readersFree(es_dbstate *p) {
	int i;
	for (i = ES_READ_LOCK0; i < SQLITE_SHM_NLOCK; i++) {
		if (__atomic_load_n(&p->shmLock[i], __ATOMIC_SEQ_CST) != 0) return 0;
	}
	return 1;
}

/* gateQuietState: no connection holds the writer slot or a reader
 * slot, in any mode. The slots are read one at a time, so the order
 * matters: a transaction past the gate holds a slot from its first lock
 * to its last, and moves from one reader slot to another only while it
 * holds the writer slot (wal.c walRestartLog); at its end it gives up the
 * writer slot, then its reader slot. Reading the reader slots, then the
 * writer slot, then the reader slots again sees it at every point of
 * that path. */
int gateQuietState(es_dbstate *p) {
	return readersFree(p) && __atomic_load_n(&p->shmLock[0], __ATOMIC_SEQ_CST) == 0 && readersFree(p);
}

int es_gate_quiet(const char *path) {
	es_dbstate *p;
	int quiet = 0;
	sqlite3_mutex_enter(GMU);
	p = dbFindLocked(path, strlen(path));
	if (p) quiet = gateQuietState(p);
	sqlite3_mutex_leave(GMU);
	return quiet;
}

/* shmUnlock gives up this connection's hold on slots [ofst, ofst+cnt). */
static void shmUnlock(es_file *f, int ofst, int cnt) {
	int *lk = f->db->shmLock;
	int i;
	for (i = ofst; i < ofst + cnt; i++) {
		unsigned bit = 1u << i;
		if (f->shmSharedMask & bit) {
			__atomic_fetch_sub(&lk[i], 1, __ATOMIC_SEQ_CST);
			f->shmSharedMask &= ~bit;
		} else if (f->shmExclMask & bit) {
			__atomic_store_n(&lk[i], 0, __ATOMIC_SEQ_CST);
			f->shmExclMask &= ~bit;
		}
	}
}

/* shmShared takes slot i in SHARED: it fails while another connection
 * holds it EXCLUSIVE. A slot this connection holds already stays as held. */
static int shmShared(es_file *f, int i) {
	int *slot = &f->db->shmLock[i];
	unsigned bit = 1u << i;
	int v;
	if ((f->shmSharedMask | f->shmExclMask) & bit) return SQLITE_OK;
	v = __atomic_load_n(slot, __ATOMIC_SEQ_CST);
	do {
		if (v < 0) return SQLITE_BUSY;
	} while (!__atomic_compare_exchange_n(slot, &v, v + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
	f->shmSharedMask |= bit;
	return SQLITE_OK;
}

/* shmExclusive takes slots [ofst, ofst+cnt) EXCLUSIVE, or none: it fails
 * while another connection holds any of them in any mode. A slot this
 * connection alone holds SHARED is upgraded. */
static int shmExclusive(es_file *f, int ofst, int cnt) {
	int *lk = f->db->shmLock;
	unsigned took = 0;
	int i, j;
	for (i = ofst; i < ofst + cnt; i++) {
		unsigned bit = 1u << i;
		int want;
		if (f->shmExclMask & bit) continue;
		want = (f->shmSharedMask & bit) ? 1 : 0; /* this connection's own SHARED hold: upgraded */
		if (!__atomic_compare_exchange_n(&lk[i], &want, -1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			/* Give back what this call took, as it was: the masks are
			 * not changed yet. */
			for (j = ofst; j < i; j++) {
				if (took & (1u << j)) __atomic_store_n(&lk[j], (f->shmSharedMask & (1u << j)) ? 1 : 0, __ATOMIC_SEQ_CST);
			}
			return SQLITE_BUSY;
		}
		took |= bit;
	}
	f->shmSharedMask &= ~took;
	f->shmExclMask |= took;
	return SQLITE_OK;
}

/* xShmLock: SQLite's lock slots. SHARED is taken one slot at a time (as
 * wal.c always asks) and fails while another connection holds the slot
 * EXCLUSIVE; EXCLUSIVE fails while any other connection holds any of the
 * slots in any mode. A transaction's first lock waits at the gate. */
int mainShmLock(sqlite3_file *pf, int ofst, int cnt, int flags) {
	es_file *f = (es_file *)pf;
	long long start = 0;
	int gated, rc;
	if (ofst < 0 || cnt < 1 || ofst + cnt > SQLITE_SHM_NLOCK) return SQLITE_IOERR;
	if (flags & SQLITE_SHM_UNLOCK) {
		shmUnlock(f, ofst, cnt);
		return SQLITE_OK;
	}
	if ((flags & SQLITE_SHM_SHARED) && cnt != 1) return SQLITE_IOERR;
	gated = !f->nogate && !f->shmSharedMask && !f->shmExclMask && (ofst == 0 || ofst >= ES_READ_LOCK0);
	for (;;) {
		if (gated && gateWait(f->db, &start)) gated = 0; /* waited the bound out: go on */
		rc = (flags & SQLITE_SHM_SHARED) ? shmShared(f, ofst) : shmExclusive(f, ofst, cnt);
		if (rc != SQLITE_OK || !gated || !gateClosed(f->db)) return rc;
		shmUnlock(f, ofst, cnt); /* the gate closed meanwhile: wait, then again */
		/* The bound holds across these turns too. */
		if (start == 0) {
			start = nowMs();
		} else if (nowMs() - start >= gateBound(f->db)) {
			gated = 0;
		}
	}
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
	shmUnlock(f, 0, SQLITE_SHM_NLOCK);
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
