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
 * C = A B is issued as C^T = B^T A^T. Each product is ONE pointer-array
 * batched call over every (sequence, head) (cublasSgemmBatched; the arrays
 * are built on the device by a small kernel), so the launch count does not
 * grow with the batch: with one call per (sequence, key/value group) a
 * batch of 32 short sequences of 16 heads spent its time launching. dK and
 * dV, whose outputs the heads of a group share, take one call per head
 * index within the group (batched over sequences and groups), in head order. */
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

/* Operand i of a batch (i = b X + x: sequence b, head-like index x) sits at
 * base + b sb + (x / div) sx. */
typedef struct {
    const float *base;
    long long sb, sx;
    int div;
} operand;

static operand q_like(const att_dims *d, const float *p) { return {p, (long long)d->T * d->qstr, d->hd, 1}; }
static operand k_like(const att_dims *d, const float *p) { /* per query head: its group's K/V */
    return {p, (long long)d->T * d->kstr, d->hd, d->rep};
}
static operand a_like(const att_dims *d, const float *p) { return {p, (long long)d->NH * d->tt, d->tt, 1}; }

__global__ static void pointers_kernel(const float **out, operand a, operand b, operand c, int X, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        long long s = i / X, x = i % X;
        out[i] = a.base + s * a.sb + (x / a.div) * a.sx;
        out[n + i] = b.base + s * b.sb + (x / b.div) * b.sx;
        out[2 * n + i] = c.base + s * c.sb + (x / c.div) * c.sx;
    }
}

/* C_i (m x n, column-major) = alpha op(A_i) op(B_i) + beta C_i for the B X
 * batch entries; ptrs: device room for 3 B X pointers. */
static vt_status batched(vt_ctx *ctx, const att_dims *d, const float **ptrs, cublasOperation_t ta,
                         cublasOperation_t tb, int m, int n, int k, float alpha, operand A, int lda, operand Bop,
                         int ldb, float beta, operand C, int ldc, int B, int X) {
    int count = B * X;
    pointers_kernel<<<vt_cuda_blocks((size_t)count, 128), 128, 0, vt_cuda_stream(ctx)>>>(ptrs, A, Bop, C, X, count);
    VT_CUDA_LAUNCHED(ctx);
    VT_CUBLAS_CK(ctx, cublasSgemmBatched(d->h, ta, tb, m, n, k, &alpha, ptrs, lda, ptrs + count, ldb, &beta,
                                         (float *const *)(ptrs + 2 * count), ldc, count));
    return VT_OK;
}

/* Device room for the pointer arrays (and, in backward, dS before them). */
static const float **pointer_room(vt_ctx *ctx, int B, int NH, size_t before_bytes, float **before) {
    size_t off = (before_bytes + 255) / 256 * 256;
    char *p = static_cast<char *>(vt_ops_scratch(ctx, off + 3 * sizeof(float *) * (size_t)B * NH));
    if (!p) return nullptr;
    if (before) *before = reinterpret_cast<float *>(p);
    return reinterpret_cast<const float **>(p + off);
}

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
    const float **ptrs = pointer_room(ctx, B, NH, 0, nullptr);
    if (!ptrs) return ctx->err.code;
    const float scale = 1.0f / sqrtf((float)hd);
    vt_status st;
    /* S^T[Tk,Tq] = K . Q^T per (sequence, head) */
    if ((st = batched(ctx, &d, ptrs, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, scale, k_like(&d, k), (int)d.kstr,
                      q_like(&d, q), (int)d.qstr, 0.0f, a_like(&d, att), T, B, NH)))
        return st;
    softmax_rows_kernel<<<(unsigned)((size_t)B * NH * T), ATT_THREADS, 0, vt_cuda_stream(ctx)>>>(
        att, kv_len, T, NH, causal);
    VT_CUDA_LAUNCHED(ctx);
    /* O^T[hd,Tq] = V^T . P^T */
    return batched(ctx, &d, ptrs, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, 1.0f, k_like(&d, v), (int)d.kstr,
                   a_like(&d, att), T, 0.0f, q_like(&d, out), (int)d.qstr, B, NH);
}

extern "C" vt_status vt_cuda_attention_backward(vt_ctx *ctx, float *dq, float *dk, float *dv,
                                                const float *dout, const float *att,
                                                const float *q, const float *k, const float *v,
                                                int B, int T, int NH, int NKV, int hd) {
    att_dims d = dims_of(ctx, T, NH, NKV, hd);
    const float scale = 1.0f / sqrtf((float)hd);
    float *ds = nullptr;
    const float **ptrs = pointer_room(ctx, B, NH, (dq || dk) ? sizeof(float) * (size_t)B * NH * T * T : 0, &ds);
    if (!ptrs) return ctx->err.code;
    vt_status st;
    /* the heads of a group share dK/dV: one call per head index j within the
     * group, batched over (sequence, group), adds them in head order */
    operand by_group_q = {nullptr, (long long)T * d.qstr, (long long)d.rep * hd, 1};
    operand by_group_a = {nullptr, (long long)NH * d.tt, (long long)d.rep * d.tt, 1};
    operand by_group_k = {nullptr, (long long)T * d.kstr, hd, 1};
    if (dq || dk) {
        /* dP^T[Tk,Tq] = V . dO^T */
        if ((st = batched(ctx, &d, ptrs, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, 1.0f, k_like(&d, v), (int)d.kstr,
                          q_like(&d, dout), (int)d.qstr, 0.0f, a_like(&d, ds), T, B, NH)))
            return st;
        softmax_grad_rows_kernel<<<(unsigned)((size_t)B * NH * T), ATT_THREADS, 0,
                                   vt_cuda_stream(ctx)>>>(ds, att, T);
        VT_CUDA_LAUNCHED(ctx);
        /* dQ^T[hd,Tq] += scale * K^T . dS^T */
        if (dq && (st = batched(ctx, &d, ptrs, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, scale, k_like(&d, k),
                                (int)d.kstr, a_like(&d, ds), T, 1.0f, q_like(&d, dq), (int)d.qstr, B, NH)))
            return st;
        /* dK^T[hd,Tk] += scale * Q^T . dS */
        for (int j = 0; dk && j < d.rep; j++) {
            operand A = by_group_q, Bop = by_group_a, C = by_group_k;
            A.base = q + (size_t)j * hd, Bop.base = ds + (size_t)j * d.tt, C.base = dk;
            if ((st = batched(ctx, &d, ptrs, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, scale, A, (int)d.qstr, Bop, T,
                              1.0f, C, (int)d.kstr, B, NKV)))
                return st;
        }
    }
    /* dV^T[hd,Tk] += dO^T . P */
    for (int j = 0; dv && j < d.rep; j++) {
        operand A = by_group_q, Bop = by_group_a, C = by_group_k;
        A.base = dout + (size_t)j * hd, Bop.base = att + (size_t)j * d.tt, C.base = dv;
        if ((st = batched(ctx, &d, ptrs, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, 1.0f, A, (int)d.qstr, Bop, T, 1.0f,
                          C, (int)d.kstr, B, NKV)))
            return st;
    }
    return VT_OK;
}
