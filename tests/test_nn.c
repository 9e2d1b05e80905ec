/* test_nn.c — every nn/ layer: forward against a plain-loop reference, backward against central
 * finite differences of the scalar loss L = sum(r * y) (r fixed random), and the GEMM wrapper
 * against a naive product for all transposes, threaded and not. */
#include <omp.h>
#include <stdlib.h>

#include "check.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/dwconv2d.h"
#include "nn/gemm.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/residual.h"

static cg_rng rng;

static float *randn(int64_t n, float std) {
    float *p = malloc((size_t)n * sizeof(float));
    cg_rng_fill_normal(&rng, p, (size_t)n, 0.0f, std);
    return p;
}
static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

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

/* Checks up to `max_checks` entries of every variable; returns the worst error scaled by
 * max(|g|, 1). Central differences in fp32 with eps relative to the entry. */
static double fd_check(const char *layer, fd_case *c, fd_var *vars, int nv, float eps, double tol) {
    float *r = randn(c->ny, 1.0f);
    for (int v = 0; v < nv; v++) memset(vars[v].g, 0, (size_t)vars[v].n * sizeof(float));
    c->fwd(c->ctx);
    memcpy(c->dy, r, (size_t)c->ny * sizeof(float));
    c->bwd(c->ctx);
    double worst = 0;
    const char *worst_name = "";
    for (int v = 0; v < nv; v++) {
        int64_t step = vars[v].n > 60 ? vars[v].n / 60 : 1;
        for (int64_t i = 0; i < vars[v].n; i += step) {
            float orig = vars[v].x[i];
            vars[v].x[i] = orig + eps;
            double lp = fd_loss(c, r);
            vars[v].x[i] = orig - eps;
            double lm = fd_loss(c, r);
            vars[v].x[i] = orig;
            double fd = (lp - lm) / (2.0 * eps), g = vars[v].g[i];
            double err = fabs(fd - g) / fmax(fabs(g), 1.0);
            if (err > worst) { worst = err; worst_name = vars[v].name; }
            if (err > tol) {
                fprintf(stderr, "  %s: d/d%s[%lld]: analytic %.6g, finite difference %.6g\n", layer, vars[v].name,
                        (long long)i, g, fd);
                CHECK(err <= tol);
            }
        }
    }
    fprintf(stderr, "  %-28s worst scaled FD error %.2e (%s)\n", layer, worst, worst_name);
    free(r);
    return worst;
}

/* ---------------------------------------------------------------- GEMM */

static void test_gemm(void) {
    int sizes[][3] = {{3, 5, 7}, {17, 33, 9}, {64, 300, 40}, {300, 64, 40}, {1, 1000, 3}};
    for (int s = 0; s < 5; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                float *A = randn((int64_t)M * K, 1), *B = randn((int64_t)K * N, 1), *C = randn((int64_t)M * N, 1);
                double *ref = malloc(sizeof(double) * M * N);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double acc = 0;
                        for (int k = 0; k < K; k++)
                            acc += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
                        ref[i * N + j] = 0.5 * acc + 2.0 * C[i * N + j];
                    }
                cg_gemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 2.0f, C, N);
                double worst = 0;
                for (int i = 0; i < M * N; i++) worst = fmax(worst, fabs(C[i] - ref[i]));
                CHECK(worst < 1e-4 * sqrt(K) + 1e-5);
                free(A); free(B); free(C); free(ref);
            }
}

/* ---------------------------------------------------------------- conv2d */

typedef struct {
    cg_tensor x, w, b, y, dx, dw, db, dy;
    int stride, pad;
} conv_ctx;

static void conv_fwd(void *p) { conv_ctx *c = p; cg_conv2d_forward(&c->y, &c->x, &c->w, &c->b, c->stride, c->pad); }
static void conv_bwd(void *p) {
    conv_ctx *c = p;
    cg_conv2d_backward(&c->dx, &c->dw, &c->db, &c->dy, &c->x, &c->w, c->stride, c->pad);
}

static void conv_case(int Cin, int N, int H, int W, int Cout, int k, int stride, int pad) {
    conv_ctx c;
    int Ho = (int)cg_conv_out_size(H, k, stride, pad), Wo = (int)cg_conv_out_size(W, k, stride, pad);
    c.stride = stride;
    c.pad = pad;
    c.x = cg_tensor_4d(randn((int64_t)Cin * N * H * W, 1), CG_DEV_CPU, Cin, N, H, W);
    c.w = cg_tensor_4d(randn((int64_t)Cout * Cin * k * k, 0.5f), CG_DEV_CPU, Cout, Cin, k, k);
    c.b = cg_tensor_1d(randn(Cout, 1), CG_DEV_CPU, Cout);
    c.y = cg_tensor_4d(zeros((int64_t)Cout * N * Ho * Wo), CG_DEV_CPU, Cout, N, Ho, Wo);
    c.dy = cg_tensor_4d(zeros((int64_t)Cout * N * Ho * Wo), CG_DEV_CPU, Cout, N, Ho, Wo);
    c.dx = cg_tensor_4d(zeros(cg_tensor_numel(&c.x)), CG_DEV_CPU, Cin, N, H, W);
    c.dw = cg_tensor_4d(zeros(cg_tensor_numel(&c.w)), CG_DEV_CPU, Cout, Cin, k, k);
    c.db = cg_tensor_1d(zeros(Cout), CG_DEV_CPU, Cout);
    /* forward vs direct loops */
    conv_fwd(&c);
    double worst = 0;
    for (int o = 0; o < Cout; o++)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    double acc = c.b.data[o];
                    for (int ci = 0; ci < Cin; ci++)
                        for (int u = 0; u < k; u++)
                            for (int v = 0; v < k; v++) {
                                int h = i * stride - pad + u, w = j * stride - pad + v;
                                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                                acc += (double)c.w.data[((o * Cin + ci) * k + u) * k + v] *
                                       c.x.data[((ci * N + n) * H + h) * W + w];
                            }
                    worst = fmax(worst, fabs(acc - c.y.data[((o * N + n) * Ho + i) * Wo + j]));
                }
    CHECK(worst < 1e-4);
    fd_case fc = {conv_fwd, conv_bwd, &c, c.y.data, c.dy.data, cg_tensor_numel(&c.y)};
    fd_var vars[] = {{c.x.data, c.dx.data, cg_tensor_numel(&c.x), "x"},
                     {c.w.data, c.dw.data, cg_tensor_numel(&c.w), "w"},
                     {c.b.data, c.db.data, Cout, "b"}};
    char name[64];
    snprintf(name, sizeof name, "conv2d k%d s%d p%d %dx%d", k, stride, pad, H, W);
    fd_check(name, &fc, vars, 3, 1e-2f, 1e-3);
    free(c.x.data); free(c.w.data); free(c.b.data); free(c.y.data); free(c.dy.data);
    free(c.dx.data); free(c.dw.data); free(c.db.data);
}

static void test_conv2d(void) {
    conv_case(3, 3, 7, 9, 4, 3, 2, 1);   /* stem-like, odd sizes */
    conv_case(5, 2, 8, 8, 6, 3, 2, 1);   /* downsampler */
    conv_case(5, 3, 3, 4, 7, 1, 1, 0);   /* 1x1 as one GEMM */
    conv_case(2, 1, 5, 5, 3, 3, 1, 1);   /* 3x3 stride 1 */
}

/* ---------------------------------------------------------------- depthwise conv */

typedef struct { cg_tensor x, w, b, y, dx, dw, db, dy; } dw_ctx;
static void dw_fwd(void *p) { dw_ctx *c = p; cg_dwconv2d_forward(&c->y, &c->x, &c->w, &c->b); }
static void dw_bwd(void *p) { dw_ctx *c = p; cg_dwconv2d_backward(&c->dx, &c->dw, &c->db, &c->dy, &c->x, &c->w); }

static void dw_case(int C, int N, int H, int W, int k) {
    dw_ctx c;
    int64_t nx = (int64_t)C * N * H * W;
    c.x = cg_tensor_4d(randn(nx, 1), CG_DEV_CPU, C, N, H, W);
    c.w = cg_tensor_4d(randn((int64_t)C * k * k, 0.3f), CG_DEV_CPU, C, 1, k, k);
    c.b = cg_tensor_1d(randn(C, 1), CG_DEV_CPU, C);
    c.y = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.dy = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.dx = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.dw = cg_tensor_4d(zeros((int64_t)C * k * k), CG_DEV_CPU, C, 1, k, k);
    c.db = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    dw_fwd(&c);
    double worst = 0;
    int p = k / 2;
    for (int ch = 0; ch < C; ch++)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    double acc = c.b.data[ch];
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int hi = h + u - p, wi = w + v - p;
                            if (hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
                            acc += (double)c.w.data[(ch * k + u) * k + v] * c.x.data[((ch * N + n) * H + hi) * W + wi];
                        }
                    worst = fmax(worst, fabs(acc - c.y.data[((ch * N + n) * H + h) * W + w]));
                }
    CHECK(worst < 1e-4);
    fd_case fc = {dw_fwd, dw_bwd, &c, c.y.data, c.dy.data, nx};
    fd_var vars[] = {{c.x.data, c.dx.data, nx, "x"}, {c.w.data, c.dw.data, (int64_t)C * k * k, "w"}, {c.b.data, c.db.data, C, "b"}};
    char name[64];
    snprintf(name, sizeof name, "dwconv2d k%d %dx%d", k, H, W);
    fd_check(name, &fc, vars, 3, 1e-2f, 1e-3);
    free(c.x.data); free(c.w.data); free(c.b.data); free(c.y.data); free(c.dy.data);
    free(c.dx.data); free(c.dw.data); free(c.db.data);
}

static void test_dwconv2d(void) {
    dw_case(3, 2, 9, 8, 7);
    dw_case(2, 3, 4, 5, 7);  /* image smaller than the kernel */
    dw_case(4, 1, 6, 6, 3);
}

/* ---------------------------------------------------------------- batchnorm */

typedef struct { cg_tensor x, g, b, y, dx, dg, db, dy, mean, rstd, rm, rv; int train; } bn_ctx;
static void bn_fwd(void *p) {
    bn_ctx *c = p;
    if (c->train) cg_batchnorm_forward_train(&c->y, &c->x, &c->g, &c->b, NULL, NULL, &c->mean, &c->rstd, 0.1f, 1e-5f);
    else cg_batchnorm_forward_eval(&c->y, &c->x, &c->g, &c->b, &c->rm, &c->rv, 1e-5f);
}
static void bn_bwd(void *p) {
    bn_ctx *c = p;
    if (c->train) cg_batchnorm_backward_train(&c->dx, &c->dg, &c->db, &c->dy, &c->x, &c->g, &c->mean, &c->rstd);
    else cg_batchnorm_backward_eval(&c->dx, &c->dg, &c->db, &c->dy, &c->x, &c->g, &c->rm, &c->rv, 1e-5f);
}

static void bn_case(int train) {
    int C = 3, N = 2, H = 3, W = 4;
    int64_t nx = (int64_t)C * N * H * W, M = nx / C;
    bn_ctx c;
    c.train = train;
    c.x = cg_tensor_4d(randn(nx, 2), CG_DEV_CPU, C, N, H, W);
    for (int64_t i = 0; i < nx; i++) c.x.data[i] += (float)(i / M);  /* per-channel offsets */
    c.g = cg_tensor_1d(randn(C, 1), CG_DEV_CPU, C);
    c.b = cg_tensor_1d(randn(C, 1), CG_DEV_CPU, C);
    c.rm = cg_tensor_1d(randn(C, 1), CG_DEV_CPU, C);
    c.rv = cg_tensor_1d(randn(C, 1), CG_DEV_CPU, C);
    for (int i = 0; i < C; i++) c.rv.data[i] = 0.5f + fabsf(c.rv.data[i]);
    c.y = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.dy = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.dx = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.dg = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    c.db = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    c.mean = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    c.rstd = cg_tensor_1d(zeros(C), CG_DEV_CPU, C);
    /* forward: direct formula; running stats (momentum 0.1, unbiased variance) */
    float rm0[3], rv0[3];
    memcpy(rm0, c.rm.data, sizeof rm0);
    memcpy(rv0, c.rv.data, sizeof rv0);
    if (train) cg_batchnorm_forward_train(&c.y, &c.x, &c.g, &c.b, &c.rm, &c.rv, &c.mean, &c.rstd, 0.1f, 1e-5f);
    else bn_fwd(&c);
    for (int ch = 0; ch < C; ch++) {
        double s = 0, ss = 0;
        for (int64_t i = 0; i < M; i++) s += c.x.data[ch * M + i];
        double mean = s / M;
        for (int64_t i = 0; i < M; i++) ss += (c.x.data[ch * M + i] - mean) * (c.x.data[ch * M + i] - mean);
        double m = train ? mean : rm0[ch], var = train ? ss / M : rv0[ch];
        for (int64_t i = 0; i < M; i++) {
            double want = (c.x.data[ch * M + i] - m) / sqrt(var + 1e-5) * c.g.data[ch] + c.b.data[ch];
            CHECK_NEAR(c.y.data[ch * M + i], want, 1e-4);
        }
        if (train) {
            CHECK_NEAR(c.rm.data[ch], 0.9 * rm0[ch] + 0.1 * mean, 1e-5);
            CHECK_NEAR(c.rv.data[ch], 0.9 * rv0[ch] + 0.1 * ss / (M - 1), 1e-5);
        } else {
            CHECK(c.rm.data[ch] == rm0[ch] && c.rv.data[ch] == rv0[ch]);
        }
    }
    fd_case fc = {bn_fwd, bn_bwd, &c, c.y.data, c.dy.data, nx};
    fd_var vars[] = {{c.x.data, c.dx.data, nx, "x"}, {c.g.data, c.dg.data, C, "gamma"}, {c.b.data, c.db.data, C, "beta"}};
    fd_check(train ? "batchnorm train" : "batchnorm eval", &fc, vars, 3, 1e-2f, 1e-3);
    free(c.x.data); free(c.g.data); free(c.b.data); free(c.rm.data); free(c.rv.data); free(c.y.data);
    free(c.dy.data); free(c.dx.data); free(c.dg.data); free(c.db.data); free(c.mean.data); free(c.rstd.data);
}

static void test_batchnorm(void) {
    bn_case(1);
    bn_case(0);
}

/* ---------------------------------------------------------------- activations */

typedef struct { cg_tensor a, b, z, da, db, dz; } act_ctx;
static void relu_fwd(void *p) { act_ctx *c = p; cg_relu6_forward(&c->z, &c->a); }
static void relu_bwd(void *p) { act_ctx *c = p; cg_relu6_backward(&c->da, &c->dz, &c->a); }
static void star_fwd(void *p) { act_ctx *c = p; cg_star_relu6_forward(&c->z, &c->a, &c->b); }
static void star_bwd(void *p) { act_ctx *c = p; cg_star_relu6_backward(&c->da, &c->db, &c->dz, &c->a, &c->b); }

static void test_activations(void) {
    int64_t n = 200;
    act_ctx c;
    c.a = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
    for (int64_t i = 0; i < n; i++) {  /* spread over [-2, 8], kept 0.05 away from the kinks */
        float v = -2.0f + 10.0f * cg_rng_uniform(&rng);
        if (fabsf(v) < 0.05f) v += 0.1f;
        if (fabsf(v - 6.0f) < 0.05f) v += 0.1f;
        c.a.data[i] = v;
    }
    c.b = cg_tensor_1d(randn(n, 1), CG_DEV_CPU, n);
    c.z = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
    c.dz = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
    c.da = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
    c.db = cg_tensor_1d(zeros(n), CG_DEV_CPU, n);
    relu_fwd(&c);
    for (int64_t i = 0; i < n; i++) CHECK(c.z.data[i] == fminf(fmaxf(c.a.data[i], 0.0f), 6.0f));
    fd_case f1 = {relu_fwd, relu_bwd, &c, c.z.data, c.dz.data, n};
    fd_var v1[] = {{c.a.data, c.da.data, n, "x"}};
    fd_check("relu6", &f1, v1, 1, 1e-2f, 1e-3);
    star_fwd(&c);
    for (int64_t i = 0; i < n; i++) CHECK(c.z.data[i] == fminf(fmaxf(c.a.data[i], 0.0f), 6.0f) * c.b.data[i]);
    fd_case f2 = {star_fwd, star_bwd, &c, c.z.data, c.dz.data, n};
    fd_var v2[] = {{c.a.data, c.da.data, n, "a"}, {c.b.data, c.db.data, n, "b"}};
    fd_check("star relu6(a)*b", &f2, v2, 2, 1e-2f, 1e-3);
    /* gradient exactly 0 at the kinks, as PyTorch */
    float k[2] = {0.0f, 6.0f}, g[2] = {1, 1}, dk[2] = {0, 0};
    cg_tensor tk = cg_tensor_1d(k, CG_DEV_CPU, 2), tg = cg_tensor_1d(g, CG_DEV_CPU, 2), tdk = cg_tensor_1d(dk, CG_DEV_CPU, 2);
    cg_relu6_backward(&tdk, &tg, &tk);
    CHECK(dk[0] == 0.0f && dk[1] == 0.0f);
    free(c.a.data); free(c.b.data); free(c.z.data); free(c.dz.data); free(c.da.data); free(c.db.data);
}

/* ---------------------------------------------------------------- residual + DropPath */

typedef struct { cg_tensor x, f, y, dx, df, dy; float *scale; } res_ctx;
static void res_fwd(void *p) { res_ctx *c = p; cg_residual_forward(&c->y, &c->x, &c->f, c->scale); }
static void res_bwd(void *p) { res_ctx *c = p; cg_residual_backward(&c->dx, &c->df, &c->dy, c->scale); }

static void test_residual_droppath(void) {
    int C = 3, N = 8, K = 5;
    int64_t n = (int64_t)C * N * K;
    res_ctx c;
    float scale[8];
    cg_rng r2;
    cg_rng_seed(&r2, 7);
    int kept = cg_droppath_scales(&r2, scale, N, 0.5f, 1);
    for (int i = 0; i < N; i++) CHECK(scale[i] == 0.0f || scale[i] == 2.0f);
    CHECK(kept > 0 && kept < N);
    c.scale = scale;
    c.x = cg_tensor_view(randn(n, 1), CG_DEV_CPU, 3, (int64_t[]){C, N, K});
    c.f = cg_tensor_view(randn(n, 1), CG_DEV_CPU, 3, (int64_t[]){C, N, K});
    c.y = cg_tensor_view(zeros(n), CG_DEV_CPU, 3, (int64_t[]){C, N, K});
    c.dy = cg_tensor_view(zeros(n), CG_DEV_CPU, 3, (int64_t[]){C, N, K});
    c.dx = cg_tensor_view(zeros(n), CG_DEV_CPU, 3, (int64_t[]){C, N, K});
    c.df = cg_tensor_view(zeros(n), CG_DEV_CPU, 3, (int64_t[]){C, N, K});
    res_fwd(&c);
    for (int ch = 0; ch < C; ch++)
        for (int s = 0; s < N; s++)
            for (int i = 0; i < K; i++) {
                int64_t j = ((int64_t)ch * N + s) * K + i;
                CHECK_NEAR(c.y.data[j], c.x.data[j] + scale[s] * c.f.data[j], 1e-6);
            }
    fd_case fc = {res_fwd, res_bwd, &c, c.y.data, c.dy.data, n};
    fd_var vars[] = {{c.x.data, c.dx.data, n, "x"}, {c.f.data, c.df.data, n, "branch"}};
    fd_check("residual + droppath", &fc, vars, 2, 1e-2f, 1e-3);
    /* drop rate statistics: p = 0.25 over many draws keeps ~75% */
    float big[4000];
    int k2 = cg_droppath_scales(&r2, big, 4000, 0.25f, 1);
    CHECK(k2 > 2850 && k2 < 3150);
    CHECK(fabsf(big[0] - 0.0f) < 1e-7 || fabsf(big[0] - 1.0f / 0.75f) < 1e-6);
    CHECK_EQ_INT(cg_droppath_scales(&r2, big, 100, 0.0f, 1), 100);
    free(c.x.data); free(c.f.data); free(c.y.data); free(c.dy.data); free(c.dx.data); free(c.df.data);
}

/* ---------------------------------------------------------------- pooling, linear */

typedef struct { cg_tensor x, y, dx, dy; } pool_ctx;
static void pool_fwd(void *p) { pool_ctx *c = p; cg_avgpool_global_forward(&c->y, &c->x); }
static void pool_bwd(void *p) { pool_ctx *c = p; cg_avgpool_global_backward(&c->dx, &c->dy); }

static void test_pooling(void) {
    int C = 3, N = 2, H = 3, W = 5;
    int64_t nx = (int64_t)C * N * H * W;
    pool_ctx c;
    c.x = cg_tensor_4d(randn(nx, 1), CG_DEV_CPU, C, N, H, W);
    c.dx = cg_tensor_4d(zeros(nx), CG_DEV_CPU, C, N, H, W);
    c.y = cg_tensor_2d(zeros(N * C), CG_DEV_CPU, N, C);
    c.dy = cg_tensor_2d(zeros(N * C), CG_DEV_CPU, N, C);
    pool_fwd(&c);
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++) {
            double s = 0;
            for (int i = 0; i < H * W; i++) s += c.x.data[(ch * N + n) * H * W + i];
            CHECK_NEAR(c.y.data[n * C + ch], s / (H * W), 1e-6);
        }
    fd_case fc = {pool_fwd, pool_bwd, &c, c.y.data, c.dy.data, N * C};
    fd_var vars[] = {{c.x.data, c.dx.data, nx, "x"}};
    fd_check("global avgpool", &fc, vars, 1, 1e-2f, 1e-3);
    free(c.x.data); free(c.dx.data); free(c.y.data); free(c.dy.data);
}

typedef struct { cg_tensor x, w, b, y, dx, dw, db, dy; } lin_ctx;
static void lin_fwd(void *p) { lin_ctx *c = p; cg_linear_forward(&c->y, &c->x, &c->w, &c->b); }
static void lin_bwd(void *p) { lin_ctx *c = p; cg_linear_backward(&c->dx, &c->dw, &c->db, &c->dy, &c->x, &c->w); }

static void test_linear(void) {
    int N = 4, in = 6, out = 5;
    lin_ctx c;
    c.x = cg_tensor_2d(randn(N * in, 1), CG_DEV_CPU, N, in);
    c.w = cg_tensor_2d(randn(out * in, 1), CG_DEV_CPU, out, in);
    c.b = cg_tensor_1d(randn(out, 1), CG_DEV_CPU, out);
    c.y = cg_tensor_2d(zeros(N * out), CG_DEV_CPU, N, out);
    c.dy = cg_tensor_2d(zeros(N * out), CG_DEV_CPU, N, out);
    c.dx = cg_tensor_2d(zeros(N * in), CG_DEV_CPU, N, in);
    c.dw = cg_tensor_2d(zeros(out * in), CG_DEV_CPU, out, in);
    c.db = cg_tensor_1d(zeros(out), CG_DEV_CPU, out);
    lin_fwd(&c);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double s = c.b.data[o];
            for (int i = 0; i < in; i++) s += (double)c.x.data[n * in + i] * c.w.data[o * in + i];
            CHECK_NEAR(c.y.data[n * out + o], s, 1e-5);
        }
    fd_case fc = {lin_fwd, lin_bwd, &c, c.y.data, c.dy.data, N * out};
    fd_var vars[] = {{c.x.data, c.dx.data, N * in, "x"}, {c.w.data, c.dw.data, out * in, "w"}, {c.b.data, c.db.data, out, "b"}};
    fd_check("linear", &fc, vars, 3, 1e-2f, 1e-3);
    free(c.x.data); free(c.w.data); free(c.b.data); free(c.y.data); free(c.dy.data);
    free(c.dx.data); free(c.dw.data); free(c.db.data);
}

/* Threaded layers must give the same result as one thread (no races, no lost updates). */
static void test_threads_agree(void) {
    int C = 8, N = 6, H = 12, W = 12;
    int64_t nx = (int64_t)C * N * H * W;
    float *x = randn(nx, 1), *w = randn(16 * C * 9, 0.2f), *dy = randn(16 * N * 6 * 6, 1);
    float *dx1 = zeros(nx), *dx2 = zeros(nx), *dw1 = zeros(16 * C * 9), *dw2 = zeros(16 * C * 9);
    cg_tensor tx = cg_tensor_4d(x, CG_DEV_CPU, C, N, H, W), tw = cg_tensor_4d(w, CG_DEV_CPU, 16, C, 3, 3);
    cg_tensor tdy = cg_tensor_4d(dy, CG_DEV_CPU, 16, N, 6, 6);
    cg_tensor a = cg_tensor_4d(dx1, CG_DEV_CPU, C, N, H, W), b = cg_tensor_4d(dw1, CG_DEV_CPU, 16, C, 3, 3);
    cg_tensor a2 = cg_tensor_4d(dx2, CG_DEV_CPU, C, N, H, W), b2 = cg_tensor_4d(dw2, CG_DEV_CPU, 16, C, 3, 3);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    cg_conv2d_backward(&a, &b, NULL, &tdy, &tx, &tw, 2, 1);
    omp_set_num_threads(3);
    cg_conv2d_backward(&a2, &b2, NULL, &tdy, &tx, &tw, 2, 1);
    omp_set_num_threads(nt);
    double worst = 0;
    for (int64_t i = 0; i < nx; i++) worst = fmax(worst, fabs(dx1[i] - dx2[i]));
    for (int64_t i = 0; i < 16 * C * 9; i++) worst = fmax(worst, fabs(dw1[i] - dw2[i]));
    CHECK(worst < 1e-4);
    free(x); free(w); free(dy); free(dx1); free(dx2); free(dw1); free(dw2);
}

int main(void) {
    cg_rng_seed(&rng, 1234);
    TEST_RUN(test_gemm);
    TEST_RUN(test_conv2d);
    TEST_RUN(test_dwconv2d);
    TEST_RUN(test_batchnorm);
    TEST_RUN(test_activations);
    TEST_RUN(test_residual_droppath);
    TEST_RUN(test_pooling);
    TEST_RUN(test_linear);
    TEST_RUN(test_threads_agree);
    return TEST_REPORT();
}
