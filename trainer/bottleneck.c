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

/* Activations of the last forward, for backward. Rows are gathered: the
 * visual rows first (nv of them), then the text rows (nt). */
struct vt_bottleneck_work {
    int cap;            /* rows allocated */
    int N, nv, nt;      /* last forward */
    bool ready;         /* a forward has run */
    bool train;         /* eps was given */
    float alpha;
    int *rows;          /* [cap] gathered row -> original row */
    uint8_t *counted;   /* [cap] gathered row counts in its KL */
    float *x;           /* [cap, D] inputs h */
    float *a1, *g;      /* [cap, D] fc1 output, GELU output */
    float *o;           /* [cap, 2D] fc2 output, log-variance half clamped */
    float *eps;         /* [cap, D] */
    float *d_o, *d_g, *d_x; /* backward scratch */
    float *pmu_v, *plv_v, *pmu_t, *plv_t; /* prior used (clamped), [D] each */
    double *ip_v, *ip_t;                  /* exp(-prior log-variance), [D] each */
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

static vt_status grow(vt_bottleneck *bn, int N, vt_error *err) {
    vt_bottleneck_work *w = bn->work;
    if (N <= w->cap) return VT_OK;
    size_t D = (size_t)bn->cfg.hidden, n = (size_t)N;
    float **bufs[] = {&w->x, &w->a1, &w->g, &w->eps, &w->d_g, &w->d_x};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = malloc(n * D * sizeof(float));
    }
    free(w->o);
    free(w->d_o);
    free(w->rows);
    free(w->counted);
    w->o = malloc(n * 2 * D * sizeof(float));
    w->d_o = malloc(n * 2 * D * sizeof(float));
    w->rows = malloc(n * sizeof(int));
    w->counted = malloc(n);
    w->cap = N;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!*bufs[i]) goto nomem;
    if (!w->o || !w->d_o || !w->rows || !w->counted) goto nomem;
    return VT_OK;
nomem:
    w->cap = 0;
    return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory for %d rows of width %zu", N, D);
}

vt_status vt_bottleneck_create(vt_bottleneck **out, vt_ctx *ctx, const vt_bottleneck_config *cfg,
                               uint64_t seed, vt_error *err) {
    *out = NULL;
    if (vt_ctx_backend(ctx) != VT_BACKEND_CPU)
        return vt_fail(err, VT_ERR_DEVICE, "vittle: the bottleneck layer runs on the CPU backend only");
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
    bn->params = calloc(off, sizeof(float));
    bn->grads = calloc(off, sizeof(float));
    bn->work = calloc(1, sizeof *bn->work);
    float *priors = calloc(4 * (size_t)D, sizeof(float));
    double *ip = calloc(2 * (size_t)D, sizeof(double));
    if (!bn->params || !bn->grads || !bn->work || !priors || !ip) {
        free(priors);
        free(ip);
        vt_bottleneck_free(bn);
        return vt_fail(err, VT_ERR_NOMEM, "vittle: no memory for %zu parameters", off);
    }
    bn->work->pmu_v = priors;
    bn->work->plv_v = priors + D;
    bn->work->pmu_t = priors + 2 * D;
    bn->work->plv_t = priors + 3 * D;
    bn->work->ip_v = ip;
    bn->work->ip_t = ip + D;
    set_views(bn, bn->params, &bn->w);
    set_views(bn, bn->grads, &bn->g);
    for (int i = 0; i < bn->ntensors; i++) {
        const vt_bottleneck_tensor *t = &bn->tensors[i];
        if (!t->decay) continue; /* biases and priors start at 0 */
        vt_rng r;
        vt_rng_init(&r, vt_hash_bytes(t->name, strlen(t->name), seed));
        float *p = bn->params + t->offset;
        for (size_t k = 0; k < t->numel; k++) p[k] = cfg->init_std * (float)vt_rng_normal(&r);
    }
    *out = bn;
    return VT_OK;
}

void vt_bottleneck_free(vt_bottleneck *bn) {
    if (!bn) return;
    vt_bottleneck_work *w = bn->work;
    if (w) {
        free(w->rows); free(w->counted); free(w->x); free(w->a1); free(w->g); free(w->o);
        free(w->eps); free(w->d_o); free(w->d_g); free(w->d_x); free(w->pmu_v); free(w->ip_v);
        free(w);
    }
    free(bn->params);
    free(bn->grads);
    free(bn);
}

void vt_bottleneck_zero_grad(vt_bottleneck *bn) {
    memset(bn->grads, 0, bn->num_params * sizeof(float));
}

/* Box-Muller keeping both outputs of each pair of uniforms (half the log,
 * sqrt and uniforms of drawing one normal at a time). */
void vt_bottleneck_noise(float *eps, size_t n, uint64_t key) {
    vt_rng r;
    vt_rng_init(&r, key);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = vt_rng_uniform_double(&r), u2 = vt_rng_uniform_double(&r);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
        eps[i] = (float)(rad * cos(th));
        if (i + 1 < n) eps[i + 1] = (float)(rad * sin(th));
    }
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
 * the reference's in-place .data clamp does). */
static void prior_values(vt_bottleneck *bn) {
    vt_bottleneck_work *w = bn->work;
    int D = bn->cfg.hidden;
    float c = bn->cfg.logvar_clamp;
    for (int d = 0; d < D; d++) {
        if (bn->cfg.learnable_prior) {
            w->pmu_v[d] = bn->w.prior_mu_v[d];
            w->pmu_t[d] = bn->w.prior_mu_t[d];
            w->plv_v[d] = fminf(fmaxf(bn->w.prior_logvar_v[d], -c), c);
            w->plv_t[d] = fminf(fmaxf(bn->w.prior_logvar_t[d], -c), c);
        } else {
            w->pmu_v[d] = w->pmu_t[d] = w->plv_v[d] = w->plv_t[d] = 0.0f;
        }
        w->ip_v[d] = exp(-(double)w->plv_v[d]);
        w->ip_t[d] = exp(-(double)w->plv_t[d]);
    }
}

/* Clamps log sigma^2, mixes the rows back into h and returns the KL sum
 * over counted rows of gathered rows [r0, r0 + n). */
static double mix_and_kl(vt_bottleneck *bn, float *h, int r0, int n, const float *pmu,
                         const float *plv, const double *ipv) {
    vt_bottleneck_work *w = bn->work;
    int D = bn->cfg.hidden;
    float c = bn->cfg.logvar_clamp, a = w->alpha;
    double lw = bn->cfg.kl == VT_BN_KL_TEXTBOOK ? 1.0 : 0.5;
    double sum = 0.0;
    for (int i = r0; i < r0 + n; i++) {
        float *mu = w->o + (size_t)i * 2 * D, *lv = mu + D;
        const float *x = w->x + (size_t)i * D, *e = w->eps + (size_t)i * D;
        float *out = h + (size_t)w->rows[i] * D;
        for (int d = 0; d < D; d++) {
            lv[d] = fminf(fmaxf(lv[d], -c), c);
            float s = expf(0.5f * lv[d]);
            float z = w->train ? mu[d] + s * e[d] : mu[d];
            out[d] = (1.0f - a) * x[d] + a * z;
            if (w->counted[i]) {
                double dm = (double)mu[d] - pmu[d], ip = ipv[d];
                sum += 0.5 * (lw * ((double)plv[d] - lv[d]) + ((double)s * s + dm * dm) * ip - 1.0);
            }
        }
    }
    return sum;
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
            w->rows[k] = r;
            w->counted[k] = role[r] == VT_BN_VISUAL || role[r] == VT_BN_TEXT_KL;
            if (w->counted[k]) *(pass == 0 ? &cv : &ct) += 1;
            memcpy(w->x + (size_t)k * D, h + (size_t)r * D, D * sizeof(float));
            if (eps) memcpy(w->eps + (size_t)k * D, eps + (size_t)r * D, D * sizeof(float));
            k++;
        }
        if (pass == 0) w->nv = k;
    }
    w->nt = k - w->nv;
    if ((st = head_forward(bn, &bn->w.v, 0, w->nv, err))) return st;
    if ((st = head_forward(bn, &bn->w.t, w->nv, w->nt, err))) return st;
    prior_values(bn);
    double sv = mix_and_kl(bn, h, 0, w->nv, w->pmu_v, w->plv_v, w->ip_v);
    double sn = mix_and_kl(bn, h, w->nv, w->nt, w->pmu_t, w->plv_t, w->ip_t);
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

/* d_o for gathered rows [r0, r0 + n) from dh' (the z path) and the KL
 * (coefficient kc per element, 0 when the term does not count); the prior
 * gradients go to gpmu/gplv (NULL for a fixed prior); d_x gets the direct
 * (1 - alpha) path. */
static void mix_backward(vt_bottleneck *bn, const float *dh, int r0, int n, double kc,
                         const float *pmu, const double *ipv, float *gpmu, float *gplv) {
    vt_bottleneck_work *w = bn->work;
    int D = bn->cfg.hidden;
    float a = w->alpha;
    double lw = bn->cfg.kl == VT_BN_KL_TEXTBOOK ? 1.0 : 0.5;
    for (int i = r0; i < r0 + n; i++) {
        const float *mu = w->o + (size_t)i * 2 * D, *lv = mu + D;
        const float *e = w->eps + (size_t)i * D, *G = dh + (size_t)w->rows[i] * D;
        float *dmu = w->d_o + (size_t)i * 2 * D, *dlv = dmu + D, *dx = w->d_x + (size_t)i * D;
        for (int d = 0; d < D; d++) {
            float s = expf(0.5f * lv[d]);
            dx[d] = (1.0f - a) * G[d];
            double gm = a * G[d];
            double gl = w->train ? a * G[d] * e[d] * 0.5 * s : 0.0;
            if (w->counted[i] && kc != 0.0) {
                double dm = (double)mu[d] - pmu[d], ip = ipv[d];
                double s2 = (double)s * s;
                gm += kc * dm * ip;
                gl += kc * 0.5 * (s2 * ip - lw);
                if (gpmu) {
                    gpmu[d] -= (float)(kc * dm * ip);
                    gplv[d] += (float)(kc * 0.5 * (lw - (s2 + dm * dm) * ip));
                }
            }
            dmu[d] = (float)gm;
            dlv[d] = (float)gl; /* straight through the log-variance clamp */
        }
    }
}

static vt_status head_backward(vt_bottleneck *bn, const vt_bottleneck_head *hw,
                               const vt_bottleneck_head *hg, int r0, int n, vt_error *err) {
    if (n == 0) return VT_OK;
    vt_bottleneck_work *w = bn->work;
    int D = bn->cfg.hidden;
    size_t o1 = (size_t)r0 * D, o2 = (size_t)r0 * 2 * D;
    memset(w->d_g + o1, 0, (size_t)n * D * sizeof(float));
    if (vt_linear_backward(bn->ctx, w->d_g + o1, hg->fc2_w, hg->fc2_b, w->d_o + o2, w->g + o1,
                           hw->fc2_w, n, D, 2 * D))
        return ctx_fail(bn, err);
    /* dL/da1 = gelu'(a1) * dL/dg, written into the (now consumed) d_o rows. */
    float *da1 = w->d_o + o2;
    memset(da1, 0, (size_t)n * D * sizeof(float));
    if (vt_activation_backward(bn->ctx, VT_ACT_GELU, da1, w->d_g + o1, w->a1 + o1, (size_t)n * D) ||
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
    mix_backward(bn, dh, 0, w->nv, kv, w->pmu_v, w->ip_v, lp ? bn->g.prior_mu_v : NULL,
                 lp ? bn->g.prior_logvar_v : NULL);
    mix_backward(bn, dh, w->nv, w->nt, kt, w->pmu_t, w->ip_t, lp ? bn->g.prior_mu_t : NULL,
                 lp ? bn->g.prior_logvar_t : NULL);
    vt_status st = head_backward(bn, &bn->w.v, &bn->g.v, 0, w->nv, err);
    if (!st) st = head_backward(bn, &bn->w.t, &bn->g.t, w->nv, w->nt, err);
    if (st) return st;
    int k = w->nv + w->nt;
    for (int i = 0; i < k; i++)
        memcpy(dh + (size_t)w->rows[i] * D, w->d_x + (size_t)i * D, D * sizeof(float));
    return VT_OK;
}
