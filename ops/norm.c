/* LayerNorm and RMSNorm on the CPU. Row statistics in double; the weight
 * gradients are reduced through per-thread partial sums in the workspace so
 * rows can be processed in parallel without races. */
#include "ops/norm.h"

#include <math.h>

#include "ops/ctx_internal.h"

vt_status vt_layernorm_forward(vt_ctx *ctx, float *out, float *mean, float *rstd,
                               const float *inp, const float *w, const float *b,
                               int N, int C, float eps) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_layernorm_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, mean);
    VT_OPS_PTR(ctx, op, rstd);
    VT_OPS_PTR(ctx, op, inp);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, C);
    VT_OPS_REQUIRE(ctx, op, eps > 0.0f && isfinite(eps), "eps=%g must be > 0", (double)eps);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_layernorm_forward(ctx, out, mean, rstd, inp, w, b, N, C, eps);
#endif
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += x[c];
        double m = s / C;
        double v = 0.0; /* two-pass variance: no cancellation */
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        double r = 1.0 / sqrt(v / C + (double)eps);
        float mf = (float)m, rf = (float)r;
        for (int c = 0; c < C; c++) {
            float nv = (x[c] - mf) * rf;
            y[c] = nv * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
        }
        mean[n] = mf;
        rstd[n] = rf;
    }
    return VT_OK;
}

/* Add the per-thread partial sums [threads][k][C] into the outputs. */
static void reduce_partials(const double *part, int threads, int C, float *o0, float *o1) {
    for (int c = 0; c < C; c++) {
        double a = 0.0, b = 0.0;
        for (int t = 0; t < threads; t++) {
            a += part[((size_t)t * 2 + 0) * C + c];
            b += part[((size_t)t * 2 + 1) * C + c];
        }
        if (o0) o0[c] += (float)a;
        if (o1) o1[c] += (float)b;
    }
}

vt_status vt_layernorm_backward(vt_ctx *ctx, float *dinp, float *dw, float *db,
                                const float *dout, const float *inp, const float *w,
                                const float *mean, const float *rstd, int N, int C) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_layernorm_backward";
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_PTR(ctx, op, inp);
    VT_OPS_PTR(ctx, op, mean);
    VT_OPS_PTR(ctx, op, rstd);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, C);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_layernorm_backward(ctx, dinp, dw, db, dout, inp, w, mean, rstd, N, C);
#endif
    int threads = ctx->threads;
    double *part = NULL;
    if (dw || db) {
        part = vt_ops_scratch(ctx, sizeof(double) * 2 * (size_t)C * threads);
        if (!part) return ctx->err.code;
        for (size_t i = 0; i < 2 * (size_t)C * threads; i++) part[i] = 0.0;
    }
#pragma omp parallel num_threads(threads)
    {
        double *my = part ? part + (size_t)vt_ops_thread_id() * 2 * C : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            double sum_dn = 0.0, sum_dn_n = 0.0;
            for (int c = 0; c < C; c++) {
                float nv = (x[c] - m) * r;
                float dn = dy[c] * (w ? w[c] : 1.0f);
                sum_dn += dn;
                sum_dn_n += (double)dn * nv;
                if (my) {
                    my[c] += (double)dy[c] * nv;
                    my[C + c] += dy[c];
                }
            }
            if (dinp) {
                float a = (float)(sum_dn / C), bb = (float)(sum_dn_n / C);
                float *dx = dinp + (size_t)n * C;
                for (int c = 0; c < C; c++) {
                    float nv = (x[c] - m) * r;
                    float dn = dy[c] * (w ? w[c] : 1.0f);
                    dx[c] += r * (dn - a - nv * bb);
                }
            }
        }
    }
    if (part) reduce_partials(part, threads, C, dw, db);
    return VT_OK;
}

vt_status vt_rmsnorm_forward(vt_ctx *ctx, float *out, float *rstd, const float *inp,
                             const float *w, int N, int C, float eps) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_rmsnorm_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, rstd);
    VT_OPS_PTR(ctx, op, inp);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, C);
    VT_OPS_REQUIRE(ctx, op, eps > 0.0f && isfinite(eps), "eps=%g must be > 0", (double)eps);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_rmsnorm_forward(ctx, out, rstd, inp, w, N, C, eps);
#endif
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + (double)eps));
        for (int c = 0; c < C; c++) y[c] = x[c] * r * (w ? w[c] : 1.0f);
        rstd[n] = r;
    }
    return VT_OK;
}

vt_status vt_rmsnorm_backward(vt_ctx *ctx, float *dinp, float *dw, const float *dout,
                              const float *inp, const float *w, const float *rstd,
                              int N, int C) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_rmsnorm_backward";
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_PTR(ctx, op, inp);
    VT_OPS_PTR(ctx, op, rstd);
    VT_OPS_POS(ctx, op, N);
    VT_OPS_POS(ctx, op, C);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_rmsnorm_backward(ctx, dinp, dw, dout, inp, w, rstd, N, C);
#endif
    int threads = ctx->threads;
    double *part = NULL;
    if (dw) {
        part = vt_ops_scratch(ctx, sizeof(double) * 2 * (size_t)C * threads);
        if (!part) return ctx->err.code;
        for (size_t i = 0; i < 2 * (size_t)C * threads; i++) part[i] = 0.0;
    }
#pragma omp parallel num_threads(threads)
    {
        double *my = part ? part + (size_t)vt_ops_thread_id() * 2 * C : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float r = rstd[n];
            double sum_dn_n = 0.0;
            for (int c = 0; c < C; c++) {
                float nv = x[c] * r;
                float dn = dy[c] * (w ? w[c] : 1.0f);
                sum_dn_n += (double)dn * nv;
                if (my) my[c] += (double)dy[c] * nv;
            }
            if (dinp) {
                float bb = (float)(sum_dn_n / C);
                float *dx = dinp + (size_t)n * C;
                for (int c = 0; c < C; c++) {
                    float dn = dy[c] * (w ? w[c] : 1.0f);
                    dx[c] += r * (dn - x[c] * r * bb);
                }
            }
        }
    }
    if (part) reduce_partials(part, threads, C, dw, NULL);
    return VT_OK;
}
