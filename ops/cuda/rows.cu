/* Row gather and scatter kernels: one thread per element, rows by index. */
#include "ops/cuda/cuda_common.cuh"

__global__ static void gather_kernel(float *dst, const float *src, const int32_t *idx, size_t n,
                                     size_t w) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n * w;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[(size_t)idx[i / w] * w + i % w];
}

__global__ static void scatter_kernel(float *dst, const float *src, const int32_t *idx, size_t n,
                                      size_t w, int accumulate) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n * w;
         i += (size_t)gridDim.x * blockDim.x) {
        float *d = dst + (size_t)idx[i / w] * w + i % w;
        *d = accumulate ? *d + src[i] : src[i];
    }
}

/* One thread per (destination row, column), summing its sources in order. */
__global__ static void reduce_kernel(float *dst, const float *src, const int32_t *offsets, const int32_t *sources,
                                     size_t n, size_t w) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n * w;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t j = i / w, c = i % w;
        float acc = dst[i];
        for (int32_t s = offsets[j]; s < offsets[j + 1]; s++) acc += src[(size_t)sources[s] * w + c];
        dst[i] = acc;
    }
}

extern "C" vt_status vt_cuda_rows_gather(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx,
                                         int n, int width) {
    size_t total = (size_t)n * width;
    gather_kernel<<<vt_cuda_blocks(total, 256), 256, 0, vt_cuda_stream(ctx)>>>(dst, src, idx, (size_t)n,
                                                                                 (size_t)width);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_rows_scatter(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx,
                                          int n, int width, bool accumulate) {
    size_t total = (size_t)n * width;
    scatter_kernel<<<vt_cuda_blocks(total, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        dst, src, idx, (size_t)n, (size_t)width, accumulate ? 1 : 0);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_rows_reduce(vt_ctx *ctx, float *dst, const float *src, const int32_t *offsets,
                                         const int32_t *sources, int n_dst, int width) {
    size_t total = (size_t)n_dst * width;
    reduce_kernel<<<vt_cuda_blocks(total, 256), 256, 0, vt_cuda_stream(ctx)>>>(dst, src, offsets, sources,
                                                                                 (size_t)n_dst, (size_t)width);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}
