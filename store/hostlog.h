/*
 * The host log's file mapping (hostlog.c): what shim.c calls when a WAL is
 * backed by a file on the host's disk.
 */
#ifndef EJECTSAFE_HOSTLOG_H
#define EJECTSAFE_HOSTLOG_H

/* ES_HL_HDR is the size of the header region before the WAL's bytes. */
#define ES_HL_HDR 65536LL

int es_hl_supported(void);
void *es_hl_map(int fd, long long idx, long long chunk);
void es_hl_unmap(void *p, long long chunk);
void es_hl_drop(void *p, long long chunk);
int es_hl_pread(int fd, void *buf, long long n, long long off);
void es_hl_shrink(int fd, long long nChunk, long long chunk);
int es_hl_sync(int fd);
void es_hl_close(int fd);
int es_hl_pwrite(int fd, const void *buf, long long n, long long off);

/* ES_HL_MOVING is the suffix of the new file a log moves to after a
 * failed flush (es_hl_move_prepare, es_hl_move_commit). */
#define ES_HL_MOVING ".moving"
int es_hl_move_prepare(int oldfd, const char *path, unsigned char **chunks, long long size, long long chunk);
int es_hl_move_commit(const char *path);
void es_hl_remove_moving(const char *path);

/* es_hl_test_fail_sync makes the next n flushes of any host log fail with
 * errno e, as a failing disk would (tests only). */
void es_hl_test_fail_sync(int e, int n);
void es_hl_remove(const char *path);

#endif
