/* Attention on CUDA, mirroring the CPU algorithm: forward with one block per
 * (sequence, head, query) row writing the probabilities; backward in two
 * passes (softmax gradient + dq per query row, then dk/dv per key summed over
 * the group's query heads), so no atomics are needed. Straightforward kernels
 * meant for correctness and the small models of tests; a fused
 * flash-attention kernel is the obvious next step for speed. */
#include "ops/cuda/cuda_common.cuh"

enum { ATT_THREADS = 128 };

__global__ static void attn_fwd_kernel(float *out, float *att, const float *q, const float *k,
                                       const float *v, const int32_t *kv_len, int T, int NH,
                                       int NKV, int hd, int causal, float scale) {
    extern __shared__ float qs[];
    __shared__ float red[32];
    int row = blockIdx.x, t = row % T, h = (row / T) % NH, b = row / (T * NH);
    int group = NH / NKV;
    int L = kv_len ? kv_len[b] : T;
    if (causal && t + 1 < L) L = t + 1;
    size_t qstr = (size_t)NH * hd, kstr = (size_t)NKV * hd;
    const float *qr = q + ((size_t)b * T + t) * qstr + (size_t)h * hd;
    const float *kb = k + (size_t)b * T * kstr + (size_t)(h / group) * hd;
    const float *vb = v + (size_t)b * T * kstr + (size_t)(h / group) * hd;
    float *ar = att + (((size_t)b * NH + h) * T + t) * T;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qr[d];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const float *kr = kb + (size_t)j * kstr;
        float s = 0.0f;
        for (int d = 0; d < hd; d++) s += qs[d] * kr[d];
        s *= scale;
        ar[j] = s;
        mx = fmaxf(mx, s);
    }
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
    __syncthreads();
    float *o = out + ((size_t)b * T + t) * qstr + (size_t)h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < L; j++) acc += ar[j] * vb[(size_t)j * kstr + d];
        o[d] = acc;
    }
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
    unsigned rows = (unsigned)((size_t)B * NH * T);
    attn_fwd_kernel<<<rows, ATT_THREADS, sizeof(float) * hd, vt_cuda_stream(ctx)>>>(
        out, att, q, k, v, kv_len, T, NH, NKV, hd, causal, 1.0f / sqrtf((float)hd));
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

/* Pass 1: dpre = att * (datt - sum(att * datt)), datt_j = dout_t . v_j; dq. */
__global__ static void attn_bwd_rows_kernel(float *dq, float *dpre, const float *dout,
                                            const float *att, const float *k, const float *v,
                                            int T, int NH, int NKV, int hd, float scale) {
    extern __shared__ float gs[];
    __shared__ float red[32];
    int row = blockIdx.x, t = row % T, h = (row / T) % NH, b = row / (T * NH);
    int group = NH / NKV;
    size_t qstr = (size_t)NH * hd, kstr = (size_t)NKV * hd;
    size_t arow = (((size_t)b * NH + h) * T + t) * T;
    const float *ar = att + arow;
    float *pr = dpre + arow;
    const float *go = dout + ((size_t)b * T + t) * qstr + (size_t)h * hd;
    const float *kb = k + (size_t)b * T * kstr + (size_t)(h / group) * hd;
    const float *vb = v + (size_t)b * T * kstr + (size_t)(h / group) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) gs[d] = go[d];
    __syncthreads();
    float local = 0.0f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float a = ar[j];
        float s = 0.0f;
        if (a != 0.0f) {
            const float *vr = vb + (size_t)j * kstr;
            for (int d = 0; d < hd; d++) s += gs[d] * vr[d];
        }
        pr[j] = s;
        local += s * a;
    }
    float ds = vt_block_sum(local, red);
    for (int j = threadIdx.x; j < T; j += blockDim.x) pr[j] = ar[j] * (pr[j] - ds);
    __syncthreads();
    if (!dq) return;
    float *g = dq + ((size_t)b * T + t) * qstr + (size_t)h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < T; j++) acc += pr[j] * kb[(size_t)j * kstr + d];
        g[d] += scale * acc;
    }
}

/* Pass 2: per (sequence, kv head, key j), threads over the head dimension. */
__global__ static void attn_bwd_keys_kernel(float *dk, float *dv, const float *dpre,
                                            const float *att, const float *q, const float *dout,
                                            int T, int NH, int NKV, int hd, float scale) {
    int j = blockIdx.x % T, kh = (blockIdx.x / T) % NKV, b = blockIdx.x / (T * NKV);
    int group = NH / NKV;
    size_t qstr = (size_t)NH * hd, kstr = (size_t)NKV * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float gk = 0.0f, gv = 0.0f;
        for (int h = kh * group; h < (kh + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                size_t idx = (((size_t)b * NH + h) * T + t) * T + j;
                size_t tok = ((size_t)b * T + t) * qstr + (size_t)h * hd + d;
                if (dk) gk += dpre[idx] * q[tok];
                if (dv) gv += att[idx] * dout[tok];
            }
        size_t o = ((size_t)b * T + j) * kstr + (size_t)kh * hd + d;
        if (dk) dk[o] += scale * gk;
        if (dv) dv[o] += gv;
    }
}

extern "C" vt_status vt_cuda_attention_backward(vt_ctx *ctx, float *dq, float *dk, float *dv,
                                                const float *dout, const float *att,
                                                const float *q, const float *k, const float *v,
                                                int B, int T, int NH, int NKV, int hd) {
    cudaStream_t st = vt_cuda_stream(ctx);
    float scale = 1.0f / sqrtf((float)hd);
    float *dpre = nullptr;
    if (dq || dk) {
        dpre = static_cast<float *>(vt_ops_scratch(ctx, sizeof(float) * (size_t)B * NH * T * T));
        if (!dpre) return ctx->err.code;
        attn_bwd_rows_kernel<<<(unsigned)((size_t)B * NH * T), ATT_THREADS, sizeof(float) * hd,
                               st>>>(dq, dpre, dout, att, k, v, T, NH, NKV, hd, scale);
        VT_CUDA_LAUNCHED(ctx);
    }
    if (dk || dv) {
        int threads = hd < 32 ? 32 : (hd > 256 ? 256 : (hd + 31) / 32 * 32);
        attn_bwd_keys_kernel<<<(unsigned)((size_t)B * NKV * T), threads, 0, st>>>(
            dk, dv, dpre, att, q, dout, T, NH, NKV, hd, scale);
        VT_CUDA_LAUNCHED(ctx);
    }
    return VT_OK;
}
