#include "core/rng.h"

#include <math.h>

void cg_rng_seed(cg_rng *r, uint64_t seed) { r->state = seed ^ 0x9E3779B97F4A7C15ull; }

uint64_t cg_rng_u64(cg_rng *r) {
    /* splitmix64 (Steele, Lea, Flood 2014): Weyl sequence + 64-bit finalizer */
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

cg_rng cg_rng_split(cg_rng *r) {
    cg_rng s;
    s.state = cg_rng_u64(r) * 0xD1342543DE82EF95ull + 1;
    return s;
}

uint32_t cg_rng_u32(cg_rng *r) { return (uint32_t)(cg_rng_u64(r) >> 32); }

float cg_rng_uniform(cg_rng *r) { return (float)(cg_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double cg_rng_uniform_d(cg_rng *r) { return (double)(cg_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t cg_rng_below(cg_rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = cg_rng_u64(r); while (x >= limit);
    return x % n;
}

double cg_rng_normal(cg_rng *r) {
    double u1 = 1.0 - cg_rng_uniform_d(r);  /* (0, 1] */
    double u2 = cg_rng_uniform_d(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void cg_rng_fill_uniform(cg_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)cg_rng_uniform_d(r);
}

void cg_rng_fill_normal(cg_rng *r, float *x, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * cg_rng_normal(r));
}

void cg_rng_fill_trunc_normal(cg_rng *r, float *x, size_t n, float mean, float std, float a, float b) {
    for (size_t i = 0; i < n; i++) {
        double v;
        int tries = 0;
        do v = mean + std * cg_rng_normal(r); while ((v < a || v > b) && ++tries < 1000);
        if (v < a) v = a;
        if (v > b) v = b;
        x[i] = (float)v;
    }
}
