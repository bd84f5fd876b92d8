/* Row normalisations: LayerNorm (CLIP vision tower) and RMSNorm (LLaMA).
 * Row statistics are computed in double and cached for the backward pass. */
#ifndef VT_OPS_NORM_H
#define VT_OPS_NORM_H

#include "ops/ctx.h"

/* out[N,C] = (inp - mean) * rstd * w + b per row, biased variance as in
 * torch.nn.LayerNorm. Writes the caches mean[N] and rstd[N] (both required).
 * w and/or b may be NULL (no affine: w = 1, b = 0). eps > 0. out may alias inp
 * only if no backward will be run (backward needs inp). */
vt_status vt_layernorm_forward(vt_ctx *ctx, float *out, float *mean, float *rstd,
                               const float *inp, const float *w, const float *b,
                               int N, int C, float eps);
/* ADDS into dinp[N,C], dw[C], db[C]; each may be NULL to skip. */
vt_status vt_layernorm_backward(vt_ctx *ctx, float *dinp, float *dw, float *db,
                                const float *dout, const float *inp, const float *w,
                                const float *mean, const float *rstd, int N, int C);

/* out[N,C] = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps) per row, as HF
 * LlamaRMSNorm. Writes the cache rstd[N] (required). w may be NULL (= 1). */
vt_status vt_rmsnorm_forward(vt_ctx *ctx, float *out, float *rstd, const float *inp,
                             const float *w, int N, int C, float eps);
/* ADDS into dinp[N,C] and dw[C]; each may be NULL to skip. */
vt_status vt_rmsnorm_backward(vt_ctx *ctx, float *dinp, float *dw, const float *dout,
                              const float *inp, const float *w, const float *rstd,
                              int N, int C);

#endif
