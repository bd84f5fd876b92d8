/* Pointwise activations and SwiGLU on the CPU. Derivatives are the analytic
 * ones of the exact forms (no approximation in the backward pass). */
#include "ops/activation.h"

#include <math.h>
#include <string.h>

#include "ops/ctx_internal.h"

static const struct {
    const char *name;
    vt_activation act;
} act_names[] = {
    {"gelu", VT_ACT_GELU},
    {"gelu_pytorch_tanh", VT_ACT_GELU_TANH},
    {"gelu_new", VT_ACT_GELU_TANH}, /* same formula under an older HF name */
    {"quick_gelu", VT_ACT_QUICK_GELU},
    {"silu", VT_ACT_SILU},
    {"swish", VT_ACT_SILU},
};

vt_status vt_activation_from_name(const char *name, vt_activation *out, vt_error *err) {
    if (!name || !out) return vt_fail(err, VT_ERR_ARG, "activation: NULL argument");
    for (size_t i = 0; i < sizeof act_names / sizeof act_names[0]; i++) {
        if (strcmp(name, act_names[i].name) == 0) {
            *out = act_names[i].act;
            return VT_OK;
        }
    }
    return vt_fail(err, VT_ERR_ARG,
                   "unknown activation '%s' (expected gelu, gelu_pytorch_tanh, gelu_new, "
                   "quick_gelu, silu)", name);
}

const char *vt_activation_name(vt_activation act) {
    switch (act) {
    case VT_ACT_GELU: return "gelu";
    case VT_ACT_GELU_TANH: return "gelu_pytorch_tanh";
    case VT_ACT_QUICK_GELU: return "quick_gelu";
    case VT_ACT_SILU: return "silu";
    }
    return "unknown";
}

#define SQRT1_2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_K 0.044715f
#define QUICK_GELU_A 1.702f

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static vt_status check(vt_ctx *ctx, const char *op, vt_activation act, const void *a,
                       const void *b) {
    VT_OPS_REQUIRE(ctx, op, a && b, "NULL buffer");
    VT_OPS_REQUIRE(ctx, op, act >= VT_ACT_GELU && act <= VT_ACT_SILU, "unknown activation %d",
                   (int)act);
    return VT_OK;
}

vt_status vt_activation_forward(vt_ctx *ctx, vt_activation act, float *out, const float *inp,
                                size_t n) {
    VT_OPS_CTX(ctx);
    vt_status st = check(ctx, "vt_activation_forward", act, out, inp);
    if (st != VT_OK) return st;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_activation_forward(ctx, act, out, inp, n);
#endif
    long long nn = (long long)n;
    switch (act) {
    case VT_ACT_GELU:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + erff(x * SQRT1_2));
        }
        break;
    case VT_ACT_GELU_TANH:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i];
            float u = SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x);
            out[i] = 0.5f * x * (1.0f + tanhf(u));
        }
        break;
    case VT_ACT_QUICK_GELU:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) out[i] = inp[i] * sigmoidf(QUICK_GELU_A * inp[i]);
        break;
    case VT_ACT_SILU:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) out[i] = inp[i] * sigmoidf(inp[i]);
        break;
    }
    return VT_OK;
}

vt_status vt_activation_backward(vt_ctx *ctx, vt_activation act, float *dinp,
                                 const float *dout, const float *inp, size_t n) {
    VT_OPS_CTX(ctx);
    vt_status st = check(ctx, "vt_activation_backward", act, dinp, inp);
    if (st != VT_OK) return st;
    VT_OPS_PTR(ctx, "vt_activation_backward", dout);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_activation_backward(ctx, act, dinp, dout, inp, n);
#endif
    long long nn = (long long)n;
    switch (act) {
    case VT_ACT_GELU:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + erff(x * SQRT1_2));
            float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
            dinp[i] += dout[i] * (cdf + x * pdf);
        }
        break;
    case VT_ACT_GELU_TANH:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i];
            float u = SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x);
            float t = tanhf(u);
            float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_K * x * x);
            dinp[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
        }
        break;
    case VT_ACT_QUICK_GELU:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i], s = sigmoidf(QUICK_GELU_A * x);
            dinp[i] += dout[i] * (s + QUICK_GELU_A * x * s * (1.0f - s));
        }
        break;
    case VT_ACT_SILU:
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
        for (long long i = 0; i < nn; i++) {
            float x = inp[i], s = sigmoidf(x);
            dinp[i] += dout[i] * (s * (1.0f + x * (1.0f - s)));
        }
        break;
    }
    return VT_OK;
}

vt_status vt_swiglu_forward(vt_ctx *ctx, float *out, const float *gate, const float *up,
                            size_t n) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_swiglu_forward";
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, gate);
    VT_OPS_PTR(ctx, op, up);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_swiglu_forward(ctx, out, gate, up, n);
#endif
    long long nn = (long long)n;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long i = 0; i < nn; i++) {
        float g = gate[i];
        out[i] = g * sigmoidf(g) * up[i];
    }
    return VT_OK;
}

vt_status vt_swiglu_backward(vt_ctx *ctx, float *dgate, float *dup, const float *dout,
                             const float *gate, const float *up, size_t n) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_swiglu_backward";
    VT_OPS_PTR(ctx, op, dout);
    VT_OPS_PTR(ctx, op, gate);
    VT_OPS_PTR(ctx, op, up);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_swiglu_backward(ctx, dgate, dup, dout, gate, up, n);
#endif
    long long nn = (long long)n;
#pragma omp parallel for num_threads(ctx->threads) schedule(static)
    for (long long i = 0; i < nn; i++) {
        float g = gate[i], s = sigmoidf(g);
        if (dgate) dgate[i] += dout[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
        if (dup) dup[i] += dout[i] * g * s;
    }
    return VT_OK;
}
