/* Method "vittle" (trainer/method.h): Vittle's bottleneck after a decoder
 * block (trainer/vittle.h, docs/methods.md), its parameters one group
 * "vittle", written as vittle.safetensors beside the Hugging Face
 * checkpoint.
 *
 * The step's objective adds beta_v KL_v + beta_t KL_t, each KL averaged over
 * the counted rows of the WHOLE global batch (and over dimensions).
 * begin_step counts those rows on every rank and sums them, so a
 * micro-batch's KL gradient weight is count(micro) / rows(global): the
 * objective, and with it the losses, do not depend on the number of ranks or
 * micro-batches. Noise is keyed by (seed, step, sample index), for the same
 * reason and for exact resume. Forwards outside the micro-step (validation)
 * run in inference mode: h' = (1 - alpha_end) h + alpha_end mu. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/rng.h"
#include "trainer/method.h"
#include "trainer/vittle.h"

typedef struct vittle_state {
    vt_bottleneck_config cfg; /* from the `vittle:` section; layer resolved at init */
    const char *cfg_name;     /* the run file, for messages */
    vt_vittle *v;
    uint8_t *decay;           /* [num_params] weight-decay mask of the layer's buffer (ctx memory) */
    vt_ctx *ctx;              /* the model's, which owns decay */
    uint8_t *role;            /* [cap] scratch for counting rows */
    size_t cap;
    /* the current step */
    uint64_t noise_key;
    float alpha;
    double inv_v, inv_t;      /* 1 / counted rows of the global batch (0 when none) */
    double sum_v, sum_t;      /* this rank's sum of per-row (dimension-averaged) KL */
} vittle_state;

static vt_status configure(const vt_config *cfg, void **state, vt_error *err) {
    vittle_state *r = calloc(1, sizeof *r);
    if (!r) return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory");
    *state = r;
    r->cfg_name = vt_config_name(cfg);
    vt_bottleneck_config_default(&r->cfg);
    vt_status st = vt_bottleneck_config_read(cfg, "vittle", &r->cfg, err);
    /* The reader's own range errors name the key only; the config's name the file too. */
    if (st && strncmp(err->msg, r->cfg_name, strlen(r->cfg_name))) vt_error_prefix(err, "%s: ", r->cfg_name);
    return st;
}

static vt_status init(void *state, vt_model *m, uint64_t seed, vt_error *err) {
    vittle_state *r = state;
    vt_status st = vt_vittle_attach(&r->v, m, &r->cfg, seed, err);
    if (st) {
        vt_error_prefix(err, "%s: ", r->cfg_name);
        return st;
    }
    r->cfg = r->v->bn->cfg; /* resolved layer and width */
    const vt_bottleneck *bn = r->v->bn;
    /* the mask sits beside the parameters, in the model's ctx memory */
    size_t n = bn->num_params ? bn->num_params : 1;
    uint8_t *mask = calloc(n, 1);
    if (!mask) return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory");
    for (int i = 0; i < bn->ntensors; i++)
        memset(mask + bn->tensors[i].offset, bn->tensors[i].decay ? 1 : 0, bn->tensors[i].numel);
    st = vt_ctx_alloc(m->ctx, (void **)&r->decay, n);
    if (!st) st = vt_ctx_memcpy_h2d(m->ctx, r->decay, mask, n);
    free(mask);
    if (st) return vt_fail(err, st, "vittle: %s", vt_ctx_error(m->ctx)->msg);
    r->ctx = m->ctx;
    return VT_OK;
}

static vt_status param_groups(void *state, vt_param_group *out, int *n, vt_error *err) {
    (void)err;
    vittle_state *r = state;
    vt_bottleneck *bn = r->v->bn;
    out[0] = (vt_param_group){.name = "vittle", .params = bn->params, .grads = bn->grads,
                              .decay_mask = r->decay, .n = bn->num_params};
    *n = 1;
    return VT_OK;
}

static vt_status begin_step(void *state, const vt_recipe_step *s, vt_error *err) {
    vittle_state *r = state;
    int64_t local[2] = {0, 0}, global[2];
    for (uint32_t k = 0; k < s->micro_count; k++) {
        const vt_batch *b = &s->batches[k];
        size_t N = (size_t)b->shape.batch * b->shape.seq_len;
        if (N > r->cap) {
            free(r->role);
            r->role = malloc(N);
            r->cap = r->role ? N : 0;
            if (!r->role) return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory for %zu roles", N);
        }
        vt_vittle_roles(b, r->v->m->cfg.image_token_index, r->role);
        for (size_t i = 0; i < N; i++) {
            local[0] += r->role[i] == VT_BN_VISUAL;
            local[1] += r->role[i] == VT_BN_TEXT_KL;
        }
    }
    MPI_Allreduce(local, global, 2, MPI_INT64_T, MPI_SUM, s->comm);
    r->inv_v = global[0] ? 1.0 / (double)global[0] : 0.0;
    r->inv_t = global[1] ? 1.0 / (double)global[1] : 0.0;
    r->alpha = vt_bottleneck_alpha_at(&r->cfg, s->step, s->total_steps);
    r->noise_key = vt_hash4(s->seed, s->step, 0x766974746c65ull /* "vittle" */, 0);
    r->sum_v = r->sum_t = 0;
    return VT_OK;
}

static void prepare(void *state, const vt_batch *b) {
    (void)b;
    vittle_state *r = state;
    vt_vittle_set(r->v, true, r->alpha, r->noise_key, 1.0f);
}

static bool collect(void *state) {
    vittle_state *r = state;
    vt_vittle *v = r->v;
    const vt_bottleneck *bn = v->bn;
    r->sum_v += bn->kl_v * bn->count_v;
    r->sum_t += bn->kl_t * bn->count_t;
    v->kl_scale_v = (float)(bn->count_v * r->inv_v);
    v->kl_scale_t = (float)(bn->count_t * r->inv_t);
    return bn->count_v || bn->count_t; /* the KL has a gradient even where no answer token is supervised */
}

static void finish(void *state) {
    vittle_state *r = state;
    vt_vittle_set(r->v, false, r->cfg.alpha_end, 0, 1.0f);
}

static vt_status end_step(void *state, const vt_recipe_step *s, vt_recipe_scalars *out, vt_error *err) {
    vittle_state *r = state;
    double local[2] = {r->sum_v, r->sum_t}, global[2];
    MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_SUM, s->comm);
    double kl_v = global[0] * r->inv_v, kl_t = global[1] * r->inv_t;
    if (out->n + 4 > VT_RECIPE_MAX_SCALARS) return vt_fail(err, VT_ERR_STATE, "vittle: no room for its scalars");
    const char *names[4] = {"vittle/kl_v", "vittle/kl_t", "vittle/kl_loss", "vittle/alpha"};
    double values[4] = {kl_v, kl_t, r->cfg.beta_v * kl_v + r->cfg.beta_t * kl_t, r->alpha};
    for (int i = 0; i < 4; i++) {
        out->names[out->n] = names[i];
        out->values[out->n++] = values[i];
    }
    return VT_OK;
}

static vt_status save(void *state, vt_ckpt_writer *w, vt_error *err) {
    vittle_state *r = state;
    if (vt_ckpt_writer_rank(w) != 0) return VT_OK; /* replicated: rank 0 writes */
    char path[PATH_MAX];
    vt_status st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "vittle.safetensors", err);
    return st ? st : vt_bottleneck_save(r->v->bn, path, err);
}

static vt_status load(void *state, const vt_ckpt *c, vt_error *err) {
    vittle_state *r = state;
    char path[PATH_MAX];
    vt_status st = vt_ckpt_file(c, "vittle.safetensors", path, sizeof path, err);
    vt_bottleneck_config saved;
    if (!st) st = vt_bottleneck_config_from_file(path, &saved, err);
    if (st) return st;
    if (saved.layer != r->cfg.layer)
        return vt_fail(err, VT_ERR_STATE, "%s: the Vittle layer was trained after decoder block %d, vittle.layer "
                       "is now %d", path, saved.layer, r->cfg.layer);
    return vt_bottleneck_load(r->v->bn, path, err);
}

static void destroy(void *state) {
    vittle_state *r = state;
    if (!r) return;
    vt_vittle_free(r->v);
    vt_ctx_free(r->ctx, r->decay);
    free(r->role);
    free(r);
}

const vt_method vt_vittle_method = {.configure = configure, .init = init,
                                    .param_groups = param_groups, .begin_step = begin_step, .prepare = prepare,
                                    .collect = collect, .finish = finish, .end_step = end_step, .save = save,
                                    .load = load, .destroy = destroy};
