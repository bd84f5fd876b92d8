/* Chained-block arena (see arena.h). */
#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct vt_arena_block {
    vt_arena_block *prev;
    size_t size, used;
    _Alignas(64) unsigned char data[];
};

void vt_arena_init(vt_arena *a, size_t block_size) {
    a->head = NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
}

static size_t align_up(size_t x, size_t align) { return (x + align - 1) & ~(align - 1); }

void *vt_arena_alloc(vt_arena *a, size_t size, size_t align) {
    if (align == 0) align = 16;
    if ((align & (align - 1)) || align > 4096) return NULL;
    vt_arena_block *b = a->head;
    if (b) {
        size_t off = align_up((size_t)(uintptr_t)(b->data + b->used), align) - (uintptr_t)b->data;
        if (off <= b->size && size <= b->size - off) {
            b->used = off + size;
            return b->data + off;
        }
    }
    size_t need = size + align;
    if (need < size) return NULL; /* overflow */
    size_t bsize = need > a->block_size ? need : a->block_size;
    vt_arena_block *nb = malloc(sizeof *nb + bsize);
    if (!nb) return NULL;
    nb->prev = a->head;
    nb->size = bsize;
    nb->used = 0;
    a->head = nb;
    size_t off = align_up((size_t)(uintptr_t)nb->data, align) - (uintptr_t)nb->data;
    nb->used = off + size;
    return nb->data + off;
}

void *vt_arena_calloc(vt_arena *a, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = vt_arena_alloc(a, count * size, 16);
    if (p) memset(p, 0, count * size);
    return p;
}

char *vt_arena_strdup(vt_arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = vt_arena_alloc(a, n, 1);
    if (p) memcpy(p, s, n);
    return p;
}

vt_arena_mark vt_arena_get_mark(const vt_arena *a) {
    vt_arena_mark m = {a->head, a->head ? a->head->used : 0};
    return m;
}

void vt_arena_reset(vt_arena *a, vt_arena_mark mark) {
    while (a->head && a->head != mark.block) {
        vt_arena_block *prev = a->head->prev;
        free(a->head);
        a->head = prev;
    }
    if (a->head) a->head->used = mark.used;
}

size_t vt_arena_used(const vt_arena *a) {
    size_t total = 0;
    for (vt_arena_block *b = a->head; b; b = b->prev) total += b->used;
    return total;
}

void vt_arena_free(vt_arena *a) {
    vt_arena_mark none = {NULL, 0};
    vt_arena_reset(a, none);
}
