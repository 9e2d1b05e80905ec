/* clipgrid run — command line, grid, GPUs, resume; then run_local() and the summary. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "commands.h"
#include "core/fileio.h"
#include "core/log.h"
#include "grid/ledger.h"
#include "grid/i18n.h"
#include "grid/nvml.h"
#include "grid/run_local.h"
#include "grid/run_slurm.h"
#include "grid/sched.h"
#include "grid/spec.h"
#include "grid/summary.h"
#include "grid/template.h"

static const char *const run_usage = N_(
"usage: clipgrid run [options] [-- extra arguments for every job]\n"
"\n"
"Train every image encoder x text encoder configuration of a grid, in parallel on GPUs.\n"
"\n"
"grid:\n"
"  --config FILE              grid file (JSON; docs/grid-file.md); the flags below override it\n"
"  --image-encoders A,B       image encoders (e.g. starnet_s1,starnet_s2)\n"
"  --text-encoders X,Y        text encoders (e.g. clip:ViT-B/32,bert-base-chinese)\n"
"  --command TEMPLATE         run TEMPLATE (sh -c) instead of `clipgrid train ...`; placeholders\n"
"                             {image_encoder} {text_encoder} {id} {out_dir} {gpu} {log} {train_args} {extra_args}\n"
"where:\n"
"  --gpus LIST|all|cpu[:N]    GPUs by NVML index or UUID (default: all, or cpu without NVML)\n"
"  --jobs-per-gpu N           jobs sharing one GPU (default 1)\n"
"  --max-parallel N           at most N jobs at once (default: all slots)\n"
"  --gpu-util-threshold P     hold jobs while a GPU's utilization is above P%% (default 70)\n"
"  --gpu-wait-timeout S       ... for at most S seconds, then start anyway (default 300)\n"
"  --gpu-poll-interval S      seconds between utilization readings (default 1)\n"
"  --gpu-util-samples N       readings averaged (default 3)\n"
"  --order lpt|grid           longest expected job first (default) or grid order\n"
"  --backend local|slurm      where jobs run (default local; docs/slurm.md)\n"
"output:\n"
"  --log-dir DIR              one log per job, summary.json, ledger.tsv (default logs/clip_training)\n"
"  --out-dir DIR              each job writes to DIR/<config id>/ (default checkpoints/clip_models)\n"
"  --status-interval S        print running jobs every S seconds (default 30; 0: never)\n"
"slurm (--backend slurm; also the grid file's \"slurm\" object):\n"
"  --partition P --account A  sbatch --partition / --account\n"
"  --time T --mem M           sbatch --time (e.g. 4:00:00) / --mem (e.g. 32G) of each task\n"
"  --gres G                   generic resources of each task (default gpu:1; none with --gpus cpu)\n"
"  --cpus-per-task N          sbatch --cpus-per-task\n"
"  --sbatch-arg ARG           any other sbatch option, e.g. --sbatch-arg=--qos=high (repeatable)\n"
"  --job-name NAME            the array's name (default clipgrid)\n"
"  --slurm-poll S             seconds between scontrol polls (default 5)\n"
"  --on-interrupt ask|cancel|keep   Ctrl-C: ask whether to scancel the array (default), or don't ask\n"
"failures:\n"
"  --timeout S                stop a job that runs longer than S seconds (default: none)\n"
"  --kill-grace S             seconds between SIGTERM and SIGKILL (default 10)\n"
"  --retries N                rerun a failed job up to N times (default 0)\n"
"  --resume                   run only configs that have not succeeded yet (per ledger.tsv in the log dir)\n"
"  --retry-failed             run only configs whose last run failed (not the unfinished ones)\n"
"  --dry-run                  print the plan (configs, order, slots, commands, logs) and exit\n"
"\n"
"Exit status: 0 when every config succeeded, 1 when one failed, 130 when interrupted,\n"
"2 for a bad command line, 3 for a bad grid file, 6 when no GPU is usable.\n");

typedef struct {
    const char *config_path, *gpus, *image_list, *text_list, *command, *log_dir, *out_dir, *order, *backend;
    int jobs_per_gpu, max_parallel, retries, util_samples;
    double util_threshold, wait_timeout, poll_interval, timeout, kill_grace, status_interval;
    int resume, retry_failed, dry_run;
    /* --backend slurm */
    const char *partition, *account, *time, *mem, *gres, *job_name, *on_interrupt;
    const char *sbatch_args[64];
    int n_sbatch_args, cpus_per_task, set_cpus_per_task, set_slurm_poll;
    double slurm_poll;
    /* which numeric flags were given on the command line */
    int set_jobs_per_gpu, set_max_parallel, set_retries, set_util_samples, set_util_threshold, set_wait_timeout,
        set_poll_interval, set_timeout, set_kill_grace, set_status_interval;
} run_args;

static int parse_number(const char *flag, const char *text, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || v < min || v > max)
        return cg_error_set(CG_ERR_USAGE, _("%s: \"%s\" is not a number in [%g, %g]"), flag, text, min, max);
    *out = v;
    return CG_OK;
}

static int parse_int(const char *flag, const char *text, int min, int *out) {
    double v = 0;
    int rc = parse_number(flag, text, min, INT_MAX, &v);
    if (rc) return rc;
    if (v != (int)v) return cg_error_set(CG_ERR_USAGE, _("%s: \"%s\" is not a whole number"), flag, text);
    *out = (int)v;
    return CG_OK;
}

enum { O_CONFIG = 256, O_GPUS, O_IMAGE, O_TEXT, O_JPG, O_MAXP, O_THR, O_WAIT, O_POLL, O_SAMPLES, O_LOGDIR,
       O_OUTDIR, O_RESUME, O_RETRYF, O_RETRIES, O_DRY, O_BACKEND, O_COMMAND, O_TIMEOUT, O_GRACE, O_STATUS,
       O_ORDER, O_HELP, O_PARTITION, O_ACCOUNT, O_TIME, O_MEM, O_GRES, O_CPT, O_SBATCH, O_JOBNAME, O_SPOLL,
       O_ONINT };

static int parse_args(int argc, char **argv, run_args *a, int *extra_start) {
    static const struct option opts[] = {
        {"config", required_argument, 0, O_CONFIG}, {"gpus", required_argument, 0, O_GPUS},
        {"image-encoders", required_argument, 0, O_IMAGE}, {"text-encoders", required_argument, 0, O_TEXT},
        {"jobs-per-gpu", required_argument, 0, O_JPG}, {"max-parallel", required_argument, 0, O_MAXP},
        {"gpu-util-threshold", required_argument, 0, O_THR}, {"gpu-wait-timeout", required_argument, 0, O_WAIT},
        {"gpu-poll-interval", required_argument, 0, O_POLL}, {"gpu-util-samples", required_argument, 0, O_SAMPLES},
        {"log-dir", required_argument, 0, O_LOGDIR}, {"out-dir", required_argument, 0, O_OUTDIR},
        {"resume", no_argument, 0, O_RESUME}, {"retry-failed", no_argument, 0, O_RETRYF},
        {"retries", required_argument, 0, O_RETRIES}, {"dry-run", no_argument, 0, O_DRY},
        {"backend", required_argument, 0, O_BACKEND}, {"command", required_argument, 0, O_COMMAND},
        {"timeout", required_argument, 0, O_TIMEOUT}, {"kill-grace", required_argument, 0, O_GRACE},
        {"status-interval", required_argument, 0, O_STATUS}, {"order", required_argument, 0, O_ORDER},
        {"partition", required_argument, 0, O_PARTITION}, {"account", required_argument, 0, O_ACCOUNT},
        {"time", required_argument, 0, O_TIME}, {"mem", required_argument, 0, O_MEM},
        {"gres", required_argument, 0, O_GRES}, {"cpus-per-task", required_argument, 0, O_CPT},
        {"sbatch-arg", required_argument, 0, O_SBATCH}, {"job-name", required_argument, 0, O_JOBNAME},
        {"slurm-poll", required_argument, 0, O_SPOLL}, {"on-interrupt", required_argument, 0, O_ONINT},
        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c, rc = CG_OK;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CONFIG: a->config_path = optarg; break;
        case O_GPUS: a->gpus = optarg; break;
        case O_IMAGE: a->image_list = optarg; break;
        case O_TEXT: a->text_list = optarg; break;
        case O_JPG: rc = parse_int("--jobs-per-gpu", optarg, 1, &a->jobs_per_gpu); a->set_jobs_per_gpu = 1; break;
        case O_MAXP: rc = parse_int("--max-parallel", optarg, 1, &a->max_parallel); a->set_max_parallel = 1; break;
        case O_THR: rc = parse_number("--gpu-util-threshold", optarg, 0, 100, &a->util_threshold); a->set_util_threshold = 1; break;
        case O_WAIT: rc = parse_number("--gpu-wait-timeout", optarg, 0, 1e9, &a->wait_timeout); a->set_wait_timeout = 1; break;
        case O_POLL: rc = parse_number("--gpu-poll-interval", optarg, 0.01, 3600, &a->poll_interval); a->set_poll_interval = 1; break;
        case O_SAMPLES: rc = parse_int("--gpu-util-samples", optarg, 1, &a->util_samples); a->set_util_samples = 1; break;
        case O_LOGDIR: a->log_dir = optarg; break;
        case O_OUTDIR: a->out_dir = optarg; break;
        case O_RESUME: a->resume = 1; break;
        case O_RETRYF: a->retry_failed = 1; break;
        case O_RETRIES: rc = parse_int("--retries", optarg, 0, &a->retries); a->set_retries = 1; break;
        case O_DRY: a->dry_run = 1; break;
        case O_BACKEND: a->backend = optarg; break;
        case O_COMMAND: a->command = optarg; break;
        case O_TIMEOUT: rc = parse_number("--timeout", optarg, 0, 1e9, &a->timeout); a->set_timeout = 1; break;
        case O_GRACE: rc = parse_number("--kill-grace", optarg, 0, 3600, &a->kill_grace); a->set_kill_grace = 1; break;
        case O_STATUS: rc = parse_number("--status-interval", optarg, 0, 1e9, &a->status_interval); a->set_status_interval = 1; break;
        case O_ORDER: a->order = optarg; break;
        case O_PARTITION: a->partition = optarg; break;
        case O_ACCOUNT: a->account = optarg; break;
        case O_TIME: a->time = optarg; break;
        case O_MEM: a->mem = optarg; break;
        case O_GRES: a->gres = optarg; break;
        case O_JOBNAME: a->job_name = optarg; break;
        case O_ONINT: a->on_interrupt = optarg; break;
        case O_CPT: rc = parse_int("--cpus-per-task", optarg, 1, &a->cpus_per_task); a->set_cpus_per_task = 1; break;
        case O_SPOLL: rc = parse_number("--slurm-poll", optarg, 0.1, 3600, &a->slurm_poll); a->set_slurm_poll = 1; break;
        case O_SBATCH:
            if (a->n_sbatch_args >= 64) rc = cg_error_set(CG_ERR_USAGE, _("--sbatch-arg: at most 64 of them"));
            else if (optarg[0] != '-') rc = cg_error_set(CG_ERR_USAGE, _("--sbatch-arg \"%s\": give an sbatch option "
                                                          "with its dashes, e.g. --sbatch-arg=--qos=high"), optarg);
            else a->sbatch_args[a->n_sbatch_args++] = optarg;
            break;
        case 'h': case O_HELP: fputs(_(run_usage), stdout); exit(0);
        case ':': return cg_error_set(CG_ERR_USAGE, _("%s needs a value"), argv[optind - 1]);
        default:
            return cg_error_set(CG_ERR_USAGE, _("unknown option \"%s\" (clipgrid run --help lists them)"),
                                argv[optind - 1]);
        }
    }
    if (rc) return rc;
    if (optind < argc && strcmp(argv[optind - 1], "--") != 0)
        return cg_error_set(CG_ERR_USAGE, _("unexpected argument \"%s\" (extra arguments for the jobs go after \"--\")"),
                            argv[optind]);
    *extra_start = optind;
    return CG_OK;
}

/* File value of a launcher option, when the command line did not give it. */
static const cJSON *file_opt(const grid_spec *s, const char *key) {
    return s->launcher ? cJSON_GetObjectItemCaseSensitive(s->launcher, key) : NULL;
}
static double num_opt(const grid_spec *s, int given, double cli, const char *key, double dflt) {
    if (given) return cli;
    const cJSON *v = file_opt(s, key);
    return v ? v->valuedouble : dflt;
}
static const char *str_opt(const grid_spec *s, const char *cli, const char *key, const char *dflt) {
    if (cli) return cli;
    const cJSON *v = file_opt(s, key);
    return v ? v->valuestring : dflt;
}

/* ------------------------------------------------------------------ GPUs */

typedef struct {
    int n;
    int index[64];
    char uuid[64][96];
    int cpu_slots;
} gpu_choice;

static int parse_cpu_spec(const char *spec, int *slots) {
    if (!strcmp(spec, "cpu")) { *slots = 1; return 1; }
    if (!strncmp(spec, "cpu:", 4)) {
        char *end;
        long v = strtol(spec + 4, &end, 10);
        if (*end || v < 1 || v > 1024) return -1;
        *slots = (int)v;
        return 1;
    }
    return 0;
}

static int resolve_gpus(const char *spec, nvml_session **nvml, gpu_choice *g) {
    memset(g, 0, sizeof *g);
    int cpu = parse_cpu_spec(spec, &g->cpu_slots);
    if (cpu < 0) return cg_error_set(CG_ERR_USAGE, _("--gpus: \"%s\": cpu:N needs N between 1 and 1024"), spec);
    if (cpu) return CG_OK;
    if (nvml_open(nvml) != CG_OK)
        return cg_error_set(CG_ERR_DEVICE, _("%s; use --gpus cpu to run on CPU slots"), cg_error_message());
    int count = nvml_device_count(*nvml);
    if (!strcmp(spec, "all")) {
        for (int i = 0; i < count && g->n < 64; i++) {
            nvml_gpu_info info;
            if (nvml_gpu_query(*nvml, i, &info) != CG_OK) {
                cg_log_error(_("GPU %d unavailable, skipped (%s)"), i, cg_error_message());
                continue;
            }
            g->index[g->n] = i;
            snprintf(g->uuid[g->n++], 96, "%s", info.uuid);
        }
    } else {
        char *copy = cg_xstrdup(spec), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') tok++;
            if (!*tok) continue;
            char *end;
            long idx = strtol(tok, &end, 10);
            int found = -1;
            nvml_gpu_info info;
            if (*end == 0 && end != tok) {
                if (idx >= 0 && idx < 1024 && nvml_gpu_query(*nvml, (int)idx, &info) == CG_OK) found = (int)idx;
            } else {  /* a UUID (or an unambiguous prefix of one) */
                for (int i = 0; i < count; i++)
                    if (nvml_gpu_query(*nvml, i, &info) == CG_OK && !strncmp(info.uuid, tok, strlen(tok))) {
                        found = i;
                        break;
                    }
            }
            if (found < 0) {
                cg_log_error(_("GPU %s unavailable, skipped"), tok);
                continue;
            }
            int dup = 0;
            for (int k = 0; k < g->n; k++) dup |= g->index[k] == found;
            if (dup || g->n >= 64) continue;
            g->index[g->n] = found;
            snprintf(g->uuid[g->n++], 96, "%s", info.uuid);
        }
        free(copy);
    }
    if (g->n == 0)
        return cg_error_set(CG_ERR_DEVICE, _("no usable GPU among \"%s\" (NVML sees %d); nothing started"), spec, count);
    return CG_OK;
}

/* ------------------------------------------------------------------ dry run */

static void print_plan(const run_options *o, job_record *jobs, int n, const char *gpus_text, int from_default) {
    int nslots = o->cpu_slots > 0 ? o->cpu_slots : o->ngpus * o->jobs_per_gpu;
    int limit = o->max_parallel > 0 && o->max_parallel < nslots ? o->max_parallel : nslots;
    double *costs = cg_xcalloc((size_t)n + 1, sizeof *costs);
    int *order = cg_xcalloc((size_t)n + 1, sizeof *order), *run = cg_xcalloc((size_t)n + 1, sizeof *run);
    int *slot_of = cg_xcalloc((size_t)n + 1, sizeof *slot_of);
    double *start = cg_xcalloc((size_t)n + 1, sizeof *start);
    for (int i = 0; i < n; i++) costs[i] = jobs[i].cfg->cost;
    sched_order(costs, n, o->order, order);
    int nrun = 0, skipped = 0;
    for (int k = 0; k < n; k++) {
        if (jobs[order[k]].status == JOB_PENDING) run[nrun++] = order[k];
        else skipped++;
    }
    double makespan = sched_simulate(costs, run, nrun, limit, slot_of, start);
    printf(ngettext("plan: %d config to run", "plan: %d configs to run", (unsigned long)nrun), nrun);
    if (skipped) printf(_(" (%d skipped: already done per the ledger)"), skipped);
    printf(ngettext(" on %d slot", " on %d slots", (unsigned long)limit), limit);
    if (o->cpu_slots > 0) printf(_(" (CPU)"));
    else printf(ngettext(" (GPUs %s%s x %d job each)", " (GPUs %s%s x %d jobs each)", (unsigned long)o->jobs_per_gpu),
                gpus_text, from_default ? _(", the default") : "", o->jobs_per_gpu);
    printf("%s", o->order == SCHED_ORDER_LPT ? _(", longest expected job first\n") : _(", grid order first\n"));
    printf(_("logs: %s/<id>_<gpuN|cpu>_<YYYYMMDD_HHMMSS>.log   outputs: %s/<id>/\n"), o->log_dir, o->out_dir);
    printf(_("estimated makespan: %.1f GMAC-units (longest-first list scheduling)\n\n"), makespan / 1000.0);
    printf("%3s  %-40s  %9s  %4s  %-5s  %s\n", "#", "CONFIG", "COST", "SLOT", "GPU", "STARTS AFTER");
    for (int k = 0; k < nrun; k++) {
        job_record *j = &jobs[run[k]];
        int s = slot_of[run[k]];
        int gpu = o->cpu_slots > 0 ? -1 : o->gpu_index[s % o->ngpus];
        char gtext[16];
        if (gpu >= 0) snprintf(gtext, sizeof gtext, "%d", gpu);
        else snprintf(gtext, sizeof gtext, "cpu");
        printf("%3d  %-40s  %9.1f  %4d  %-5s  %s\n", k + 1, j->cfg->id, j->cfg->cost, s, gtext,
               start[run[k]] == 0 ? _("start") : _("a slot frees"));
        char *cmd = run_job_command(o, j, gpu, "<log>");
        printf("     $ %s\n", cmd);
        free(cmd);
    }
    free(costs); free(order); free(run); free(slot_of); free(start);
}

/* ------------------------------------------------------------------ the command */

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static int apply_ledger(const run_args *a, const char *log_dir, job_record *jobs, grid_config *cfgs, int n) {
    if (!a->resume && !a->retry_failed) return CG_OK;
    char *path = cg_path_join(log_dir, "ledger.tsv");
    int *last = cg_xcalloc((size_t)n + 1, sizeof *last);
    int rc = ledger_last_status(path, cfgs, n, last);
    if (!rc && !cg_file_exists(path))
        cg_log_warn(_("%s does not exist: nothing to resume, running every config"), path);
    for (int i = 0; i < n && !rc; i++) {
        /* --resume: everything that has not succeeded (failed, interrupted, cancelled, never
         * started); --retry-failed alone: only what failed (FAILED, SIGNALED, TIMEOUT, ...) */
        int done_ok = last[i] == JOB_SUCCEEDED;
        int failed = last[i] >= 0 && job_status_is_failure((job_status)last[i]);
        int run = a->resume ? !done_ok : failed;
        if (!run) jobs[i].status = JOB_SKIPPED;
    }
    free(last);
    free(path);
    return rc;
}

/* --backend slurm: its options from the command line, else the grid file's "slurm" object. */
static int slurm_options_from(const run_args *a, const grid_spec *spec, run_options *o, slurm_options *so) {
    const cJSON *f = file_opt(spec, "slurm");
#define FILE_STR(key) (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(f, key)) \
                       ? cJSON_GetObjectItemCaseSensitive(f, key)->valuestring : NULL)
#define FILE_NUM(key, d) (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(f, key)) \
                          ? cJSON_GetObjectItemCaseSensitive(f, key)->valuedouble : (d))
    so->partition = a->partition ? a->partition : FILE_STR("partition");
    so->account = a->account ? a->account : FILE_STR("account");
    so->time = a->time ? a->time : FILE_STR("time");
    so->mem = a->mem ? a->mem : FILE_STR("mem");
    so->gres = a->gres ? a->gres : FILE_STR("gres");
    so->job_name = a->job_name ? a->job_name : FILE_STR("job_name");
    so->cpus_per_task = a->set_cpus_per_task ? a->cpus_per_task : (int)FILE_NUM("cpus_per_task", 0);
    so->poll_interval = a->set_slurm_poll ? a->slurm_poll : FILE_NUM("poll_interval", 5);
    so->on_interrupt = a->on_interrupt ? a->on_interrupt : "ask";
    static const char *file_args[64];
    so->sbatch_args = a->n_sbatch_args ? a->sbatch_args : file_args;
    so->n_sbatch_args = a->n_sbatch_args;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(f, "sbatch_args");
    if (!a->n_sbatch_args && cJSON_IsArray(fa))
        for (const cJSON *x = fa->child; x && so->n_sbatch_args < 64; x = x->next) file_args[so->n_sbatch_args++] = x->valuestring;
#undef FILE_STR
#undef FILE_NUM
    if (strcmp(so->on_interrupt, "ask") && strcmp(so->on_interrupt, "cancel") && strcmp(so->on_interrupt, "keep"))
        return cg_error_set(CG_ERR_USAGE, _("--on-interrupt \"%s\": use ask, cancel or keep"), so->on_interrupt);
    if (so->time) {
        for (const char *p = so->time; *p; p++)
            if (!strchr("0123456789:-", *p) || !*so->time)
                return cg_error_set(CG_ERR_USAGE, _("--time \"%s\": use a Slurm time such as 90, 4:00:00 or 1-12:00:00"),
                                    so->time);
        if (!*so->time) return cg_error_set(CG_ERR_USAGE, _("--time is empty"));
    }
    if (so->mem) {
        char *end;
        double v = strtod(so->mem, &end);
        if (end == so->mem || v <= 0 || (*end && (strchr("KMGTkmgt", *end) == NULL || end[1])))
            return cg_error_set(CG_ERR_USAGE, _("--mem \"%s\": use a size such as 16000 (MB), 32G or 512M"), so->mem);
    }
    for (int i = 0; i < so->n_sbatch_args; i++) {
        const char *x = so->sbatch_args[i];
        if (!strncmp(x, "--array", 7) || !strncmp(x, "--output", 8) || !strncmp(x, "--error", 7) ||
            !strncmp(x, "-o", 2) || !strncmp(x, "-e", 2) || !strncmp(x, "-a", 2))
            return cg_error_set(CG_ERR_USAGE, _("sbatch option \"%s\": clipgrid sets --array and --output itself "
                                "(use --max-parallel for the %%K of --array)"), x);
    }
    if (o->jobs_per_gpu > 1)
        return cg_error_set(CG_ERR_USAGE, _("--jobs-per-gpu %d: not available with --backend slurm (each array task "
                            "gets --gres=gpu:1; to share GPUs use --gres shard:1 on a cluster with gres/shard)"),
                            o->jobs_per_gpu);
    if (o->retries > 0)
        return cg_error_set(CG_ERR_USAGE, _("--retries %d: not available with --backend slurm; resubmit the failed "
                            "configs with --retry-failed"), o->retries);
    const char *gpus = a->gpus ? a->gpus : spec->gpus;
    int slots = 0;
    if (gpus && !strncmp(gpus, "cpu", 3)) {
        if (parse_cpu_spec(gpus, &slots) < 0)
            return cg_error_set(CG_ERR_USAGE, _("--gpus: \"%s\": cpu:N needs N between 1 and 1024"), gpus);
        o->cpu_slots = slots;  /* no --gres, and jobs run with --device cpu */
    } else if (a->gpus) {
        cg_log_warn(_("--gpus %s is ignored with --backend slurm: Slurm gives each task its GPU (--gres)"), a->gpus);
    }
    return CG_OK;
}

int cmd_run(int argc, char **argv) {
    run_args a = {0};
    int extra_start = argc;
    int rc = parse_args(argc, argv, &a, &extra_start);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        return 2;
    }
    grid_spec spec;
    grid_spec_init(&spec);
    grid_config *cfgs = NULL;
    job_record *jobs = NULL;
    nvml_session *nvml = NULL;
    int n = 0, exit_code = 0;
    if (a.config_path && (rc = grid_spec_load_file(&spec, a.config_path))) goto fail;
    if (a.image_list && (rc = grid_spec_set_list(&spec, "image", a.image_list))) goto fail;
    if (a.text_list && (rc = grid_spec_set_list(&spec, "text", a.text_list))) goto fail;
    if ((rc = grid_expand(&spec, &cfgs, &n))) goto fail;

    run_options o = {0};
    o.jobs_per_gpu = (int)num_opt(&spec, a.set_jobs_per_gpu, a.jobs_per_gpu, "jobs_per_gpu", 1);
    o.max_parallel = (int)num_opt(&spec, a.set_max_parallel, a.max_parallel, "max_parallel", 0);
    o.util_threshold = num_opt(&spec, a.set_util_threshold, a.util_threshold, "gpu_util_threshold", 70);
    o.gpu_wait_timeout = num_opt(&spec, a.set_wait_timeout, a.wait_timeout, "gpu_wait_timeout", 300);
    o.poll_interval = num_opt(&spec, a.set_poll_interval, a.poll_interval, "gpu_poll_interval", 1);
    o.util_samples = (int)num_opt(&spec, a.set_util_samples, a.util_samples, "gpu_util_samples", 3);
    o.timeout = num_opt(&spec, a.set_timeout, a.timeout, "timeout", 0);
    o.kill_grace = num_opt(&spec, a.set_kill_grace, a.kill_grace, "kill_grace", 10);
    o.status_interval = num_opt(&spec, a.set_status_interval, a.status_interval, "status_interval", 30);
    o.retries = (int)num_opt(&spec, a.set_retries, a.retries, "retries", 0);
    o.log_dir = str_opt(&spec, a.log_dir, "log_dir", "logs/clip_training");
    o.out_dir = str_opt(&spec, a.out_dir, "out_dir", "checkpoints/clip_models");
    o.command_template = str_opt(&spec, a.command, "command", NULL);
    const char *order = str_opt(&spec, a.order, "order", "lpt");
    if (!strcmp(order, "lpt")) o.order = SCHED_ORDER_LPT;
    else if (!strcmp(order, "grid")) o.order = SCHED_ORDER_GRID;
    else { rc = cg_error_set(CG_ERR_USAGE, _("--order: \"%s\" is not lpt or grid"), order); goto fail; }
    if (o.command_template && (rc = template_check(o.command_template))) goto fail;
    o.extra_args = argv + extra_start;
    o.n_extra = argc - extra_start;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o.cores = cores > 0 ? (int)cores : 1;
    char self[PATH_MAX];
    o.self_exe = cg_self_exe(self, sizeof self, 0) == 0 ? self : "clipgrid";

    jobs = cg_xcalloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        jobs[i].cfg = &cfgs[i];
        jobs[i].status = JOB_PENDING;
        jobs[i].gpu = -2;
        jobs[i].out_dir = cg_path_join(o.out_dir, cfgs[i].id);
    }
    if ((rc = apply_ledger(&a, o.log_dir, jobs, cfgs, n))) goto fail;

    const char *backend = str_opt(&spec, a.backend, "backend", "local");
    if (strcmp(backend, "local") != 0 && strcmp(backend, "slurm") != 0) {
        rc = cg_error_set(CG_ERR_USAGE, _("--backend \"%s\": use local or slurm"), backend);
        goto fail;
    }
    int interrupted = 0;
    double started = wall_now();
    if (!strcmp(backend, "slurm")) {
        slurm_options so = {0};
        if ((rc = slurm_options_from(&a, &spec, &o, &so))) goto fail;
        if (a.dry_run) {
            slurm_print_dry_run(&o, &so, jobs, n);
            goto done;
        }
        int to_run = 0;
        for (int i = 0; i < n; i++) to_run += jobs[i].status == JOB_PENDING;
        printf(ngettext("clipgrid run: %d config (%d to run) as a Slurm job array; logs in %s\n",
                        "clipgrid run: %d configs (%d to run) as a Slurm job array; logs in %s\n", (unsigned long)n),
               n, to_run, o.log_dir);
        fflush(stdout);
        if ((rc = run_slurm(&o, &so, jobs, n, &interrupted))) goto fail;
        goto summary;
    }
    if (a.partition || a.account || a.time || a.mem || a.gres || a.job_name || a.n_sbatch_args ||
        a.set_cpus_per_task || a.set_slurm_poll || a.on_interrupt)
        cg_log_warn(_("Slurm options (--partition, --time, ...) are ignored without --backend slurm"));

    const char *gpus = a.gpus ? a.gpus : spec.gpus;
    int gpus_default = gpus == NULL;
    gpu_choice g;
    if (a.dry_run) {  /* never touches NVML: plan with the GPUs as written */
        memset(&g, 0, sizeof g);
        const char *spec_text = gpus ? gpus : "all";
        int cpu = parse_cpu_spec(spec_text, &g.cpu_slots);
        if (cpu < 0) { rc = cg_error_set(CG_ERR_USAGE, _("--gpus: \"%s\": cpu:N needs N >= 1"), spec_text); goto fail; }
        if (!cpu) {
            char *copy = cg_xstrdup(spec_text), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && g.n < 64; t = strtok_r(NULL, ",", &save))
                g.index[g.n++] = !strcmp(t, "all") ? 0 : atoi(t);
            free(copy);
        }
        o.ngpus = g.n; o.gpu_index = g.index; o.gpu_uuid = (const char (*)[96])g.uuid; o.cpu_slots = g.cpu_slots;
        if (!cpu && !strcmp(spec_text, "all"))
            printf(_("note: --gpus all is resolved through NVML at run time; the plan shows one GPU\n"));
        print_plan(&o, jobs, n, spec_text, gpus_default);
        goto done;
    }
    const char *inherited = getenv("CUDA_VISIBLE_DEVICES");
    if (gpus_default && inherited) {  /* e.g. inside a Slurm allocation: use only what we were given */
        if (!*inherited || !strcmp(inherited, "-1")) gpus = "cpu";
        else gpus = inherited;
        gpus_default = 0;
        cg_log_info(_("using the GPUs of CUDA_VISIBLE_DEVICES=%s (indices are taken as NVML indices; "
                    "UUIDs are exact)"), inherited);
    }
    if (gpus_default) {
        if (nvml_open(&nvml) == CG_OK) gpus = "all";
        else {
            cg_log_warn(_("%s: running on CPU (--gpus cpu)"), cg_error_message());
            gpus = "cpu";
        }
    }
    if ((rc = resolve_gpus(gpus, &nvml, &g))) goto fail;
    o.ngpus = g.n; o.gpu_index = g.index; o.gpu_uuid = (const char (*)[96])g.uuid; o.cpu_slots = g.cpu_slots;
    o.nvml = g.cpu_slots > 0 ? NULL : nvml;

    int to_run = 0;
    for (int i = 0; i < n; i++) to_run += jobs[i].status == JOB_PENDING;
    printf(ngettext("clipgrid run: %d config (%d to run) on ", "clipgrid run: %d configs (%d to run) on ",
                    (unsigned long)n), n, to_run);
    if (o.cpu_slots) printf(ngettext("%d CPU slot\n", "%d CPU slots\n", (unsigned long)o.cpu_slots), o.cpu_slots);
    else {
        printf("%s", ngettext("GPU", "GPUs", (unsigned long)g.n));
        for (int k = 0; k < g.n; k++) printf("%s%d", k ? "," : " ", g.index[k]);
        printf(ngettext(" x %d job each; logs in %s\n", " x %d jobs each; logs in %s\n", (unsigned long)o.jobs_per_gpu),
               o.jobs_per_gpu, o.log_dir);
    }
    fflush(stdout);
    if ((rc = run_local(&o, jobs, n, &interrupted))) goto fail;
summary:
    for (int i = 0; i < n; i++)
        if (jobs[i].status == JOB_SKIPPED) summary_load_result(&jobs[i]);
    summary_print(stdout, jobs, n);
    char *summary_path = cg_path_join(o.log_dir, "summary.json");
    if (summary_write_json(summary_path, jobs, n, started, wall_now(), interrupted) != CG_OK)
        cg_log_error("%s", cg_error_message());
    else
        printf(_("summary: %s\n"), summary_path);
    free(summary_path);
    for (int i = 0; i < n; i++)
        if (jobs[i].status != JOB_SUCCEEDED && jobs[i].status != JOB_SKIPPED) exit_code = 1;
    if (interrupted) exit_code = 130;
    goto done;

fail:
    cg_log_error("%s", cg_error_message());
    exit_code = rc == CG_ERR_CONFIG ? 3 : rc == CG_ERR_DEVICE ? 6 : rc == CG_ERR_IO ? 4 : 2;
done:
    for (int i = 0; jobs && i < n; i++) {
        free(jobs[i].log_path);
        free(jobs[i].out_dir);
        free(jobs[i].command);
        cJSON_Delete(jobs[i].result);
    }
    free(jobs);
    grid_configs_free(cfgs, n);
    grid_spec_free(&spec);
    if (nvml) nvml_close(nvml);
    return exit_code;
}
