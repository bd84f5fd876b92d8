/* Vittle bottleneck layer: forward (heads, reparameterised mix, KL) and
 * backward on flat buffers. Rows of each modality are gathered into
 * contiguous blocks so each head is two sgemms over its own rows only. */
#include "trainer/bottleneck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/activation.h"
#include "ops/linear.h"
#include "ops/rows.h"
#include "ops/vib.h"

/* Activations of the last forward, for backward. Rows are gathered: the
 * visual rows first (nv of them), then the text rows (nt). Buffers marked
 * (ctx) live in the layer's ctx memory (the device on CUDA); the row lists
 * and the KL sums are built and read on the host. */
struct vt_bottleneck_work {
    int cap;            /* rows allocated */
    int N, nv, nt;      /* last forward */
    bool ready;         /* a forward has run */
    bool train;         /* eps was given */
    float alpha;
    int32_t *rows_h;    /* [cap] gathered row -> original row (host) */
    uint8_t *counted_h; /* [cap] gathered row counts in its KL (host) */
    double *kl_h;       /* [cap] per-row KL sums (host) */
    int32_t *rows;      /* (ctx) copies of the above */
    uint8_t *counted;
    double *kl_rows;
    float *x;           /* (ctx) [cap, D] inputs h */
    float *a1, *g;      /* (ctx) [cap, D] fc1 output, GELU output */
    float *o;           /* (ctx) [cap, 2D] fc2 output, log-variance half clamped */
    float *eps;         /* (ctx) [cap, D] */
    float *d_o, *d_g, *d_x; /* (ctx) backward scratch */
    float *prior_h;     /* [4D] prior used (clamped): mu_v, logvar_v, mu_t, logvar_t (host) */
    float *prior;       /* (ctx) the same */
    bool kl_v_clamped, kl_t_clamped;
};

void vt_bottleneck_config_default(vt_bottleneck_config *c) {
    memset(c, 0, sizeof *c);
    c->layer = -1;
    c->alpha_end = 0.5f;
    c->beta_v = 0.1f;
    c->beta_t = 0.1f;
    c->learnable_prior = false;
    c->kl = VT_BN_KL_TEXTBOOK;
    c->logvar_clamp = 2.3026f;
    c->kl_max = 1e4f;
    c->init_std = 0.02f;
}

vt_status vt_bottleneck_config_read(const vt_config *cfg, const char *prefix,
                                    vt_bottleneck_config *c, vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.layer", prefix);
    int64_t layer = c->layer;
    vt_status st = vt_config_int_range(cfg, path, -1, 1 << 20, &layer, err);
    if (st) return st;
    c->layer = (int)layer;
    if ((st = vt_config_section_float(cfg, prefix, "alpha_end", &c->alpha_end, false, err))) return st;
    if (c->alpha_end > 1.0f) return vt_fail(err, VT_ERR_ARG, "%s.alpha_end: must be in [0, 1], got %g", prefix, (double)c->alpha_end);
    snprintf(path, sizeof path, "%s.alpha_steps", prefix);
    if ((st = vt_config_int_range(cfg, path, 0, INT64_C(1) << 40, &c->alpha_steps, err))) return st;
    if ((st = vt_config_section_float(cfg, prefix, "beta_v", &c->beta_v, false, err))) return st;
    if ((st = vt_config_section_float(cfg, prefix, "beta_t", &c->beta_t, false, err))) return st;
    if ((st = vt_config_section_float(cfg, prefix, "logvar_clamp", &c->logvar_clamp, false, err))) return st;
    if ((st = vt_config_section_float(cfg, prefix, "init_std", &c->init_std, false, err))) return st;
    static const char *const priors[] = {"fixed", "learnable"};
    int prior = c->learnable_prior ? 1 : 0;
    snprintf(path, sizeof path, "%s.prior", prefix);
    if ((st = vt_config_enum(cfg, path, priors, 2, &prior, err))) return st;
    c->learnable_prior = prior == 1;
    static const char *const kls[] = {"textbook", "reference"};
    int kl = (int)c->kl;
    snprintf(path, sizeof path, "%s.kl", prefix);
    if ((st = vt_config_enum(cfg, path, kls, 2, &kl, err))) return st;
    c->kl = (vt_bottleneck_kl)kl;
    return VT_OK;
}

vt_status vt_bottleneck_config_resolve(vt_bottleneck_config *c, int hidden, int layers,
                                       vt_error *err) {
    if (hidden <= 0 || layers <= 0)
        return vt_fail(err, VT_ERR_ARG, "vittle: decoder hidden %d / layers %d must be positive", hidden, layers);
    c->hidden = hidden;
    if (c->layer == -1) c->layer = (3 * layers) / 4;
    if (c->layer < 0 || c->layer >= layers)
        return vt_fail(err, VT_ERR_ARG, "vittle.layer: %d is outside the decoder's blocks 0..%d",
                       c->layer, layers - 1);
    return VT_OK;
}

float vt_bottleneck_alpha(const vt_bottleneck_config *c, double progress) {
    return (float)((double)c->alpha_end / (1.0 + exp(-10.0 * (progress - 0.5))));
}

float vt_bottleneck_alpha_at(const vt_bottleneck_config *c, uint64_t step, uint64_t total_steps) {
    uint64_t horizon = c->alpha_steps > 0 ? (uint64_t)c->alpha_steps : total_steps;
    double progress = horizon ? (double)step / (double)horizon : 0.0;
    return vt_bottleneck_alpha(c, progress < 1.0 ? progress : 1.0);
}

/* ---- parameters ---- */

static void add_tensor(vt_bottleneck *bn, const char *name, int64_t r, int64_t cdim, size_t *off) {
    vt_bottleneck_tensor *t = &bn->tensors[bn->ntensors++];
    t->name = name;
    t->ndim = cdim ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = cdim;
    t->numel = (size_t)r * (size_t)(cdim ? cdim : 1);
    t->offset = *off;
    t->decay = cdim != 0;
    *off += t->numel;
}

static void set_views(vt_bottleneck *bn, float *base, vt_bottleneck_views *vw) {
    float **slots[12] = {&vw->v.fc1_w, &vw->v.fc1_b, &vw->v.fc2_w, &vw->v.fc2_b,
                         &vw->t.fc1_w, &vw->t.fc1_b, &vw->t.fc2_w, &vw->t.fc2_b,
                         &vw->prior_mu_v, &vw->prior_logvar_v, &vw->prior_mu_t, &vw->prior_logvar_t};
    memset(vw, 0, sizeof *vw);
    for (int i = 0; i < bn->ntensors; i++) *slots[i] = base + bn->tensors[i].offset;
}

static void free_work(vt_ctx *ctx, vt_bottleneck_work *w) {
    void *dev[] = {w->rows, w->counted, w->kl_rows, w->x, w->a1, w->g, w->o, w->eps, w->d_o, w->d_g, w->d_x};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) vt_ctx_free(ctx, dev[i]);
    free(w->rows_h);
    free(w->counted_h);
    free(w->kl_h);
    w->rows = NULL, w->counted = NULL, w->kl_rows = NULL, w->x = w->a1 = w->g = w->o = w->eps = NULL;
    w->d_o = w->d_g = w->d_x = NULL, w->rows_h = NULL, w->counted_h = NULL, w->kl_h = NULL;
    w->cap = 0;
}

static vt_status grow(vt_bottleneck *bn, int N, vt_error *err) {
    vt_bottleneck_work *w = bn->work;
    if (N <= w->cap) return VT_OK;
    free_work(bn->ctx, w);
    size_t D = (size_t)bn->cfg.hidden, n = (size_t)N, f = sizeof(float);
    struct { void **p; size_t bytes; } dev[] = {
        {(void **)&w->rows, n * sizeof(int32_t)}, {(void **)&w->counted, n}, {(void **)&w->kl_rows, n * sizeof(double)},
        {(void **)&w->x, n * D * f}, {(void **)&w->a1, n * D * f}, {(void **)&w->g, n * D * f},
        {(void **)&w->o, n * 2 * D * f}, {(void **)&w->eps, n * D * f}, {(void **)&w->d_o, n * 2 * D * f},
        {(void **)&w->d_g, n * D * f}, {(void **)&w->d_x, n * D * f}};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (vt_ctx_alloc(bn->ctx, dev[i].p, dev[i].bytes)) goto nomem;
    w->rows_h = malloc(n * sizeof(int32_t));
    w->counted_h = malloc(n);
    w->kl_h = malloc(n * sizeof(double));
    if (!w->rows_h || !w->counted_h || !w->kl_h) goto nomem;
    w->cap = N;
    return VT_OK;
nomem:
    free_work(bn->ctx, w);
    return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory for %d rows of width %zu", N, D);
}

vt_status vt_bottleneck_create(vt_bottleneck **out, vt_ctx *ctx, const vt_bottleneck_config *cfg,
                               uint64_t seed, vt_error *err) {
    *out = NULL;
    if (cfg->hidden <= 0) return vt_fail(err, VT_ERR_ARG, "vittle: hidden size %d not set", cfg->hidden);
    vt_bottleneck *bn = calloc(1, sizeof *bn);
    if (!bn) return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory");
    bn->cfg = *cfg;
    bn->ctx = ctx;
    int64_t D = cfg->hidden;
    size_t off = 0;
    add_tensor(bn, "vittle.head_v.fc1.weight", D, D, &off);
    add_tensor(bn, "vittle.head_v.fc1.bias", D, 0, &off);
    add_tensor(bn, "vittle.head_v.fc2.weight", 2 * D, D, &off);
    add_tensor(bn, "vittle.head_v.fc2.bias", 2 * D, 0, &off);
    add_tensor(bn, "vittle.head_t.fc1.weight", D, D, &off);
    add_tensor(bn, "vittle.head_t.fc1.bias", D, 0, &off);
    add_tensor(bn, "vittle.head_t.fc2.weight", 2 * D, D, &off);
    add_tensor(bn, "vittle.head_t.fc2.bias", 2 * D, 0, &off);
    if (cfg->learnable_prior) {
        add_tensor(bn, "vittle.prior_v.mean", D, 0, &off);
        add_tensor(bn, "vittle.prior_v.logvar", D, 0, &off);
        add_tensor(bn, "vittle.prior_t.mean", D, 0, &off);
        add_tensor(bn, "vittle.prior_t.logvar", D, 0, &off);
    }
    bn->num_params = off;
    bn->work = calloc(1, sizeof *bn->work);
    float *init = calloc(off, sizeof(float));
    vt_status st = bn->work && init ? VT_OK : VT_ERR_NOMEM;
    if (!st) st = vt_ctx_alloc(ctx, (void **)&bn->params, off * sizeof(float));
    if (!st) st = vt_ctx_alloc(ctx, (void **)&bn->grads, off * sizeof(float));
    if (!st) st = vt_ctx_alloc(ctx, (void **)&bn->work->prior, 4 * (size_t)D * sizeof(float));
    if (!st && !(bn->work->prior_h = calloc(4 * (size_t)D, sizeof(float)))) st = VT_ERR_NOMEM;
    if (st) {
        free(init);
        vt_bottleneck_free(bn);
        return vt_fail(err, st, "vittle: no memory for %zu parameters", off);
    }
    set_views(bn, bn->params, &bn->w);
    set_views(bn, bn->grads, &bn->g);
    for (int i = 0; i < bn->ntensors; i++) {
        const vt_bottleneck_tensor *t = &bn->tensors[i];
        if (!t->decay) continue; /* biases and priors start at 0 */
        vt_rng r;
        vt_rng_init(&r, vt_hash_bytes(t->name, strlen(t->name), seed));
        float *p = init + t->offset;
        for (size_t k = 0; k < t->numel; k++) p[k] = cfg->init_std * (float)vt_rng_normal(&r);
    }
    st = vt_ctx_memcpy_h2d(ctx, bn->params, init, off * sizeof(float));
    free(init);
    if (st) {
        vt_bottleneck_free(bn);
        return vt_fail(err, st, "vittle: %s", vt_ctx_error(ctx)->msg);
    }
    *out = bn;
    return VT_OK;
}

void vt_bottleneck_free(vt_bottleneck *bn) {
    if (!bn) return;
    vt_bottleneck_work *w = bn->work;
    if (w) {
        free_work(bn->ctx, w);
        vt_ctx_free(bn->ctx, w->prior);
        free(w->prior_h);
        free(w);
    }
    vt_ctx_free(bn->ctx, bn->params);
    vt_ctx_free(bn->ctx, bn->grads);
    free(bn);
}

void vt_bottleneck_zero_grad(vt_bottleneck *bn) {
    vt_ctx_memset_zero(bn->ctx, bn->grads, bn->num_params * sizeof(float));
}

/* ---- forward ---- */

static vt_status ctx_fail(vt_bottleneck *bn, vt_error *err) {
    const vt_error *e = vt_ctx_error(bn->ctx);
    return vt_fail(err, e->code ? e->code : VT_ERR_STATE, "vittle: %s", e->msg);
}

/* fc1 -> GELU -> fc2 over n gathered rows starting at row r0. */
static vt_status head_forward(vt_bottleneck *bn, const vt_bottleneck_head *hd, int r0, int n,
                              vt_error *err) {
    if (n == 0) return VT_OK;
    vt_bottleneck_work *w = bn->work;
    int D = bn->cfg.hidden;
    size_t o1 = (size_t)r0 * D, o2 = (size_t)r0 * 2 * D;
    if (vt_linear_forward(bn->ctx, w->a1 + o1, w->x + o1, hd->fc1_w, hd->fc1_b, n, D, D) ||
        vt_activation_forward(bn->ctx, VT_ACT_GELU, w->g + o1, w->a1 + o1, (size_t)n * D) ||
        vt_linear_forward(bn->ctx, w->o + o2, w->g + o1, hd->fc2_w, hd->fc2_b, n, D, 2 * D))
        return ctx_fail(bn, err);
    return VT_OK;
}

/* The prior actually used: N(0, I), or the learnable vectors with the
 * log-variance clamped (the gradient passes the clamp straight through, as
 * the reference's in-place .data clamp does). Copied into ctx memory. */
static vt_status prior_values(vt_bottleneck *bn, vt_error *err) {
    vt_bottleneck_work *w = bn->work;
    size_t D = (size_t)bn->cfg.hidden, bytes = 4 * D * sizeof(float);
    float *p = w->prior_h, c = bn->cfg.logvar_clamp;
    if (!bn->cfg.learnable_prior) {
        memset(p, 0, bytes);
    } else {
        /* the four prior tensors are the buffer's last 4D floats, in this order */
        if (vt_ctx_memcpy_d2h(bn->ctx, p, bn->w.prior_mu_v, bytes)) return ctx_fail(bn, err);
        for (size_t d = 0; d < D; d++) {
            p[D + d] = fminf(fmaxf(p[D + d], -c), c);
            p[3 * D + d] = fminf(fmaxf(p[3 * D + d], -c), c);
        }
    }
    if (vt_ctx_memcpy_h2d(bn->ctx, w->prior, p, bytes)) return ctx_fail(bn, err);
    return VT_OK;
}

/* The op's view of gathered rows [r0, r0 + n) of one modality (0 visual, 1 text). */
static vt_vib_rows vib_rows(const vt_bottleneck *bn, int r0, int n, int modality) {
    const vt_bottleneck_work *w = bn->work;
    size_t D = (size_t)bn->cfg.hidden;
    return (vt_vib_rows){.n = n, .width = (int)D, .rows = w->rows + r0, .counted = w->counted + r0,
                         .x = w->x + r0 * D, .o = w->o + r0 * 2 * D, .eps = w->train ? w->eps + r0 * D : NULL,
                         .prior_mu = w->prior + 2 * (size_t)modality * D,
                         .prior_logvar = w->prior + (2 * (size_t)modality + 1) * D, .alpha = w->alpha,
                         .logvar_clamp = bn->cfg.logvar_clamp,
                         .logvar_weight = bn->cfg.kl == VT_BN_KL_TEXTBOOK ? 1.0 : 0.5};
}

vt_status vt_bottleneck_forward(vt_bottleneck *bn, float *h, const uint8_t *role, int N,
                                float alpha, const float *eps, vt_error *err) {
    if (N < 0) return vt_fail(err, VT_ERR_ARG, "vittle: negative row count %d", N);
    vt_bottleneck_work *w = bn->work;
    w->ready = false;
    vt_status st = grow(bn, N, err);
    if (st) return st;
    size_t D = (size_t)bn->cfg.hidden;
    w->N = N;
    w->alpha = alpha;
    w->train = eps != NULL;
    int k = 0, cv = 0, ct = 0;
    for (int pass = 0; pass < 2; pass++) { /* visual rows first, then text */
        for (int r = 0; r < N; r++) {
            if (role[r] > VT_BN_TEXT_KL)
                return vt_fail(err, VT_ERR_ARG, "vittle: row %d has unknown role %u", r, role[r]);
            bool vis = role[r] == VT_BN_VISUAL;
            bool txt = role[r] == VT_BN_TEXT || role[r] == VT_BN_TEXT_KL;
            if (!(pass == 0 ? vis : txt)) continue;
            w->rows_h[k] = r;
            w->counted_h[k] = role[r] == VT_BN_VISUAL || role[r] == VT_BN_TEXT_KL;
            if (w->counted_h[k]) *(pass == 0 ? &cv : &ct) += 1;
            k++;
        }
        if (pass == 0) w->nv = k;
    }
    w->nt = k - w->nv;
    if (vt_ctx_memcpy_h2d(bn->ctx, w->rows, w->rows_h, (size_t)k * sizeof(int32_t)) ||
        vt_ctx_memcpy_h2d(bn->ctx, w->counted, w->counted_h, (size_t)k) ||
        vt_rows_gather(bn->ctx, w->x, h, w->rows, k, (int)D) ||
        (eps && vt_rows_gather(bn->ctx, w->eps, eps, w->rows, k, (int)D)))
        return ctx_fail(bn, err);
    if ((st = head_forward(bn, &bn->w.v, 0, w->nv, err))) return st;
    if ((st = head_forward(bn, &bn->w.t, w->nv, w->nt, err))) return st;
    if ((st = prior_values(bn, err))) return st;
    vt_vib_rows rv = vib_rows(bn, 0, w->nv, 0), rt = vib_rows(bn, w->nv, w->nt, 1);
    if (vt_vib_forward(bn->ctx, &rv, h, w->kl_rows) || vt_vib_forward(bn->ctx, &rt, h, w->kl_rows + w->nv) ||
        vt_ctx_memcpy_d2h(bn->ctx, w->kl_h, w->kl_rows, (size_t)k * sizeof(double)))
        return ctx_fail(bn, err);
    double sv = 0.0, sn = 0.0;
    for (int i = 0; i < k; i++) *(i < w->nv ? &sv : &sn) += w->kl_h[i];
    bn->count_v = cv;
    bn->count_t = ct;
    bn->kl_v = cv ? sv / ((double)cv * D) : 0.0;
    bn->kl_t = ct ? sn / ((double)ct * D) : 0.0;
    /* The reference clamps an exploding KL; the clamped term then has no gradient. */
    w->kl_v_clamped = bn->kl_v > bn->cfg.kl_max;
    w->kl_t_clamped = bn->kl_t > bn->cfg.kl_max;
    if (w->kl_v_clamped) bn->kl_v = bn->cfg.kl_max;
    if (w->kl_t_clamped) bn->kl_t = bn->cfg.kl_max;
    bn->loss = bn->cfg.beta_v * bn->kl_v + bn->cfg.beta_t * bn->kl_t;
    w->ready = true;
    return VT_OK;
}

/* ---- backward ---- */

static vt_status head_backward(vt_bottleneck *bn, const vt_bottleneck_head *hw,
                               const vt_bottleneck_head *hg, int r0, int n, vt_error *err) {
    if (n == 0) return VT_OK;
    vt_bottleneck_work *w = bn->work;
    int D = bn->cfg.hidden;
    size_t o1 = (size_t)r0 * D, o2 = (size_t)r0 * 2 * D;
    /* dL/da1 = gelu'(a1) * dL/dg is written into the (then consumed) d_o rows. */
    float *da1 = w->d_o + o2;
    if (vt_ctx_memset_zero(bn->ctx, w->d_g + o1, (size_t)n * D * sizeof(float)) ||
        vt_linear_backward(bn->ctx, w->d_g + o1, hg->fc2_w, hg->fc2_b, w->d_o + o2, w->g + o1,
                           hw->fc2_w, n, D, 2 * D) ||
        vt_ctx_memset_zero(bn->ctx, da1, (size_t)n * D * sizeof(float)) ||
        vt_activation_backward(bn->ctx, VT_ACT_GELU, da1, w->d_g + o1, w->a1 + o1, (size_t)n * D) ||
        vt_linear_backward(bn->ctx, w->d_x + o1, hg->fc1_w, hg->fc1_b, da1, w->x + o1, hw->fc1_w,
                           n, D, D))
        return ctx_fail(bn, err);
    return VT_OK;
}

vt_status vt_bottleneck_backward(vt_bottleneck *bn, float *dh, float kl_scale, vt_error *err) {
    return vt_bottleneck_backward2(bn, dh, kl_scale, kl_scale, err);
}

vt_status vt_bottleneck_backward2(vt_bottleneck *bn, float *dh, float scale_v, float scale_t,
                                  vt_error *err) {
    vt_bottleneck_work *w = bn->work;
    if (!w->ready) return vt_fail(err, VT_ERR_STATE, "vittle: backward without a forward");
    size_t D = (size_t)bn->cfg.hidden;
    double kv = (bn->count_v && !w->kl_v_clamped)
                    ? (double)scale_v * bn->cfg.beta_v / ((double)bn->count_v * D) : 0.0;
    double kt = (bn->count_t && !w->kl_t_clamped)
                    ? (double)scale_t * bn->cfg.beta_t / ((double)bn->count_t * D) : 0.0;
    bool lp = bn->cfg.learnable_prior;
    vt_vib_rows rv = vib_rows(bn, 0, w->nv, 0), rt = vib_rows(bn, w->nv, w->nt, 1);
    if (vt_vib_backward(bn->ctx, &rv, dh, kv, w->d_o, w->d_x, lp ? bn->g.prior_mu_v : NULL,
                        lp ? bn->g.prior_logvar_v : NULL) ||
        vt_vib_backward(bn->ctx, &rt, dh, kt, w->d_o + (size_t)w->nv * 2 * D, w->d_x + (size_t)w->nv * D,
                        lp ? bn->g.prior_mu_t : NULL, lp ? bn->g.prior_logvar_t : NULL))
        return ctx_fail(bn, err);
    vt_status st = head_backward(bn, &bn->w.v, &bn->g.v, 0, w->nv, err);
    if (!st) st = head_backward(bn, &bn->w.t, &bn->g.t, w->nv, w->nt, err);
    if (st) return st;
    if (vt_rows_scatter(bn->ctx, dh, w->d_x, w->rows, w->nv + w->nt, (int)D, false)) return ctx_fail(bn, err);
    return VT_OK;
}
