/* ROSS inside the LLaVA model: attaches a vt_denoiser to the model's decoder
 * hook (trainer/model.h) after the LAST decoder block. There the hook
 *   - finds each sequence's image span (tokens == image_token_index, the
 *     i-th image position = image token i of the grid; sequences without an
 *     image are left out of the loss, not averaged in as zeros the way the
 *     reference's mask arithmetic does),
 *   - applies the decoder's final RMSNorm (model.norm) to those rows, so the
 *     condition is the final hidden state the LM head sees, as the
 *     reference's hidden_states[-1],
 *   - builds the targets (raw pixel patches on the image-token grid) and the
 *     keyed noise, and runs the denoiser forward (loss in r->dn->loss);
 * and in backward adds scale * d(loss)/dh into the decoder's gradient,
 * through the final norm (its weight's gradient too, when it trains). The
 * hidden states themselves pass through unchanged, so logits are unaffected.
 * With train = false the hook does nothing: ROSS costs nothing at inference. */
#ifndef VT_TRAINER_ROSS_H
#define VT_TRAINER_ROSS_H

#include <stdbool.h>
#include <stdint.h>

#include "trainer/autoencoder.h"
#include "trainer/denoiser.h"
#include "trainer/model.h"

/* How pixel targets are made from the batch's pixels. */
typedef enum vt_ross_pixel_norm {
    VT_ROSS_PIX_CLIP = 0, /* undo CLIP's normalisation, map to [-1, 1] (the reference's VAE input) */
    VT_ROSS_PIX_NONE = 1, /* the batch's values as they are */
} vt_ross_pixel_norm;

typedef struct vt_ross {
    vt_denoiser *dn;
    vt_model *m;               /* borrowed; its hook points here while attached */
    vt_ross_pixel_norm pixel_norm;
    vt_autoencoder *teacher;   /* borrowed; when set, targets are its latent means (target_dim = C) */
    bool train;                /* the next forwards compute the loss */
    uint64_t noise_key;        /* image of dataset sample s draws vt_denoiser_noise(hash(key, s)) */
    float scale;               /* gradient weight of dn->loss in the next backward */
    bool active;               /* the last forward computed a loss (train and >= 1 image) */
    int n_img;                 /* images in the last forward */
    /* scratch, sized for the batch; (ctx) = in the model's ctx memory */
    size_t cap_rows;
    int32_t *rows_h, *rows;    /* [n_img * N] row of each image token in [B*T] (host, ctx) */
    int32_t *img;              /* [n_img] sequence of each image */
    float *h, *hn, *rstd, *dh; /* (ctx) the image rows, normed, the norm's rstd, their gradient */
    float *tgt, *eps;          /* targets and noise (host) */
    float *pix;                /* [N, 3 P^2]: one image's patches (teacher input) */
    int32_t *t;
} vt_ross;

/* Resolves cfg against the model (decoder width, image grid, pixel-patch
 * target width 3 P^2), creates the denoiser (weights from seed) and installs
 * the hook after the last decoder block. Starts with train = false.
 * VT_ERR_STATE if m has a ROSS hook already (trainer/model.h add_hook). */
vt_status vt_ross_attach(vt_ross **out, vt_model *m, const vt_denoiser_config *cfg,
                         vt_ross_pixel_norm pixel_norm, uint64_t seed, vt_error *err);
/* As vt_ross_attach, with latent targets: when teacher is not NULL the
 * target of image token j is the teacher's posterior mean of patch j (its
 * own pixel_norm; pixel_norm is then unused) and target_dim is its
 * latent_dim. The teacher is borrowed (frozen: never gets gradients). */
vt_status vt_ross_attach_ex(vt_ross **out, vt_model *m, const vt_denoiser_config *cfg,
                            vt_ross_pixel_norm pixel_norm, vt_autoencoder *teacher, uint64_t seed,
                            vt_error *err);
/* Removes the hook and frees everything. NULL is fine. */
void vt_ross_free(vt_ross *r);
/* Settings for the next forward/backward. */
void vt_ross_set(vt_ross *r, bool train, uint64_t noise_key, float scale);

/* Sequences of b holding an image (image_token_index within their length). */
int vt_ross_count_images(const vt_batch *b, int image_token);

#endif
