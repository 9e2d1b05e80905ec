#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct cg_arena_block {
    cg_arena_block *next;
    size_t size;   /* bytes in data[] */
    size_t off;    /* bytes used */
    _Alignas(CG_ARENA_ALIGN) unsigned char data[];
};

static cg_arena_block *block_new(size_t size) {
    cg_arena_block *b = aligned_alloc(CG_ARENA_ALIGN,
        (sizeof(cg_arena_block) + size + CG_ARENA_ALIGN - 1) / CG_ARENA_ALIGN * CG_ARENA_ALIGN);
    if (!b) cg_xmalloc(SIZE_MAX);  /* reports and aborts */
    b->next = NULL;
    b->size = size;
    b->off = 0;
    return b;
}

void cg_arena_init(cg_arena *a, size_t block_size) {
    memset(a, 0, sizeof *a);
    a->block_size = block_size ? block_size : (1u << 20);
}

void *cg_arena_alloc(cg_arena *a, size_t n) {
    size_t need = (n + CG_ARENA_ALIGN - 1) / CG_ARENA_ALIGN * CG_ARENA_ALIGN;
    if (need == 0) need = CG_ARENA_ALIGN;
    if (!a->head || a->head->size - a->head->off < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        cg_arena_block *b = block_new(size);
        b->next = a->head;
        a->head = b;
        a->capacity += size;
    }
    void *p = a->head->data + a->head->off;
    a->head->off += need;
    a->used += need;
    memset(p, 0, need);
    return p;
}

char *cg_arena_strdup(cg_arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = cg_arena_alloc(a, n);
    memcpy(p, s, n);
    return p;
}

void cg_arena_reset(cg_arena *a) {
    if (!a->head) return;
    if (a->head->next) {  /* several blocks: replace them by one big enough for the whole round */
        size_t total = a->capacity;
        cg_arena_free(a);
        a->head = block_new(total);
        a->capacity = total;
    }
    a->head->off = 0;
    a->used = 0;
}

void cg_arena_free(cg_arena *a) {
    cg_arena_block *b = a->head;
    while (b) {
        cg_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = a->capacity = 0;
}
