/* Row gather and scatter on the CPU. */
#include "ops/rows.h"

#include <string.h>

#include "ops/ctx_internal.h"

/* The arguments every row op shares: n rows of width floats, an index list. */
static vt_status check(vt_ctx *ctx, const char *op, const float *dst, const float *src, const int32_t *idx, int n,
                       int width) {
    VT_OPS_REQUIRE(ctx, op, n >= 0 && width > 0, "n=%d width=%d", n, width);
    if (n == 0) return VT_OK;
    VT_OPS_PTR(ctx, op, dst);
    VT_OPS_PTR(ctx, op, src);
    VT_OPS_PTR(ctx, op, idx);
    return VT_OK;
}

vt_status vt_rows_gather(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx, int n,
                         int width) {
    VT_OPS_CTX(ctx);
    vt_status st = check(ctx, "vt_rows_gather", dst, src, idx, n, width);
    if (st || n == 0) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_rows_gather(ctx, dst, src, idx, n, width);
#endif
    size_t w = (size_t)width;
    for (int k = 0; k < n; k++) memcpy(dst + (size_t)k * w, src + (size_t)idx[k] * w, w * sizeof(float));
    return VT_OK;
}

vt_status vt_rows_scatter(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx, int n,
                          int width, bool accumulate) {
    VT_OPS_CTX(ctx);
    vt_status st = check(ctx, "vt_rows_scatter", dst, src, idx, n, width);
    if (st || n == 0) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_rows_scatter(ctx, dst, src, idx, n, width, accumulate);
#endif
    size_t w = (size_t)width;
    for (int k = 0; k < n; k++) {
        float *d = dst + (size_t)idx[k] * w;
        const float *s = src + (size_t)k * w;
        if (accumulate)
            for (size_t j = 0; j < w; j++) d[j] += s[j];
        else
            memcpy(d, s, w * sizeof(float));
    }
    return VT_OK;
}

vt_status vt_rows_reduce(vt_ctx *ctx, float *dst, const float *src, const int32_t *offsets,
                         const int32_t *sources, int n_dst, int width) {
    VT_OPS_CTX(ctx);
    vt_status st = check(ctx, "vt_rows_reduce", dst, src, offsets, n_dst, width);
    if (st || n_dst == 0) return st;
    VT_OPS_PTR(ctx, "vt_rows_reduce", sources);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_rows_reduce(ctx, dst, src, offsets, sources, n_dst, width);
#endif
    size_t w = (size_t)width;
    for (int j = 0; j < n_dst; j++) {
        float *d = dst + (size_t)j * w;
        for (int32_t s = offsets[j]; s < offsets[j + 1]; s++) {
            const float *r = src + (size_t)sources[s] * w;
            for (size_t c = 0; c < w; c++) d[c] += r[c];
        }
    }
    return VT_OK;
}
