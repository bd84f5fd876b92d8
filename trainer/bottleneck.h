/* Vittle's visual instruction bottleneck (research/methods.md §1): after
 * decoder block b, per-modality heads Linear(D->D) -> GELU -> Linear(D->2D)
 * give mu and log sigma^2 per token; training mixes h' = (1-a) h + a (mu +
 * sigma eps), inference h' = (1-a) h + a mu, and the loss gains
 * beta_v KL_v + beta_t KL_t against a fixed N(0, I) or a learnable prior.
 *
 * llm.c style: parameters and gradients are one flat buffer each with named
 * views, in the ctx's memory (the device on CUDA), and every pass runs as
 * ops on that ctx: row gather/scatter (ops/rows.h), the heads (linear,
 * GELU) and the reparameterise-mix-KL step (ops/vib.h). Only the row lists
 * and the per-row KL sums cross to the host. Rows are tokens of a [N, D]
 * hidden-state buffer (ctx memory); each row has a role (host) saying which
 * head, if any, touches it. */
#ifndef VT_TRAINER_BOTTLENECK_H
#define VT_TRAINER_BOTTLENECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "ops/ctx.h"

/* Which KL the loss uses.
 * TEXTBOOK: KL(N(mu, s^2) || N(mp, sp^2)) per dimension
 *   = 0.5 (log sp^2 - log s^2 + (s^2 + (mu - mp)^2) / sp^2 - 1); its minimum
 *   against N(0, I) is at s^2 = 1. The default: it is the bound the paper
 *   states and the README shows.
 * REFERENCE: the deeplearning-wisc/vittle code (vib_kld_loss, vib_kld_loss_lp),
 *   whose log-variance term has half weight: 0.5 (0.5 (log sp^2 - log s^2) +
 *   (s^2 + (mu - mp)^2) / sp^2 - 1); its minimum is at s^2 = sp^2 / 2. Kept
 *   to reproduce the published runs. */
typedef enum vt_bottleneck_kl { VT_BN_KL_TEXTBOOK = 0, VT_BN_KL_REFERENCE = 1 } vt_bottleneck_kl;

typedef struct vt_bottleneck_config {
    int hidden;           /* D, the decoder width */
    int layer;            /* acts on the output of decoder block `layer` (0-based);
                           * -1 = floor(0.75 * layers), resolved by vt_bottleneck_config_resolve */
    float alpha_end;      /* final mixing weight (0.5) */
    int64_t alpha_steps;  /* the alpha schedule's horizon in optimizer steps; 0 = the run's
                           * train.steps (progress = step / horizon, at most 1) */
    float beta_v, beta_t; /* KL weights (0.1, 0.1) */
    bool learnable_prior; /* Vittle(L): per-modality mean and log-variance vectors, init 0 */
    vt_bottleneck_kl kl;  /* VT_BN_KL_TEXTBOOK */
    float logvar_clamp;   /* log sigma^2 (and the prior's) clamped to +-this (2.3026 = ln 10) */
    float kl_max;         /* each KL term is clamped to this (1e4, as the reference) */
    float init_std;       /* head weights ~ N(0, init_std), biases 0 (0.02) */
} vt_bottleneck_config;

/* Defaults above with hidden 0 and layer -1. */
void vt_bottleneck_config_default(vt_bottleneck_config *c);
/* Reads the `prefix` section (normally "vittle") over c: layer, alpha_end,
 * alpha_steps, beta_v, beta_t, prior (fixed|learnable), kl (textbook|reference),
 * logvar_clamp, init_std. Absent keys keep their values. VT_ERR_ARG names
 * the key on a bad value. */
vt_status vt_bottleneck_config_read(const vt_config *cfg, const char *prefix,
                                    vt_bottleneck_config *c, vt_error *err);
/* Sets hidden = D and resolves layer -1 for a decoder of `layers` blocks;
 * VT_ERR_ARG when layer is outside [0, layers). */
vt_status vt_bottleneck_config_resolve(vt_bottleneck_config *c, int hidden, int layers,
                                       vt_error *err);
/* alpha(progress) = alpha_end * sigmoid(10 (progress - 0.5)), progress = t / T. */
float vt_bottleneck_alpha(const vt_bottleneck_config *c, double progress);
/* The alpha of optimizer step `step` of a run of `total_steps`: progress is
 * step / alpha_steps (capped at 1) when alpha_steps is set, else
 * step / total_steps. A fixed horizon keeps alpha continuous when a
 * curriculum resumes one run into phases of different train.steps. */
float vt_bottleneck_alpha_at(const vt_bottleneck_config *c, uint64_t step, uint64_t total_steps);

/* Row roles for vt_bottleneck_forward. */
enum {
    VT_BN_PASS = 0,    /* untouched (padding): h' = h, no KL */
    VT_BN_VISUAL = 1,  /* an image token: visual head, counted in KL_v */
    VT_BN_TEXT = 2,    /* a text token that is not counted in KL_t (answer tokens) */
    VT_BN_TEXT_KL = 3, /* a text token counted in KL_t (system prompt, instruction) */
};

typedef struct vt_bottleneck_head {
    float *fc1_w, *fc1_b; /* [D, D], [D] */
    float *fc2_w, *fc2_b; /* [2D, D], [2D]: rows 0..D-1 give mu, D..2D-1 log sigma^2 */
} vt_bottleneck_head;

typedef struct vt_bottleneck_views {
    vt_bottleneck_head v, t;
    /* learnable prior only (NULL otherwise): [D] each */
    float *prior_mu_v, *prior_logvar_v, *prior_mu_t, *prior_logvar_t;
} vt_bottleneck_views;

/* One named tensor of the parameter buffer (names as saved in vittle.safetensors). */
typedef struct vt_bottleneck_tensor {
    const char *name;
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
    bool decay; /* weight decay applies (matrices only) */
} vt_bottleneck_tensor;

typedef struct vt_bottleneck_work vt_bottleneck_work; /* activations (private) */

typedef struct vt_bottleneck {
    vt_bottleneck_config cfg;
    vt_ctx *ctx; /* borrowed */
    float *params, *grads; /* num_params floats each, in ctx memory */
    size_t num_params;
    vt_bottleneck_views w, g;
    int ntensors;
    vt_bottleneck_tensor tensors[12];
    vt_bottleneck_work *work;
    /* results of the last forward */
    double kl_v, kl_t;     /* dimension-averaged KL per modality (0 when no row counts) */
    int count_v, count_t;  /* rows counted in each */
    double loss;           /* beta_v kl_v + beta_t kl_t */
} vt_bottleneck;

/* Allocates parameters (weights from Philox streams keyed by (seed, tensor
 * name), biases and prior 0) and zeroed gradients. cfg->hidden must be set
 * (vt_bottleneck_config_resolve). */
vt_status vt_bottleneck_create(vt_bottleneck **out, vt_ctx *ctx, const vt_bottleneck_config *cfg,
                               uint64_t seed, vt_error *err);
void vt_bottleneck_free(vt_bottleneck *bn);

/* h [N, D] (ctx memory) is replaced in place by h'. role [N] (host) as
 * above. eps [N, D] (ctx memory; ops/noise.h) is the training noise (rows
 * of PASS rows are ignored); eps NULL = inference (z = mu). Computes kl_v,
 * kl_t, loss and keeps what backward needs (eps is
 * copied). Rows may be any mix of roles; N may change between calls. */
vt_status vt_bottleneck_forward(vt_bottleneck *bn, float *h, const uint8_t *role, int N,
                                float alpha, const float *eps, vt_error *err);
/* Backward of the last forward. dh [N, D] (ctx memory) holds dL/dh' on entry and dL/dh on
 * return (in place). kl_scale multiplies the gradient of bn->loss (1 when the
 * total is CE + loss; 0 to skip the KL). ADDS into bn->grads. */
vt_status vt_bottleneck_backward(vt_bottleneck *bn, float *dh, float kl_scale, vt_error *err);
/* The same with separate weights for the two KL terms (the gradient of
 * scale_v beta_v KL_v + scale_t beta_t KL_t): a trainer that averages each KL
 * over the rows of a whole global batch passes count_v / rows_v(global) and
 * count_t / rows_t(global) for a micro-batch. */
vt_status vt_bottleneck_backward2(vt_bottleneck *bn, float *dh, float scale_v, float scale_t,
                                  vt_error *err);
/* Writes the parameters to path as safetensors (F32, names as in
 * bn->tensors), atomically. The metadata describes the layer so a reader
 * needs no run config: vistune_method=vittle, vittle_hidden, vittle_layer,
 * vittle_alpha_end, vittle_beta_v, vittle_beta_t, vittle_prior
 * (fixed|learnable), vittle_kl (textbook|reference), vittle_logvar_clamp. */
vt_status vt_bottleneck_save(const vt_bottleneck *bn, const char *path, vt_error *err);
/* Loads parameters saved by vt_bottleneck_save. Every tensor must be present
 * with the exact shape and every file tensor known (a learnable-prior file
 * into a fixed-prior layer is an error): VT_ERR_FORMAT naming the tensor. */
vt_status vt_bottleneck_load(vt_bottleneck *bn, const char *path, vt_error *err);
/* The config a file written by vt_bottleneck_save describes (its metadata
 * over the defaults); VT_ERR_FORMAT naming the key when one is missing or bad. */
vt_status vt_bottleneck_config_from_file(const char *path, vt_bottleneck_config *c, vt_error *err);
/* Zeroes bn->grads. */
void vt_bottleneck_zero_grad(vt_bottleneck *bn);

#endif
