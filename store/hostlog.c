/*
 * The host log, C half: the in-memory WAL's chunks as a shared mapping of
 * a file on the host's own disk (store/hostlog.go owns the file, its
 * header and replay). A frame SQLite writes is in the kernel's page cache
 * the moment memcpy returns, so it survives the process (kill -9, a
 * panic) with no system call on the commit path.
 *
 * File layout: ES_HL_HDR bytes of header (Go's), then WAL byte i at
 * ES_HL_HDR + i; chunk c maps [ES_HL_HDR + c*chunk, +chunk). ES_HL_HDR is
 * 64 KiB so every chunk's offset is a multiple of any page size in use.
 *
 * Not on Windows: there every function answers "unsupported" and the Go
 * half refuses the HostLog and HostSync levels.
 */
#include "hostlog.h"

#ifndef _WIN32
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Linux only: elsewhere ftruncate leaves the mapped chunks sparse (a full
 * host disk then kills the process with SIGBUS on a store into the
 * mapping) and fdatasync is not a flush to stable storage on macOS
 * (F_FULLFSYNC is), so the Go half falls back to Checkpoint. */
#ifdef __linux__
int es_hl_supported(void) { return 1; }
#else
int es_hl_supported(void) { return 0; }
#endif

/* es_hl_map makes the file cover chunk idx, then maps it shared. */
void *es_hl_map(int fd, long long idx, long long chunk) {
	long long end = ES_HL_HDR + (idx + 1) * chunk;
	struct stat st;
	void *m;
	if (fstat(fd, &st) != 0) return 0;
	if (st.st_size < end) {
#ifdef __linux__
		if (posix_fallocate(fd, (off_t)(ES_HL_HDR + idx * chunk), (off_t)chunk) != 0) return 0;
#else
		if (ftruncate(fd, (off_t)end) != 0) return 0;
#endif
	}
	m = mmap(0, (size_t)chunk, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(ES_HL_HDR + idx * chunk));
	return m == MAP_FAILED ? 0 : m;
}

void es_hl_unmap(void *p, long long chunk) { munmap(p, (size_t)chunk); }

/* es_hl_drop gives a written chunk's pages back to the page cache: the
 * process's resident memory stays bounded while a transaction larger
 * than RAM goes by; a later read faults them in from the file. On a
 * shared file mapping nothing is lost (dirty pages stay dirty in the
 * page cache and are written back). */
void es_hl_drop(void *p, long long chunk) { madvise(p, (size_t)chunk, MADV_DONTNEED); }

/* es_hl_pread reads n bytes of the WAL at off from the file, not through
 * the mapping: a chunk es_hl_drop gave back stays out of the process's
 * resident memory when it is read (a checkpoint reads every frame of a
 * big transaction once). The page cache is the mapping's, so the bytes
 * are those last stored into it. It returns 0 or an errno. */
int es_hl_pread(int fd, void *buf, long long n, long long off) {
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t k = pread(fd, p, (size_t)n, (off_t)(ES_HL_HDR + off));
		if (k < 0 && errno == EINTR) continue;
		if (k < 0) return errno;
		if (k == 0) return EIO; /* the file covers every mapped chunk */
		p += k;
		off += k;
		n -= k;
	}
	return 0;
}

/* es_hl_shrink gives back the file's blocks past nChunk chunks. */
void es_hl_shrink(int fd, long long nChunk, long long chunk) {
	if (ftruncate(fd, (off_t)(ES_HL_HDR + nChunk * chunk)) != 0) {
		/* Only space is lost: the bytes past the WAL's end are never read
		 * as frames (SQLite's salts and checksums end the log). */
	}
}

static int failSyncErr, failSyncN; /* es_hl_test_fail_sync */

void es_hl_test_fail_sync(int e, int n) {
	__atomic_store_n(&failSyncErr, e, __ATOMIC_SEQ_CST);
	__atomic_store_n(&failSyncN, n, __ATOMIC_SEQ_CST);
}

/* es_hl_sync flushes the log's data: on Linux fdatasync also writes back
 * the dirty pages of shared mappings of the file. It returns errno. */
int es_hl_sync(int fd) {
#ifdef __APPLE__
	int e = fsync(fd) == 0 ? 0 : errno;
#else
	int e = fdatasync(fd) == 0 ? 0 : errno;
#endif
	if (__atomic_load_n(&failSyncN, __ATOMIC_SEQ_CST) > 0 && __atomic_sub_fetch(&failSyncN, 1, __ATOMIC_SEQ_CST) >= 0) {
		e = __atomic_load_n(&failSyncErr, __ATOMIC_SEQ_CST);
	}
	return e;
}

void es_hl_close(int fd) { close(fd); }

/* es_hl_pwrite writes n bytes at off (the header, from the Go half, on the
 * file the WAL maps now); it returns 0 or errno. */
int es_hl_pwrite(int fd, const void *buf, long long n, long long off) {
	const char *p = buf;
	while (n > 0) {
		ssize_t k = pwrite(fd, p, (size_t)n, (off_t)off);
		if (k < 0) {
			if (errno == EINTR) continue;
			return errno;
		}
		p += k;
		off += k;
		n -= k;
	}
	return 0;
}

/* movingName is path with ES_HL_MOVING appended (malloc'd), or 0. */
static char *movingName(const char *path) {
	size_t n = strlen(path), m = strlen(ES_HL_MOVING);
	char *t = malloc(n + m + 1);
	if (!t) return 0;
	memcpy(t, path, n);
	memcpy(t + n, ES_HL_MOVING, m + 1);
	return t;
}

/* es_hl_move_prepare is the first half of moving a log whose flush failed
 * (after a failed fdatasync the kernel may have dropped its dirty pages:
 * the file is never flushed again). It writes a new file,
 * "<path>.moving" (0600, created exclusively, no link followed): the
 * header region read from oldfd, then size bytes of WAL from the chunks
 * (what SQLite wrote, as this process sees it), and flushes it. It
 * returns the new fd, or -errno with nothing left behind. */
int es_hl_move_prepare(int oldfd, const char *path, unsigned char **chunks, long long size, long long chunk) {
	char *tmp = movingName(path);
	unsigned char *hdr = malloc((size_t)ES_HL_HDR);
	int fd = -1, e = 0;
	long long off;
	if (!tmp || !hdr) {
		e = ENOMEM;
		goto out;
	}
	unlink(tmp); /* left by a process that died in a move: never the log */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		goto out;
	}
	for (off = 0; off < ES_HL_HDR;) {
		ssize_t k = pread(oldfd, hdr + off, (size_t)(ES_HL_HDR - off), (off_t)off);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) {
			e = k < 0 ? errno : EIO;
			goto out;
		}
		off += k;
	}
	if ((e = es_hl_pwrite(fd, hdr, ES_HL_HDR, 0)) != 0) goto out;
	for (off = 0; off < size; off += chunk) {
		long long n = size - off < chunk ? size - off : chunk;
		if ((e = es_hl_pwrite(fd, chunks[off / chunk], n, ES_HL_HDR + off)) != 0) goto out;
	}
	e = es_hl_sync(fd);
out:
	if (e != 0) {
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		fd = -e;
	}
	free(hdr);
	free(tmp);
	return fd;
}

/* es_hl_remove_moving removes "<path>.moving" (a move given up). */
void es_hl_remove_moving(const char *path) {
	char *tmp = movingName(path);
	if (tmp) unlink(tmp);
	free(tmp);
}

/* es_hl_move_commit renames "<path>.moving" over path and flushes the
 * directory: from then on the name is the new file. It returns 0; errno
 * when the rename failed (the new file is removed; the caller closes its
 * fd); -errno when the rename was done but the directory's flush failed
 * (the name is the new file, not known durable). */
int es_hl_move_commit(const char *path) {
	char *tmp = movingName(path), *dir = 0, *slash;
	int e = 0, dfd;
	if (!tmp || !(dir = strdup(path))) {
		e = ENOMEM;
		goto out;
	}
	if (rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash && slash != dir) *slash = 0;
	else if (slash) slash[1] = 0;
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		e = -errno;
		goto out;
	}
	if (fsync(dfd) != 0) e = -errno;
	close(dfd);
out:
	free(tmp);
	free(dir);
	return e;
}

void es_hl_remove(const char *path) {
	if (path) unlink(path);
}

#else

int es_hl_supported(void) { return 0; }
void *es_hl_map(int fd, long long idx, long long chunk) {
	(void)fd;
	(void)idx;
	(void)chunk;
	return 0;
}
void es_hl_unmap(void *p, long long chunk) {
	(void)p;
	(void)chunk;
}
void es_hl_drop(void *p, long long chunk) {
	(void)p;
	(void)chunk;
}
int es_hl_pread(int fd, void *buf, long long n, long long off) {
	(void)fd;
	(void)buf;
	(void)n;
	(void)off;
	return 38; /* ENOSYS */
}
void es_hl_shrink(int fd, long long nChunk, long long chunk) {
	(void)fd;
	(void)nChunk;
	(void)chunk;
}
int es_hl_sync(int fd) {
	(void)fd;
	return 38; /* ENOSYS */
}
void es_hl_close(int fd) { (void)fd; }
void es_hl_remove(const char *path) { (void)path; }
int es_hl_pwrite(int fd, const void *buf, long long n, long long off) {
	(void)fd;
	(void)buf;
	(void)n;
	(void)off;
	return 38; /* ENOSYS */
}
int es_hl_move_prepare(int oldfd, const char *path, unsigned char **chunks, long long size, long long chunk) {
	(void)oldfd;
	(void)path;
	(void)chunks;
	(void)size;
	(void)chunk;
	return -38;
}
int es_hl_move_commit(const char *path) {
	(void)path;
	return 38;
}
void es_hl_remove_moving(const char *path) { (void)path; }
void es_hl_test_fail_sync(int e, int n) {
	(void)e;
	(void)n;
}

#endif
