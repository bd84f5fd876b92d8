/* adaLN-Zero's elementwise steps (DiT; the ROSS denoiser, trainer/denoiser.h)
 * on either backend. A modulation row mod [mw] holds the shift, scale and
 * gate vectors of one token at column offsets; x, y, out are [R, W]. */
#ifndef VT_OPS_ADALN_H
#define VT_OPS_ADALN_H

#include <stddef.h>

#include "ops/ctx.h"

/* out = x * (1 + mod[scale..]) + mod[shift..], per row. */
vt_status vt_modulate_forward(vt_ctx *ctx, float *out, const float *x, const float *mod, int mw, int shift,
                              int scale, size_t R, int W);
/* Backward of vt_modulate_forward: dm holds dL/dout on entry and dL/dx on
 * return (in place); WRITES the shift and scale columns of dmod (from the
 * forward's input x). */
vt_status vt_modulate_backward(vt_ctx *ctx, float *dm, const float *x, const float *mod, float *dmod, int mw,
                               int shift, int scale, size_t R, int W);
/* out = x + mod[gate..] * y, per row. */
vt_status vt_gated_add_forward(vt_ctx *ctx, float *out, const float *x, const float *y, const float *mod, int mw,
                               int gate, size_t R, int W);
/* Backward of vt_gated_add_forward for dL/dout = dout: WRITES the gate
 * columns of dmod and dy = dout * gate (the x path is dout itself). */
vt_status vt_gated_add_backward(vt_ctx *ctx, const float *dout, const float *y, const float *mod, float *dmod,
                                float *dy, int mw, int gate, size_t R, int W);

#endif
