/* Scaled dot-product multi-head attention over already projected q, k, v:
 * bidirectional (vision tower) or causal (decoder), grouped-query heads
 * (query head h reads kv head h / (NH/NKV)), and an optional key length per
 * sequence for right-padded batches. The softmax probabilities are saved for
 * the backward pass. Projections and RoPE are separate ops. */
#ifndef VT_OPS_ATTENTION_H
#define VT_OPS_ATTENTION_H

#include <stdint.h>

#include "ops/ctx.h"

/* q, out [B, T, NH, hd]; k, v [B, T, NKV, hd]; att [B, NH, T, T] (cache of
 * probabilities, written). Query t of sequence b attends to keys j with
 * j < kv_len[b] (kv_len NULL = T) and, if causal, j <= t. Scale 1/sqrt(hd).
 * A query with no visible key gets all-zero probabilities and output.
 * NKV must divide NH; kv_len values must be in [0, T]. */
vt_status vt_attention_forward(vt_ctx *ctx, float *out, float *att, const float *q,
                               const float *k, const float *v, const int32_t *kv_len,
                               int B, int T, int NH, int NKV, int hd, int causal);
/* ADDS into dq, dk, dv (same shapes as q, k, v); any may be NULL to skip. */
vt_status vt_attention_backward(vt_ctx *ctx, float *dq, float *dk, float *dv,
                                const float *dout, const float *att, const float *q,
                                const float *k, const float *v,
                                int B, int T, int NH, int NKV, int hd);

#endif
