/* Optimiser numerics on flat buffers: AdamW (decoupled weight decay, bias
 * correction; torch.optim.AdamW semantics) and global-norm gradient clipping
 * (torch.nn.utils.clip_grad_norm_ semantics). */
#ifndef VT_OPS_OPTIM_H
#define VT_OPS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ctx.h"

typedef struct vt_adamw_hparams {
    float lr;
    float beta1;        /* 0.9 */
    float beta2;        /* 0.999 (LLaVA uses 0.999; many LLM recipes 0.95) */
    float eps;          /* 1e-8 */
    float weight_decay; /* decoupled: p -= lr * wd * p */
} vt_adamw_hparams;

/* One AdamW step over n parameters. m, v are the moment buffers (zero before
 * step 1). step is the 1-based step count used for bias correction.
 * decay_mask [n] (nonzero = apply weight decay; NULL = decay everything) lets
 * biases and norm weights skip decay. grads are not modified. */
vt_status vt_adamw_update(vt_ctx *ctx, float *params, const float *grads, float *m, float *v,
                          const uint8_t *decay_mask, size_t n, const vt_adamw_hparams *hp,
                          long step);

/* Global L2 norm of grads[n] (accumulated in double), returned on the host in
 * *norm (may be NULL); if max_norm > 0 and the norm exceeds it, grads are
 * scaled by max_norm / (norm + 1e-6) as torch does. Non-finite norms are
 * reported and leave grads untouched (callers decide to skip the step). */
vt_status vt_grad_clip(vt_ctx *ctx, float *grads, size_t n, float max_norm, float *norm);

#endif
