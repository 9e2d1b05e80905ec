/* test_nn_text.c — the text-tower layers (LayerNorm, attention, GELU / QuickGELU, token and
 * position embeddings): forward against plain double-precision loops, backward against
 * central finite differences of L = sum(r * y) (r fixed random), gradients scaled by
 * max(|g|, 1); and the threaded paths against one thread. */
#include <omp.h>
#include <stdlib.h>

#include "check.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "nn/attention.h"
#include "nn/embedding.h"
#include "nn/gelu.h"
#include "nn/layernorm.h"

static cg_rng rng;

static float *randn(int64_t n, float std) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
    cg_rng_fill_normal(&rng, p, (size_t)n, 0.0f, std);
    return p;
}
static float *zeros(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(float)); }

/* ---------------------------------------------------------------- finite differences */

typedef struct { float *x, *g; int64_t n; const char *name; } fd_var;

typedef struct {
    void (*fwd)(void *);
    void (*bwd)(void *);   /* reads dy (= r), accumulates into the fd_var grads */
    void *ctx;
    float *y, *dy;
    int64_t ny;
} fd_case;

static double fd_loss(fd_case *c, const float *r) {
    c->fwd(c->ctx);
    double s = 0;
    for (int64_t i = 0; i < c->ny; i++) s += (double)c->y[i] * r[i];
    return s;
}

static double fd_check(const char *layer, fd_case *c, fd_var *vars, int nv, float eps, double tol) {
    float *r = randn(c->ny, 1.0f);
    for (int v = 0; v < nv; v++) memset(vars[v].g, 0, (size_t)vars[v].n * sizeof(float));
    c->fwd(c->ctx);
    memcpy(c->dy, r, (size_t)c->ny * sizeof(float));
    c->bwd(c->ctx);
    double worst = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int v = 0; v < nv; v++) {
        int64_t step = vars[v].n > 80 ? vars[v].n / 80 : 1;
        for (int64_t i = 0; i < vars[v].n; i += step) {
            float orig = vars[v].x[i];
            vars[v].x[i] = orig + eps;
            double lp = fd_loss(c, r);
            vars[v].x[i] = orig - eps;
            double lm = fd_loss(c, r);
            vars[v].x[i] = orig;
            double fd = (lp - lm) / (2.0 * eps), g = vars[v].g[i];
            double err = fabs(fd - g) / fmax(fabs(g), 1.0);
            checked++;
            if (err > worst) { worst = err; worst_name = vars[v].name; }
            if (err > tol) {
                fprintf(stderr, "  %s: d/d%s[%lld]: analytic %.6g, finite difference %.6g\n", layer, vars[v].name,
                        (long long)i, g, fd);
                CHECK(err <= tol);
            }
        }
    }
    CHECK(checked > 0);
    fprintf(stderr, "  %-32s worst scaled FD error %.2e (%s)\n", layer, worst, worst_name);
    free(r);
    return worst;
}

/* ---------------------------------------------------------------- LayerNorm */

typedef struct { cg_tensor x, w, b, y, mean, rstd, dx, dw, db, dy; float eps; } ln_ctx;
static void ln_fwd(void *p) { ln_ctx *c = p; cg_layernorm_forward(&c->y, &c->mean, &c->rstd, &c->x, &c->w, &c->b, c->eps); }
static void ln_bwd(void *p) { ln_ctx *c = p; cg_layernorm_backward(&c->dx, &c->dw, &c->db, &c->dy, &c->x, &c->mean, &c->rstd, &c->w); }

static void ln_case(int N, int C, float eps, float offset) {
    ln_ctx c;
    c.eps = eps;
    float *x = randn((int64_t)N * C, 1.5f);
    for (int64_t i = 0; i < (int64_t)N * C; i++) x[i] += offset;  /* large mean: tests the centring */
    c.x = cg_tensor_2d(x, CG_DEV_CPU, N, C);
    c.w = cg_tensor_1d(randn(C, 0.5f), CG_DEV_CPU, C);
    for (int i = 0; i < C; i++) c.w.data[i] += 1.0f;
    c.b = cg_tensor_1d(randn(C, 0.5f), CG_DEV_CPU, C);
    c.y = cg_tensor_2d(zeros((int64_t)N * C), CG_DEV_CPU, N, C);
    c.dy = cg_tensor_2d(zeros((int64_t)N * C), CG_DEV_CPU, N, C);
    c.dx = cg_tensor_2d(zeros((int64_t)N * C), CG_DEV_CPU, N, C);
    c.mean = cg_tensor_1d(zeros(N), CG_DEV_CPU, N);
    c.rstd = cg_tensor_1d(zeros(N), CG_DEV_CPU, N);
    c.dw = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    c.db = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    ln_fwd(&c);
    double worst = 0;
    for (int n = 0; n < N; n++) {
        double s = 0, v = 0;
        for (int k = 0; k < C; k++) s += x[n * C + k];
        s /= C;
        for (int k = 0; k < C; k++) v += (x[n * C + k] - s) * (x[n * C + k] - s);
        v /= C;
        for (int k = 0; k < C; k++) {
            double ref = (x[n * C + k] - s) / sqrt(v + eps) * c.w.data[k] + c.b.data[k];
            worst = fmax(worst, fabs(ref - c.y.data[n * C + k]));
        }
    }
    CHECK(worst < 1e-5);
    fd_case fc = {ln_fwd, ln_bwd, &c, c.y.data, c.dy.data, (int64_t)N * C};
    fd_var vars[] = {{c.x.data, c.dx.data, (int64_t)N * C, "x"}, {c.w.data, c.dw.data, C, "w"}, {c.b.data, c.db.data, C, "b"}};
    char name[64];
    snprintf(name, sizeof name, "layernorm %dx%d eps %.0e", N, C, eps);
    fd_check(name, &fc, vars, 3, offset != 0.0f ? 1e-2f : 3e-3f, 2e-3);
    free(c.x.data); free(c.w.data); free(c.b.data); free(c.y.data); free(c.dy.data); free(c.dx.data);
    free(c.mean.data); free(c.rstd.data); free(c.dw.data); free(c.db.data);
}

static void test_layernorm(void) {
    ln_case(5, 7, 1e-5f, 0.0f);
    ln_case(3, 130, 1e-12f, 0.0f);  /* BERT's eps, more than one column block */
    ln_case(4, 16, 1e-5f, 3.0f);
}

/* ---------------------------------------------------------------- GELU / QuickGELU */

typedef struct { cg_tensor x, y, dx, dy; cg_act_kind k; } act_ctx;
static void act_fwd(void *p) { act_ctx *c = p; cg_act_forward(c->k, &c->y, &c->x); }
static void act_bwd(void *p) { act_ctx *c = p; cg_act_backward(c->k, &c->dx, &c->dy, &c->x); }

static void test_gelu(void) {
    for (int kk = 0; kk < 2; kk++) {
        act_ctx c;
        c.k = kk ? CG_ACT_QUICK_GELU : CG_ACT_GELU;
        int64_t n = 97;
        c.x = cg_tensor_1d(randn(n, 2.0f), CG_DEV_CPU, n);
        c.x.data[0] = 0.0f;
        c.x.data[1] = -6.0f;
        c.x.data[2] = 5.0f;
        c.y = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
        c.dx = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
        c.dy = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
        act_fwd(&c);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = c.x.data[i];
            double ref = kk ? v / (1.0 + exp(-1.702 * v)) : 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            worst = fmax(worst, fabs(ref - c.y.data[i]));
        }
        CHECK(worst < 2e-6);
        fd_case fc = {act_fwd, act_bwd, &c, c.y.data, c.dy.data, n};
        fd_var vars[] = {{c.x.data, c.dx.data, n, "x"}};
        fd_check(kk ? "quick_gelu" : "gelu (erf)", &fc, vars, 1, 1e-2f, 1e-3);
        /* the known value GELU(1) = 0.8413447 * 1, QuickGELU(1) = sigmoid(1.702) */
        c.x.data[0] = 1.0f;
        act_fwd(&c);
        CHECK_NEAR(c.y.data[0], kk ? 1.0 / (1.0 + exp(-1.702)) : 0.8413447460685429, 1e-6);
        free(c.x.data); free(c.y.data); free(c.dx.data); free(c.dy.data);
    }
    /* QuickGELU's vectorisable exp: relative accuracy over a wide range, and the tails */
    int64_t n = 4001;
    float *x = malloc(sizeof(float) * n), *y = zeros(n), *dx = zeros(n), *dy = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) { x[i] = -40.0f + 0.02f * (float)i; dy[i] = 1.0f; }
    cg_tensor tx = cg_tensor_1d(x, CG_DEV_CPU, n), ty = cg_tensor_1d(y, CG_DEV_CPU, n);
    cg_tensor tdx = cg_tensor_1d(dx, CG_DEV_CPU, n), tdy = cg_tensor_1d(dy, CG_DEV_CPU, n);
    cg_quick_gelu_forward(&ty, &tx);
    cg_quick_gelu_backward(&tdx, &tdy, &tx);
    double worst = 0, worst_d = 0;
    for (int64_t i = 0; i < n; i++) {
        /* the argument as the float code forms it (1.702f * x): its rounding is not exp's error */
        double v = x[i], z = (double)(1.702f * x[i]), s = 1.0 / (1.0 + exp(-z)), ref = v * s, dref = s + z * s * (1 - s);
        worst = fmax(worst, fabs(y[i] - ref) / fmax(fabs(ref), 1e-30));
        worst_d = fmax(worst_d, fabs(dx[i] - dref) / fmax(fabs(dref), 1e-3));
    }
    fprintf(stderr, "  quick_gelu on [-40, 40]: worst relative error %.2e (value), %.2e (derivative)\n", worst, worst_d);
    CHECK(worst < 2e-6);
    CHECK(worst_d < 2e-6);
    x[0] = -1000.0f; x[1] = 1000.0f; x[2] = NAN;
    cg_quick_gelu_forward(&ty, &tx);
    CHECK(y[0] <= 0.0f && y[0] > -1e-30f && y[1] == 1000.0f);
    CHECK(isnan(y[2]));   /* NaN propagates (the trainer's NaN check relies on it) */
    cg_quick_gelu_backward(&tdx, &tdy, &tx);
    CHECK(isnan(dx[2]));
    free(x); free(y); free(dx); free(dy);
}

/* ---------------------------------------------------------------- attention */

typedef struct { cg_tensor qkv, out, att, dqkv, dout; int H, causal; uint8_t *mask; } at_ctx;
static void at_fwd(void *p) { at_ctx *c = p; cg_attention_forward(&c->out, &c->att, &c->qkv, c->H, c->causal, c->mask); }
static void at_bwd(void *p) { at_ctx *c = p; cg_attention_backward(&c->dqkv, &c->dout, &c->qkv, &c->att, c->H); }

static void at_case(int B, int T, int H, int D, int causal, int masked) {
    at_ctx c;
    int C = H * D;
    int64_t nq = (int64_t)B * T * 3 * C, no = (int64_t)B * T * C;
    c.H = H;
    c.causal = causal;
    c.mask = NULL;
    if (masked) {
        c.mask = malloc((size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) c.mask[b * T + t] = t < T - b;  /* b trailing pads */
        c.mask[T + 0] = 1;
        if (T > 3) c.mask[1 * T + 2] = 0;  /* a hole in the middle */
    }
    c.qkv = cg_tensor_view(randn(nq, 1.0f), CG_DEV_CPU, 3, (int64_t[]){B, T, 3 * C});
    c.dqkv = cg_tensor_view(zeros(nq), CG_DEV_CPU, 3, (int64_t[]){B, T, 3 * C});
    c.out = cg_tensor_view(zeros(no), CG_DEV_CPU, 3, (int64_t[]){B, T, C});
    c.dout = cg_tensor_view(zeros(no), CG_DEV_CPU, 3, (int64_t[]){B, T, C});
    c.att = cg_tensor_view(zeros((int64_t)B * H * T * T), CG_DEV_CPU, 4, (int64_t[]){B, H, T, T});
    at_fwd(&c);
    /* reference: plain loops in double */
    double worst = 0, *s = malloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double mx = -1e300;
                for (int j = 0; j < T; j++) {
                    int ok = (!causal || j <= i) && (!c.mask || c.mask[b * T + j]);
                    double acc = 0;
                    for (int d = 0; d < D; d++)
                        acc += (double)c.qkv.data[((int64_t)b * T + i) * 3 * C + h * D + d] *
                               c.qkv.data[((int64_t)b * T + j) * 3 * C + C + h * D + d];
                    s[j] = ok ? acc / sqrt((double)D) : -INFINITY;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int j = 0; j < T; j++) { s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - mx); sum += s[j]; }
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[j] / sum * c.qkv.data[((int64_t)b * T + j) * 3 * C + 2 * C + h * D + d];
                    worst = fmax(worst, fabs(o - c.out.data[((int64_t)b * T + i) * C + h * D + d]));
                }
            }
    free(s);
    CHECK(worst < 1e-5);
    fd_case fc = {at_fwd, at_bwd, &c, c.out.data, c.dout.data, no};
    fd_var vars[] = {{c.qkv.data, c.dqkv.data, nq, "qkv"}};
    char name[80];
    snprintf(name, sizeof name, "attention B%d T%d H%d D%d%s%s", B, T, H, D, causal ? " causal" : "", masked ? " masked" : "");
    fd_check(name, &fc, vars, 1, 1e-2f, 2e-3);
    /* masked keys get exactly zero probability and zero gradient into k and v */
    if (c.mask)
        for (int b = 0; b < B; b++)
            for (int j = 0; j < T; j++)
                if (!c.mask[b * T + j]) {
                    for (int h = 0; h < H; h++)
                        for (int i = 0; i < T; i++) CHECK(c.att.data[(((int64_t)b * H + h) * T + i) * T + j] == 0.0f);
                    for (int d = 0; d < 2 * C; d++) CHECK(c.dqkv.data[((int64_t)b * T + j) * 3 * C + C + d] == 0.0f);
                }
    free(c.qkv.data); free(c.dqkv.data); free(c.out.data); free(c.dout.data); free(c.att.data); free(c.mask);
}

static void test_attention(void) {
    at_case(2, 5, 2, 3, 1, 0);   /* CLIP: causal */
    at_case(3, 6, 3, 4, 0, 1);   /* BERT: key padding mask */
    at_case(1, 4, 1, 8, 0, 0);   /* one head, no mask */
    at_case(2, 7, 2, 4, 1, 1);   /* both */
}

/* ---------------------------------------------------------------- embeddings */

typedef struct { cg_tensor y, table, pos, dy, dtable, dpos; int32_t *ids; int32_t skip; } emb_ctx;
static void emb_fwd(void *p) {
    emb_ctx *c = p;
    cg_embedding_forward(&c->y, c->ids, &c->table, 0);
    cg_posemb_forward(&c->y, &c->pos);
}
static void emb_bwd(void *p) {
    emb_ctx *c = p;
    cg_embedding_backward(&c->dtable, &c->dy, c->ids, c->skip);
    cg_posemb_backward(&c->dpos, &c->dy);
}

static void test_embedding(void) {
    int B = 3, T = 4, V = 6, P = 7, C = 70;  /* C > one 64-column block */
    emb_ctx c;
    int32_t ids[12] = {1, 2, 2, 0, 5, 1, 0, 0, 3, 3, 3, 2};  /* repeated ids, id 0 as padding */
    c.ids = ids;
    c.table = cg_tensor_2d(randn((int64_t)V * C, 1), CG_DEV_CPU, V, C);
    c.pos = cg_tensor_2d(randn((int64_t)P * C, 1), CG_DEV_CPU, P, C);
    c.dtable = cg_tensor_2d(zeros((int64_t)V * C), CG_DEV_CPU, V, C);
    c.dpos = cg_tensor_2d(zeros((int64_t)P * C), CG_DEV_CPU, P, C);
    c.y = cg_tensor_view(zeros((int64_t)B * T * C), CG_DEV_CPU, 3, (int64_t[]){B, T, C});
    c.dy = cg_tensor_view(zeros((int64_t)B * T * C), CG_DEV_CPU, 3, (int64_t[]){B, T, C});
    c.skip = -1;
    emb_fwd(&c);
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int k = 0; k < C; k++)
                worst = fmax(worst, fabs(c.y.data[(b * T + t) * C + k] - c.table.data[ids[b * T + t] * C + k] - c.pos.data[t * C + k]));
    CHECK(worst < 1e-6);
    fd_case fc = {emb_fwd, emb_bwd, &c, c.y.data, c.dy.data, (int64_t)B * T * C};
    fd_var vars[] = {{c.table.data, c.dtable.data, (int64_t)V * C, "table"}, {c.pos.data, c.dpos.data, (int64_t)P * C, "pos"}};
    fd_check("embedding + positions", &fc, vars, 2, 1e-2f, 1e-3);
    /* positions past T get no gradient; the padding_idx row gets none when skipped */
    for (int k = 0; k < C; k++) CHECK(c.dpos.data[(P - 1) * C + k] == 0.0f);
    memset(c.dtable.data, 0, (size_t)V * C * sizeof(float));
    c.skip = 0;
    for (int64_t i = 0; i < (int64_t)B * T * C; i++) c.dy.data[i] = 1.0f;
    cg_embedding_backward(&c.dtable, &c.dy, ids, c.skip);
    CHECK(c.dtable.data[0] == 0.0f && c.dtable.data[C - 1] == 0.0f);
    CHECK(c.dtable.data[3 * C + 5] == 3.0f);   /* id 3 appears three times */
    CHECK(c.dtable.data[4 * C + 5] == 0.0f);   /* id 4 never */
    /* accumulate mode adds */
    cg_embedding_forward(&c.y, ids, &c.table, 1);
    CHECK_NEAR(c.y.data[0], 2 * c.table.data[1 * C] + c.pos.data[0], 1e-5);
    free(c.table.data); free(c.pos.data); free(c.dtable.data); free(c.dpos.data); free(c.y.data); free(c.dy.data);
}

/* ---------------------------------------------------------------- threads */

static void test_threads_agree(void) {
    /* sizes above every OpenMP threshold: one thread and three give the same numbers */
    int B = 4, T = 40, H = 4, D = 16, C = H * D;
    int64_t nq = (int64_t)B * T * 3 * C, no = (int64_t)B * T * C;
    float *qkv = randn(nq, 1), *dout = randn(no, 1), *res[2][4];
    float *lx = randn(no * 4, 1), *lw = randn(C, 1), *lb = randn(C, 1);
    int nt = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 3 : 1);
        at_ctx c = {.H = H, .causal = 1, .mask = NULL};
        c.qkv = cg_tensor_view(qkv, CG_DEV_CPU, 3, (int64_t[]){B, T, 3 * C});
        c.dout = cg_tensor_view(dout, CG_DEV_CPU, 3, (int64_t[]){B, T, C});
        res[r][0] = zeros(no);
        res[r][1] = zeros(nq);
        c.out = cg_tensor_view(res[r][0], CG_DEV_CPU, 3, (int64_t[]){B, T, C});
        c.dqkv = cg_tensor_view(res[r][1], CG_DEV_CPU, 3, (int64_t[]){B, T, 3 * C});
        float *att = zeros((int64_t)B * H * T * T);
        c.att = cg_tensor_view(att, CG_DEV_CPU, 4, (int64_t[]){B, H, T, T});
        at_fwd(&c);
        at_bwd(&c);
        free(att);
        cg_tensor x = cg_tensor_2d(lx, CG_DEV_CPU, 4 * B * T, C), w = cg_tensor_1d(lw, CG_DEV_CPU, C), b = cg_tensor_1d(lb, CG_DEV_CPU, C);
        res[r][2] = zeros(no * 4);
        res[r][3] = zeros(2 * C);
        float *mean = zeros(4 * B * T), *rstd = zeros(4 * B * T);
        cg_tensor y = cg_tensor_2d(res[r][2], CG_DEV_CPU, 4 * B * T, C);
        cg_tensor tm = cg_tensor_1d(mean, CG_DEV_CPU, 4 * B * T), ts = cg_tensor_1d(rstd, CG_DEV_CPU, 4 * B * T);
        cg_layernorm_forward(&y, &tm, &ts, &x, &w, &b, 1e-5f);
        cg_tensor dw = cg_tensor_1d(res[r][3], CG_DEV_CPU, C), db = cg_tensor_1d(res[r][3] + C, CG_DEV_CPU, C);
        cg_layernorm_backward(NULL, &dw, &db, &x, &x, &tm, &ts, &w);
        free(mean); free(rstd);
    }
    omp_set_num_threads(nt);
    int64_t sizes[4] = {no, nq, no * 4, 2 * C};
    for (int k = 0; k < 4; k++) {
        double worst = 0;
        for (int64_t i = 0; i < sizes[k]; i++) worst = fmax(worst, fabs(res[0][k][i] - res[1][k][i]));
        CHECK(worst < 1e-5);
        free(res[0][k]); free(res[1][k]);
    }
    free(qkv); free(dout); free(lx); free(lw); free(lb);
}

int main(void) {
    cg_rng_seed(&rng, 4321);
    TEST_RUN(test_layernorm);
    TEST_RUN(test_gelu);
    TEST_RUN(test_attention);
    TEST_RUN(test_embedding);
    TEST_RUN(test_threads_agree);
    return TEST_REPORT();
}
