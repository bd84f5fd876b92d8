/* Linear layer on the CPU: one cblas_sgemm per product (OpenBLAS threads
 * inside), bias and bias-gradient loops with OpenMP. */
#include "ops/linear.h"

#include <cblas.h>
#include <limits.h>

#include "ops/ctx_internal.h"

static vt_status check_dims(vt_ctx *ctx, const char *op, int N, int C, int OC) {
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, C);
    VT_OPS_POS(ctx, op, OC);
    return VT_OK;
}

vt_status vt_linear_forward(vt_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *bias, int N, int C, int OC) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_linear_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, inp);
    VT_OPS_PTR(ctx, op, w);
    vt_status st = check_dims(ctx, op, N, C, OC);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_linear_forward(ctx, out, inp, w, bias, N, C, OC);
#endif
    float beta = 0.0f;
    if (bias) {
        /* Seed out with the bias rows so sgemm adds the product (beta = 1). */
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (int n = 0; n < N; n++) {
            float *row = out + (size_t)n * OC;
            for (int o = 0; o < OC; o++) row[o] = bias[o];
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out,
                OC);
    return VT_OK;
}

vt_status vt_linear_backward(vt_ctx *ctx, float *dinp, float *dw, float *dbias,
                             const float *dout, const float *inp, const float *w,
                             int N, int C, int OC) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_linear_backward";
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_REQUIRE(ctx, op, !dinp || w, "w is NULL but dinp is requested");
    VT_OPS_REQUIRE(ctx, op, !dw || inp, "inp is NULL but dw is requested");
    vt_status st = check_dims(ctx, op, N, C, OC);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_linear_backward(ctx, dinp, dw, dbias, dout, inp, w, N, C, OC);
#endif
    if (dinp) /* dinp[N,C] += dout[N,OC] . w[OC,C] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    1.0f, dinp, C);
    if (dw) /* dw[OC,C] += dout^T[OC,N] . inp[N,C] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C,
                    1.0f, dw, C);
    if (dbias) {
        /* Column sums: each thread owns a block of output channels and walks
         * the rows, so there are no races and the order is fixed. */
        enum { BLK = 64 };
        int nblk = (OC + BLK - 1) / BLK;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (int bi = 0; bi < nblk; bi++) {
            int o0 = bi * BLK, o1 = o0 + BLK < OC ? o0 + BLK : OC;
            double acc[BLK] = {0};
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
            }
            for (int o = o0; o < o1; o++) dbias[o] += (float)acc[o - o0];
        }
    }
    return VT_OK;
}
