/* rng.h — deterministic random numbers (splitmix64).
 *
 * The whole state is one 64-bit word, so it is saved in checkpoints and restored exactly; the
 * same seed gives the same stream on every machine. Streams for independent uses (init, data
 * order, dropout) come from cg_rng_split(), never from sharing one generator across threads.
 *
 *   cg_rng r; cg_rng_seed(&r, 42);
 *   float u = cg_rng_uniform(&r);          // [0, 1)
 *   cg_rng_fill_normal(&r, w, n, 0.f, .02f);
 */
#ifndef CLIPGRID_CORE_RNG_H
#define CLIPGRID_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t state; } cg_rng;

void cg_rng_seed(cg_rng *r, uint64_t seed);
/* A new generator whose stream is independent of r's (r advances by one step). */
cg_rng cg_rng_split(cg_rng *r);
uint64_t cg_rng_u64(cg_rng *r);
uint32_t cg_rng_u32(cg_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float cg_rng_uniform(cg_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double cg_rng_uniform_d(cg_rng *r);
/* Integer uniform in [0, n), n > 0 (unbiased). */
uint64_t cg_rng_below(cg_rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per two uniforms: no hidden cached state). */
double cg_rng_normal(cg_rng *r);

void cg_rng_fill_uniform(cg_rng *r, float *x, size_t n, float lo, float hi);
void cg_rng_fill_normal(cg_rng *r, float *x, size_t n, float mean, float std);
/* Normal(mean, std) truncated to the absolute interval [a, b] (timm's trunc_normal_ semantics:
 * a and b are values, not multiples of std), by rejection. */
void cg_rng_fill_trunc_normal(cg_rng *r, float *x, size_t n, float mean, float std, float a, float b);

#endif
