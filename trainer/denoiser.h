/* ROSS's reconstruction head (research/methods.md §2, DESIGN.md §4): a small
 * DiT denoiser that reconstructs per-image-token targets (raw pixel patches,
 * or a frozen teacher's latents) from the decoder's final hidden states at
 * the image positions. Training-only: nothing at inference calls it.
 *
 * Per image i with N = grid^2 image tokens, condition h_i [N, D] and target
 * x0_i [N, C], for each of K draws (t, eps):
 *   hn   = LayerNorm(h) (no affine, eps 1e-5)
 *   c    = Linear(SiLU(hn)) + TimestepMLP(sinusoid(t))  per token [N, W]
 *   x_t  = sqrt(ab[t]) x0 + sqrt(1 - ab[t]) eps        (ab = cosine schedule)
 *   x    = Linear(x_t) + fixed 2-D sin-cos position embedding
 *   x    = DiTBlock(x, c) x depth  (adaLN-Zero: shift/scale/gate from
 *          Linear(SiLU(c)), LayerNorm eps 1e-6 without affine, bidirectional
 *          multi-head attention over the N tokens, MLP with tanh-GELU)
 *   pred = Linear(LayerNorm(x) (1 + scale) + shift)     [N, C]
 *   loss = mean over draws, tokens and channels of (pred - eps)^2.
 * ROSS-R (VT_ROSS_REGRESS) runs the same network without noise and without
 * the timestep: x_t = 0, c = Linear(SiLU(hn)), loss = mean (pred - x0)^2.
 *
 * Parameters (llm.c style): one flat buffer with named views, names as saved
 * in ross.safetensors. Linear weights xavier-uniform, biases 0; the condition
 * and timestep embedders' weights N(0, init_std); every adaLN modulation and
 * the output projection zero (adaLN-Zero: the initial prediction is 0 and
 * nothing upstream of the output layer gets a gradient on the first step).
 * Parameters, gradients and activations live in the ops' vt_ctx memory (the
 * device on CUDA) and every layer runs as ops on it (adaLN: ops/adaln.h;
 * broadcasts and their sums: ops/rows.h); targets, timesteps and noise are
 * drawn on the host and uploaded, and the MSE is summed on the host. */
#ifndef VT_TRAINER_DENOISER_H
#define VT_TRAINER_DENOISER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "ops/ctx.h"

typedef enum vt_ross_variant {
    VT_ROSS_DENOISE = 0, /* ROSS-D: epsilon prediction on noised targets (the method) */
    VT_ROSS_REGRESS = 1, /* ROSS-R: predict the target itself from the condition */
} vt_ross_variant;

typedef struct vt_denoiser_config {
    vt_ross_variant variant; /* VT_ROSS_DENOISE */
    /* set by vt_denoiser_config_resolve from the model and the targets */
    int cond_dim;   /* D: decoder hidden size */
    int grid;       /* image tokens per side: N = grid^2 */
    int target_dim; /* C: channels per target token (3 P^2 for pixel patches) */
    /* network */
    int width;       /* W; 0 = min(D, 1024) (resolved). Multiple of 4 and of heads */
    int depth;       /* DiT blocks (3) */
    int heads;       /* attention heads (16; must divide W) */
    float mlp_ratio; /* MLP hidden = (int)(W * mlp_ratio) (4) */
    int freq_dim;    /* sinusoidal timestep features (256, even) */
    float init_std;  /* condition / timestep embedder weights ~ N(0, init_std) (0.02) */
    /* diffusion */
    int steps;       /* cosine schedule length T (1000); t ~ U{0..T-1} */
    int draws;       /* independent (t, eps) draws per image (4) */
    /* used by the recipe, not by the module */
    float weight;    /* loss weight (1) */
} vt_denoiser_config;

/* Defaults above; cond_dim, grid, target_dim 0. */
void vt_denoiser_config_default(vt_denoiser_config *c);
/* Reads the `prefix` section (normally "ross") over c: variant
 * (denoise|regress), width, depth, heads, mlp_ratio, freq_dim, init_std,
 * steps, draws, weight. Absent keys keep their values; VT_ERR_ARG names the
 * key on a bad value (an explicit width is checked against heads here). The
 * section's `target` and `pixel_norm` keys belong to the recipe. */
vt_status vt_denoiser_config_read(const vt_config *cfg, const char *prefix,
                                  vt_denoiser_config *c, vt_error *err);
/* Sets cond_dim, grid, target_dim, resolves width 0 and validates the
 * network shape; VT_ERR_ARG naming the key otherwise. */
vt_status vt_denoiser_config_resolve(vt_denoiser_config *c, int cond_dim, int grid,
                                     int target_dim, vt_error *err);

/* The improved-DDPM cosine schedule: alpha_bar(s) = cos((s + 0.008) / 1.008
 * * pi / 2)^2, beta_t = min(1 - alpha_bar((t+1)/T) / alpha_bar(t/T), 0.999),
 * out[t] = prod_{j<=t} (1 - beta_j) for t = 0..T-1 (in double). */
void vt_ross_cosine_schedule(int T, double *out);

/* Timesteps and noise for n_img images: for image i and draw k, a Philox
 * stream keyed by hash(key, i, k) gives t[i*K + k] uniform in [0, steps) and
 * then eps[(i*K + k) * N * C ...] N(0, 1). A pure function of (key, i, k):
 * the caller derives key from (seed, step, micro-batch, rank) so that a
 * resumed run draws the same noise. */
void vt_denoiser_noise(const vt_denoiser_config *c, int n_img, uint64_t key, int32_t *t,
                       float *eps);

/* Raw-pixel targets on the image-token grid: pixels [n_img, 3, S, S]
 * (NCHW, as the batch carries them) -> out [n_img, (S/P)^2, 3 P^2], patch
 * tokens row-major over the grid and each token's channels in the order
 * (c, y, x), exactly the vision tower's patch embedding (im2col) order, so
 * target token j lines up with image token j. With mean and std (per
 * channel) given, the CLIP normalisation is undone and the values mapped to
 * [-1, 1] as the reference does for its VAE input: clamp((p std + mean -
 * 0.5) / 0.5, -1, 1); mean = std = NULL copies the values unchanged. S must
 * be a multiple of P (VT_ERR_ARG). */
vt_status vt_ross_pixel_targets(const float *pixels, int n_img, int S, int P, const float *mean,
                                const float *std, float *out, vt_error *err);

typedef struct vt_dit_block {
    float *ada_w, *ada_b;   /* [6W, W], [6W]: shift/scale/gate (attn), shift/scale/gate (mlp) */
    float *qkv_w, *qkv_b;   /* [3W, W], [3W]: rows q, then k, then v (heads contiguous) */
    float *proj_w, *proj_b; /* [W, W], [W] */
    float *fc1_w, *fc1_b;   /* [M, W], [M] */
    float *fc2_w, *fc2_b;   /* [W, M], [W] */
} vt_dit_block;

typedef struct vt_denoiser_views {
    float *x_w, *x_b;       /* x_embed [W, C], [W] */
    float *t1_w, *t1_b;     /* t_embed.fc1 [W, F], [W] */
    float *t2_w, *t2_b;     /* t_embed.fc2 [W, W], [W] */
    float *z_w, *z_b;       /* z_embed (condition) [W, D], [W] */
    vt_dit_block *blocks;   /* [depth] */
    float *fada_w, *fada_b; /* final.adaln [2W, W], [2W]: shift, scale */
    float *out_w, *out_b;   /* final.linear [C, W], [C] */
} vt_denoiser_views;

typedef struct vt_denoiser_tensor {
    char name[64];
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
    bool decay; /* weight decay applies (matrices) */
} vt_denoiser_tensor;

typedef struct vt_denoiser_work vt_denoiser_work; /* activations (private) */

typedef struct vt_denoiser {
    vt_denoiser_config cfg;
    vt_ctx *ctx;           /* borrowed */
    float *params, *grads; /* num_params floats each, ctx memory */
    size_t num_params;
    vt_denoiser_views w, g;
    int ntensors;
    vt_denoiser_tensor *tensors;
    double *alpha_bar;     /* [steps] */
    float *pos;            /* [N, W] fixed 2-D sin-cos position embedding (ctx memory) */
    vt_denoiser_work *work;
    /* results of the last forward */
    double loss;           /* mean squared error over draws, tokens, channels */
    int n_img;
} vt_denoiser;

/* Allocates parameters (initialised as above, each tensor from a Philox
 * stream keyed by (seed, tensor name)) and zeroed gradients. The config must
 * be resolved. */
vt_status vt_denoiser_create(vt_denoiser **out, vt_ctx *ctx, const vt_denoiser_config *cfg,
                             uint64_t seed, vt_error *err);
void vt_denoiser_free(vt_denoiser *dn);
void vt_denoiser_zero_grad(vt_denoiser *dn);

/* cond [n_img, N, D] (ctx memory: the decoder's hidden states at each
 * image's N token positions), target [n_img, N, C] (host). DENOISE: t [n_img, K] and eps [n_img, K,
 * N, C] (vt_denoiser_noise, or fixed values in tests); REGRESS: both ignored
 * (may be NULL). Sets dn->loss and keeps what backward needs (inputs are
 * copied). n_img may change between calls; n_img 0 gives loss 0. */
vt_status vt_denoiser_forward(vt_denoiser *dn, const float *cond, const float *target, int n_img,
                              const int32_t *t, const float *eps, vt_error *err);
/* Backward of scale * dn->loss for the last forward: ADDS into dn->grads and,
 * when dcond (ctx memory) is not NULL, into dcond [n_img, N, D] (the
 * gradient into the decoder). */
vt_status vt_denoiser_backward(vt_denoiser *dn, float *dcond, float scale, vt_error *err);
/* The last forward's prediction [n_img * K, N, C] (K = 1 for REGRESS), host. */
const float *vt_denoiser_prediction(const vt_denoiser *dn);

/* ross.safetensors: F32, names as in dn->tensors, metadata
 * vistune_method=ross, written atomically. Load is strict: every tensor
 * present with the exact shape and no unknown tensor (VT_ERR_FORMAT). */
vt_status vt_denoiser_save(const vt_denoiser *dn, const char *path, vt_error *err);
vt_status vt_denoiser_load(vt_denoiser *dn, const char *path, vt_error *err);

#endif
