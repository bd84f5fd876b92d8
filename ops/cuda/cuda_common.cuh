/* Private to ops/cuda: the backend state behind vt_ctx->cuda and the error
 * plumbing shared by the .cu files. */
#ifndef VT_OPS_CUDA_COMMON_CUH
#define VT_OPS_CUDA_COMMON_CUH

#include <climits>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "ops/ctx_internal.h"
}

struct vt_cuda_state {
    cudaStream_t stream;
    cublasHandle_t blas;
    int *flag; /* device int for kernels to report bad input (first bad index) */
};

static inline vt_cuda_state *vt_cuda_state_of(vt_ctx *ctx) {
    return static_cast<vt_cuda_state *>(ctx->cuda);
}
static inline cudaStream_t vt_cuda_stream(vt_ctx *ctx) { return vt_cuda_state_of(ctx)->stream; }

/* Return VT_ERR_DEVICE from the enclosing function when a CUDA call fails. */
#define VT_CUDA_CK(ctx, call)                                                               \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess)                                                              \
            return vt_ops_fail((ctx), VT_ERR_DEVICE, "%s:%d: %s: %s", __FILE__, __LINE__, #call, \
                               cudaGetErrorString(e_));                                     \
    } while (0)
#define VT_CUBLAS_CK(ctx, call)                                                             \
    do {                                                                                    \
        cublasStatus_t s_ = (call);                                                         \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return vt_ops_fail((ctx), VT_ERR_DEVICE, "%s:%d: %s: cuBLAS status %d", __FILE__, \
                               __LINE__, #call, (int)s_);                                   \
    } while (0)
/* After a kernel launch: launch-configuration errors surface here. */
#define VT_CUDA_LAUNCHED(ctx) VT_CUDA_CK(ctx, cudaGetLastError())

static inline unsigned vt_cuda_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535u * 32u ? 65535u * 32u : (b ? b : 1));
}

/* Warp and block reductions (blockDim.x a multiple of 32, at most 1024). */
__device__ __forceinline__ float vt_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float vt_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* scratch: __shared__ float[32]. Every thread gets the result. */
__device__ __forceinline__ float vt_block_sum(float v, float *scratch) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = vt_warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : 0.0f;
    return vt_warp_sum(v);
}
__device__ __forceinline__ float vt_block_max(float v, float *scratch) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = vt_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    v = lane < nw ? scratch[lane] : -INFINITY;
    return vt_warp_max(v);
}

/* Reset the bad-input flag, and read it back (synchronising the stream). */
vt_status vt_cuda_flag_reset(vt_ctx *ctx);
vt_status vt_cuda_flag_read(vt_ctx *ctx, int *value);

#endif
