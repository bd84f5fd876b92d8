/* Arena allocator: many small allocations freed together (per batch, per
 * request). Grows by chained blocks; a mark/reset pair rewinds to a point. */
#ifndef VT_ARENA_H
#define VT_ARENA_H

#include <stddef.h>

typedef struct vt_arena_block vt_arena_block;

typedef struct vt_arena {
    vt_arena_block *head;  /* current block (newest) */
    size_t block_size;     /* default size of new blocks */
} vt_arena;

typedef struct vt_arena_mark {
    vt_arena_block *block;
    size_t used;
} vt_arena_mark;

void vt_arena_init(vt_arena *a, size_t block_size);
/* Memory aligned to `align` (a power of two, at most 4096); NULL when out of memory. */
void *vt_arena_alloc(vt_arena *a, size_t size, size_t align);
/* Zeroed memory. */
void *vt_arena_calloc(vt_arena *a, size_t count, size_t size);
char *vt_arena_strdup(vt_arena *a, const char *s);
vt_arena_mark vt_arena_get_mark(const vt_arena *a);
/* Frees everything allocated after the mark. */
void vt_arena_reset(vt_arena *a, vt_arena_mark mark);
/* Bytes handed out in all blocks (for tests and memory accounting). */
size_t vt_arena_used(const vt_arena *a);
void vt_arena_free(vt_arena *a);

#endif
