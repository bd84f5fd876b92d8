/* Method "ross" (trainer/method.h): the ROSS denoiser on the decoder's
 * final hidden states (trainer/ross.h), its parameters one group "ross",
 * written as ross.safetensors in every checkpoint. The objective adds
 * ross.weight x the ROSS loss averaged over the global batch's images: each
 * micro-batch's denoiser loss (a mean over its images) is weighted by its
 * images / the global image count (counted in begin_step), so the objective
 * does not depend on how the batch is split over ranks and micro-batches.
 * The noise of an image is keyed by (seed, step, dataset sample), so resume
 * is exact and the rank count does not change it. Config section `ross:` =
 * vt_denoiser_config_read's keys plus `target` (pixels | latents),
 * `teacher` (with latents: an autoencoder checkpoint directory,
 * trainer/autoencoder.h, loaded frozen) and `pixel_norm` (clip | none).
 * Reports `ross_loss` (the global mean) per step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/rng.h"
#include "trainer/method.h"
#include "trainer/ross.h"

typedef struct ross_state {
    vt_denoiser_config dcfg;
    vt_ross_pixel_norm pixel_norm;
    vt_autoencoder *teacher; /* target: latents (frozen, owned) */
    vt_ross *r;
    vt_model *m;
    uint8_t *decay;         /* per parameter: weight decay applies */
    uint64_t seed, step;    /* of the step being computed */
    int64_t global_images;  /* images in the whole global batch of the step */
    double ross_sum;        /* this rank's sum of images x micro-batch loss */
} ross_state;

int vt_ross_count_images(const vt_batch *b, int image_token) {
    int n = 0, B = (int)b->shape.batch, T = (int)b->shape.seq_len;
    for (int s = 0; s < B; s++) {
        int len = b->lengths ? b->lengths[s] : T;
        for (int t = 0; t < len; t++)
            if (b->tokens[(size_t)s * T + t] == image_token) {
                n++;
                break;
            }
    }
    return n;
}

static vt_status configure(const vt_config *cfg, void **state, vt_error *err) {
    ross_state *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "ross: no memory");
    *state = s;
    vt_denoiser_config_default(&s->dcfg);
    vt_status st = vt_denoiser_config_read(cfg, "ross", &s->dcfg, err);
    if (st) return st;
    static const char *const targets[] = {"pixels", "latents"};
    int target = 0;
    if ((st = vt_config_enum(cfg, "ross.target", targets, 2, &target, err))) return st;
    const char *teacher = NULL;
    if ((st = vt_config_string(cfg, "ross.teacher", &teacher, err))) return st;
    if (target == 1 && !teacher)
        return vt_fail(err, VT_ERR_ARG, "ross.target: latents needs ross.teacher (an autoencoder checkpoint "
                       "directory, from recipe: autoencoder)");
    if (target == 0 && teacher)
        return vt_fail(err, VT_ERR_ARG, "ross.teacher: only used with ross.target: latents");
    if (teacher && (st = vt_ae_load_teacher(&s->teacher, "ross.teacher", teacher, err))) return st;
    static const char *const norms[] = {"clip", "none"};
    int norm = 0;
    if ((st = vt_config_enum(cfg, "ross.pixel_norm", norms, 2, &norm, err))) return st;
    s->pixel_norm = (vt_ross_pixel_norm)norm;
    return VT_OK;
}

static vt_status init(void *state, vt_model *m, uint64_t seed, vt_error *err) {
    ross_state *s = state;
    s->m = m;
    vt_status st = vt_ross_attach_ex(&s->r, m, &s->dcfg, s->pixel_norm, s->teacher, seed, err);
    if (st) return st;
    /* the weight-decay mask sits beside the parameters, in the model's ctx memory */
    const vt_denoiser *dn = s->r->dn;
    uint8_t *mask = calloc(dn->num_params, 1);
    if (!mask) return vt_fail(err, VT_ERR_NOMEM, "ross: no memory");
    for (int i = 0; i < dn->ntensors; i++)
        if (dn->tensors[i].decay) memset(mask + dn->tensors[i].offset, 1, dn->tensors[i].numel);
    st = vt_ctx_alloc(m->ctx, (void **)&s->decay, dn->num_params);
    if (!st) st = vt_ctx_memcpy_h2d(m->ctx, s->decay, mask, dn->num_params);
    free(mask);
    if (st) return vt_fail(err, st, "ross: %s", vt_ctx_error(m->ctx)->msg);
    return VT_OK;
}

static vt_status param_groups(void *state, vt_param_group *out, int *n, vt_error *err) {
    (void)err;
    ross_state *s = state;
    vt_denoiser *dn = s->r->dn;
    out[0] = (vt_param_group){.name = "ross", .params = dn->params, .grads = dn->grads,
                              .decay_mask = s->decay, .n = dn->num_params};
    *n = 1;
    return VT_OK;
}

static vt_status begin_step(void *state, const vt_recipe_step *rs, vt_error *err) {
    ross_state *s = state;
    int64_t local = 0;
    for (uint32_t k = 0; k < rs->micro_count; k++)
        local += vt_ross_count_images(&rs->batches[k], s->m->cfg.image_token_index);
    if (MPI_Allreduce(&local, &s->global_images, 1, MPI_INT64_T, MPI_SUM, rs->comm) != MPI_SUCCESS)
        return vt_fail(err, VT_ERR_MPI, "ross: counting the step's images");
    s->seed = rs->seed;
    s->step = rs->step;
    s->ross_sum = 0;
    return VT_OK;
}

static void prepare(void *state, const vt_batch *b) {
    ross_state *s = state;
    int n = vt_ross_count_images(b, s->m->cfg.image_token_index);
    float scale = s->global_images > 0 ? (float)((double)s->dcfg.weight * n / (double)s->global_images) : 0.0f;
    vt_ross_set(s->r, true, vt_hash4(s->seed, s->step, 0x524f5353u /* "ROSS" */, 0), scale);
}

static bool collect(void *state) {
    ross_state *s = state;
    if (s->r->active) s->ross_sum += (double)s->r->n_img * s->r->dn->loss;
    return s->r->active;
}

static void finish(void *state) {
    ross_state *s = state;
    vt_ross_set(s->r, false, 0, 0.0f); /* other forwards (evaluation) do not touch the denoiser */
}

static vt_status end_step(void *state, const vt_recipe_step *rs, vt_recipe_scalars *out, vt_error *err) {
    ross_state *s = state;
    double global = 0;
    if (MPI_Allreduce(&s->ross_sum, &global, 1, MPI_DOUBLE, MPI_SUM, rs->comm) != MPI_SUCCESS)
        return vt_fail(err, VT_ERR_MPI, "ross: reducing the step's loss");
    if (out->n == VT_RECIPE_MAX_SCALARS) return vt_fail(err, VT_ERR_STATE, "ross: no room for its scalar");
    out->names[out->n] = "ross_loss";
    out->values[out->n++] = s->global_images > 0 ? global / (double)s->global_images : NAN;
    return VT_OK;
}

static vt_status save(void *state, vt_ckpt_writer *w, vt_error *err) {
    ross_state *s = state;
    if (vt_ckpt_writer_rank(w) != 0) return VT_OK; /* replicated: rank 0 writes it */
    char path[4096];
    vt_status st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "ross.safetensors", err);
    if (st) return st;
    return vt_denoiser_save(s->r->dn, path, err);
}

static vt_status load(void *state, const vt_ckpt *c, vt_error *err) {
    ross_state *s = state;
    char path[4096];
    vt_status st = vt_ckpt_file(c, "ross.safetensors", path, sizeof path, err);
    if (st) return st;
    return vt_denoiser_load(s->r->dn, path, err);
}

static void destroy(void *state) {
    ross_state *s = state;
    if (!s) return;
    vt_ross_free(s->r);
    vt_ae_free(s->teacher);
    if (s->m) vt_ctx_free(s->m->ctx, s->decay);
    free(s);
}

const vt_method vt_ross_method = {.configure = configure, .init = init,
                                  .param_groups = param_groups, .begin_step = begin_step, .prepare = prepare,
                                  .collect = collect, .finish = finish, .end_step = end_step, .save = save,
                                  .load = load, .destroy = destroy};
