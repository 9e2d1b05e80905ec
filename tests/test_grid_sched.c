/* Tests for src/grid/sched.c (order, slot choice, list scheduling) and template.c (commands). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "grid/sched.h"
#include "grid/template.h"

static void test_lpt_order_is_longest_first_and_stable(void) {
    double costs[] = {1, 5, 3, 5, 0.5};
    int order[5];
    sched_order(costs, 5, SCHED_ORDER_LPT, order);
    int want[] = {1, 3, 2, 0, 4};  /* ties (1 and 3) keep grid order */
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(order[i], want[i]);
    sched_order(costs, 5, SCHED_ORDER_GRID, order);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(order[i], i);
}

static void test_pick_slot(void) {
    /* 2 GPUs x 2 jobs: slots (g0,0) (g1,0) (g0,1) (g1,1) */
    int gpu[] = {0, 1, 0, 1};
    int busy[] = {0, 0, 0, 0};
    CHECK_EQ_INT(sched_pick_slot(busy, gpu, NULL, 4, -2), 0);
    busy[0] = 1;
    CHECK_EQ_INT(sched_pick_slot(busy, gpu, NULL, 4, -2), 1);  /* spread before doubling up */
    int blocked[] = {0, 1, 0, 0};
    CHECK_EQ_INT(sched_pick_slot(busy, gpu, blocked, 4, -2), 2);  /* GPU 1 held back (busy) */
    CHECK_EQ_INT(sched_pick_slot(busy, gpu, NULL, 4, 1), 2);      /* retry avoids GPU 1 */
    int busy2[] = {1, 0, 1, 0};
    CHECK_EQ_INT(sched_pick_slot(busy2, gpu, NULL, 4, 1), 1);     /* ... unless only GPU 1 is free */
    int all[] = {1, 1, 1, 1};
    CHECK_EQ_INT(sched_pick_slot(all, gpu, NULL, 4, -2), -1);
}

static void test_list_scheduling_and_round_robin(void) {
    /* 2 slots, jobs 3,3,2,2,2 (LPT): slot0: 3,2,2 = 7? no: simulate */
    double costs[] = {2, 3, 2, 3, 2};
    int order[5], slot_of[5];
    double start[5];
    sched_order(costs, 5, SCHED_ORDER_LPT, order);  /* 1,3,0,2,4 */
    double mk = sched_simulate(costs, order, 5, 2, slot_of, start);
    /* t=0: job1->s0, job3->s1; t=3: job0->s0, job2->s1; t=5: job4->s0 -> 7 */
    CHECK_NEAR(mk, 7, 1e-12);
    CHECK_EQ_INT(slot_of[1], 0);
    CHECK_EQ_INT(slot_of[3], 1);
    CHECK_NEAR(start[4], 5, 1e-12);
    /* the classic bad case for grid order: long job last */
    double c2[] = {1, 1, 1, 1, 4};
    int grid[5];
    sched_order(c2, 5, SCHED_ORDER_GRID, grid);
    CHECK_NEAR(sched_simulate(c2, grid, 5, 2, NULL, NULL), 6, 1e-12);
    sched_order(c2, 5, SCHED_ORDER_LPT, grid);
    CHECK_NEAR(sched_simulate(c2, grid, 5, 2, NULL, NULL), 4, 1e-12);
    /* round robin: job i on GPU i%2: GPU0 gets 1+1+4, GPU1 1+1 */
    CHECK_NEAR(sched_makespan_round_robin(c2, 5, 2), 6, 1e-12);
}

static void test_template_expansion_quotes_values(void) {
    CHECK_EQ_INT(template_check("python train.py --img {image_encoder} --txt {text_encoder} {train_args}"), CG_OK);
    CHECK_EQ_INT(template_check("echo {imagee_encoder}"), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "unknown placeholder {imagee_encoder}") != NULL);
    CHECK_EQ_INT(template_check("echo {id"), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "unclosed") != NULL);
    CHECK_EQ_INT(template_check("awk '{{print $1}}' {log}"), CG_OK);

    cJSON *train = cJSON_Parse("{\"batch_size\": 256, \"lr\": 0.0005, \"data\": \"my data\", \"freeze_text\": true,"
                               " \"resume\": false}");
    char *extra[] = {"--seed", "it's"};
    template_values v = {.image_encoder = "starnet_s1", .text_encoder = "clip:ViT-B/32", .id = "starnet_s1_clip_ViT-B_32",
                         .out_dir = "out dir/x", .gpu = "1", .log = "l.log", .train = train,
                         .extra_args = extra, .n_extra = 2};
    char *cmd = template_expand("run {image_encoder} {text_encoder} {out_dir} {gpu} {train_args}", &v);
    CHECK_EQ_STR(cmd, "run starnet_s1 clip:ViT-B/32 'out dir/x' 1 --batch-size 256 --lr 0.0005 --data 'my data' "
                      "--freeze-text --seed 'it'\\''s'");
    free(cmd);
    cmd = template_expand("a {extra_args} b {{x}}", &v);
    CHECK_EQ_STR(cmd, "a --seed 'it'\\''s' b {x}");
    free(cmd);
    cJSON_Delete(train);
    char *q = shell_quote("");
    CHECK_EQ_STR(q, "''");
    free(q);
    q = shell_quote("$(rm -rf /)");
    CHECK_EQ_STR(q, "'$(rm -rf /)'");
    free(q);
}

int main(void) {
    TEST_RUN(test_lpt_order_is_longest_first_and_stable);
    TEST_RUN(test_pick_slot);
    TEST_RUN(test_list_scheduling_and_round_robin);
    TEST_RUN(test_template_expansion_quotes_values);
    return TEST_REPORT();
}
