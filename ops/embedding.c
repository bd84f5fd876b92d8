/* Embedding lookup and scatter-add backward on the CPU. The backward pass
 * splits the channel dimension across threads, so repeated ids never race and
 * the summation order is fixed (bitwise reproducible for any thread count). */
#include "ops/embedding.h"

#include <string.h>

#include "ops/ctx_internal.h"

static vt_status check_ids(vt_ctx *ctx, const char *op, const int32_t *ids, int N, int V) {
    for (int n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return vt_ops_fail(ctx, VT_ERR_RANGE, "%s: id %d at position %d is outside [0, %d)",
                               op, (int)ids[n], n, V);
    return VT_OK;
}

vt_status vt_embedding_forward(vt_ctx *ctx, float *out, const int32_t *ids, const float *table,
                               int N, int V, int C) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_embedding_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, ids);
    VT_OPS_PTR(ctx, op, table);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, V);
    VT_OPS_POS(ctx, op, C);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_embedding_forward(ctx, out, ids, table, N, V, C);
#endif
    vt_status st = check_ids(ctx, op, ids, N, V);
    if (st != VT_OK) return st;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, sizeof(float) * C);
    return VT_OK;
}

vt_status vt_embedding_backward(vt_ctx *ctx, float *dtable, const float *dout,
                                const int32_t *ids, int N, int V, int C) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_embedding_backward";
    VT_OPS_PTR(ctx, op, dtable);
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_PTR(ctx, op, ids);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, V);
    VT_OPS_POS(ctx, op, C);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_embedding_backward(ctx, dtable, dout, ids, N, V, C);
#endif
    vt_status st = check_ids(ctx, op, ids, N, V);
    if (st != VT_OK) return st;
    enum { BLK = 64 };
    int nblk = (C + BLK - 1) / BLK;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int bi = 0; bi < nblk; bi++) {
        int c0 = bi * BLK, c1 = c0 + BLK < C ? c0 + BLK : C;
        for (int n = 0; n < N; n++) {
            float *drow = dtable + (size_t)ids[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) drow[c] += g[c];
        }
    }
    return VT_OK;
}
