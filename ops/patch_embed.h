/* CLIP patch embedding: Conv2d with kernel = stride = P and no bias, weight
 * [D, Cin, P, P] as HF CLIPVisionEmbeddings.patch_embedding, computed as
 * im2col + sgemm. Patches come out row-major over the grid (HF's
 * flatten(2).transpose(1, 2)). */
#ifndef VT_OPS_PATCH_EMBED_H
#define VT_OPS_PATCH_EMBED_H

#include "ops/ctx.h"

/* img [B, Cin, H, W] (NCHW, like pixel_values) -> out [B, (H/P)*(W/P), D].
 * H and W must be multiples of P (VT_ERR_ARG otherwise). */
vt_status vt_patch_embed_forward(vt_ctx *ctx, float *out, const float *img, const float *w,
                                 int B, int Cin, int H, int W, int P, int D);
/* ADDS into dw [D,Cin,P,P] and dimg [B,Cin,H,W]; either may be NULL (pixels
 * usually need no gradient). */
vt_status vt_patch_embed_backward(vt_ctx *ctx, float *dimg, float *dw, const float *dout,
                                  const float *img, const float *w,
                                  int B, int Cin, int H, int W, int P, int D);

#endif
