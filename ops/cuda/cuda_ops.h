/* Private to ops/: the CUDA backend's entry points, called by the op files'
 * dispatch after argument validation (so these assume valid shapes). Pointers
 * are device pointers; everything runs on the ctx's stream. Compiled only
 * when VT_HAVE_CUDA. */
#ifndef VT_OPS_CUDA_OPS_H
#define VT_OPS_CUDA_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/activation.h"
#include "ops/ctx.h"
#include "ops/vib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ctx.cu */
int vt_cuda_count_devices(void);
vt_status vt_cuda_ctx_init(vt_ctx *ctx);
void vt_cuda_ctx_release(vt_ctx *ctx);
vt_status vt_cuda_alloc(vt_ctx *ctx, void **out, size_t bytes);
void vt_cuda_free(vt_ctx *ctx, void *p);
/* kind: 0 host->device, 1 device->host, 2 device->device */
vt_status vt_cuda_memcpy(vt_ctx *ctx, void *dst, const void *src, size_t bytes, int kind);
vt_status vt_cuda_memset_zero(vt_ctx *ctx, void *dst, size_t bytes);
vt_status vt_cuda_sync(vt_ctx *ctx);

/* linear.cu */
vt_status vt_cuda_linear_forward(vt_ctx *ctx, float *out, const float *inp, const float *w,
                                 const float *bias, int N, int C, int OC);
vt_status vt_cuda_linear_backward(vt_ctx *ctx, float *dinp, float *dw, float *dbias,
                                  const float *dout, const float *inp, const float *w, int N,
                                  int C, int OC);
vt_status vt_cuda_patch_embed_forward(vt_ctx *ctx, float *out, const float *img, const float *w,
                                      int B, int Cin, int H, int W, int P, int D);
vt_status vt_cuda_patch_embed_backward(vt_ctx *ctx, float *dimg, float *dw, const float *dout,
                                       const float *img, const float *w, int B, int Cin, int H,
                                       int W, int P, int D);

/* norm.cu */
vt_status vt_cuda_layernorm_forward(vt_ctx *ctx, float *out, float *mean, float *rstd,
                                    const float *inp, const float *w, const float *b, int N,
                                    int C, float eps);
vt_status vt_cuda_layernorm_backward(vt_ctx *ctx, float *dinp, float *dw, float *db,
                                     const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int N, int C);
vt_status vt_cuda_rmsnorm_forward(vt_ctx *ctx, float *out, float *rstd, const float *inp,
                                  const float *w, int N, int C, float eps);
vt_status vt_cuda_rmsnorm_backward(vt_ctx *ctx, float *dinp, float *dw, const float *dout,
                                   const float *inp, const float *w, const float *rstd, int N,
                                   int C);

/* pointwise.cu */
vt_status vt_cuda_activation_forward(vt_ctx *ctx, vt_activation act, float *out,
                                     const float *inp, size_t n);
vt_status vt_cuda_activation_backward(vt_ctx *ctx, vt_activation act, float *dinp,
                                      const float *dout, const float *inp, size_t n);
vt_status vt_cuda_swiglu_forward(vt_ctx *ctx, float *out, const float *gate, const float *up,
                                 size_t n);
vt_status vt_cuda_swiglu_backward(vt_ctx *ctx, float *dgate, float *dup, const float *dout,
                                  const float *gate, const float *up, size_t n);
vt_status vt_cuda_residual_forward(vt_ctx *ctx, float *out, const float *a, const float *b,
                                   size_t n);
vt_status vt_cuda_residual_backward(vt_ctx *ctx, float *da, float *db, const float *dout,
                                    size_t n);
vt_status vt_cuda_scale(vt_ctx *ctx, float *x, size_t n, float s);
vt_status vt_cuda_sumsq(vt_ctx *ctx, const float *x, size_t n, double *out);
vt_status vt_cuda_adamw(vt_ctx *ctx, float *params, const float *grads, float *m, float *v,
                        const uint8_t *decay_mask, size_t n, float beta1, float beta2, float eps,
                        float step_size, float bc2_sqrt, float decay);

/* embedding.cu */
vt_status vt_cuda_embedding_forward(vt_ctx *ctx, float *out, const int32_t *ids,
                                    const float *table, int N, int V, int C);
vt_status vt_cuda_embedding_backward(vt_ctx *ctx, float *dtable, const float *dout,
                                     const int32_t *ids, int N, int V, int C);
vt_status vt_cuda_crossentropy_forward(vt_ctx *ctx, float *probs, float *losses,
                                       const float *logits, const int32_t *targets,
                                       const uint8_t *mask, int N, int V, float *mean_loss,
                                       int *count);
vt_status vt_cuda_crossentropy_backward(vt_ctx *ctx, float *dlogits, const float *probs,
                                        const int32_t *targets, const uint8_t *mask, int N, int V,
                                        float scale);

/* attention.cu */
vt_status vt_cuda_rope(vt_ctx *ctx, float *out, const float *inp, const int32_t *pos, int B,
                       int T, int NH, int hd, float theta, float sign, int accumulate);
vt_status vt_cuda_attention_forward(vt_ctx *ctx, float *out, float *att, const float *q,
                                    const float *k, const float *v, const int32_t *kv_len, int B,
                                    int T, int NH, int NKV, int hd, int causal);
vt_status vt_cuda_attention_backward(vt_ctx *ctx, float *dq, float *dk, float *dv,
                                     const float *dout, const float *att, const float *q,
                                     const float *k, const float *v, int B, int T, int NH,
                                     int NKV, int hd);

/* rows.cu */
vt_status vt_cuda_rows_gather(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx, int n,
                              int width);
vt_status vt_cuda_rows_scatter(vt_ctx *ctx, float *dst, const float *src, const int32_t *idx, int n,
                               int width, bool accumulate);

vt_status vt_cuda_rows_reduce(vt_ctx *ctx, float *dst, const float *src, const int32_t *offsets,
                              const int32_t *sources, int n_dst, int width);

/* adaln.cu */
vt_status vt_cuda_modulate_forward(vt_ctx *ctx, float *out, const float *x, const float *mod, int mw, int shift,
                                   int scale, size_t R, int W);
vt_status vt_cuda_modulate_backward(vt_ctx *ctx, float *dm, const float *x, const float *mod, float *dmod, int mw,
                                    int shift, int scale, size_t R, int W);
vt_status vt_cuda_gated_add_forward(vt_ctx *ctx, float *out, const float *x, const float *y, const float *mod,
                                    int mw, int gate, size_t R, int W);
vt_status vt_cuda_gated_add_backward(vt_ctx *ctx, const float *dout, const float *y, const float *mod,
                                     float *dmod, float *dy, int mw, int gate, size_t R, int W);

/* noise.cu */
vt_status vt_cuda_normal_noise(vt_ctx *ctx, float *out, const uint64_t *keys, int streams, size_t per_stream);

/* vib.cu */
vt_status vt_cuda_vib_forward(vt_ctx *ctx, const vt_vib_rows *r, float *h, double *kl_rows);
vt_status vt_cuda_vib_backward(vt_ctx *ctx, const vt_vib_rows *r, const float *dh, double kl_coef,
                               float *d_o, float *d_x, float *gprior_mu, float *gprior_logvar);

#ifdef __cplusplus
}
#endif

#endif
