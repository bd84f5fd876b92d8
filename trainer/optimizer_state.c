/* AdamW moments on disk: one safetensors file with "exp_avg.<name>" and
 * "exp_avg_sq.<name>" per trainable tensor, so a resumed run finds its state
 * by name even when freezing (and thus the buffer layout) changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/model_internal.h"
#include "trainer/safetensors.h"

vt_status vt_model_save_optimizer(const vt_model *m, const char *path, const char *const *meta_kv, vt_error *err) {
    if (!m->num_trainable) return vt_fail(err, VT_ERR_STATE, "model: save_optimizer: every part is frozen");
    size_t n = m->num_trainable;
    float *h = malloc(sizeof(float) * 2 * n);
    if (!h) return vt_fail(err, VT_ERR_NOMEM, "model: cannot allocate %zu floats on the host", 2 * n);
    vt_status st = vt_ctx_memcpy_d2h(m->ctx, h, m->m, sizeof(float) * n);
    if (!st) st = vt_ctx_memcpy_d2h(m->ctx, h + n, m->v, sizeof(float) * n);
    if (st) {
        free(h);
        return vt_model_op_fail((vt_model *)m, st, "copying moments to the host", err);
    }
    vt_st_writer *w = vt_st_writer_new();
    if (!w) {
        free(h);
        return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
    }
    st = vt_st_writer_meta(w, "format", "vistune-adamw", err);
    for (const char *const *kv = meta_kv; !st && kv && kv[0] && kv[1]; kv += 2) st = vt_st_writer_meta(w, kv[0], kv[1], err);
    char name[160];
    for (int k = 0; k < 2; k++)
        for (int i = 0; !st && i < m->ntensors; i++) {
            const vt_param_info *p = &m->tensors[i];
            if (!p->trainable) continue;
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            st = vt_st_writer_add(w, name, VT_ST_F32, p->ndim, p->shape, h + (size_t)k * n + (p->offset - m->train_offset),
                                  err);
        }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    free(h);
    return st;
}

vt_status vt_model_load_optimizer(vt_model *m, const char *path, vt_error *err) {
    if (!m->num_trainable) return vt_fail(err, VT_ERR_STATE, "model: load_optimizer: every part is frozen");
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (st) return st;
    size_t n = m->num_trainable;
    float *h = malloc(sizeof(float) * 2 * n);
    if (!h) {
        vt_st_close(f);
        return vt_fail(err, VT_ERR_NOMEM, "model: cannot allocate %zu floats on the host", 2 * n);
    }
    char name[160];
    for (int k = 0; k < 2 && !st; k++)
        for (int i = 0; !st && i < m->ntensors; i++) {
            const vt_param_info *p = &m->tensors[i];
            if (!p->trainable) continue;
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            const vt_st_tensor *t = vt_st_find(f, name);
            if (!t) {
                st = vt_fail(err, VT_ERR_FORMAT, "%s: optimizer state '%s' is missing", path, name);
                break;
            }
            if (t->numel != (int64_t)p->numel) {
                st = vt_fail(err, VT_ERR_FORMAT, "%s: optimizer state '%s' has %lld elements, the model needs %zu", path,
                             name, (long long)t->numel, p->numel);
                break;
            }
            st = vt_st_read_f32(f, t, h + (size_t)k * n + (p->offset - m->train_offset), t->numel, err);
        }
    if (!st) {
        vt_status s2 = vt_ctx_memcpy_h2d(m->ctx, m->m, h, sizeof(float) * n);
        if (!s2) s2 = vt_ctx_memcpy_h2d(m->ctx, m->v, h + n, sizeof(float) * n);
        if (s2) st = vt_model_op_fail(m, s2, "copying moments to the device", err);
    }
    free(h);
    vt_st_close(f);
    return st;
}
