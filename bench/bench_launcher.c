/* bench_launcher — what the launcher costs and what its scheduling buys.
 *
 * 1. Dispatch overhead: N `true` jobs on 8 fake GPUs (tests/fake_nvml) through `clipgrid run`,
 *    wall time per job; next to `xargs -P 8` and GNU parallel -j 8 (when installed) running the
 *    same N `true` commands.
 * 2. Makespan of example grids with per-encoder costs (grid/cost.h: MACs per sample), for
 *    longest-first list scheduling (clipgrid), grid-order list scheduling, and the original
 *    bash launcher (every config started at once, pinned round-robin to GPUs, sharing them);
 *    with the lower bound max(total/GPUs, longest job).
 *
 * usage: bench_launcher [N_JOBS (default 1000)] [results.json]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/fileio.h"
#include "core/log.h"
#include "grid/cost.h"
#include "grid/sched.h"

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static double time_command(const char *cmd) {
    double t = now_s();
    int rc = system(cmd);
    double dt = now_s() - t;
    if (rc != 0) {
        fprintf(stderr, "[bench] command failed (%d): %s\n", rc, cmd);
        return -1;
    }
    return dt;
}

typedef struct { const char *name; const char *const *images; int ni; const char *const *texts; int nt; int gpus; } example_grid;

int main(int argc, char **argv) {
    int njobs = argc > 1 ? atoi(argv[1]) : 1000;
    const char *json_out = argc > 2 ? argv[2] : NULL;
    if (njobs < 10) njobs = 10;
    /* the build's paths, unless the environment moves them (a copied build on another machine) */
    const char *bin = getenv("CLIPGRID_BIN") ? getenv("CLIPGRID_BIN") : CLIPGRID_BIN;
    const char *fake_dir = getenv("FAKE_NVML_DIR") ? getenv("FAKE_NVML_DIR") : FAKE_NVML_DIR;
    char tmp[] = "/tmp/clipgrid_bench_XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }

    /* ---- 1. dispatch overhead ---- */
    char *nvml = cg_path_join(tmp, "nvml.txt");
    const char *eight = "gpu\ngpu\ngpu\ngpu\ngpu\ngpu\ngpu\ngpu\n";
    cg_file_write_atomic(nvml, eight, strlen(eight));
    int nimg = njobs / 10;
    size_t cap = (size_t)nimg * 16 + 64;
    char *imgs = cg_xmalloc(cap);
    size_t len = 0;
    for (int i = 0; i < nimg; i++) len += (size_t)snprintf(imgs + len, cap - len, "%simg%d", i ? "," : "", i);
    char *cmd = cg_xasprintf(
        "FAKE_NVML_CONFIG=%s LD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} %s run --gpus 0,1,2,3,4,5,6,7 --image-encoders %s "
        "--text-encoders t0,t1,t2,t3,t4,t5,t6,t7,t8,t9 --log-dir %s/logs --out-dir %s/out --status-interval 0 "
        "--gpu-util-threshold 100 --command true > %s/stdout 2>&1",
        nvml, fake_dir, bin, imgs, tmp, tmp, tmp);
    double t_clipgrid = time_command(cmd);
    free(cmd);
    cmd = cg_xasprintf("rm -rf %s/logs %s/out; FAKE_NVML_CONFIG=%s LD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} %s run --gpus 0,1,2,3,4,5,6,7 "
        "--image-encoders %s --text-encoders t0,t1,t2,t3,t4,t5,t6,t7,t8,t9 --log-dir %s/logs --out-dir %s/out "
        "--status-interval 0 --gpu-poll-interval 0.2 --command true > %s/stdout 2>&1",
        tmp, tmp, nvml, fake_dir, bin, imgs, tmp, tmp, tmp);
    double t_clipgrid_util = time_command(cmd);
    free(cmd);
    cmd = cg_xasprintf("seq %d | xargs -P 8 -I{} sh -c true", njobs);
    double t_xargs = time_command(cmd);
    free(cmd);
    double t_parallel = -1;
    if (system("command -v parallel >/dev/null 2>&1 && parallel --version 2>/dev/null | grep -q GNU") == 0) {
        cmd = cg_xasprintf("seq %d | parallel -j 8 true > /dev/null", njobs);
        t_parallel = time_command(cmd);
        free(cmd);
    }
    free(imgs);
    printf("dispatch: %d `true` jobs on 8 slots (%ld cores)\n", njobs, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  %-46s %8s %12s\n", "runner", "wall s", "ms per job");
    printf("  %-46s %8.2f %12.2f\n", "clipgrid run (per-job log, ledger, summary)", t_clipgrid, 1000 * t_clipgrid / njobs);
    printf("  %-46s %8.2f %12.2f\n", "clipgrid run + GPU util check (0.2 s polls)", t_clipgrid_util,
           1000 * t_clipgrid_util / njobs);
    printf("  %-46s %8.2f %12.2f\n", "xargs -P 8 sh -c true (no logs)", t_xargs, 1000 * t_xargs / njobs);
    if (t_parallel >= 0) printf("  %-46s %8.2f %12.2f\n", "GNU parallel -j 8 (no logs)", t_parallel, 1000 * t_parallel / njobs);
    else printf("  %-46s %8s\n", "GNU parallel -j 8", "not installed");

    /* ---- 2. makespan of example grids ---- */
    static const char *const starnets[] = {"starnet_s050", "starnet_s100", "starnet_s150", "starnet_s1", "starnet_s2",
                                           "starnet_s3", "starnet_s4"};
    static const char *const seed_imgs[] = {"starnet_s1", "starnet_s2", "starnet_s3", "starnet_s4"};
    static const char *const two_texts[] = {"clip:ViT-B/32", "bert-base-chinese"};
    static const char *const four_texts[] = {"clip:tiny", "bert:tiny", "clip:ViT-B/32", "bert-base-chinese"};
    static const char *const tiny_first[] = {"clip:tiny", "clip:ViT-B/32"};
    const example_grid grids[] = {
        {"s1-s4 x {clip:ViT-B/32, bert-base-chinese}, 1 GPU", seed_imgs, 4, two_texts, 2, 1},
        {"s1-s4 x {clip:ViT-B/32, bert-base-chinese}, 3 GPUs", seed_imgs, 4, two_texts, 2, 3},
        {"7 StarNets x {clip:ViT-B/32, bert-base-chinese}, 4 GPUs", starnets, 7, two_texts, 2, 4},
        {"7 StarNets x {clip:tiny, clip:ViT-B/32}, 4 GPUs", starnets, 7, tiny_first, 2, 4},
        {"7 StarNets x 4 text towers, 8 GPUs", starnets, 7, four_texts, 4, 8},
    };
    int ng = sizeof grids / sizeof *grids;
    printf("\nmakespan (GMAC-units of one training sample per config; lower is better)\n");
    printf("  %-56s %8s %8s %8s %8s %8s\n", "grid", "bound", "LPT", "grid-ord", "orig-RR", "RR/LPT");
    cJSON *root = cJSON_CreateObject();
    cJSON *disp = cJSON_AddObjectToObject(root, "dispatch");
    cJSON_AddNumberToObject(disp, "jobs", njobs);
    cJSON_AddNumberToObject(disp, "clipgrid_s", t_clipgrid);
    cJSON_AddNumberToObject(disp, "clipgrid_util_check_s", t_clipgrid_util);
    cJSON_AddNumberToObject(disp, "xargs_s", t_xargs);
    if (t_parallel >= 0) cJSON_AddNumberToObject(disp, "gnu_parallel_s", t_parallel);
    cJSON *arr = cJSON_AddArrayToObject(root, "makespan");
    for (int g = 0; g < ng; g++) {
        int n = grids[g].ni * grids[g].nt;
        double costs[64], total = 0, longest = 0;
        int order[64];
        for (int i = 0; i < grids[g].ni; i++)
            for (int j = 0; j < grids[g].nt; j++) {
                double c = cost_config(grids[g].images[i], grids[g].texts[j], 224) / 1000.0;
                costs[i * grids[g].nt + j] = c;
                total += c;
                if (c > longest) longest = c;
            }
        int m = grids[g].gpus;
        double bound = total / m > longest ? total / m : longest;
        sched_order(costs, n, SCHED_ORDER_LPT, order);
        double lpt = sched_simulate(costs, order, n, m, NULL, NULL);
        sched_order(costs, n, SCHED_ORDER_GRID, order);
        double grid_order = sched_simulate(costs, order, n, m, NULL, NULL);
        double rr = sched_makespan_round_robin(costs, n, m);
        printf("  %-56s %8.2f %8.2f %8.2f %8.2f %8.2f\n", grids[g].name, bound, lpt, grid_order, rr, rr / lpt);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "grid", grids[g].name);
        cJSON_AddNumberToObject(o, "lower_bound", bound);
        cJSON_AddNumberToObject(o, "lpt", lpt);
        cJSON_AddNumberToObject(o, "grid_order", grid_order);
        cJSON_AddNumberToObject(o, "round_robin", rr);
        cJSON_AddItemToArray(arr, o);
    }
    if (json_out) {
        char *text = cJSON_Print(root);
        cg_file_write_atomic(json_out, text, strlen(text));
        printf("\nwrote %s\n", json_out);
        free(text);
    }
    cJSON_Delete(root);
    char *rm = cg_xasprintf("rm -rf %s", tmp);
    if (system(rm) != 0) fprintf(stderr, "[bench] could not remove %s\n", tmp);
    free(rm);
    free(nvml);
    return t_clipgrid < 0 || t_clipgrid_util < 0 ? 1 : 0;
}
