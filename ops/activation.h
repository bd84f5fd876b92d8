/* Pointwise activations and the SwiGLU gate. Names follow Hugging Face's
 * `hidden_act` strings so a config.json value maps to an enum directly. */
#ifndef VT_OPS_ACTIVATION_H
#define VT_OPS_ACTIVATION_H

#include <stddef.h>

#include "ops/ctx.h"

typedef enum vt_activation {
    VT_ACT_GELU = 0,       /* exact: 0.5 x (1 + erf(x / sqrt 2)); HF "gelu" */
    VT_ACT_GELU_TANH = 1,  /* tanh approximation; HF "gelu_pytorch_tanh", "gelu_new" */
    VT_ACT_QUICK_GELU = 2, /* x * sigmoid(1.702 x); HF "quick_gelu" (CLIP) */
    VT_ACT_SILU = 3,       /* x * sigmoid(x); HF "silu" (LLaMA) */
} vt_activation;

/* Parse an HF hidden_act name; VT_ERR_ARG naming the value when unknown. */
vt_status vt_activation_from_name(const char *name, vt_activation *out, vt_error *err);
/* The canonical HF name of an activation ("gelu", "gelu_pytorch_tanh", ...). */
const char *vt_activation_name(vt_activation act);

/* out[n] = act(inp[n]); out may alias inp only if no backward will run. */
vt_status vt_activation_forward(vt_ctx *ctx, vt_activation act, float *out, const float *inp,
                                size_t n);
/* dinp[n] += act'(inp[n]) * dout[n]. */
vt_status vt_activation_backward(vt_ctx *ctx, vt_activation act, float *dinp,
                                 const float *dout, const float *inp, size_t n);

/* SwiGLU gate of the LLaMA MLP: out[n] = silu(gate[n]) * up[n] (the caller
 * runs the gate/up/down linears). */
vt_status vt_swiglu_forward(vt_ctx *ctx, float *out, const float *gate, const float *up,
                            size_t n);
/* ADDS into dgate[n] and dup[n]; either may be NULL. */
vt_status vt_swiglu_backward(vt_ctx *ctx, float *dgate, float *dup, const float *dout,
                             const float *gate, const float *up, size_t n);

#endif
