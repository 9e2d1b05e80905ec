/* log.h — errors and log lines.
 *
 * Every message goes to stderr as "[LEVEL] text". Errors that the caller must handle are
 * returned as CG_ERR_* codes together with a message recorded by cg_error_set(); the top of the
 * program prints cg_error_message() once. Code deep in a module therefore never prints and
 * exits: it says *what* and *where* (file, line, key, tensor name) and returns.
 *
 *   int rc = grid_spec_load(path, &spec);
 *   if (rc) { cg_log_error("%s", cg_error_message()); return rc; }
 */
#ifndef CLIPGRID_CORE_LOG_H
#define CLIPGRID_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    CG_OK = 0,
    CG_ERR_USAGE = 2,      /* bad command line */
    CG_ERR_CONFIG = 3,     /* bad grid/config file or value */
    CG_ERR_IO = 4,         /* a file could not be read or written */
    CG_ERR_NOMEM = 5,
    CG_ERR_DEVICE = 6,     /* GPU / NVML trouble */
    CG_ERR_FORMAT = 7,     /* malformed data file (safetensors, vocab, image, ...) */
    CG_ERR_STATE = 8,      /* operation not valid now */
} cg_status;

typedef enum { CG_LOG_DEBUG, CG_LOG_INFO, CG_LOG_WARN, CG_LOG_ERROR } cg_log_level;

/* Messages below this level are dropped (default INFO; CLIPGRID_LOG=debug lowers it). */
void cg_log_set_level(cg_log_level level);
void cg_log(cg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define cg_log_debug(...) cg_log(CG_LOG_DEBUG, __VA_ARGS__)
#define cg_log_info(...)  cg_log(CG_LOG_INFO, __VA_ARGS__)
#define cg_log_warn(...)  cg_log(CG_LOG_WARN, __VA_ARGS__)
#define cg_log_error(...) cg_log(CG_LOG_ERROR, __VA_ARGS__)

/* Record the last error of this thread (printf-style) and return `code`, so that
 * `return cg_error_set(CG_ERR_CONFIG, "%s:%d: unknown key \"%s\"", path, line, key);` reads well. */
int cg_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cg_error_message(void);
void cg_error_clear(void);

/* Out-of-memory is not recoverable in this program: report and abort. */
void *cg_xmalloc(size_t n);
void *cg_xcalloc(size_t n, size_t size);
void *cg_xrealloc(void *p, size_t n);
char *cg_xstrdup(const char *s);
/* asprintf that cannot fail. */
char *cg_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
