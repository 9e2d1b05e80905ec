/* arena.h — bump allocator: many allocations, one free.
 *
 * Model activations are sized once per batch and live in an arena; so do the strings of a
 * parsed grid. Memory is taken from the system in blocks (at least `block_size` bytes) and
 * handed out 64-byte aligned (cache lines, AVX-512 loads). Nothing is freed one by one:
 * cg_arena_reset() keeps the blocks for reuse, cg_arena_free() returns them.
 */
#ifndef CLIPGRID_CORE_ARENA_H
#define CLIPGRID_CORE_ARENA_H

#include <stddef.h>

typedef struct cg_arena_block cg_arena_block;

typedef struct {
    cg_arena_block *head;   /* block being filled */
    size_t block_size;      /* minimum size of a new block */
    size_t used;            /* bytes handed out since the last reset (including padding) */
    size_t capacity;        /* bytes held from the system */
} cg_arena;

#define CG_ARENA_ALIGN 64

void cg_arena_init(cg_arena *a, size_t block_size);
/* Zeroed, CG_ARENA_ALIGN-aligned memory; aborts on out-of-memory. */
void *cg_arena_alloc(cg_arena *a, size_t n);
char *cg_arena_strdup(cg_arena *a, const char *s);
/* Forget every allocation but keep the memory (merged into one block for the next round). */
void cg_arena_reset(cg_arena *a);
void cg_arena_free(cg_arena *a);

#endif
