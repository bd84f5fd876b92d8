/* Saving and loading the ROSS denoiser's parameters as ross.safetensors,
 * beside (never inside) the Hugging Face model.safetensors: the denoiser is
 * training-only, so the exported checkpoint stays plain LLaVA. */
#include "trainer/denoiser.h"

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
    for (int i = 0; i < dn->ntensors && !st; i++) {
        const vt_denoiser_tensor *t = &dn->tensors[i];
        st = vt_st_writer_add(w, t->name, VT_ST_F32, t->ndim, t->shape, dn->params + t->offset, err);
    }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    return st;
}

vt_status vt_denoiser_load(vt_denoiser *dn, const char *path, vt_error *err) {
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (st) return st;
    for (int i = 0; i < vt_st_count(f) && !st; i++) {
        const char *name = vt_st_at(f, i)->name;
        bool known = false;
        for (int k = 0; k < dn->ntensors; k++) known |= !strcmp(dn->tensors[k].name, name);
        if (!known)
            st = vt_fail(err, VT_ERR_FORMAT, "%s: unexpected tensor '%s' (depth differs?)", path, name);
    }
    for (int k = 0; k < dn->ntensors && !st; k++) {
        const vt_denoiser_tensor *t = &dn->tensors[k];
        const vt_st_tensor *s = vt_st_find(f, t->name);
        if (!s) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' missing", path, t->name);
            break;
        }
        bool same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
        if (!same) {
            st = vt_fail(err, VT_ERR_FORMAT,
                         "%s: tensor '%s': shape differs from the denoiser's (width %d, target %d, condition %d)",
                         path, t->name, dn->cfg.width, dn->cfg.target_dim, dn->cfg.cond_dim);
            break;
        }
        st = vt_st_read_f32(f, s, dn->params + t->offset, (int64_t)t->numel, err);
    }
    vt_st_close(f);
    return st;
}
