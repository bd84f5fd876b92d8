/* adaLN-Zero modulation and gating on the CPU. */
#include "ops/adaln.h"

#include "ops/ctx_internal.h"

static vt_status check(vt_ctx *ctx, const char *op, int mw, int a, int b, size_t R, int W) {
    VT_OPS_POS(ctx, op, W);
    VT_OPS_REQUIRE(ctx, op, a >= 0 && b >= 0 && a + W <= mw && b + W <= mw,
                   "columns %d and %d + width %d do not fit a modulation row of %d", a, b, W, mw);
    (void)R;
    return VT_OK;
}

vt_status vt_modulate_forward(vt_ctx *ctx, float *out, const float *x, const float *mod, int mw, int shift,
                              int scale, size_t R, int W) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_modulate_forward";
    vt_status st = check(ctx, op, mw, shift, scale, R, W);
    if (st || R == 0) return st;
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, x);
    VT_OPS_PTR(ctx, op, mod);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_modulate_forward(ctx, out, x, mod, mw, shift, scale, R, W);
#endif
    for (size_t r = 0; r < R; r++) {
        const float *xr = x + r * W, *m = mod + r * mw;
        float *o = out + r * W;
        for (int j = 0; j < W; j++) o[j] = xr[j] * (1.0f + m[scale + j]) + m[shift + j];
    }
    return VT_OK;
}

vt_status vt_modulate_backward(vt_ctx *ctx, float *dm, const float *x, const float *mod, float *dmod, int mw,
                               int shift, int scale, size_t R, int W) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_modulate_backward";
    vt_status st = check(ctx, op, mw, shift, scale, R, W);
    if (st || R == 0) return st;
    VT_OPS_PTR(ctx, op, dm);
    VT_OPS_PTR(ctx, op, x);
    VT_OPS_PTR(ctx, op, mod);
    VT_OPS_PTR(ctx, op, dmod);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_modulate_backward(ctx, dm, x, mod, dmod, mw, shift, scale, R, W);
#endif
    for (size_t r = 0; r < R; r++) {
        float *d = dm + r * W, *g = dmod + r * mw;
        const float *xr = x + r * W, *m = mod + r * mw;
        for (int j = 0; j < W; j++) {
            g[shift + j] = d[j];
            g[scale + j] = d[j] * xr[j];
            d[j] *= 1.0f + m[scale + j];
        }
    }
    return VT_OK;
}

vt_status vt_gated_add_forward(vt_ctx *ctx, float *out, const float *x, const float *y, const float *mod, int mw,
                               int gate, size_t R, int W) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_gated_add_forward";
    vt_status st = check(ctx, op, mw, gate, gate, R, W);
    if (st || R == 0) return st;
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, x);
    VT_OPS_PTR(ctx, op, y);
    VT_OPS_PTR(ctx, op, mod);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_gated_add_forward(ctx, out, x, y, mod, mw, gate, R, W);
#endif
    for (size_t r = 0; r < R; r++) {
        const float *xr = x + r * W, *yr = y + r * W, *g = mod + r * mw + gate;
        float *o = out + r * W;
        for (int j = 0; j < W; j++) o[j] = xr[j] + g[j] * yr[j];
    }
    return VT_OK;
}

vt_status vt_gated_add_backward(vt_ctx *ctx, const float *dout, const float *y, const float *mod, float *dmod,
                                float *dy, int mw, int gate, size_t R, int W) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_gated_add_backward";
    vt_status st = check(ctx, op, mw, gate, gate, R, W);
    if (st || R == 0) return st;
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_PTR(ctx, op, y);
    VT_OPS_PTR(ctx, op, mod);
    VT_OPS_PTR(ctx, op, dmod);
    VT_OPS_PTR(ctx, op, dy);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_gated_add_backward(ctx, dout, y, mod, dmod, dy, mw, gate, R, W);
#endif
    for (size_t r = 0; r < R; r++) {
        const float *d = dout + r * W, *yr = y + r * W, *g = mod + r * mw + gate;
        float *gm = dmod + r * mw + gate, *o = dy + r * W;
        for (int j = 0; j < W; j++) {
            gm[j] = d[j] * yr[j];
            o[j] = d[j] * g[j];
        }
    }
    return VT_OK;
}
