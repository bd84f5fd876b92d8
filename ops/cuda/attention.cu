/* Attention on CUDA as batched cuBLAS products around two row kernels,
 * the same algorithm as the CPU backend (ops/attention.c): scores
 * S = scale * Q K^T for every (sequence, head), a masked softmax per row
 * written into `att` (the probabilities backward reads), O = P V; backward
 * dP = dO V^T, dS = P * (dP - rowsum(P * dP)) per row, dQ += scale * dS K,
 * dK += scale * dS^T Q and dV += P^T dO summed over the group's query heads
 * in head order. No atomics, so results are run-to-run identical. Layouts:
 * q/out [B,T,NH,hd], k/v [B,T,NKV,hd], att [B,NH,T,T], all row-major.
 *
 * cuBLAS is column-major: a row-major X (rows x cols, leading dimension ld)
 * is the column-major X^T with the same ld, so each row-major product
 * C = A B is issued as C^T = B^T A^T. The query heads of one key/value
 * group share K and V, so one strided-batched call covers the group (stride
 * 0 for the shared operand). */
#include "ops/cuda/cuda_common.cuh"

enum { ATT_THREADS = 128 };

/* Row t of head h of sequence b: keys [0, L) are visible. */
__device__ static int visible_keys(const int32_t *kv_len, int b, int t, int T, int causal) {
    int L = kv_len ? kv_len[b] : T;
    if (causal && t + 1 < L) L = t + 1;
    return L;
}

/* In place over the scores: softmax over the visible keys, 0 elsewhere (a
 * row with no visible key is all zeros, so its output is zero). */
__global__ static void softmax_rows_kernel(float *att, const int32_t *kv_len, int T, int NH,
                                           int causal) {
    __shared__ float red[32];
    size_t row = blockIdx.x;
    int t = (int)(row % (size_t)T), b = (int)(row / ((size_t)T * NH));
    int L = visible_keys(kv_len, b, t, T, causal);
    float *ar = att + row * (size_t)T;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < L; j += blockDim.x) mx = fmaxf(mx, ar[j]);
    mx = vt_block_max(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float e = expf(ar[j] - mx);
        ar[j] = e;
        sum += e;
    }
    sum = vt_block_sum(sum, red);
    float inv = L > 0 ? 1.0f / sum : 0.0f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) ar[j] = j < L ? ar[j] * inv : 0.0f;
}

/* In place over dP: dS = P * (dP - sum_j P_j dP_j), per row. */
__global__ static void softmax_grad_rows_kernel(float *dp, const float *att, int T) {
    __shared__ float red[32];
    size_t off = (size_t)blockIdx.x * (size_t)T;
    const float *ar = att + off;
    float *gr = dp + off;
    float local = 0.0f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) local += ar[j] * gr[j];
    float dot = vt_block_sum(local, red);
    for (int j = threadIdx.x; j < T; j += blockDim.x) gr[j] = ar[j] * (gr[j] - dot);
}

/* One row-major product per query head of group g of sequence b:
 * C_h (m x n) = op(A) op(B) in column-major terms, batched over the group. */
typedef struct {
    cublasHandle_t h;
    int T, NH, NKV, hd, rep;
    long long qstr, kstr, tt; /* row strides of q and k, T*T */
} att_dims;

static att_dims dims_of(vt_ctx *ctx, int T, int NH, int NKV, int hd) {
    att_dims d = {vt_cuda_state_of(ctx)->blas, T, NH, NKV, hd, NH / NKV, (long long)NH * hd,
                  (long long)NKV * hd, (long long)T * T};
    return d;
}
/* Offsets of sequence b / head h / kv head g in q (or out, dq), k (or v), att. */
static size_t q_at(const att_dims *d, int b, int h) { return (size_t)b * d->T * d->qstr + (size_t)h * d->hd; }
static size_t k_at(const att_dims *d, int b, int g) { return (size_t)b * d->T * d->kstr + (size_t)g * d->hd; }
static size_t a_at(const att_dims *d, int b, int h) { return ((size_t)b * d->NH + h) * (size_t)d->tt; }

extern "C" vt_status vt_cuda_attention_forward(vt_ctx *ctx, float *out, float *att,
                                               const float *q, const float *k, const float *v,
                                               const int32_t *kv_len, int B, int T, int NH,
                                               int NKV, int hd, int causal) {
    if (kv_len) { /* validate on the host: B small ints */
        int32_t *h = static_cast<int32_t *>(malloc(sizeof(int32_t) * (size_t)B));
        if (!h) return vt_ops_fail(ctx, VT_ERR_NOMEM, "vt_attention_forward: out of memory");
        cudaError_t e = cudaMemcpyAsync(h, kv_len, sizeof(int32_t) * (size_t)B,
                                        cudaMemcpyDeviceToHost, vt_cuda_stream(ctx));
        if (e == cudaSuccess) e = cudaStreamSynchronize(vt_cuda_stream(ctx));
        if (e != cudaSuccess) {
            free(h);
            return vt_ops_fail(ctx, VT_ERR_DEVICE, "vt_attention_forward: reading kv_len: %s",
                               cudaGetErrorString(e));
        }
        for (int b = 0; b < B; b++)
            if (h[b] < 0 || h[b] > T) {
                vt_status s = vt_ops_fail(ctx, VT_ERR_RANGE,
                                          "vt_attention_forward: kv_len[%d]=%d is outside [0, %d]",
                                          b, (int)h[b], T);
                free(h);
                return s;
            }
        free(h);
    }
    att_dims d = dims_of(ctx, T, NH, NKV, hd);
    const float scale = 1.0f / sqrtf((float)hd), zero = 0.0f, one = 1.0f;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < NKV; g++) { /* S^T[Tk,Tq] = K . Q^T per head of the group */
            int h0 = g * d.rep;
            VT_CUBLAS_CK(ctx, cublasSgemmStridedBatched(
                                  d.h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &scale, k + k_at(&d, b, g),
                                  (int)d.kstr, 0, q + q_at(&d, b, h0), (int)d.qstr, hd, &zero,
                                  att + a_at(&d, b, h0), T, d.tt, d.rep));
        }
    softmax_rows_kernel<<<(unsigned)((size_t)B * NH * T), ATT_THREADS, 0, vt_cuda_stream(ctx)>>>(
        att, kv_len, T, NH, causal);
    VT_CUDA_LAUNCHED(ctx);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < NKV; g++) { /* O^T[hd,Tq] = V^T . P^T */
            int h0 = g * d.rep;
            VT_CUBLAS_CK(ctx, cublasSgemmStridedBatched(
                                  d.h, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &one, v + k_at(&d, b, g),
                                  (int)d.kstr, 0, att + a_at(&d, b, h0), T, d.tt, &zero,
                                  out + q_at(&d, b, h0), (int)d.qstr, hd, d.rep));
        }
    return VT_OK;
}

extern "C" vt_status vt_cuda_attention_backward(vt_ctx *ctx, float *dq, float *dk, float *dv,
                                                const float *dout, const float *att,
                                                const float *q, const float *k, const float *v,
                                                int B, int T, int NH, int NKV, int hd) {
    att_dims d = dims_of(ctx, T, NH, NKV, hd);
    const float scale = 1.0f / sqrtf((float)hd), zero = 0.0f, one = 1.0f;
    if (dq || dk) {
        float *ds = static_cast<float *>(vt_ops_scratch(ctx, sizeof(float) * (size_t)B * NH * T * T));
        if (!ds) return ctx->err.code;
        for (int b = 0; b < B; b++)
            for (int g = 0; g < NKV; g++) { /* dP^T[Tk,Tq] = V . dO^T */
                int h0 = g * d.rep;
                VT_CUBLAS_CK(ctx, cublasSgemmStridedBatched(
                                      d.h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &one, v + k_at(&d, b, g),
                                      (int)d.kstr, 0, dout + q_at(&d, b, h0), (int)d.qstr, hd, &zero,
                                      ds + a_at(&d, b, h0), T, d.tt, d.rep));
            }
        softmax_grad_rows_kernel<<<(unsigned)((size_t)B * NH * T), ATT_THREADS, 0,
                                   vt_cuda_stream(ctx)>>>(ds, att, T);
        VT_CUDA_LAUNCHED(ctx);
        for (int b = 0; b < B; b++)
            for (int g = 0; g < NKV; g++) {
                int h0 = g * d.rep;
                if (dq) /* dQ^T[hd,Tq] += scale * K^T . dS^T */
                    VT_CUBLAS_CK(ctx, cublasSgemmStridedBatched(
                                          d.h, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &scale,
                                          k + k_at(&d, b, g), (int)d.kstr, 0, ds + a_at(&d, b, h0), T,
                                          d.tt, &one, dq + q_at(&d, b, h0), (int)d.qstr, hd, d.rep));
                if (dk) /* dK^T[hd,Tk] += scale * Q^T . dS, head by head (one C per group) */
                    for (int h = h0; h < h0 + d.rep; h++)
                        VT_CUBLAS_CK(ctx, cublasSgemm(d.h, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, &scale,
                                                      q + q_at(&d, b, h), (int)d.qstr, ds + a_at(&d, b, h),
                                                      T, &one, dk + k_at(&d, b, g), (int)d.kstr));
            }
    }
    if (dv)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) /* dV^T[hd,Tk] += dO^T . P, in head order */
                VT_CUBLAS_CK(ctx, cublasSgemm(d.h, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, &one,
                                              dout + q_at(&d, b, h), (int)d.qstr, att + a_at(&d, b, h),
                                              T, &one, dv + k_at(&d, b, h / d.rep), (int)d.kstr));
    return VT_OK;
}
