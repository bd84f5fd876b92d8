/* Slab layout of a vt_batch: one allocation, each view 64-byte aligned (AVX
 * loads, cache lines, and cudaMemcpy from a pinned slab in one call). */
#include "pipeline/batch.h"

#include <stdlib.h>
#include <string.h>

enum { ALIGN = 64 };

static size_t round_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* Byte offsets of the views; returns the total or 0 on overflow. */
static size_t layout(const vt_batch_shape *s, size_t off[6]) {
    uint64_t b = s->batch, pix = (uint64_t)s->channels * s->height * s->width, t = s->seq_len;
    if (pix && b > (uint64_t)SIZE_MAX / 8 / pix) return 0;
    if (t && b > (uint64_t)SIZE_MAX / 16 / t) return 0;
    size_t sizes[6] = {b * 8, b * pix * 4, b * t * 4, b * t * 4, b * t, b * 4};
    size_t total = 0;
    for (int i = 0; i < 6; i++) {
        off[i] = total;
        if (sizes[i] > SIZE_MAX / 2 - total) return 0;
        total += round_up(sizes[i]);
    }
    return total ? total : ALIGN;
}

size_t vt_batch_bytes(const vt_batch_shape *shape) {
    size_t off[6];
    return layout(shape, off);
}

void vt_batch_view(vt_batch *b, const vt_batch_shape *shape, void *slab) {
    size_t off[6];
    size_t total = layout(shape, off);
    memset(b, 0, sizeof *b);
    b->shape = *shape;
    char *base = slab;
    b->sample_indices = (uint64_t *)(void *)(base + off[0]);
    b->pixels = (float *)(void *)(base + off[1]);
    b->tokens = (int32_t *)(void *)(base + off[2]);
    b->targets = (int32_t *)(void *)(base + off[3]);
    b->loss_mask = (uint8_t *)(base + off[4]);
    b->lengths = (int32_t *)(void *)(base + off[5]);
    b->slab = slab;
    b->slab_bytes = total;
}

vt_status vt_batch_alloc(vt_batch *b, const vt_batch_shape *shape, vt_error *err) {
    memset(b, 0, sizeof *b);
    if (shape->batch == 0 || shape->seq_len == 0)
        return vt_fail(err, VT_ERR_ARG, "batch: batch size (%u) and sequence length (%u) must be > 0",
                       shape->batch, shape->seq_len);
    size_t n = vt_batch_bytes(shape);
    if (!n)
        return vt_fail(err, VT_ERR_RANGE, "batch: shape %ux%ux%ux%u, T=%u is too large", shape->batch,
                       shape->channels, shape->height, shape->width, shape->seq_len);
    void *slab = aligned_alloc(ALIGN, n);
    if (!slab) return vt_fail(err, VT_ERR_NOMEM, "batch: cannot allocate %zu bytes", n);
    memset(slab, 0, n);
    vt_batch_view(b, shape, slab);
    b->owns_slab = 1;
    return VT_OK;
}

void vt_batch_free(vt_batch *b) {
    if (b->owns_slab) free(b->slab);
    memset(b, 0, sizeof *b);
}

void vt_batch_frames(const vt_batch *b, vt_batch_frame out[VT_BATCH_NFRAMES]) {
    const vt_batch_shape *s = &b->shape;
    uint64_t B = s->batch, T = s->seq_len;
    out[0] = (vt_batch_frame){"pixels", VT_DTYPE_F32, 4, {B, s->channels, s->height, s->width}, b->pixels,
                              B * s->channels * s->height * s->width * 4};
    out[1] = (vt_batch_frame){"tokens", VT_DTYPE_I32, 2, {B, T, 0, 0}, b->tokens, B * T * 4};
    out[2] = (vt_batch_frame){"targets", VT_DTYPE_I32, 2, {B, T, 0, 0}, b->targets, B * T * 4};
    out[3] = (vt_batch_frame){"loss_mask", VT_DTYPE_U8, 2, {B, T, 0, 0}, b->loss_mask, B * T};
    out[4] = (vt_batch_frame){"lengths", VT_DTYPE_I32, 1, {B, 0, 0, 0}, b->lengths, B * 4};
}

void vt_batch_view_frames(vt_batch *b, const vt_batch_shape *shape, void *const data[VT_BATCH_NFRAMES]) {
    memset(b, 0, sizeof *b);
    b->shape = *shape;
    b->pixels = data[0];
    b->tokens = data[1];
    b->targets = data[2];
    b->loss_mask = data[3];
    b->lengths = data[4];
}

void vt_batch_copy(vt_batch *dst, const vt_batch *src) {
    vt_batch_frame from[VT_BATCH_NFRAMES], to[VT_BATCH_NFRAMES];
    vt_batch_frames(src, from);
    vt_batch_frames(dst, to);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++)
        if (from[f].nbytes) memcpy(to[f].data, from[f].data, from[f].nbytes);
    memcpy(dst->sample_indices, src->sample_indices, (size_t)src->shape.batch * sizeof *src->sample_indices);
    dst->epoch = src->epoch;
    dst->step = src->step;
    dst->micro_index = src->micro_index;
    dst->trainer_rank = src->trainer_rank;
}

int vt_batch_shape_compatible(const vt_batch_shape *a, const vt_batch_shape *b) {
    return a->channels == b->channels && a->height == b->height && a->width == b->width &&
           a->seq_len == b->seq_len;
}
