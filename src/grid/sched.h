/* sched.h — slots, job order and slot choice for the grid launcher (pure logic, no processes).
 *
 * A slot is one place a job can run: (GPU, k) for k < jobs_per_gpu, or a CPU slot. Slots are
 * numbered GPU-fastest — (g0,0) (g1,0) ... (g0,1) (g1,1) — so taking the first free slot spreads
 * jobs over GPUs before doubling up on any. Jobs are started longest-expected first (LPT), ties
 * in grid order; each goes to the next free slot (Graham list scheduling).
 */
#ifndef CLIPGRID_GRID_SCHED_H
#define CLIPGRID_GRID_SCHED_H

typedef enum { SCHED_ORDER_LPT, SCHED_ORDER_GRID } sched_order_kind;

/* Fill order[0..n) with job indices in start order. costs[i] is job i's expected cost. */
void sched_order(const double *costs, int n, sched_order_kind kind, int *order);

/* First free slot, skipping blocked ones (blocked may be NULL) and, when another free slot
 * exists, slots on GPU `avoid_gpu` (-2 for none; used to move a retry to a different GPU).
 * slot_busy[s] != 0 marks a slot in use; slot_gpu[s] is its GPU (-1 for CPU). -1 if none. */
int sched_pick_slot(const int *slot_busy, const int *slot_gpu, const int *blocked, int nslots, int avoid_gpu);

/* Simulate list scheduling of jobs (costs, in `order`) on nslots identical slots: each job starts
 * on the slot that frees first (lowest index on ties). slot_of[i] and start[i] per job (may be
 * NULL); returns the makespan. */
double sched_simulate(const double *costs, const int *order, int n, int nslots, int *slot_of, double *start);

/* Makespan of the original launcher: job i pinned to GPU i % ngpus up front, all jobs of a GPU
 * sharing it (time-sliced), so a GPU finishes after the sum of its jobs' costs. */
double sched_makespan_round_robin(const double *costs, int n, int ngpus);

#endif
