/* LayerNorm and RMSNorm on CUDA: one warp per row for the row statistics and
 * the input gradient; weight gradients by a column kernel (one thread per
 * channel walking the rows), so no atomics and a fixed summation order. */
#include "ops/cuda/cuda_common.cuh"

__global__ static void layernorm_fwd_kernel(float *out, float *mean, float *rstd,
                                            const float *inp, const float *w, const float *b,
                                            int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = vt_warp_sum(s) / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = rsqrtf(vt_warp_sum(v) / C + eps);
    float *y = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32)
        y[c] = (x[c] - m) * r * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

__global__ static void layernorm_bwd_kernel(float *dinp, const float *dout, const float *inp,
                                            const float *w, const float *mean, const float *rstd,
                                            int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float m = mean[row], r = rstd[row];
    float sdn = 0.0f, sdnn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float nv = (x[c] - m) * r, dn = dy[c] * (w ? w[c] : 1.0f);
        sdn += dn;
        sdnn += dn * nv;
    }
    float a = vt_warp_sum(sdn) / C, bb = vt_warp_sum(sdnn) / C;
    float *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float nv = (x[c] - m) * r, dn = dy[c] * (w ? w[c] : 1.0f);
        dx[c] += r * (dn - a - nv * bb);
    }
}

/* dw[c] += sum_n dout*norm, db[c] += sum_n dout; rms: mean == NULL. */
__global__ static void norm_param_grad_kernel(float *dw, float *db, const float *dout,
                                              const float *inp, const float *mean,
                                              const float *rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sw = 0.0f, sb = 0.0f;
    for (int n = 0; n < N; n++) {
        float g = dout[(size_t)n * C + c];
        float nv = (inp[(size_t)n * C + c] - (mean ? mean[n] : 0.0f)) * rstd[n];
        sw += g * nv;
        sb += g;
    }
    if (dw) dw[c] += sw;
    if (db) db[c] += sb;
}

__global__ static void rmsnorm_fwd_kernel(float *out, float *rstd, const float *inp,
                                          const float *w, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) ss += x[c] * x[c];
    float r = rsqrtf(vt_warp_sum(ss) / C + eps);
    float *y = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) y[c] = x[c] * r * (w ? w[c] : 1.0f);
    if (lane == 0) rstd[row] = r;
}

__global__ static void rmsnorm_bwd_kernel(float *dinp, const float *dout, const float *inp,
                                          const float *w, const float *rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float r = rstd[row];
    float sdnn = 0.0f;
    for (int c = lane; c < C; c += 32) sdnn += dy[c] * (w ? w[c] : 1.0f) * x[c] * r;
    float bb = vt_warp_sum(sdnn) / C;
    float *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) dx[c] += r * (dy[c] * (w ? w[c] : 1.0f) - x[c] * r * bb);
}

enum { ROWS_PER_BLOCK = 8 }; /* warps per block in the row kernels */

extern "C" vt_status vt_cuda_layernorm_forward(vt_ctx *ctx, float *out, float *mean, float *rstd,
                                               const float *inp, const float *w, const float *b,
                                               int N, int C, float eps) {
    layernorm_fwd_kernel<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK, 0,
                           vt_cuda_stream(ctx)>>>(out, mean, rstd, inp, w, b, N, C, eps);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_layernorm_backward(vt_ctx *ctx, float *dinp, float *dw, float *db,
                                                const float *dout, const float *inp,
                                                const float *w, const float *mean,
                                                const float *rstd, int N, int C) {
    cudaStream_t st = vt_cuda_stream(ctx);
    if (dinp) {
        layernorm_bwd_kernel<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK, 0,
                               st>>>(dinp, dout, inp, w, mean, rstd, N, C);
        VT_CUDA_LAUNCHED(ctx);
    }
    if (dw || db) {
        norm_param_grad_kernel<<<(C + 255) / 256, 256, 0, st>>>(dw, db, dout, inp, mean, rstd, N,
                                                                C);
        VT_CUDA_LAUNCHED(ctx);
    }
    return VT_OK;
}

extern "C" vt_status vt_cuda_rmsnorm_forward(vt_ctx *ctx, float *out, float *rstd,
                                             const float *inp, const float *w, int N, int C,
                                             float eps) {
    rmsnorm_fwd_kernel<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK, 0,
                         vt_cuda_stream(ctx)>>>(out, rstd, inp, w, N, C, eps);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_rmsnorm_backward(vt_ctx *ctx, float *dinp, float *dw,
                                              const float *dout, const float *inp,
                                              const float *w, const float *rstd, int N, int C) {
    cudaStream_t st = vt_cuda_stream(ctx);
    if (dinp) {
        rmsnorm_bwd_kernel<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK, 0,
                             st>>>(dinp, dout, inp, w, rstd, N, C);
        VT_CUDA_LAUNCHED(ctx);
    }
    if (dw) {
        norm_param_grad_kernel<<<(C + 255) / 256, 256, 0, st>>>(dw, nullptr, dout, inp, nullptr,
                                                                rstd, N, C);
        VT_CUDA_LAUNCHED(ctx);
    }
    return VT_OK;
}
