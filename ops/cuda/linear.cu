/* Matrix ops on CUDA: linear and patch embedding through cuBLAS sgemm.
 * cuBLAS is column-major: a row-major [R, C] buffer is a column-major
 * [C, R] matrix, so each row-major product is issued transposed. */
#include "ops/cuda/cuda_common.cuh"

__global__ static void bias_fill_kernel(float *out, const float *bias, size_t N, int OC) {
    size_t total = N * (size_t)OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % OC];
}

/* dbias[o] += sum_n dout[n, o]: one thread per column, coalesced across o. */
__global__ static void bias_grad_kernel(float *dbias, const float *dout, int N, int OC) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float s = 0.0f;
    for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
    dbias[o] += s;
}

extern "C" vt_status vt_cuda_linear_forward(vt_ctx *ctx, float *out, const float *inp,
                                            const float *w, const float *bias, int N, int C,
                                            int OC) {
    cudaStream_t st = vt_cuda_stream(ctx);
    float alpha = 1.0f, beta = 0.0f;
    if (bias) {
        bias_fill_kernel<<<vt_cuda_blocks((size_t)N * OC, 256), 256, 0, st>>>(out, bias, N, OC);
        VT_CUDA_LAUNCHED(ctx);
        beta = 1.0f;
    }
    /* out^T[OC,N] = w[OC,C] (col-major [C,OC], transposed) . inp^T[C,N] */
    VT_CUBLAS_CK(ctx, cublasSgemm(vt_cuda_state_of(ctx)->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C,
                                  &alpha, w, C, inp, C, &beta, out, OC));
    return VT_OK;
}

extern "C" vt_status vt_cuda_linear_backward(vt_ctx *ctx, float *dinp, float *dw, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *w, int N, int C, int OC) {
    cublasHandle_t h = vt_cuda_state_of(ctx)->blas;
    float one = 1.0f;
    if (dinp) /* dinp^T[C,N] += w^T[C,OC] . dout^T[OC,N] */
        VT_CUBLAS_CK(ctx, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w, C, dout, OC,
                                      &one, dinp, C));
    if (dw) /* dw^T[C,OC] += inp^T[C,N] . dout[N,OC] */
        VT_CUBLAS_CK(ctx, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout,
                                      OC, &one, dw, C));
    if (dbias) {
        bias_grad_kernel<<<(OC + 255) / 256, 256, 0, vt_cuda_stream(ctx)>>>(dbias, dout, N, OC);
        VT_CUDA_LAUNCHED(ctx);
    }
    return VT_OK;
}

/* cols[(b*NP + p), c*P*P + y*P + x] <-> img[b, c, gy*P + y, gx*P + x]; one
 * thread per column element. to_img accumulates into the image (patches do
 * not overlap, so no two threads hit the same pixel). */
__global__ static void im2col_kernel(float *cols, float *img, int B, int Cin, int H, int W,
                                     int P, int to_img) {
    int gw = W / P, NP = (H / P) * gw, K = Cin * P * P;
    size_t total = (size_t)B * NP * K;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int kk = (int)(i % K);
        size_t row = i / K;
        int p = (int)(row % NP), b = (int)(row / NP);
        int c = kk / (P * P), y = (kk / P) % P, x = kk % P;
        int gy = p / gw, gx = p % gw;
        size_t src = (((size_t)b * Cin + c) * H + (size_t)gy * P + y) * W + (size_t)gx * P + x;
        if (to_img)
            img[src] += cols[i];
        else
            cols[i] = img[src];
    }
}

extern "C" vt_status vt_cuda_patch_embed_forward(vt_ctx *ctx, float *out, const float *img,
                                                 const float *w, int B, int Cin, int H, int W,
                                                 int P, int D) {
    const int M = B * (H / P) * (W / P), K = Cin * P * P;
    float *cols = static_cast<float *>(vt_ops_scratch(ctx, sizeof(float) * (size_t)M * K));
    if (!cols) return ctx->err.code;
    im2col_kernel<<<vt_cuda_blocks((size_t)M * K, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        cols, const_cast<float *>(img), B, Cin, H, W, P, 0);
    VT_CUDA_LAUNCHED(ctx);
    float alpha = 1.0f, beta = 0.0f;
    VT_CUBLAS_CK(ctx, cublasSgemm(vt_cuda_state_of(ctx)->blas, CUBLAS_OP_T, CUBLAS_OP_N, D, M, K,
                                  &alpha, w, K, cols, K, &beta, out, D));
    return VT_OK;
}

extern "C" vt_status vt_cuda_patch_embed_backward(vt_ctx *ctx, float *dimg, float *dw,
                                                  const float *dout, const float *img,
                                                  const float *w, int B, int Cin, int H, int W,
                                                  int P, int D) {
    if (!dw && !dimg) return VT_OK;
    const int M = B * (H / P) * (W / P), K = Cin * P * P;
    float *cols = static_cast<float *>(vt_ops_scratch(ctx, sizeof(float) * (size_t)M * K));
    if (!cols) return ctx->err.code;
    cudaStream_t st = vt_cuda_stream(ctx);
    cublasHandle_t h = vt_cuda_state_of(ctx)->blas;
    float one = 1.0f, zero = 0.0f;
    if (dw) { /* dw^T[K,D] += cols^T[K,M] . dout[M,D] */
        im2col_kernel<<<vt_cuda_blocks((size_t)M * K, 256), 256, 0, st>>>(
            cols, const_cast<float *>(img), B, Cin, H, W, P, 0);
        VT_CUDA_LAUNCHED(ctx);
        VT_CUBLAS_CK(ctx, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, K, D, M, &one, cols, K, dout, D,
                                      &one, dw, K));
    }
    if (dimg) { /* dcols^T[K,M] = w^T[K,D] . dout^T[D,M] */
        VT_CUBLAS_CK(ctx, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, K, M, D, &one, w, K, dout, D,
                                      &zero, cols, K));
        im2col_kernel<<<vt_cuda_blocks((size_t)M * K, 256), 256, 0, st>>>(cols, dimg, B, Cin, H,
                                                                          W, P, 1);
        VT_CUDA_LAUNCHED(ctx);
    }
    return VT_OK;
}
