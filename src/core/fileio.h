/* fileio.h — reading whole files, writing them atomically, making directories.
 *
 * Atomic write: the bytes go to "<path>.tmp.<pid>" in the same directory, are fsync()ed, then
 * rename()d over <path>, and the directory is fsync()ed. A reader (or a run killed at any
 * instant) sees either the old file or the new one, never a half-written one.
 * All functions return CG_OK or a CG_ERR_* code with a message naming the path.
 */
#ifndef CLIPGRID_CORE_FILEIO_H
#define CLIPGRID_CORE_FILEIO_H

#include <stddef.h>

/* Read a whole file; *out is NUL-terminated (not counted in *len) and must be free()d. */
int cg_file_read(const char *path, char **out, size_t *len);
int cg_file_write_atomic(const char *path, const void *data, size_t len);
/* Append bytes with O_APPEND and fsync (ledgers, logs). */
int cg_file_append(const char *path, const void *data, size_t len);
/* mkdir -p; existing directories are fine. */
int cg_mkdir_p(const char *path);
int cg_file_exists(const char *path);
/* "dir/name" in a new malloc()ed string (dir may be "" or end with '/'). */
char *cg_path_join(const char *dir, const char *name);
/* The running executable's path (/proc/self/exe), or with dir_only its directory, into buf.
 * 0 on success, -1 (buf "") when it cannot be read or does not fit. */
int cg_self_exe(char *buf, size_t n, int dir_only);

#endif
