/* Token embedding lookup (LLaMA embed_tokens, CLIP position embeddings) and
 * its scatter-add backward. Ids are user data, so they are range-checked. */
#ifndef VT_OPS_EMBEDDING_H
#define VT_OPS_EMBEDDING_H

#include <stdint.h>

#include "ops/ctx.h"

/* out[n,:] = table[ids[n],:] for n < N; table is [V,C]. VT_ERR_RANGE naming
 * the position and id when an id is outside [0, V). */
vt_status vt_embedding_forward(vt_ctx *ctx, float *out, const int32_t *ids, const float *table,
                               int N, int V, int C);
/* dtable[ids[n],:] += dout[n,:] (repeated ids accumulate). Deterministic. */
vt_status vt_embedding_backward(vt_ctx *ctx, float *dtable, const float *dout,
                                const int32_t *ids, int N, int V, int C);

#endif
