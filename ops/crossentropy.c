/* Masked softmax cross-entropy on the CPU: stable max-subtracted softmax with
 * the normaliser summed in double, loss reduced in double. */
#include "ops/crossentropy.h"

#include <math.h>

#include "ops/ctx_internal.h"

vt_status vt_crossentropy_forward(vt_ctx *ctx, float *probs, float *losses, const float *logits,
                                  const int32_t *targets, const uint8_t *mask, int N, int V,
                                  float *mean_loss, int *count) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_crossentropy_forward";
    VT_OPS_PTR(ctx, op, probs);
    VT_OPS_PTR(ctx, op, logits);
    VT_OPS_PTR(ctx, op, targets);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, V);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_crossentropy_forward(ctx, probs, losses, logits, targets, mask, N, V,
                                            mean_loss, count);
#endif
    for (int n = 0; n < N; n++) {
        if (mask && !mask[n]) continue;
        if (targets[n] < 0 || targets[n] >= V)
            return vt_ops_fail(ctx, VT_ERR_RANGE,
                               "%s: target %d at counted position %d is outside [0, %d)", op,
                               (int)targets[n], n, V);
    }
    double total = 0.0;
    int cnt = 0;
#pragma omp parallel for num_threads(ctx->threads) schedule(static) reduction(+ : total, cnt)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
        int counted = !mask || mask[n];
        /* Read the target logit before p (which may alias x) is overwritten. */
        double nll = counted ? log(sum) - ((double)x[targets[n]] - mx) : 0.0;
        double inv = 1.0 / sum;
        for (int i = 0; i < V; i++) p[i] = (float)(exp((double)x[i] - mx) * inv);
        if (losses) losses[n] = (float)nll;
        if (counted) {
            total += nll;
            cnt++;
        }
    }
    if (mean_loss) *mean_loss = cnt ? (float)(total / cnt) : 0.0f;
    if (count) *count = cnt;
    return VT_OK;
}

vt_status vt_crossentropy_backward(vt_ctx *ctx, float *dlogits, const float *probs,
                                   const int32_t *targets, const uint8_t *mask, int N, int V,
                                   float scale) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_crossentropy_backward";
    VT_OPS_PTR(ctx, op, dlogits);
    VT_OPS_PTR(ctx, op, probs);
    VT_OPS_PTR(ctx, op, targets);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, V);
    VT_OPS_REQUIRE(ctx, op, (const float *)dlogits != probs, "dlogits must not alias probs");
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_crossentropy_backward(ctx, dlogits, probs, targets, mask, N, V, scale);
#endif
    for (int n = 0; n < N; n++) {
        if (mask && !mask[n]) continue;
        if (targets[n] < 0 || targets[n] >= V)
            return vt_ops_fail(ctx, VT_ERR_RANGE,
                               "%s: target %d at counted position %d is outside [0, %d)", op,
                               (int)targets[n], n, V);
    }
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int n = 0; n < N; n++) {
        if (mask && !mask[n]) continue;
        const float *p = probs + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        for (int i = 0; i < V; i++) d[i] += scale * p[i];
        d[targets[n]] -= scale;
    }
    return VT_OK;
}
