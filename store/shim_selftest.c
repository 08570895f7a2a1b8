/*
 * The ejectsafe VFS shim: es_shm_selftest, the checks of the wal-index
 * lock slots (shim_shm.c) that TestShim_lockSlots runs. They live in C
 * because Go test files cannot use cgo.
 */

#include "shim_internal.h"

/* ES_CHECK returns code from es_shm_selftest when cond does not hold. */
#define ES_CHECK(cond, code) \
	do { \
		if (!(cond)) return (code); \
	} while (0)

int es_shm_selftest(void) {
	es_dbstate d;
	es_file a, b, c;
	sqlite3_file *pa = (sqlite3_file *)&a, *pb = (sqlite3_file *)&b, *pc = (sqlite3_file *)&c;
	const int X = SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE, S = SQLITE_SHM_LOCK | SQLITE_SHM_SHARED;
	const int UX = SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE, US = SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED;
	memset(&d, 0, sizeof d);
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	memset(&c, 0, sizeof c);
	a.db = b.db = c.db = &d;
	a.nogate = b.nogate = c.nogate = 1; /* the gate needs the platform VFS */
	a.shmMapped = b.shmMapped = c.shmMapped = 1;
	d.nShmUser = 3;

	/* SHARED beside SHARED; EXCLUSIVE against either. */
	ES_CHECK(mainShmLock(pa, 3, 1, S) == SQLITE_OK, 1);
	ES_CHECK(mainShmLock(pb, 3, 1, S) == SQLITE_OK, 2);
	ES_CHECK(d.shmLock[3] == 2, 3);
	ES_CHECK(mainShmLock(pc, 3, 1, X) == SQLITE_BUSY, 4);
	ES_CHECK(mainShmLock(pa, 3, 1, S) == SQLITE_OK && d.shmLock[3] == 2, 5); /* held: no second count */
	ES_CHECK(mainShmLock(pa, 3, 1, X) == SQLITE_BUSY && d.shmLock[3] == 2, 6); /* b shares it */
	ES_CHECK(mainShmLock(pb, 3, 1, US) == SQLITE_OK && d.shmLock[3] == 1, 7);
	/* The one holder upgrades; then SHARED fails for the others. */
	ES_CHECK(mainShmLock(pa, 3, 1, X) == SQLITE_OK && d.shmLock[3] == -1, 8);
	ES_CHECK(a.shmExclMask == 1u << 3 && a.shmSharedMask == 0, 9);
	ES_CHECK(mainShmLock(pb, 3, 1, S) == SQLITE_BUSY && b.shmSharedMask == 0, 10);
	ES_CHECK(mainShmLock(pc, 3, 1, X) == SQLITE_BUSY, 11);
	ES_CHECK(mainShmLock(pa, 3, 1, UX) == SQLITE_OK && d.shmLock[3] == 0 && a.shmExclMask == 0, 12);
	ES_CHECK(mainShmLock(pc, 3, 1, X) == SQLITE_OK && d.shmLock[3] == -1, 13);
	ES_CHECK(mainShmLock(pc, 3, 1, UX) == SQLITE_OK && d.shmLock[3] == 0, 14);

	/* EXCLUSIVE over a range is all or nothing: slot 6 shared by b makes
	 * a's lock of 3-7 fail, and slots 3-5 (one of them a's own SHARED)
	 * are as they were. */
	ES_CHECK(mainShmLock(pa, 4, 1, S) == SQLITE_OK, 15);
	ES_CHECK(mainShmLock(pb, 6, 1, S) == SQLITE_OK, 16);
	ES_CHECK(mainShmLock(pa, 3, 5, X) == SQLITE_BUSY, 17);
	ES_CHECK(d.shmLock[3] == 0 && d.shmLock[4] == 1 && d.shmLock[5] == 0 && d.shmLock[6] == 1 && d.shmLock[7] == 0, 18);
	ES_CHECK(a.shmSharedMask == 1u << 4 && a.shmExclMask == 0, 19);
	ES_CHECK(mainShmLock(pb, 6, 1, US) == SQLITE_OK && d.shmLock[6] == 0, 20);
	ES_CHECK(mainShmLock(pa, 3, 5, X) == SQLITE_OK, 21);
	ES_CHECK(d.shmLock[3] == -1 && d.shmLock[4] == -1 && d.shmLock[7] == -1 && a.shmSharedMask == 0, 22);
	ES_CHECK(mainShmLock(pb, 5, 1, S) == SQLITE_BUSY, 23);
	ES_CHECK(mainShmLock(pa, 3, 5, UX) == SQLITE_OK, 24);
	ES_CHECK(d.shmLock[3] == 0 && d.shmLock[4] == 0 && d.shmLock[7] == 0 && a.shmExclMask == 0, 25);

	/* Unlocking what is not held changes nothing; bad ranges are errors. */
	ES_CHECK(mainShmLock(pb, 0, 1, S) == SQLITE_OK && d.shmLock[0] == 1, 26);
	ES_CHECK(mainShmLock(pa, 0, 8, UX) == SQLITE_OK && d.shmLock[0] == 1, 27);
	ES_CHECK(mainShmLock(pa, 7, 2, X) == SQLITE_IOERR, 28);
	ES_CHECK(mainShmLock(pa, 3, 2, S) == SQLITE_IOERR, 29);

	/* The gate is quiet only with the writer and reader slots free. */
	ES_CHECK(gateQuietState(&d) == 0, 30);
	ES_CHECK(mainShmLock(pb, 0, 1, US) == SQLITE_OK && gateQuietState(&d) == 1, 31);
	ES_CHECK(mainShmLock(pc, 1, 1, X) == SQLITE_OK && gateQuietState(&d) == 1, 32); /* a checkpoint */

	/* Unmapping gives up everything a connection holds. */
	ES_CHECK(mainShmLock(pa, 2, 1, X) == SQLITE_OK && mainShmLock(pa, 5, 1, S) == SQLITE_OK, 33);
	shmUnmapLocked(&a);
	ES_CHECK(d.shmLock[2] == 0 && d.shmLock[5] == 0 && d.shmLock[1] == -1 && d.nShmUser == 2, 34);
	ES_CHECK(a.shmSharedMask == 0 && a.shmExclMask == 0 && !a.shmMapped, 35);
	shmUnmapLocked(&c);
	ES_CHECK(d.shmLock[1] == 0, 36);
	return 0;
}
