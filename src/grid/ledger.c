#include "grid/ledger.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "grid/i18n.h"

static const char *const status_names[] = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SIGNALED", "TIMEOUT",
                                           "INTERRUPTED", "NOT_STARTED", "SKIPPED", "START_FAILED",
                                           "OUT_OF_MEMORY", "CANCELLED", "PREEMPTED", "NODE_FAIL", "LOST"};

const char *job_status_name(job_status s) {
    return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "UNKNOWN";
}

int job_status_parse(const char *name) {
    for (size_t i = 0; i < sizeof status_names / sizeof *status_names; i++)
        if (!strcmp(name, status_names[i])) return (int)i;
    return -1;
}

int job_status_is_failure(job_status s) {
    return s == JOB_FAILED || s == JOB_SIGNALED || s == JOB_TIMEOUT || s == JOB_OUT_OF_MEMORY;
}

#define LEDGER_HEADER "id\tstatus\texit\tsignal\tgpu\tstart\tduration_s\tattempt\tlog\n"

int ledger_append(const char *path, const job_record *j) {
    if (!cg_file_exists(path)) {
        int rc = cg_file_append(path, LEDGER_HEADER, strlen(LEDGER_HEADER));
        if (rc) return rc;
    }
    char gpu[16];
    if (j->gpu >= 0) snprintf(gpu, sizeof gpu, "%d", j->gpu);
    else snprintf(gpu, sizeof gpu, "%s", j->gpu == -1 ? "cpu" : "-");
    double dur = j->end_time > j->start_time && j->start_time > 0 ? j->end_time - j->start_time : 0;
    char *line = cg_xasprintf("%s\t%s\t%d\t%d\t%s\t%.3f\t%.3f\t%d\t%s\n", j->cfg->id, job_status_name(j->status),
                              j->exit_code, j->signal, gpu, j->start_time, dur, j->attempts,
                              j->log_path ? j->log_path : "-");
    int rc = cg_file_append(path, line, strlen(line));
    free(line);
    return rc;
}

int ledger_last_status(const char *path, const grid_config *configs, int n, int *last) {
    for (int i = 0; i < n; i++) last[i] = -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return CG_OK;
        return cg_error_set(CG_ERR_IO, _("cannot read ledger %s: %s"), path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = CG_OK;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (lineno == 1 && !strncmp(line, "id\t", 3)) continue;
        char *tab = strchr(line, '\t');
        char *tab2 = tab ? strchr(tab + 1, '\t') : NULL;
        if (!tab || !tab2) {
            rc = cg_error_set(CG_ERR_FORMAT, _("%s:%d: malformed ledger line (expected tab-separated "
                              "id, status, ...)"), path, lineno);
            break;
        }
        *tab = *tab2 = 0;
        int st = job_status_parse(tab + 1);
        if (st < 0) {
            rc = cg_error_set(CG_ERR_FORMAT, _("%s:%d: unknown status \"%s\" in ledger"), path, lineno, tab + 1);
            break;
        }
        for (int i = 0; i < n; i++)
            if (!strcmp(configs[i].id, line)) last[i] = st;
    }
    free(line);
    fclose(f);
    return rc;
}
