/* Saving and loading the ROSS denoiser's parameters as ross.safetensors,
 * beside (never inside) the Hugging Face model.safetensors: the denoiser is
 * training-only, so the exported checkpoint stays plain LLaVA. */
#include "trainer/denoiser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/safetensors.h"

vt_status vt_denoiser_save(const vt_denoiser *dn, const char *path, vt_error *err) {
    vt_st_writer *w = vt_st_writer_new();
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    vt_status st = vt_st_writer_meta(w, "format", "pt", err);
    if (!st) st = vt_st_writer_meta(w, "vistune_method", "ross", err);
    if (!st)
        st = vt_st_writer_meta(w, "ross_variant",
                               dn->cfg.variant == VT_ROSS_DENOISE ? "denoise" : "regress", err);
    /* the parameters live in the denoiser's ctx memory: stage them on the host */
    float *host = malloc((dn->num_params ? dn->num_params : 1) * sizeof(float));
    if (!st && !host) st = vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    if (!st && vt_ctx_memcpy_d2h(dn->ctx, host, dn->params, dn->num_params * sizeof(float)))
        st = vt_fail(err, VT_ERR_DEVICE, "%s: %s", path, vt_ctx_error(dn->ctx)->msg);
    for (int i = 0; i < dn->ntensors && !st; i++) {
        const vt_denoiser_tensor *t = &dn->tensors[i];
        st = vt_st_writer_add(w, t->name, VT_ST_F32, t->ndim, t->shape, host + t->offset, err);
    }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    free(host);
    return st;
}

vt_status vt_denoiser_load(vt_denoiser *dn, const char *path, vt_error *err) {
    vt_st_flat *t = malloc((size_t)dn->ntensors * sizeof *t);
    float *host = malloc((dn->num_params ? dn->num_params : 1) * sizeof(float));
    if (!t || !host) {
        free(t);
        free(host);
        return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    }
    for (int k = 0; k < dn->ntensors; k++) {
        const vt_denoiser_tensor *d = &dn->tensors[k];
        t[k] = (vt_st_flat){d->name, d->ndim, d->shape, d->offset, d->numel};
    }
    char owner[128];
    snprintf(owner, sizeof owner, "the denoiser's (width %d, target %d, condition %d)", dn->cfg.width,
             dn->cfg.target_dim, dn->cfg.cond_dim);
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (!st) st = vt_st_read_flat(f, path, t, dn->ntensors, host, "depth differs?", owner, err);
    if (!st && vt_ctx_memcpy_h2d(dn->ctx, dn->params, host, dn->num_params * sizeof(float)))
        st = vt_fail(err, VT_ERR_DEVICE, "%s: %s", path, vt_ctx_error(dn->ctx)->msg);
    vt_st_close(f);
    free(t);
    free(host);
    return st;
}
