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
void es_hl_shrink(int fd, long long nChunk, long long chunk);
int es_hl_sync(int fd);
void es_hl_close(int fd);
void es_hl_remove(const char *path);

#endif
