/* AdamW and global-norm clipping on the CPU, following torch.optim.AdamW's
 * (non-fused, non-amsgrad) arithmetic order so short runs track PyTorch. */
#include "ops/optim.h"

#include <math.h>

#include "ops/ctx_internal.h"
#include "ops/elementwise.h"

vt_status vt_adamw_update(vt_ctx *ctx, float *params, const float *grads, float *m, float *v,
                          const uint8_t *decay_mask, size_t n, const vt_adamw_hparams *hp,
                          long step) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_adamw_update";
    VT_OPS_PTR(ctx, op, params);
    VT_OPS_PTR(ctx, op, grads);
    VT_OPS_PTR(ctx, op, m);
    VT_OPS_PTR(ctx, op, v);
    VT_OPS_PTR(ctx, op, hp);
    VT_OPS_REQUIRE(ctx, op, step >= 1, "step=%ld must be >= 1", step);
    VT_OPS_REQUIRE(ctx, op, hp->lr >= 0.0f && isfinite(hp->lr), "lr=%g must be >= 0",
                   (double)hp->lr);
    VT_OPS_REQUIRE(ctx, op, hp->beta1 >= 0.0f && hp->beta1 < 1.0f, "beta1=%g must be in [0, 1)",
                   (double)hp->beta1);
    VT_OPS_REQUIRE(ctx, op, hp->beta2 >= 0.0f && hp->beta2 < 1.0f, "beta2=%g must be in [0, 1)",
                   (double)hp->beta2);
    VT_OPS_REQUIRE(ctx, op, hp->eps > 0.0f, "eps=%g must be > 0", (double)hp->eps);
    VT_OPS_REQUIRE(ctx, op, hp->weight_decay >= 0.0f, "weight_decay=%g must be >= 0",
                   (double)hp->weight_decay);
    const float b1 = hp->beta1, b2 = hp->beta2, lr = hp->lr, eps = hp->eps;
    const float bc1 = (float)(1.0 - pow((double)b1, (double)step));
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, (double)step));
    const float step_size = lr / bc1;
    const float decay = 1.0f - lr * hp->weight_decay;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_adamw(ctx, params, grads, m, v, decay_mask, n, b1, b2, eps, step_size,
                             bc2_sqrt, decay);
#endif
    long long nn = (long long)n;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long i = 0; i < nn; i++) {
        float g = grads[i];
        if (!decay_mask || decay_mask[i]) params[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        params[i] -= step_size * m[i] / denom;
    }
    return VT_OK;
}

vt_status vt_grad_clip(vt_ctx *ctx, float *grads, size_t n, float max_norm, float *norm) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_grad_clip";
    VT_OPS_PTR(ctx, op, grads);
    VT_OPS_REQUIRE(ctx, op, !(max_norm < 0.0f) && !isnan(max_norm), "max_norm=%g must be >= 0",
                   (double)max_norm);
    double ss = 0.0;
    vt_status st = vt_sumsq(ctx, grads, n, &ss);
    if (st != VT_OK) return st;
    double total = sqrt(ss);
    if (norm) *norm = (float)total;
    /* torch: coef = max_norm / (norm + 1e-6), applied when below 1. */
    double coef = max_norm / (total + 1e-6);
    if (max_norm > 0.0f && isfinite(total) && coef < 1.0)
        return vt_scale(ctx, grads, n, (float)coef);
    return VT_OK;
}
