/* AdamW moments on disk: one safetensors file with "exp_avg.<name>" and
 * "exp_avg_sq.<name>" per trainable tensor, so a resumed run finds its state
 * by name even when freezing (and thus the buffer layout) changed; method
 * parameter groups (vt_param_group) add one flat pair each. Also the
 * optimizer step over the model plus such groups. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/elementwise.h"
#include "trainer/model_internal.h"
#include "trainer/safetensors.h"

vt_status vt_model_step_ex(vt_model *m, const vt_param_group *groups, int ngroups,
                           const vt_adamw_hparams *hp, long step, float max_grad_norm, float *norm,
                           vt_error *err) {
    if (ngroups == 0) return vt_model_step(m, hp, step, max_grad_norm, norm, err);
    /* One global norm, as torch.nn.utils.clip_grad_norm_ over every parameter:
     * the model's part exactly as vt_grad_clip computes it, plus each group. */
    double ss = 0.0, part;
    vt_status st = VT_OK;
    if (m->num_trainable && (st = vt_sumsq(m->ctx, m->grads, m->num_trainable, &ss)))
        return vt_model_op_fail(m, st, "gradient norm", err);
    for (int i = 0; i < ngroups; i++) {
        if (!groups[i].n) continue;
        if ((st = vt_sumsq(m->ctx, groups[i].grads, groups[i].n, &part)))
            return vt_model_op_fail(m, st, "gradient norm", err);
        ss += part;
    }
    double total = sqrt(ss);
    if (norm) *norm = (float)total;
    if (!isfinite(total))
        return vt_fail(err, VT_ERR_RANGE, "model: step %ld: gradient norm is %g, update skipped", step, total);
    double coef = max_grad_norm / (total + 1e-6);
    if (max_grad_norm > 0.0f && coef < 1.0) {
        if (m->num_trainable && (st = vt_scale(m->ctx, m->grads, m->num_trainable, (float)coef)))
            return vt_model_op_fail(m, st, "gradient clipping", err);
        for (int i = 0; i < ngroups; i++)
            if (groups[i].n && (st = vt_scale(m->ctx, groups[i].grads, groups[i].n, (float)coef)))
                return vt_model_op_fail(m, st, "gradient clipping", err);
    }
    if (m->num_trainable &&
        (st = vt_adamw_update(m->ctx, m->params + m->train_offset, m->grads, m->m, m->v, m->decay_mask,
                              m->num_trainable, hp, step)))
        return vt_model_op_fail(m, st, "AdamW", err);
    for (int i = 0; i < ngroups; i++) {
        const vt_param_group *g = &groups[i];
        if (g->n && (st = vt_adamw_update(m->ctx, g->params, g->grads, g->m, g->v, g->decay_mask, g->n, hp, step)))
            return vt_model_op_fail(m, st, "AdamW", err);
    }
    return VT_OK;
}

vt_status vt_model_save_optimizer_ex(const vt_model *m, const vt_param_group *groups, int ngroups,
                                     const char *path, const char *const *meta_kv, vt_error *err) {
    if (!m->num_trainable && !ngroups)
        return vt_fail(err, VT_ERR_STATE, "model: save_optimizer: every part is frozen");
    size_t n = m->num_trainable, total = 2 * n;
    for (int i = 0; i < ngroups; i++) total += 2 * groups[i].n;
    float *h = malloc(sizeof(float) * (total ? total : 1));
    if (!h) return vt_fail(err, VT_ERR_NOMEM, "model: cannot allocate %zu floats on the host", total);
    vt_status st = VT_OK;
    if (n) {
        st = vt_ctx_memcpy_d2h(m->ctx, h, m->m, sizeof(float) * n);
        if (!st) st = vt_ctx_memcpy_d2h(m->ctx, h + n, m->v, sizeof(float) * n);
    }
    float *gh = h + 2 * n; /* the groups' moments, m then v per group */
    for (size_t i = 0, off = 0; !st && i < (size_t)ngroups; off += 2 * groups[i].n, i++) {
        st = vt_ctx_memcpy_d2h(m->ctx, gh + off, groups[i].m, sizeof(float) * groups[i].n);
        if (!st) st = vt_ctx_memcpy_d2h(m->ctx, gh + off + groups[i].n, groups[i].v, sizeof(float) * groups[i].n);
    }
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
    size_t off = 0;
    for (int i = 0; !st && i < ngroups; off += 2 * groups[i].n, i++)
        for (int k = 0; !st && k < 2; k++) {
            int64_t shape[1] = {(int64_t)groups[i].n};
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", groups[i].name);
            st = vt_st_writer_add(w, name, VT_ST_F32, 1, shape, gh + off + (size_t)k * groups[i].n, err);
        }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    free(h);
    return st;
}

vt_status vt_model_save_optimizer(const vt_model *m, const char *path, const char *const *meta_kv, vt_error *err) {
    return vt_model_save_optimizer_ex(m, NULL, 0, path, meta_kv, err);
}

/* Reads tensor `name` of exactly n floats into host memory dst. */
static vt_status read_moment(const vt_st_file *f, const char *path, const char *name, size_t n, float *dst,
                             vt_error *err) {
    const vt_st_tensor *t = vt_st_find(f, name);
    if (!t) return vt_fail(err, VT_ERR_FORMAT, "%s: optimizer state '%s' is missing", path, name);
    if (t->numel != (int64_t)n)
        return vt_fail(err, VT_ERR_FORMAT, "%s: optimizer state '%s' has %lld elements, the model needs %zu", path,
                       name, (long long)t->numel, n);
    return vt_st_read_f32(f, t, dst, t->numel, err);
}

vt_status vt_model_load_optimizer_ex(vt_model *m, const vt_param_group *groups, int ngroups, const char *path,
                                     vt_error *err) {
    if (!m->num_trainable && !ngroups)
        return vt_fail(err, VT_ERR_STATE, "model: load_optimizer: every part is frozen");
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (st) return st;
    size_t n = m->num_trainable, total = 2 * n;
    for (int i = 0; i < ngroups; i++) total += 2 * groups[i].n;
    float *h = malloc(sizeof(float) * (total ? total : 1));
    if (!h) {
        vt_st_close(f);
        return vt_fail(err, VT_ERR_NOMEM, "model: cannot allocate %zu floats on the host", total);
    }
    char name[160];
    for (int k = 0; k < 2 && !st; k++)
        for (int i = 0; !st && i < m->ntensors; i++) {
            const vt_param_info *p = &m->tensors[i];
            if (!p->trainable) continue;
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            st = read_moment(f, path, name, p->numel, h + (size_t)k * n + (p->offset - m->train_offset), err);
        }
    float *gh = h + 2 * n;
    size_t off = 0;
    for (int i = 0; !st && i < ngroups; off += 2 * groups[i].n, i++)
        for (int k = 0; !st && k < 2; k++) {
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", groups[i].name);
            st = read_moment(f, path, name, groups[i].n, gh + off + (size_t)k * groups[i].n, err);
        }
    /* Only a complete read touches the live moments. */
    if (!st) {
        vt_status s2 = VT_OK;
        if (n) {
            s2 = vt_ctx_memcpy_h2d(m->ctx, m->m, h, sizeof(float) * n);
            if (!s2) s2 = vt_ctx_memcpy_h2d(m->ctx, m->v, h + n, sizeof(float) * n);
        }
        off = 0;
        for (int i = 0; !s2 && i < ngroups; off += 2 * groups[i].n, i++) {
            s2 = vt_ctx_memcpy_h2d(m->ctx, groups[i].m, gh + off, sizeof(float) * groups[i].n);
            if (!s2) s2 = vt_ctx_memcpy_h2d(m->ctx, groups[i].v, gh + off + groups[i].n, sizeof(float) * groups[i].n);
        }
        if (s2) st = vt_model_op_fail(m, s2, "copying moments to the device", err);
    }
    free(h);
    vt_st_close(f);
    return st;
}

vt_status vt_model_load_optimizer(vt_model *m, const char *path, vt_error *err) {
    return vt_model_load_optimizer_ex(m, NULL, 0, path, err);
}
