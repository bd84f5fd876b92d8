/* Embedding lookup and scatter-add on CUDA. Ids live on the device, so range
 * checking happens in the kernel: the first bad position is reported through
 * the ctx flag and turned into the same VT_ERR_RANGE message as on the CPU. */
#include "ops/cuda/cuda_common.cuh"

/* Marks the lowest position whose id is outside [0, V). */
__global__ static void check_ids_kernel(int *flag, const int32_t *ids, int N, int V) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n < N && (ids[n] < 0 || ids[n] >= V)) atomicMin(flag, n);
}

static vt_status check_ids(vt_ctx *ctx, const char *op, const int32_t *ids, int N, int V) {
    vt_status st = vt_cuda_flag_reset(ctx);
    if (st != VT_OK) return st;
    check_ids_kernel<<<(N + 255) / 256, 256, 0, vt_cuda_stream(ctx)>>>(
        vt_cuda_state_of(ctx)->flag, ids, N, V);
    VT_CUDA_LAUNCHED(ctx);
    int bad = 0;
    st = vt_cuda_flag_read(ctx, &bad);
    if (st != VT_OK) return st;
    if (bad != INT_MAX) {
        int32_t id = 0;
        VT_CUDA_CK(ctx, cudaMemcpy(&id, ids + bad, sizeof id, cudaMemcpyDeviceToHost));
        return vt_ops_fail(ctx, VT_ERR_RANGE, "%s: id %d at position %d is outside [0, %d)", op,
                           (int)id, bad, V);
    }
    return VT_OK;
}

__global__ static void embedding_fwd_kernel(float *out, const int32_t *ids, const float *table,
                                            int N, int C) {
    size_t total = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        out[i] = table[(size_t)ids[n] * C + c];
    }
}

/* Float atomics make the accumulation order (only) of repeated ids vary. */
__global__ static void embedding_bwd_kernel(float *dtable, const float *dout, const int32_t *ids,
                                            int N, int C) {
    size_t total = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        atomicAdd(&dtable[(size_t)ids[n] * C + c], dout[i]);
    }
}

extern "C" vt_status vt_cuda_embedding_forward(vt_ctx *ctx, float *out, const int32_t *ids,
                                               const float *table, int N, int V, int C) {
    vt_status st = check_ids(ctx, "vt_embedding_forward", ids, N, V);
    if (st != VT_OK) return st;
    embedding_fwd_kernel<<<vt_cuda_blocks((size_t)N * C, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        out, ids, table, N, C);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_embedding_backward(vt_ctx *ctx, float *dtable, const float *dout,
                                                const int32_t *ids, int N, int V, int C) {
    vt_status st = check_ids(ctx, "vt_embedding_backward", ids, N, V);
    if (st != VT_OK) return st;
    embedding_bwd_kernel<<<vt_cuda_blocks((size_t)N * C, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        dtable, dout, ids, N, C);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}
