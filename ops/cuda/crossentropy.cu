/* Masked softmax cross-entropy on CUDA: one block per row (max, normaliser,
 * probabilities, loss), then a single-block double reduction of the counted
 * losses whose mean and count are copied to the host. Bad targets at counted
 * rows are reported through the ctx flag. */
#include "ops/cuda/cuda_common.cuh"

__global__ static void ce_fwd_kernel(float *probs, float *losses, int *flag, const float *logits,
                                     const int32_t *targets, const uint8_t *mask, int V) {
    __shared__ float red[32];
    int n = blockIdx.x;
    const float *x = logits + (size_t)n * V;
    float *p = probs + (size_t)n * V;
    int counted = !mask || mask[n];
    int t = targets[n];
    int bad = counted && (t < 0 || t >= V);
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, x[i]);
    mx = vt_block_max(mx, red);
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(x[i] - mx);
    s = vt_block_sum(s, red);
    /* Read the target logit before p (which may alias x) is written. */
    float xt = counted && !bad ? x[t] : 0.0f;
    __syncthreads();
    float inv = 1.0f / s;
    for (int i = threadIdx.x; i < V; i += blockDim.x) p[i] = expf(x[i] - mx) * inv;
    if (threadIdx.x == 0) {
        if (bad) atomicMin(flag, n);
        losses[n] = counted && !bad ? logf(s) - (xt - mx) : 0.0f;
    }
}

/* Single block: sum of counted losses (double) and count. */
__global__ static void ce_reduce_kernel(double *result, const float *losses,
                                        const uint8_t *mask, int N) {
    __shared__ double sh[256];
    __shared__ int shc[256];
    double s = 0.0;
    int c = 0;
    for (int n = threadIdx.x; n < N; n += blockDim.x)
        if (!mask || mask[n]) {
            s += losses[n];
            c++;
        }
    sh[threadIdx.x] = s;
    shc[threadIdx.x] = c;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) {
            sh[threadIdx.x] += sh[threadIdx.x + o];
            shc[threadIdx.x] += shc[threadIdx.x + o];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        result[0] = sh[0];
        result[1] = (double)shc[0];
    }
}

extern "C" vt_status vt_cuda_crossentropy_forward(vt_ctx *ctx, float *probs, float *losses,
                                                  const float *logits, const int32_t *targets,
                                                  const uint8_t *mask, int N, int V,
                                                  float *mean_loss, int *count) {
    cudaStream_t st = vt_cuda_stream(ctx);
    /* Workspace: per-row losses when the caller passes none, then 2 doubles. */
    size_t loss_bytes = ((sizeof(float) * (size_t)N + 15) / 16) * 16;
    char *ws = static_cast<char *>(vt_ops_scratch(ctx, loss_bytes + 2 * sizeof(double)));
    if (!ws) return ctx->err.code;
    float *row_loss = losses ? losses : reinterpret_cast<float *>(ws);
    double *result = reinterpret_cast<double *>(ws + loss_bytes);
    vt_status s = vt_cuda_flag_reset(ctx);
    if (s != VT_OK) return s;
    ce_fwd_kernel<<<N, 256, 0, st>>>(probs, row_loss, vt_cuda_state_of(ctx)->flag, logits,
                                     targets, mask, V);
    VT_CUDA_LAUNCHED(ctx);
    ce_reduce_kernel<<<1, 256, 0, st>>>(result, row_loss, mask, N);
    VT_CUDA_LAUNCHED(ctx);
    double host[2];
    VT_CUDA_CK(ctx, cudaMemcpyAsync(host, result, sizeof host, cudaMemcpyDeviceToHost, st));
    int bad = 0;
    s = vt_cuda_flag_read(ctx, &bad); /* synchronises the stream */
    if (s != VT_OK) return s;
    if (bad != INT_MAX) {
        int32_t t = 0;
        VT_CUDA_CK(ctx, cudaMemcpy(&t, targets + bad, sizeof t, cudaMemcpyDeviceToHost));
        return vt_ops_fail(ctx, VT_ERR_RANGE,
                           "vt_crossentropy_forward: target %d at counted position %d is outside "
                           "[0, %d)", (int)t, bad, V);
    }
    int cnt = (int)host[1];
    if (mean_loss) *mean_loss = cnt ? (float)(host[0] / cnt) : 0.0f;
    if (count) *count = cnt;
    return VT_OK;
}

__global__ static void ce_bwd_kernel(float *dlogits, int *flag, const float *probs,
                                     const int32_t *targets, const uint8_t *mask, int V,
                                     float scale) {
    int n = blockIdx.x;
    if (mask && !mask[n]) return;
    int t = targets[n];
    if (t < 0 || t >= V) {
        if (threadIdx.x == 0) atomicMin(flag, n);
        return;
    }
    const float *p = probs + (size_t)n * V;
    float *d = dlogits + (size_t)n * V;
    for (int i = threadIdx.x; i < V; i += blockDim.x) d[i] += scale * (p[i] - (i == t ? 1.0f : 0.0f));
}

extern "C" vt_status vt_cuda_crossentropy_backward(vt_ctx *ctx, float *dlogits,
                                                   const float *probs, const int32_t *targets,
                                                   const uint8_t *mask, int N, int V,
                                                   float scale) {
    vt_status s = vt_cuda_flag_reset(ctx);
    if (s != VT_OK) return s;
    ce_bwd_kernel<<<N, 256, 0, vt_cuda_stream(ctx)>>>(dlogits, vt_cuda_state_of(ctx)->flag, probs,
                                                      targets, mask, V, scale);
    VT_CUDA_LAUNCHED(ctx);
    int bad = 0;
    s = vt_cuda_flag_read(ctx, &bad);
    if (s != VT_OK) return s;
    if (bad != INT_MAX) {
        int32_t t = 0;
        VT_CUDA_CK(ctx, cudaMemcpy(&t, targets + bad, sizeof t, cudaMemcpyDeviceToHost));
        return vt_ops_fail(ctx, VT_ERR_RANGE,
                           "vt_crossentropy_backward: target %d at counted position %d is outside "
                           "[0, %d)", (int)t, bad, V);
    }
    return VT_OK;
}
