/* Elementwise CUDA kernels: activations, SwiGLU, residual, scale, sum of
 * squares (double accumulation) and the AdamW update. Grid-stride loops. */
#include "ops/cuda/cuda_common.cuh"

#define GRID_STRIDE(i, n)                                                  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ static void act_fwd_kernel(int act, float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float y;
        switch (act) {
        case VT_ACT_GELU: y = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); break;
        case VT_ACT_GELU_TANH: {
            float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
            y = 0.5f * x * (1.0f + tanhf(u));
            break;
        }
        case VT_ACT_QUICK_GELU: y = x * sigmoid_f(1.702f * x); break;
        default: y = x * sigmoid_f(x); break;
        }
        out[i] = y;
    }
}

__global__ static void act_bwd_kernel(int act, float *dinp, const float *dout, const float *inp,
                                      size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float d;
        switch (act) {
        case VT_ACT_GELU:
            d = 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
                x * 0.39894228040143268f * expf(-0.5f * x * x);
            break;
        case VT_ACT_GELU_TANH: {
            float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
            float t = tanhf(u);
            float du = 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
            d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
            break;
        }
        case VT_ACT_QUICK_GELU: {
            float s = sigmoid_f(1.702f * x);
            d = s + 1.702f * x * s * (1.0f - s);
            break;
        }
        default: {
            float s = sigmoid_f(x);
            d = s * (1.0f + x * (1.0f - s));
            break;
        }
        }
        dinp[i] += dout[i] * d;
    }
}

extern "C" vt_status vt_cuda_activation_forward(vt_ctx *ctx, vt_activation act, float *out,
                                                const float *inp, size_t n) {
    if (!n) return VT_OK;
    act_fwd_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>((int)act, out, inp,
                                                                            n);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_activation_backward(vt_ctx *ctx, vt_activation act, float *dinp,
                                                 const float *dout, const float *inp, size_t n) {
    if (!n) return VT_OK;
    act_bwd_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>((int)act, dinp, dout,
                                                                            inp, n);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

__global__ static void swiglu_fwd_kernel(float *out, const float *gate, const float *up,
                                         size_t n) {
    GRID_STRIDE(i, n) {
        float g = gate[i];
        out[i] = g * sigmoid_f(g) * up[i];
    }
}

__global__ static void swiglu_bwd_kernel(float *dgate, float *dup, const float *dout,
                                         const float *gate, const float *up, size_t n) {
    GRID_STRIDE(i, n) {
        float g = gate[i], s = sigmoid_f(g);
        if (dgate) dgate[i] += dout[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
        if (dup) dup[i] += dout[i] * g * s;
    }
}

extern "C" vt_status vt_cuda_swiglu_forward(vt_ctx *ctx, float *out, const float *gate,
                                            const float *up, size_t n) {
    if (!n) return VT_OK;
    swiglu_fwd_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>(out, gate, up, n);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_swiglu_backward(vt_ctx *ctx, float *dgate, float *dup,
                                             const float *dout, const float *gate,
                                             const float *up, size_t n) {
    if (!n) return VT_OK;
    swiglu_bwd_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>(dgate, dup, dout,
                                                                               gate, up, n);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

__global__ static void add_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ static void acc2_kernel(float *da, float *db, const float *dout, size_t n) {
    GRID_STRIDE(i, n) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}
__global__ static void scale_kernel(float *x, size_t n, float s) { GRID_STRIDE(i, n) x[i] *= s; }

extern "C" vt_status vt_cuda_residual_forward(vt_ctx *ctx, float *out, const float *a,
                                              const float *b, size_t n) {
    if (!n) return VT_OK;
    add_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>(out, a, b, n);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_residual_backward(vt_ctx *ctx, float *da, float *db,
                                               const float *dout, size_t n) {
    if (!n || (!da && !db)) return VT_OK;
    acc2_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>(da, db, dout, n);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_scale(vt_ctx *ctx, float *x, size_t n, float s) {
    if (!n) return VT_OK;
    scale_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>(x, n, s);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

/* Per-block double partial sums; the host adds the (few) partials. */
__global__ static void sumsq_kernel(double *partial, const float *x, size_t n) {
    __shared__ double sh[256];
    double s = 0.0;
    GRID_STRIDE(i, n) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

extern "C" vt_status vt_cuda_sumsq(vt_ctx *ctx, const float *x, size_t n, double *out) {
    enum { BLOCKS = 256 };
    *out = 0.0;
    if (!n) return VT_OK;
    double *partial = static_cast<double *>(vt_ops_scratch(ctx, sizeof(double) * BLOCKS));
    if (!partial) return ctx->err.code;
    sumsq_kernel<<<BLOCKS, 256, 0, vt_cuda_stream(ctx)>>>(partial, x, n);
    VT_CUDA_LAUNCHED(ctx);
    double host[BLOCKS];
    VT_CUDA_CK(ctx, cudaMemcpyAsync(host, partial, sizeof host, cudaMemcpyDeviceToHost,
                                    vt_cuda_stream(ctx)));
    VT_CUDA_CK(ctx, cudaStreamSynchronize(vt_cuda_stream(ctx)));
    double s = 0.0;
    for (int i = 0; i < BLOCKS; i++) s += host[i];
    *out = s;
    return VT_OK;
}

__global__ static void adamw_kernel(float *p, const float *g, float *m, float *v,
                                    const uint8_t *mask, size_t n, float b1, float b2, float eps,
                                    float step_size, float bc2_sqrt, float decay) {
    GRID_STRIDE(i, n) {
        float gi = g[i];
        float pi = p[i];
        if (!mask || mask[i]) pi *= decay;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

extern "C" vt_status vt_cuda_adamw(vt_ctx *ctx, float *params, const float *grads, float *m,
                                   float *v, const uint8_t *decay_mask, size_t n, float beta1,
                                   float beta2, float eps, float step_size, float bc2_sqrt,
                                   float decay) {
    if (!n) return VT_OK;
    adamw_kernel<<<vt_cuda_blocks(n, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        params, grads, m, v, decay_mask, n, beta1, beta2, eps, step_size, bc2_sqrt, decay);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}
