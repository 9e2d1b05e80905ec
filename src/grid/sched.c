#include "grid/sched.h"

#include <stdlib.h>

#include "core/log.h"

typedef struct { double cost; int index; } cost_index;

static int by_cost_desc(const void *a, const void *b) {
    const cost_index *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return x->index - y->index;  /* stable: grid order on ties */
}

void sched_order(const double *costs, int n, sched_order_kind kind, int *order) {
    if (kind == SCHED_ORDER_GRID) {
        for (int i = 0; i < n; i++) order[i] = i;
        return;
    }
    cost_index *v = cg_xmalloc((size_t)(n ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = (cost_index){costs[i], i};
    qsort(v, (size_t)n, sizeof *v, by_cost_desc);
    for (int i = 0; i < n; i++) order[i] = v[i].index;
    free(v);
}

int sched_pick_slot(const int *slot_busy, const int *slot_gpu, const int *blocked, int nslots, int avoid_gpu) {
    int fallback = -1;
    for (int s = 0; s < nslots; s++) {
        if (slot_busy[s] || (blocked && blocked[s])) continue;
        if (avoid_gpu != -2 && slot_gpu[s] == avoid_gpu) {
            if (fallback < 0) fallback = s;
            continue;
        }
        return s;
    }
    return fallback;
}

double sched_simulate(const double *costs, const int *order, int n, int nslots, int *slot_of, double *start) {
    double *free_at = cg_xcalloc((size_t)(nslots > 0 ? nslots : 1), sizeof *free_at);
    double makespan = 0;
    for (int k = 0; k < n; k++) {
        int j = order[k], best = 0;
        for (int s = 1; s < nslots; s++)
            if (free_at[s] < free_at[best]) best = s;
        if (slot_of) slot_of[j] = best;
        if (start) start[j] = free_at[best];
        free_at[best] += costs[j];
        if (free_at[best] > makespan) makespan = free_at[best];
    }
    free(free_at);
    return makespan;
}

double sched_makespan_round_robin(const double *costs, int n, int ngpus) {
    double *load = cg_xcalloc((size_t)(ngpus > 0 ? ngpus : 1), sizeof *load);
    double makespan = 0;
    for (int i = 0; i < n; i++) {
        load[i % ngpus] += costs[i];
        if (load[i % ngpus] > makespan) makespan = load[i % ngpus];
    }
    free(load);
    return makespan;
}
