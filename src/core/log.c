#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static cg_log_level log_threshold = CG_LOG_INFO;
static int log_threshold_from_env_done;
static _Thread_local char error_buf[1024];

static void log_threshold_from_env(void) {
    if (log_threshold_from_env_done) return;
    log_threshold_from_env_done = 1;
    const char *e = getenv("CLIPGRID_LOG");
    if (e && strcasecmp(e, "debug") == 0) log_threshold = CG_LOG_DEBUG;
}

void cg_log_set_level(cg_log_level level) {
    log_threshold_from_env_done = 1;
    log_threshold = level;
}

void cg_log(cg_log_level level, const char *fmt, ...) {
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    log_threshold_from_env();
    if (level < log_threshold) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s] %s\n", names[level], line);
}

int cg_error_set(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    return code;
}

const char *cg_error_message(void) { return error_buf[0] ? error_buf : "unknown error"; }
void cg_error_clear(void) { error_buf[0] = 0; }

static void die_oom(size_t n) {
    fprintf(stderr, "[ERROR] out of memory allocating %zu bytes\n", n);
    abort();
}

void *cg_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die_oom(n);
    return p;
}

void *cg_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die_oom(n * size);
    return p;
}

void *cg_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_oom(n);
    return q;
}

char *cg_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = cg_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

char *cg_xasprintf(const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *p = cg_xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
