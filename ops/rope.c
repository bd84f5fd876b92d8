/* RoPE on the CPU (HF rotate_half pairing). cos/sin are computed once per
 * token and frequency in double and shared by all heads of the token. */
#include "ops/rope.h"

#include <math.h>

#include "ops/ctx_internal.h"

static vt_status check(vt_ctx *ctx, const char *op, int B, int T, int NH, int hd, float theta) {
    VT_OPS_POS(ctx, op, B);
    VT_OPS_POS(ctx, op, T);
    VT_OPS_POS(ctx, op, NH);
    VT_OPS_POS(ctx, op, hd);
    VT_OPS_REQUIRE(ctx, op, hd % 2 == 0, "hd=%d must be even", hd);
    VT_OPS_REQUIRE(ctx, op, theta > 0.0f && isfinite(theta), "theta=%g must be > 0",
                   (double)theta);
    return VT_OK;
}

/* sign = +1 rotates by +angle (forward), -1 by -angle (backward = R^T). */
static vt_status rotate(vt_ctx *ctx, float *out, const float *inp, const int32_t *pos, int B,
                        int T, int NH, int hd, float theta, float sign, int accumulate) {
    const int half = hd / 2;
    double *inv_freq = vt_ops_scratch(ctx, sizeof(double) * half);
    if (!inv_freq) return ctx->err.code;
    for (int i = 0; i < half; i++) inv_freq[i] = pow((double)theta, -2.0 * i / hd);
#pragma omp parallel for collapse(2) num_threads(ctx->threads) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            double p = pos ? (double)pos[(size_t)b * T + t] : (double)t;
            size_t base = ((size_t)b * T + t) * NH * hd;
            for (int i = 0; i < half; i++) {
                double ang = p * inv_freq[i];
                float c = (float)cos(ang), s = sign * (float)sin(ang);
                for (int h = 0; h < NH; h++) {
                    const float *x = inp + base + (size_t)h * hd;
                    float *y = out + base + (size_t)h * hd;
                    float x0 = x[i], x1 = x[i + half];
                    float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
                    if (accumulate) {
                        y[i] += y0;
                        y[i + half] += y1;
                    } else {
                        y[i] = y0;
                        y[i + half] = y1;
                    }
                }
            }
        }
    return VT_OK;
}

vt_status vt_rope_forward(vt_ctx *ctx, float *out, const float *inp, const int32_t *pos,
                          int B, int T, int NH, int hd, float theta) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_rope_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, inp);
    vt_status st = check(ctx, op, B, T, NH, hd, theta);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_rope(ctx, out, inp, pos, B, T, NH, hd, theta, 1.0f, 0);
#endif
    return rotate(ctx, out, inp, pos, B, T, NH, hd, theta, 1.0f, 0);
}

vt_status vt_rope_backward(vt_ctx *ctx, float *dinp, const float *dout, const int32_t *pos,
                           int B, int T, int NH, int hd, float theta) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_rope_backward";
    VT_OPS_PTR(ctx, op, dinp);
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_REQUIRE(ctx, op, (const float *)dinp != dout, "dinp must not alias dout");
    vt_status st = check(ctx, op, B, T, NH, hd, theta);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_rope(ctx, dinp, dout, pos, B, T, NH, hd, theta, -1.0f, 1);
#endif
    return rotate(ctx, dinp, dout, pos, B, T, NH, hd, theta, -1.0f, 1);
}
