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

/* es_hl_shrink gives back the file's blocks past nChunk chunks. */
void es_hl_shrink(int fd, long long nChunk, long long chunk) {
	if (ftruncate(fd, (off_t)(ES_HL_HDR + nChunk * chunk)) != 0) {
		/* Only space is lost: the bytes past the WAL's end are never read
		 * as frames (SQLite's salts and checksums end the log). */
	}
}

/* es_hl_sync flushes the log's data: on Linux fdatasync also writes back
 * the dirty pages of shared mappings of the file. It returns errno. */
int es_hl_sync(int fd) {
#ifdef __APPLE__
	return fsync(fd) == 0 ? 0 : errno;
#else
	return fdatasync(fd) == 0 ? 0 : errno;
#endif
}

void es_hl_close(int fd) { close(fd); }

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

#endif
