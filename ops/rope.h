/* Rotary position embedding in the Hugging Face LLaMA "rotate_half"
 * convention: dimension i pairs with i + hd/2 (not interleaved pairs),
 * inv_freq[i] = theta^(-2i/hd). Angles are computed in double. */
#ifndef VT_OPS_ROPE_H
#define VT_OPS_ROPE_H

#include <stdint.h>

#include "ops/ctx.h"

/* inp/out [B, T, NH, hd] (the q or k projection output viewed per head);
 * out may alias inp. pos [B*T] gives each token's position (NULL = t, i.e.
 * 0..T-1 in every sequence). hd must be even. */
vt_status vt_rope_forward(vt_ctx *ctx, float *out, const float *inp, const int32_t *pos,
                          int B, int T, int NH, int hd, float theta);
/* dinp += R^T dout (the inverse rotation). dinp must not alias dout. */
vt_status vt_rope_backward(vt_ctx *ctx, float *dinp, const float *dout, const int32_t *pos,
                           int B, int T, int NH, int hd, float theta);

#endif
