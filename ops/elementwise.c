/* Residual add, scaling and sum of squares on the CPU (OpenMP). */
#include "ops/elementwise.h"

#include "ops/ctx_internal.h"

vt_status vt_residual_forward(vt_ctx *ctx, float *out, const float *a, const float *b,
                              size_t n) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_residual_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, a);
    VT_OPS_PTR(ctx, op, b);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_residual_forward(ctx, out, a, b, n);
#endif
    long long nn = (long long)n;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long i = 0; i < nn; i++) out[i] = a[i] + b[i];
    return VT_OK;
}

vt_status vt_residual_backward(vt_ctx *ctx, float *da, float *db, const float *dout,
                               size_t n) {
    VT_OPS_CTX(ctx);
    VT_OPS_PTR(ctx, "vt_residual_backward", dout);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_residual_backward(ctx, da, db, dout, n);
#endif
    long long nn = (long long)n;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long i = 0; i < nn; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
    return VT_OK;
}

vt_status vt_scale(vt_ctx *ctx, float *x, size_t n, float s) {
    VT_OPS_CTX(ctx);
    VT_OPS_PTR(ctx, "vt_scale", x);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_scale(ctx, x, n, s);
#endif
    long long nn = (long long)n;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long i = 0; i < nn; i++) x[i] *= s;
    return VT_OK;
}

vt_status vt_sumsq(vt_ctx *ctx, const float *x, size_t n, double *out) {
    VT_OPS_CTX(ctx);
    VT_OPS_PTR(ctx, "vt_sumsq", x);
    VT_OPS_PTR(ctx, "vt_sumsq", out);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_sumsq(ctx, x, n, out);
#endif
    long long nn = (long long)n;
    double s = 0.0;
#pragma omp parallel for num_threads(ctx->threads) schedule(static) reduction(+ : s)
    for (long long i = 0; i < nn; i++) s += (double)x[i] * x[i];
    *out = s;
    return VT_OK;
}
