/* Multi-head attention on the CPU. Forward: one task per (sequence, head,
 * query) row. Backward in two race-free passes: (1) per query row, the softmax
 * gradient (kept in the workspace) and dq; (2) per (sequence, kv head, key),
 * dk and dv summed over the query heads of the group. No atomics, so results
 * do not depend on the thread count. */
#include "ops/attention.h"

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
    const size_t qs = (size_t)NH * hd, ks = (size_t)NKV * hd; /* token strides */
#pragma omp parallel for collapse(3) num_threads(ctx->threads) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qr = q + ((size_t)b * T + t) * qs + (size_t)h * hd;
                const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
                const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
                float *ar = att + (((size_t)b * NH + h) * T + t) * T;
                float *o = out + ((size_t)b * T + t) * qs + (size_t)h * hd;
                int L = key_limit(kv_len, b, t, T, causal);
                memset(o, 0, sizeof(float) * hd);
                if (L == 0) {
                    memset(ar, 0, sizeof(float) * T);
                    continue;
                }
                float mx = -INFINITY;
                for (int j = 0; j < L; j++) {
                    const float *kr = kb + (size_t)j * ks;
                    float s = 0.0f;
                    for (int d = 0; d < hd; d++) s += qr[d] * kr[d];
                    s *= scale;
                    ar[j] = s;
                    if (s > mx) mx = s;
                }
                double sum = 0.0;
                for (int j = 0; j < L; j++) {
                    float e = expf(ar[j] - mx);
                    ar[j] = e;
                    sum += e;
                }
                float inv = (float)(1.0 / sum);
                for (int j = 0; j < L; j++) ar[j] *= inv;
                for (int j = L; j < T; j++) ar[j] = 0.0f;
                for (int j = 0; j < L; j++) {
                    const float *vr = vb + (size_t)j * ks;
                    float a = ar[j];
                    for (int d = 0; d < hd; d++) o[d] += a * vr[d];
                }
            }
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
    const size_t qs = (size_t)NH * hd, ks = (size_t)NKV * hd;
    float *dpre = NULL; /* gradient w.r.t. the pre-softmax scores, [B,NH,T,T] */
    if (dq || dk) {
        dpre = vt_ops_scratch(ctx, sizeof(float) * (size_t)B * NH * T * T);
        if (!dpre) return ctx->err.code;
#pragma omp parallel for collapse(3) num_threads(ctx->threads) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < T; t++) {
                    size_t row = (((size_t)b * NH + h) * T + t) * T;
                    const float *ar = att + row;
                    float *pr = dpre + row;
                    const float *go = dout + ((size_t)b * T + t) * qs + (size_t)h * hd;
                    const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
                    const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
                    double dotsum = 0.0;
                    for (int j = 0; j < T; j++) {
                        if (ar[j] == 0.0f) { /* masked (or underflowed): no gradient */
                            pr[j] = 0.0f;
                            continue;
                        }
                        const float *vr = vb + (size_t)j * ks;
                        float s = 0.0f;
                        for (int d = 0; d < hd; d++) s += go[d] * vr[d];
                        pr[j] = s; /* d loss / d att for now */
                        dotsum += (double)s * ar[j];
                    }
                    float ds = (float)dotsum;
                    for (int j = 0; j < T; j++) pr[j] = ar[j] * (pr[j] - ds);
                    if (dq) {
                        float *g = dq + ((size_t)b * T + t) * qs + (size_t)h * hd;
                        for (int j = 0; j < T; j++) {
                            if (pr[j] == 0.0f) continue;
                            const float *kr = kb + (size_t)j * ks;
                            float c = scale * pr[j];
                            for (int d = 0; d < hd; d++) g[d] += c * kr[d];
                        }
                    }
                }
    }
    if (dk || dv) {
#pragma omp parallel for collapse(3) num_threads(ctx->threads) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kh = 0; kh < NKV; kh++)
                for (int j = 0; j < T; j++) {
                    float *gk = dk ? dk + ((size_t)b * T + j) * ks + (size_t)kh * hd : NULL;
                    float *gv = dv ? dv + ((size_t)b * T + j) * ks + (size_t)kh * hd : NULL;
                    for (int h = kh * group; h < (kh + 1) * group; h++)
                        for (int t = 0; t < T; t++) {
                            size_t idx = (((size_t)b * NH + h) * T + t) * T + j;
                            size_t tok = ((size_t)b * T + t) * qs + (size_t)h * hd;
                            if (gk && dpre[idx] != 0.0f) {
                                float c = scale * dpre[idx];
                                const float *qr = q + tok;
                                for (int d = 0; d < hd; d++) gk[d] += c * qr[d];
                            }
                            if (gv && att[idx] != 0.0f) {
                                float a = att[idx];
                                const float *go = dout + tok;
                                for (int d = 0; d < hd; d++) gv[d] += a * go[d];
                            }
                        }
                }
    }
    return VT_OK;
}
