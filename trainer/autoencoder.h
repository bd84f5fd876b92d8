/* A small per-patch KL-autoencoder on the image-token grid: the teacher that
 * gives ROSS its latent targets (`ross.target: latents`), trained by vistune
 * itself with `recipe: autoencoder`.
 *
 * Per image token (a 3 P x P pixel patch, K = 3 P^2 values in the order of
 * vt_ross_pixel_targets, so latent token j lines up with image token j):
 *   encoder: a1 = W1 x + b1 [H], h1 = SiLU(a1), (mu, logvar) = W2 h1 + b2 [2C]
 *   sample:  z = mu + exp(logvar / 2) eps, eps ~ N(0, I_C)
 *   decoder: a2 = W3 z + b3 [H], h2 = SiLU(a2), xhat = W4 h2 + b4 [K]
 *   recon = mean over tokens and the K values of (xhat - x)^2
 *   kl    = mean over tokens of sum_c 0.5 (mu^2 + exp(logvar) - 1 - logvar)
 *   loss  = recon + beta kl
 * x is the pixel patch with CLIP's normalisation undone and mapped to
 * [-1, 1] (pixel_norm clip, the default) or as the batch carries it (none).
 * Weights xavier-uniform (Philox keyed by seed and tensor name), biases 0.
 * Runs on host memory with cblas. Parameters: one flat buffer, names as in
 * autoencoder.safetensors. */
#ifndef VT_TRAINER_AUTOENCODER_H
#define VT_TRAINER_AUTOENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "trainer/recipe.h"

typedef struct vt_ae_config {
    int latent_dim; /* C (16) */
    int hidden;     /* H (256) */
    float beta;     /* KL weight (1e-3) */
    int pixel_norm; /* 0 clip (undo CLIP normalisation, [-1, 1]), 1 none */
    int patch;      /* P; K = 3 P^2 (resolved from the model, or the file) */
} vt_ae_config;

enum { VT_AE_TENSORS = 8 };

typedef struct vt_ae_tensor {
    const char *name;
    int64_t shape[2];
    int ndim;
    size_t offset, numel;
} vt_ae_tensor;

typedef struct vt_autoencoder {
    vt_ae_config cfg;
    int K, H, C;
    float *params, *grads;
    size_t num_params;
    float *e1_w, *e1_b, *e2_w, *e2_b, *d1_w, *d1_b, *d2_w, *d2_b; /* views into params */
    vt_ae_tensor tensors[VT_AE_TENSORS];
    /* activations of the last forward (rows = images x tokens) */
    size_t cap, rows;
    float *x, *a1, *h1, *ml, *eps, *z, *a2, *h2, *xh, *d_ml, *d_h;
    double recon, kl, loss; /* of the last forward */
} vt_autoencoder;

void vt_ae_config_default(vt_ae_config *c);
/* Reads `prefix`.{latent_dim, hidden, beta, pixel_norm} over c (absent keys
 * keep their values; a bad value is VT_ERR_ARG naming the key). */
vt_status vt_ae_config_read(const vt_config *cfg, const char *prefix, vt_ae_config *c, vt_error *err);

/* cfg->patch must be set. Zeroed gradients. */
vt_status vt_ae_create(vt_autoencoder **out, const vt_ae_config *cfg, uint64_t seed, vt_error *err);
void vt_ae_free(vt_autoencoder *ae);

/* eps [N, C] for one image: N(0, 1) from a Philox stream keyed by key. */
void vt_ae_noise(const vt_autoencoder *ae, int tokens, uint64_t key, float *eps);
/* Patches x [rows, K] (copied), eps [rows, C]: sets recon, kl, loss (means
 * over the rows) and keeps the activations for backward. rows 0: loss 0. */
vt_status vt_ae_forward(vt_autoencoder *ae, const float *x, size_t rows, const float *eps, vt_error *err);
/* ADDS the gradient of scale x the last forward's loss into ae->grads. */
vt_status vt_ae_backward(vt_autoencoder *ae, float scale, vt_error *err);
/* The posterior means of x [rows, K] into mean [rows, C] (no sampling, no
 * state kept for backward). */
vt_status vt_ae_encode(vt_autoencoder *ae, const float *x, size_t rows, float *mean, vt_error *err);

/* autoencoder.safetensors: F32, metadata vistune_method=autoencoder,
 * autoencoder_pixel_norm, autoencoder_beta; written atomically. Load is
 * strict (every tensor, exact shapes, nothing unknown: VT_ERR_FORMAT). */
vt_status vt_ae_save(const vt_autoencoder *ae, const char *path, vt_error *err);
vt_status vt_ae_load(vt_autoencoder *ae, const char *path, vt_error *err);
/* A frozen teacher from a checkpoint directory (DIR/autoencoder.safetensors):
 * sizes and pixel_norm from the file. VT_ERR_ARG (prefixed by `key`) when
 * the directory or file is missing or is not an autoencoder. */
vt_status vt_ae_load_teacher(vt_autoencoder **out, const char *key, const char *dir, vt_error *err);

/* ---- the `autoencoder` recipe (a row of trainer/recipe.c's table) ----
 * The LLaVA model is frozen and unused (no forward); the autoencoder's
 * parameters are one group "autoencoder". Each image of the global batch
 * contributes its loss averaged over the batch's images (counted in
 * begin_step), the noise of an image is keyed by (seed, step, dataset
 * sample). `loss` in the metrics is the autoencoder objective; `recon_loss`
 * and `kl` are reported beside it. autoencoder.safetensors in every
 * checkpoint. */
vt_status vt_ae_recipe_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err);
vt_status vt_ae_recipe_init(void *state, vt_model *m, uint64_t seed, vt_error *err);
vt_status vt_ae_recipe_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale,
                                  double progress, double *loss_sum, vt_error *err);
vt_status vt_ae_recipe_param_groups(void *state, vt_param_group *out, int *n, vt_error *err);
vt_status vt_ae_recipe_begin_step(void *state, const vt_recipe_step *s, vt_error *err);
vt_status vt_ae_recipe_end_step(void *state, const vt_recipe_step *s, vt_recipe_scalars *out, vt_error *err);
vt_status vt_ae_recipe_save(void *state, vt_ckpt_writer *w, vt_error *err);
vt_status vt_ae_recipe_load(void *state, const vt_ckpt *c, vt_error *err);
void vt_ae_recipe_destroy(void *state);

#endif
