/* The "eslimit" VFS: see limitvfs.c. */
#ifndef EJECTSAFE_LIMITVFS_H
#define EJECTSAFE_LIMITVFS_H

/* es_limit_register registers "eslimit" once; it returns an SQLite code. */
int es_limit_register(void);

/* es_limit_drop frees the closed files whose names start with prefix. */
void es_limit_drop(const char *prefix);

#endif
