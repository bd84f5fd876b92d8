/* Saving and loading the Vittle layer's parameters as vittle.safetensors,
 * beside (never inside) the Hugging Face model.safetensors, so the exported
 * checkpoint still loads as plain LLaVA. */
#include "trainer/bottleneck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/safetensors.h"

vt_status vt_bottleneck_save(const vt_bottleneck *bn, const char *path, vt_error *err) {
    vt_st_writer *w = vt_st_writer_new();
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    vt_status st = vt_st_writer_meta(w, "format", "pt", err);
    if (!st) st = vt_st_writer_meta(w, "vistune_method", "vittle", err);
    const vt_bottleneck_config *c = &bn->cfg;
    char buf[6][32];
    snprintf(buf[0], sizeof buf[0], "%d", c->hidden);
    snprintf(buf[1], sizeof buf[1], "%d", c->layer);
    snprintf(buf[2], sizeof buf[2], "%.9g", (double)c->alpha_end);
    snprintf(buf[3], sizeof buf[3], "%.9g", (double)c->beta_v);
    snprintf(buf[4], sizeof buf[4], "%.9g", (double)c->beta_t);
    snprintf(buf[5], sizeof buf[5], "%.9g", (double)c->logvar_clamp);
    const char *kv[] = {"vittle_hidden", buf[0], "vittle_layer", buf[1], "vittle_alpha_end", buf[2],
                        "vittle_beta_v", buf[3], "vittle_beta_t", buf[4], "vittle_logvar_clamp", buf[5],
                        "vittle_prior", c->learnable_prior ? "learnable" : "fixed",
                        "vittle_kl", c->kl == VT_BN_KL_REFERENCE ? "reference" : "textbook"};
    for (size_t i = 0; i + 1 < sizeof kv / sizeof kv[0] && !st; i += 2) st = vt_st_writer_meta(w, kv[i], kv[i + 1], err);
    /* the parameters live in the layer's ctx memory: stage them on the host */
    float *host = malloc((bn->num_params ? bn->num_params : 1) * sizeof(float));
    if (!st && !host) st = vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    if (!st && vt_ctx_memcpy_d2h(bn->ctx, host, bn->params, bn->num_params * sizeof(float)))
        st = vt_fail(err, VT_ERR_DEVICE, "%s: %s", path, vt_ctx_error(bn->ctx)->msg);
    for (int i = 0; i < bn->ntensors && !st; i++) {
        const vt_bottleneck_tensor *t = &bn->tensors[i];
        st = vt_st_writer_add(w, t->name, VT_ST_F32, t->ndim, t->shape, host + t->offset, err);
    }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    free(host);
    return st;
}

vt_status vt_bottleneck_load(vt_bottleneck *bn, const char *path, vt_error *err) {
    vt_st_flat *t = malloc((size_t)bn->ntensors * sizeof *t);
    float *host = malloc((bn->num_params ? bn->num_params : 1) * sizeof(float));
    if (!t || !host) {
        free(t);
        free(host);
        return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    }
    for (int k = 0; k < bn->ntensors; k++) {
        const vt_bottleneck_tensor *b = &bn->tensors[k];
        t[k] = (vt_st_flat){b->name, b->ndim, b->shape, b->offset, b->numel};
    }
    char owner[64];
    snprintf(owner, sizeof owner, "the layer's (hidden %d)", bn->cfg.hidden);
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (!st) st = vt_st_read_flat(f, path, t, bn->ntensors, host, "prior or width differs?", owner, err);
    if (!st && vt_ctx_memcpy_h2d(bn->ctx, bn->params, host, bn->num_params * sizeof(float)))
        st = vt_fail(err, VT_ERR_DEVICE, "%s: %s", path, vt_ctx_error(bn->ctx)->msg);
    vt_st_close(f);
    free(t);
    free(host);
    return st;
}

/* A number from the metadata: VT_ERR_FORMAT when absent or not a number. */
static vt_status meta_num(const vt_st_file *f, const char *path, const char *key, double *out, vt_error *err) {
    const char *v = vt_st_metadata(f, key);
    char *end = NULL;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || end == v || *end || !isfinite(x))
        return vt_fail(err, VT_ERR_FORMAT, "%s: metadata '%s' is %s%s%s", path, key, v ? "'" : "missing",
                       v ? v : "", v ? "', not a number" : "");
    *out = x;
    return VT_OK;
}

vt_status vt_bottleneck_config_from_file(const char *path, vt_bottleneck_config *c, vt_error *err) {
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (st) return st;
    vt_bottleneck_config_default(c);
    const char *method = vt_st_metadata(f, "vistune_method");
    double hidden = 0, layer = 0, a = 0, bv = 0, bt = 0, clamp = 0;
    if (!method || strcmp(method, "vittle"))
        st = vt_fail(err, VT_ERR_FORMAT, "%s: not a Vittle layer file (vistune_method is %s)", path,
                     method ? method : "missing");
    if (!st) st = meta_num(f, path, "vittle_hidden", &hidden, err);
    if (!st) st = meta_num(f, path, "vittle_layer", &layer, err);
    if (!st) st = meta_num(f, path, "vittle_alpha_end", &a, err);
    if (!st) st = meta_num(f, path, "vittle_beta_v", &bv, err);
    if (!st) st = meta_num(f, path, "vittle_beta_t", &bt, err);
    if (!st) st = meta_num(f, path, "vittle_logvar_clamp", &clamp, err);
    const char *prior = vt_st_metadata(f, "vittle_prior"), *kl = vt_st_metadata(f, "vittle_kl");
    if (!st && (!prior || (strcmp(prior, "fixed") && strcmp(prior, "learnable"))))
        st = vt_fail(err, VT_ERR_FORMAT, "%s: metadata 'vittle_prior' is %s", path, prior ? prior : "missing");
    if (!st && (!kl || (strcmp(kl, "textbook") && strcmp(kl, "reference"))))
        st = vt_fail(err, VT_ERR_FORMAT, "%s: metadata 'vittle_kl' is %s", path, kl ? kl : "missing");
    if (!st && (hidden < 1 || layer < 0 || a < 0 || a > 1))
        st = vt_fail(err, VT_ERR_FORMAT, "%s: metadata hidden %g / layer %g / alpha_end %g out of range", path,
                     hidden, layer, a);
    if (!st) {
        c->hidden = (int)hidden;
        c->layer = (int)layer;
        c->alpha_end = (float)a;
        c->beta_v = (float)bv;
        c->beta_t = (float)bt;
        c->logvar_clamp = (float)clamp;
        c->learnable_prior = !strcmp(prior, "learnable");
        c->kl = strcmp(kl, "reference") ? VT_BN_KL_TEXTBOOK : VT_BN_KL_REFERENCE;
    }
    vt_st_close(f);
    return st;
}
