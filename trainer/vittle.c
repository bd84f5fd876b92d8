/* Glue between the Vittle bottleneck and the model's decoder hook: token
 * roles from the batch, seeded training noise, alpha and KL weight per step. */
#include "trainer/vittle.h"

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/noise.h"

void vt_vittle_roles(const vt_batch *b, int image_token, uint8_t *role) {
    int B = (int)b->shape.batch, T = (int)b->shape.seq_len;
    for (int i = 0; i < B; i++) {
        int len = b->lengths ? b->lengths[i] : T;
        for (int t = 0; t < T; t++) {
            size_t k = (size_t)i * T + t;
            if (t >= len) role[k] = VT_BN_PASS;
            else if (b->tokens[k] == image_token) role[k] = VT_BN_VISUAL;
            else if (t > 0 && b->loss_mask && b->loss_mask[k - 1]) role[k] = VT_BN_TEXT;
            else role[k] = VT_BN_TEXT_KL;
        }
    }
}

static vt_status hook_forward(void *arg, vt_model *m, const vt_batch *b, float *h, vt_error *err) {
    vt_vittle *v = arg;
    size_t N = (size_t)b->shape.batch * b->shape.seq_len, D = (size_t)m->cfg.hidden;
    size_t B = b->shape.batch;
    if (N > v->cap || B > v->cap_keys) {
        free(v->role);
        free(v->keys);
        vt_ctx_free(m->ctx, v->eps);
        v->eps = NULL;
        v->role = malloc(N);
        v->keys = malloc(B * sizeof(uint64_t));
        v->cap = v->cap_keys = 0;
        if (!v->role || !v->keys || vt_ctx_alloc(m->ctx, (void **)&v->eps, N * D * sizeof(float)))
            return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory for %zu rows", N);
        v->cap = N;
        v->cap_keys = B;
    }
    vt_vittle_roles(b, m->cfg.image_token_index, v->role);
    if (v->train) {
        for (size_t i = 0; i < B; i++)
            v->keys[i] = vt_hash4(v->noise_key, b->sample_indices ? b->sample_indices[i] : i, 0, 0);
        if (vt_normal_noise(m->ctx, v->eps, v->keys, (int)B, (size_t)b->shape.seq_len * D))
            return vt_fail(err, VT_ERR_DEVICE, "vittle: %s", vt_ctx_error(m->ctx)->msg);
    }
    return vt_bottleneck_forward(v->bn, h, v->role, (int)N, v->alpha, v->train ? v->eps : NULL, err);
}

static vt_status hook_backward(void *arg, vt_model *m, float *dh, vt_error *err) {
    (void)m;
    vt_vittle *v = arg;
    return vt_bottleneck_backward2(v->bn, dh, v->kl_scale_v, v->kl_scale_t, err);
}

vt_status vt_vittle_attach(vt_vittle **out, vt_model *m, const vt_bottleneck_config *cfg,
                           uint64_t seed, vt_error *err) {
    *out = NULL;
    vt_bottleneck_config c = *cfg;
    vt_status st = vt_bottleneck_config_resolve(&c, m->cfg.hidden, m->cfg.layers, err);
    if (st) return st;
    vt_vittle *v = calloc(1, sizeof *v);
    if (!v) return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory");
    if ((st = vt_bottleneck_create(&v->bn, m->ctx, &c, seed, err))) {
        free(v);
        return st;
    }
    v->m = m;
    v->alpha = c.alpha_end;
    v->kl_scale_v = v->kl_scale_t = 1.0f;
    vt_decoder_hook hook = {.layer = c.layer, .forward = hook_forward, .backward = hook_backward, .arg = v};
    if ((st = vt_model_add_hook(m, &hook, err))) {
        vt_error_prefix(err, "vittle: ");
        vt_vittle_free(v);
        return st;
    }
    *out = v;
    return VT_OK;
}

void vt_vittle_free(vt_vittle *v) {
    if (!v) return;
    if (v->m) vt_model_remove_hook(v->m, v);
    vt_bottleneck_free(v->bn);
    free(v->role);
    free(v->keys);
    if (v->m) vt_ctx_free(v->m->ctx, v->eps);
    free(v);
}

void vt_vittle_set(vt_vittle *v, bool train, float alpha, uint64_t noise_key, float kl_scale) {
    v->train = train;
    v->alpha = alpha;
    v->noise_key = noise_key;
    v->kl_scale_v = v->kl_scale_t = kl_scale;
}

vt_status vt_vittle_attach_file(vt_vittle **out, vt_model *m, const char *path, vt_error *err) {
    *out = NULL;
    vt_bottleneck_config c;
    vt_status st = vt_bottleneck_config_from_file(path, &c, err);
    if (st) return st;
    if (c.hidden != m->cfg.hidden)
        return vt_fail(err, VT_ERR_FORMAT, "%s: Vittle layer of width %d, the model's decoder has %d", path,
                       c.hidden, m->cfg.hidden);
    vt_vittle *v = NULL;
    if ((st = vt_vittle_attach(&v, m, &c, 0, err))) return st;
    if ((st = vt_bottleneck_load(v->bn, path, err))) {
        vt_vittle_free(v);
        return st;
    }
    vt_vittle_set(v, false, v->bn->cfg.alpha_end, 0, 1.0f);
    *out = v;
    return VT_OK;
}
