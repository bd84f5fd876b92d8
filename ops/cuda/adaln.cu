/* adaLN-Zero modulation and gating kernels (ops/adaln.h): one thread per
 * element of the [R, W] activations. */
#include "ops/cuda/cuda_common.cuh"

#define EACH(k, total)                                                           \
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < (total); \
         k += (size_t)gridDim.x * blockDim.x)

__global__ static void modulate_fwd(float *out, const float *x, const float *mod, int mw, int shift, int scale,
                                    size_t R, int W) {
    EACH(k, R * W) {
        size_t r = k / W, j = k % W;
        const float *m = mod + r * mw;
        out[k] = x[k] * (1.0f + m[scale + j]) + m[shift + j];
    }
}

__global__ static void modulate_bwd(float *dm, const float *x, const float *mod, float *dmod, int mw, int shift,
                                    int scale, size_t R, int W) {
    EACH(k, R * W) {
        size_t r = k / W, j = k % W;
        float d = dm[k];
        dmod[r * mw + shift + j] = d;
        dmod[r * mw + scale + j] = d * x[k];
        dm[k] = d * (1.0f + mod[r * mw + scale + j]);
    }
}

__global__ static void gated_fwd(float *out, const float *x, const float *y, const float *mod, int mw, int gate,
                                 size_t R, int W) {
    EACH(k, R * W) out[k] = x[k] + mod[(k / W) * mw + gate + k % W] * y[k];
}

__global__ static void gated_bwd(const float *dout, const float *y, const float *mod, float *dmod, float *dy,
                                 int mw, int gate, size_t R, int W) {
    EACH(k, R * W) {
        size_t g = (k / W) * mw + gate + k % W;
        float d = dout[k];
        dmod[g] = d * y[k];
        dy[k] = d * mod[g];
    }
}

#define LAUNCH(kernel, n, ...)                                                                    \
    do {                                                                                          \
        kernel<<<vt_cuda_blocks((n), 256), 256, 0, vt_cuda_stream(ctx)>>>(__VA_ARGS__);          \
        VT_CUDA_LAUNCHED(ctx);                                                                    \
        return VT_OK;                                                                             \
    } while (0)

extern "C" vt_status vt_cuda_modulate_forward(vt_ctx *ctx, float *out, const float *x, const float *mod, int mw,
                                              int shift, int scale, size_t R, int W) {
    LAUNCH(modulate_fwd, R * W, out, x, mod, mw, shift, scale, R, W);
}

extern "C" vt_status vt_cuda_modulate_backward(vt_ctx *ctx, float *dm, const float *x, const float *mod,
                                               float *dmod, int mw, int shift, int scale, size_t R, int W) {
    LAUNCH(modulate_bwd, R * W, dm, x, mod, dmod, mw, shift, scale, R, W);
}

extern "C" vt_status vt_cuda_gated_add_forward(vt_ctx *ctx, float *out, const float *x, const float *y,
                                               const float *mod, int mw, int gate, size_t R, int W) {
    LAUNCH(gated_fwd, R * W, out, x, y, mod, mw, gate, R, W);
}

extern "C" vt_status vt_cuda_gated_add_backward(vt_ctx *ctx, const float *dout, const float *y, const float *mod,
                                                float *dmod, float *dy, int mw, int gate, size_t R, int W) {
    LAUNCH(gated_bwd, R * W, dout, y, mod, dmod, dy, mw, gate, R, W);
}
