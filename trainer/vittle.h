/* Vittle inside the LLaVA model: attaches a vt_bottleneck to the model's
 * decoder hook (trainer/model.h) and derives each token's role from the batch:
 * image tokens are the TRUE image span (tokens == image_token_index, not the
 * reference code's positional split), padding (t >= length) passes through,
 * answer tokens (token t is supervised, i.e. loss_mask[t-1] = 1) are mixed
 * but not counted in KL_t, every other text token counts in KL_t. */
#ifndef VT_TRAINER_VITTLE_H
#define VT_TRAINER_VITTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "trainer/bottleneck.h"
#include "trainer/model.h"

typedef struct vt_vittle {
    vt_bottleneck *bn;
    vt_model *m;          /* borrowed; its hook points here while attached */
    bool train;           /* next forwards sample z = mu + sigma eps */
    float alpha;          /* mixing weight of the next forwards */
    uint64_t noise_key;   /* eps of sequence i of a forward = the vt_normal_noise stream keyed by
                           * vt_hash4(key, sample_indices[i] (i when the batch has none), 0, 0)
                           * over its [T, D]: a sample's noise does not depend on where in the
                           * batch it sits, nor on the backend */
    float kl_scale_v, kl_scale_t; /* gradient weights of beta_v KL_v, beta_t KL_t in the next backward */
    uint8_t *role;        /* [B*T] scratch */
    float *eps;           /* [B*T*D] scratch, in the model's ctx memory */
    uint64_t *keys;       /* [B] scratch: the sequences' noise keys */
    size_t cap, cap_keys;
} vt_vittle;

/* Resolves cfg against the model's decoder (hidden size, default layer),
 * creates the bottleneck (weights from seed) and installs the hook. Starts in
 * inference mode with alpha = alpha_end. VT_ERR_STATE if m has a Vittle hook
 * already (trainer/model.h add_hook). */
vt_status vt_vittle_attach(vt_vittle **out, vt_model *m, const vt_bottleneck_config *cfg,
                           uint64_t seed, vt_error *err);
/* Removes the hook and frees everything. NULL is fine. */
void vt_vittle_free(vt_vittle *v);
/* Settings for the next forward/backward (both KL weights = kl_scale). */
void vt_vittle_set(vt_vittle *v, bool train, float alpha, uint64_t noise_key, float kl_scale);
/* Loads a layer saved by vt_bottleneck_save (its metadata says the layer,
 * alpha_end, prior, ...) onto m's decoder in inference mode (alpha =
 * alpha_end, h' = (1 - alpha) h + alpha mu): what evaluation of a Vittle
 * checkpoint uses. The model's width must match. */
vt_status vt_vittle_attach_file(vt_vittle **out, vt_model *m, const char *path, vt_error *err);
/* role [B*T] for a batch (roles as in trainer/bottleneck.h). */
void vt_vittle_roles(const vt_batch *b, int image_token, uint8_t *role);

#endif
