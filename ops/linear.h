/* Fully connected layer over row-major float32 buffers, weights in PyTorch /
 * Hugging Face nn.Linear layout ([OC, C]) so checkpoints map one to one. */
#ifndef VT_OPS_LINEAR_H
#define VT_OPS_LINEAR_H

#include "ops/ctx.h"

/* out[N,OC] = inp[N,C] . w[OC,C]^T + bias[OC]. bias may be NULL (no bias).
 * out must not alias inp. */
vt_status vt_linear_forward(vt_ctx *ctx, float *out, const float *inp, const float *w,
                            const float *bias, int N, int C, int OC);

/* Backward of vt_linear_forward. ADDS into dinp[N,C], dw[OC,C], dbias[OC];
 * any of the three may be NULL to skip it (frozen weights, first layer). */
vt_status vt_linear_backward(vt_ctx *ctx, float *dinp, float *dw, float *dbias,
                             const float *dout, const float *inp, const float *w,
                             int N, int C, int OC);

#endif
