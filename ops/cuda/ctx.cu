/* CUDA backend state: device selection, one stream and one cuBLAS handle per
 * ctx, device memory helpers, and the bad-input flag kernels use to report
 * out-of-range ids or targets back to the host. */
#include <climits>
#include <new>

#include "ops/cuda/cuda_common.cuh"

extern "C" int vt_cuda_count_devices(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" error */
        return 0;
    }
    return n;
}

extern "C" vt_status vt_cuda_ctx_init(vt_ctx *ctx) {
    int n = vt_cuda_count_devices();
    if (n == 0)
        return vt_ops_fail(ctx, VT_ERR_DEVICE, "vt_ctx_create: no CUDA device is available");
    if (ctx->device < 0 || ctx->device >= n)
        return vt_ops_fail(ctx, VT_ERR_DEVICE,
                           "vt_ctx_create: CUDA device %d does not exist (%d visible)",
                           ctx->device, n);
    VT_CUDA_CK(ctx, cudaSetDevice(ctx->device));
    vt_cuda_state *s = new (std::nothrow) vt_cuda_state();
    if (!s) return vt_ops_fail(ctx, VT_ERR_NOMEM, "vt_ctx_create: out of memory");
    ctx->cuda = s;
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        delete s;
        ctx->cuda = nullptr;
        return vt_ops_fail(ctx, VT_ERR_DEVICE, "vt_ctx_create: cudaStreamCreate: %s",
                           cudaGetErrorString(e));
    }
    if (cublasCreate(&s->blas) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(s->stream);
        delete s;
        ctx->cuda = nullptr;
        return vt_ops_fail(ctx, VT_ERR_DEVICE, "vt_ctx_create: cublasCreate failed");
    }
    cublasSetStream(s->blas, s->stream);
    /* Plain FP32 (no TF32) so results track the CPU backend and PyTorch float64. */
    cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH);
    if (cudaMalloc(&s->flag, sizeof(int)) != cudaSuccess) {
        cublasDestroy(s->blas);
        cudaStreamDestroy(s->stream);
        delete s;
        ctx->cuda = nullptr;
        return vt_ops_fail(ctx, VT_ERR_DEVICE, "vt_ctx_create: cudaMalloc of 4 bytes failed");
    }
    return VT_OK;
}

extern "C" void vt_cuda_ctx_release(vt_ctx *ctx) {
    vt_cuda_state *s = vt_cuda_state_of(ctx);
    if (!s) return;
    cudaStreamSynchronize(s->stream);
    cudaFree(s->flag);
    cublasDestroy(s->blas);
    cudaStreamDestroy(s->stream);
    delete s;
    ctx->cuda = nullptr;
}

extern "C" vt_status vt_cuda_alloc(vt_ctx *ctx, void **out, size_t bytes) {
    void *p = nullptr;
    size_t b = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, b);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return vt_ops_fail(ctx, VT_ERR_NOMEM, "vt_ctx_alloc: cudaMalloc of %zu bytes: %s", bytes,
                           cudaGetErrorString(e));
    }
    e = cudaMemsetAsync(p, 0, b, vt_cuda_stream(ctx));
    if (e == cudaSuccess) e = cudaStreamSynchronize(vt_cuda_stream(ctx));
    if (e != cudaSuccess) {
        cudaFree(p);
        return vt_ops_fail(ctx, VT_ERR_DEVICE, "vt_ctx_alloc: clearing memory: %s",
                           cudaGetErrorString(e));
    }
    *out = p;
    return VT_OK;
}

extern "C" void vt_cuda_free(vt_ctx *ctx, void *p) {
    /* Work queued on the stream may still read p. */
    cudaStreamSynchronize(vt_cuda_stream(ctx));
    cudaFree(p);
}

extern "C" vt_status vt_cuda_memcpy(vt_ctx *ctx, void *dst, const void *src, size_t bytes,
                                    int kind) {
    static const cudaMemcpyKind kinds[3] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                            cudaMemcpyDeviceToDevice};
    cudaStream_t st = vt_cuda_stream(ctx);
    VT_CUDA_CK(ctx, cudaMemcpyAsync(dst, src, bytes, kinds[kind], st));
    /* Host buffers may be reused or read as soon as we return. */
    if (kind != 2) VT_CUDA_CK(ctx, cudaStreamSynchronize(st));
    return VT_OK;
}

extern "C" vt_status vt_cuda_memset_zero(vt_ctx *ctx, void *dst, size_t bytes) {
    VT_CUDA_CK(ctx, cudaMemsetAsync(dst, 0, bytes, vt_cuda_stream(ctx)));
    return VT_OK;
}

extern "C" vt_status vt_cuda_sync(vt_ctx *ctx) {
    VT_CUDA_CK(ctx, cudaStreamSynchronize(vt_cuda_stream(ctx)));
    return VT_OK;
}

__global__ static void flag_set_kernel(int *flag) { *flag = INT_MAX; }

vt_status vt_cuda_flag_reset(vt_ctx *ctx) {
    flag_set_kernel<<<1, 1, 0, vt_cuda_stream(ctx)>>>(vt_cuda_state_of(ctx)->flag);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

vt_status vt_cuda_flag_read(vt_ctx *ctx, int *value) {
    VT_CUDA_CK(ctx, cudaMemcpyAsync(value, vt_cuda_state_of(ctx)->flag, sizeof(int),
                                    cudaMemcpyDeviceToHost, vt_cuda_stream(ctx)));
    VT_CUDA_CK(ctx, cudaStreamSynchronize(vt_cuda_stream(ctx)));
    return VT_OK;
}
