/* capture.h — run a shell command in a test and keep what it printed.
 *
 *   char *out = test_capture("prog --flag 2>&1", &status);   // stdout (malloc()ed), exit status
 *
 * status is the command's exit status, or -1 when it could not run or was killed by a signal.
 */
#ifndef CLIPGRID_TEST_CAPTURE_H
#define CLIPGRID_TEST_CAPTURE_H

#include <stdio.h>
#include <sys/wait.h>

#include "core/log.h"

static char *test_capture(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    size_t len = 0, cap = 1 << 16, r;
    char *buf = cg_xmalloc(cap);
    while (p && (r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 4096) buf = cg_xrealloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = p ? pclose(p) : -1;
    *status = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

#endif
