/* Row gather and scatter by an index list: how a method layer takes the
 * token rows it acts on (image tokens, one modality) out of a [rows, width]
 * hidden-state buffer and puts its result back, on either backend. */
#ifndef VT_OPS_ROWS_H
#define VT_OPS_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/ctx.h"

/* dst[k, :] = src[idx[k], :] for k < n. idx (int32, ctx memory) must hold
 * valid rows of src; dst and src must not overlap. */
vt_status vt_rows_gather(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx, int n,
                         int width);
/* dst[idx[k], :] = src[k, :] (accumulate: +=) for k < n. The indices must be
 * distinct (no two k write the same row). */
vt_status vt_rows_scatter(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx, int n,
                          int width, bool accumulate);

/* dst[j, :] += sum of src[sources[s], :] for s in [offsets[j], offsets[j+1]),
 * in that order, for j < n_dst: the backward of a gather whose indices
 * repeat (a broadcast), deterministic on both backends. offsets [n_dst + 1]
 * and sources (int32, ctx memory) form a CSR list built by the caller. */
vt_status vt_rows_reduce(vt_ctx *ctx, float *dst, const float *src, const int32_t *offsets,
                         const int32_t *sources, int n_dst, int width);

#endif
