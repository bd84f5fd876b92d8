/* Multi-head attention on the CPU, per (sequence, head) as matrix products:
 * scores = Q K^T and out = P V with cblas_sgemm on strided views of the
 * [B, T, heads, hd] buffers (no transposes copied), the masked softmax over
 * rows with OpenMP. Causal and padded entries are computed by sgemm and then
 * zeroed in the softmax, which is cheaper than skipping them at these sizes.
 * Heads are walked serially so grouped-query heads accumulate into their
 * shared dk/dv without races. */
#include "ops/attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ops/ctx_internal.h"

static vt_status check(vt_ctx *ctx, const char *op, int B, int T, int NH, int NKV, int hd) {
    VT_OPS_POS(ctx, op, B);
    VT_OPS_POS(ctx, op, T);
    VT_OPS_POS(ctx, op, NH);
    VT_OPS_POS(ctx, op, NKV);
    VT_OPS_POS(ctx, op, hd);
    VT_OPS_REQUIRE(ctx, op, NH % NKV == 0, "NKV=%d must divide NH=%d", NKV, NH);
    return VT_OK;
}

/* Visible keys of query t in sequence b are j in [0, limit). */
static inline int key_limit(const int32_t *kv_len, int b, int t, int T, int causal) {
    int L = kv_len ? kv_len[b] : T;
    if (causal && t + 1 < L) L = t + 1;
    return L;
}

vt_status vt_attention_forward(vt_ctx *ctx, float *out, float *att, const float *q,
                               const float *k, const float *v, const int32_t *kv_len,
                               int B, int T, int NH, int NKV, int hd, int causal) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_attention_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, att);
    VT_OPS_PTR(ctx, op, q);
    VT_OPS_PTR(ctx, op, k);
    VT_OPS_PTR(ctx, op, v);
    vt_status st = check(ctx, op, B, T, NH, NKV, hd);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_attention_forward(ctx, out, att, q, k, v, kv_len, B, T, NH, NKV, hd,
                                         causal);
#endif
    if (kv_len)
        for (int b = 0; b < B; b++)
            if (kv_len[b] < 0 || kv_len[b] > T)
                return vt_ops_fail_op(ctx, VT_ERR_RANGE, op, "kv_len[%d]=%d is outside [0, %d]",
                                      b, (int)kv_len[b], T);
    const int group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hd);
    const int qs = NH * hd, ks = NKV * hd; /* token strides */
    const size_t TT = (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) /* scaled scores S = Q K^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale,
                        q + (size_t)b * T * qs + (size_t)h * hd, qs,
                        k + (size_t)b * T * ks + (size_t)(h / group) * hd, ks, 0.0f,
                        att + ((size_t)b * NH + h) * TT, T);
    long long rows = (long long)B * NH * T;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long r = 0; r < rows; r++) {
        int t = (int)(r % T), b = (int)(r / ((long long)NH * T));
        float *ar = att + (size_t)r * T;
        int L = key_limit(kv_len, b, t, T, causal);
        float mx = -INFINITY;
        for (int j = 0; j < L; j++) mx = ar[j] > mx ? ar[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < L; j++) {
            float e = expf(ar[j] - mx);
            ar[j] = e;
            sum += e;
        }
        float inv = L > 0 ? (float)(1.0 / sum) : 0.0f;
        for (int j = 0; j < L; j++) ar[j] *= inv;
        for (int j = L; j < T; j++) ar[j] = 0.0f;
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) /* out = P V */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f,
                        att + ((size_t)b * NH + h) * TT, T,
                        v + (size_t)b * T * ks + (size_t)(h / group) * hd, ks, 0.0f,
                        out + (size_t)b * T * qs + (size_t)h * hd, qs);
    return VT_OK;
}

vt_status vt_attention_backward(vt_ctx *ctx, float *dq, float *dk, float *dv,
                                const float *dout, const float *att, const float *q,
                                const float *k, const float *v,
                                int B, int T, int NH, int NKV, int hd) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_attention_backward";
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_PTR(ctx, op, att);
    VT_OPS_PTR(ctx, op, q);
    VT_OPS_PTR(ctx, op, k);
    VT_OPS_PTR(ctx, op, v);
    vt_status st = check(ctx, op, B, T, NH, NKV, hd);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_attention_backward(ctx, dq, dk, dv, dout, att, q, k, v, B, T, NH, NKV, hd);
#endif
    const int group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)hd);
    const int qs = NH * hd, ks = NKV * hd;
    const size_t TT = (size_t)T * T;
#define QV(base, b, h) ((base) + (size_t)(b) * T * qs + (size_t)(h) * hd)
#define KV(base, b, h) ((base) + (size_t)(b) * T * ks + (size_t)((h) / group) * hd)
    if (dv)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) /* dV += P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f,
                            att + ((size_t)b * NH + h) * TT, T, QV(dout, b, h), qs, 1.0f,
                            KV(dv, b, h), ks);
    if (!dq && !dk) return VT_OK;
    float *ds = vt_ops_scratch(ctx, sizeof(float) * (size_t)B * NH * TT);
    if (!ds) return ctx->err.code;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) /* dP = dO V^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, QV(dout, b, h),
                        qs, KV(v, b, h), ks, 0.0f, ds + ((size_t)b * NH + h) * TT, T);
    long long rows = (long long)B * NH * T;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long r = 0; r < rows; r++) { /* dS = P * (dP - sum_j P dP) */
        const float *ar = att + (size_t)r * T;
        float *dr = ds + (size_t)r * T;
        double dot = 0.0;
        for (int j = 0; j < T; j++) dot += (double)ar[j] * dr[j];
        float d = (float)dot;
        for (int j = 0; j < T; j++) dr[j] = ar[j] * (dr[j] - d);
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *dsh = ds + ((size_t)b * NH + h) * TT;
            if (dq) /* dQ += scale dS K */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dsh, T,
                            KV(k, b, h), ks, 1.0f, QV(dq, b, h), qs);
            if (dk) /* dK += scale dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dsh, T,
                            QV(q, b, h), qs, 1.0f, KV(dk, b, h), ks);
        }
#undef QV
#undef KV
    return VT_OK;
}
