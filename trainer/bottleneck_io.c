/* Saving and loading the Vittle layer's parameters as vittle.safetensors,
 * beside (never inside) the Hugging Face model.safetensors, so the exported
 * checkpoint still loads as plain LLaVA. */
#include "trainer/bottleneck.h"

#include <string.h>

#include "trainer/safetensors.h"

vt_status vt_bottleneck_save(const vt_bottleneck *bn, const char *path, vt_error *err) {
    vt_st_writer *w = vt_st_writer_new();
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    vt_status st = vt_st_writer_meta(w, "format", "pt", err);
    if (!st) st = vt_st_writer_meta(w, "vistune_method", "vittle", err);
    for (int i = 0; i < bn->ntensors && !st; i++) {
        const vt_bottleneck_tensor *t = &bn->tensors[i];
        st = vt_st_writer_add(w, t->name, VT_ST_F32, t->ndim, t->shape, bn->params + t->offset, err);
    }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    return st;
}

vt_status vt_bottleneck_load(vt_bottleneck *bn, const char *path, vt_error *err) {
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (st) return st;
    for (int i = 0; i < vt_st_count(f) && !st; i++) {
        const char *name = vt_st_at(f, i)->name;
        bool known = false;
        for (int k = 0; k < bn->ntensors; k++) known |= !strcmp(bn->tensors[k].name, name);
        if (!known)
            st = vt_fail(err, VT_ERR_FORMAT, "%s: unexpected tensor '%s' (prior or width differs?)", path, name);
    }
    for (int k = 0; k < bn->ntensors && !st; k++) {
        const vt_bottleneck_tensor *t = &bn->tensors[k];
        const vt_st_tensor *s = vt_st_find(f, t->name);
        if (!s) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s' missing", path, t->name);
            break;
        }
        bool same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
        if (!same) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: tensor '%s': shape differs from the layer's (hidden %d)",
                         path, t->name, bn->cfg.hidden);
            break;
        }
        st = vt_st_read_f32(f, s, bn->params + t->offset, (int64_t)t->numel, err);
    }
    vt_st_close(f);
    return st;
}
