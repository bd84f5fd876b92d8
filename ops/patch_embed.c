/* Patch embedding on the CPU: gather the non-overlapping P x P patches into
 * rows (im2col, column order c*P*P + y*P + x = the flattened conv weight),
 * then one sgemm. The backward pass recomputes im2col rather than caching it;
 * the pixel gradient is a pure scatter since patches do not overlap. */
#include "ops/patch_embed.h"

#include <cblas.h>
#include <string.h>

#include "ops/ctx_internal.h"

static vt_status check(vt_ctx *ctx, const char *op, int B, int Cin, int H, int W, int P, int D) {
    VT_OPS_POS(ctx, op, B);
    VT_OPS_POS(ctx, op, Cin);
    VT_OPS_POS(ctx, op, H);
    VT_OPS_POS(ctx, op, W);
    VT_OPS_POS(ctx, op, P);
    VT_OPS_POS(ctx, op, D);
    VT_OPS_REQUIRE(ctx, op, H % P == 0 && W % P == 0,
                   "image %dx%d is not a multiple of the patch size %d", H, W, P);
    return VT_OK;
}

/* cols[(b*NP + p), c*P*P + y*P + x] <-> img[b, c, gy*P + y, gx*P + x] */
static void im2col(vt_ctx *ctx, float *cols, const float *img, int B, int Cin, int H, int W,
                   int P, int to_img) {
    const int gw = W / P, NP = (H / P) * gw, K = Cin * P * P;
#pragma omp parallel for collapse(2) num_threads(ctx->threads) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < NP; p++) {
            int gy = p / gw, gx = p % gw;
            float *row = cols + ((size_t)b * NP + p) * K;
            for (int c = 0; c < Cin; c++)
                for (int y = 0; y < P; y++) {
                    size_t src = (((size_t)b * Cin + c) * H + (size_t)gy * P + y) * W +
                                 (size_t)gx * P;
                    float *r = row + ((size_t)c * P + y) * P;
                    if (to_img) { /* accumulate the column gradient into the pixels */
                        float *dst = (float *)img + src;
                        for (int x = 0; x < P; x++) dst[x] += r[x];
                    } else {
                        memcpy(r, img + src, sizeof(float) * P);
                    }
                }
        }
}

vt_status vt_patch_embed_forward(vt_ctx *ctx, float *out, const float *img, const float *w,
                                 int B, int Cin, int H, int W, int P, int D) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_patch_embed_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, img);
    VT_OPS_PTR(ctx, op, w);
    vt_status st = check(ctx, op, B, Cin, H, W, P, D);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_patch_embed_forward(ctx, out, img, w, B, Cin, H, W, P, D);
#endif
    const int M = B * (H / P) * (W / P), K = Cin * P * P;
    float *cols = vt_ops_scratch(ctx, sizeof(float) * (size_t)M * K);
    if (!cols) return ctx->err.code;
    im2col(ctx, cols, img, B, Cin, H, W, P, 0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, D, K, 1.0f, cols, K, w, K, 0.0f, out,
                D);
    return VT_OK;
}

vt_status vt_patch_embed_backward(vt_ctx *ctx, float *dimg, float *dw, const float *dout,
                                  const float *img, const float *w,
                                  int B, int Cin, int H, int W, int P, int D) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_patch_embed_backward";
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_REQUIRE(ctx, op, !dw || img, "img is NULL but dw is requested");
    VT_OPS_REQUIRE(ctx, op, !dimg || w, "w is NULL but dimg is requested");
    vt_status st = check(ctx, op, B, Cin, H, W, P, D);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_patch_embed_backward(ctx, dimg, dw, dout, img, w, B, Cin, H, W, P, D);
#endif
    if (!dw && !dimg) return VT_OK;
    const int M = B * (H / P) * (W / P), K = Cin * P * P;
    float *cols = vt_ops_scratch(ctx, sizeof(float) * (size_t)M * K);
    if (!cols) return ctx->err.code;
    if (dw) { /* dw[D,K] += dout^T[D,M] . cols[M,K] */
        im2col(ctx, cols, img, B, Cin, H, W, P, 0);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, K, M, 1.0f, dout, D, cols, K,
                    1.0f, dw, K);
    }
    if (dimg) { /* dcols[M,K] = dout[M,D] . w[D,K], then scatter */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, D, 1.0f, dout, D, w, K, 0.0f,
                    cols, K);
        im2col(ctx, cols, dimg, B, Cin, H, W, P, 1);
    }
    return VT_OK;
}
