/* M-Hub (MMICT's Q-Former): forward and backward on flat buffers. Rows of
 * the token stream are items x positions (R = B T, T = Q + L); the query
 * rows of the cross-attention are gathered into [B Q, W] buffers and the
 * vision rows are [B Nv, .]. */
#include "trainer/mhub.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "trainer/safetensors.h"

#define LN_EPS 1e-6f

typedef struct layer_acts {
    float *x1, *ln1, *mean1, *rstd1, *q, *k, *v, *att, *ao;
    /* cross-attention (query rows / vision rows) */
    float *xq, *lnc, *meanc, *rstdc, *cq, *ck, *cv, *cp, *co;
    float *x2, *ln2, *mean2, *rstd2, *f1, *f1g;
} layer_acts;

struct vt_mhub_work {
    size_t cap;   /* floats in slab */
    bool ready;
    float *slab;
    float *vis, *text, *vn, *vmean, *vrstd, *tproj;
    int32_t *len, *kvlen;
    float *xs; /* (layers + 1) x [R, W] */
    layer_acts *la;
    float *lnf, *meanf, *rstdf, *out;
    /* backward */
    float *dout, *dx, *dl, *dao, *dq, *dk, *dv, *d1, *df1, *df1g;
    float *dxq, *dlnc, *dcq, *dck, *dcv, *dco, *dvn, *dtp;
};

void vt_mhub_config_default(vt_mhub_config *c) {
    memset(c, 0, sizeof *c);
    c->queries = 32;
    c->width = 256;
    c->layers = 2;
    c->heads = 4;
    c->mlp_ratio = 4.0f;
    c->cross_every = 1;
    c->max_text = 64;
    c->init_std = 0.02f;
}

static int mlp_dim(const vt_mhub_config *c) { return (int)((float)c->width * c->mlp_ratio); }
static bool has_cross(const vt_mhub_config *c, int l) { return l % c->cross_every == 0; }

vt_status vt_mhub_config_read(const vt_config *cfg, const char *prefix, vt_mhub_config *c,
                              vt_error *err) {
    vt_status st;
    if ((st = vt_config_section_int(cfg, prefix, "queries", 1, 4096, &c->queries, err)) ||
        (st = vt_config_section_int(cfg, prefix, "width", 1, 1 << 16, &c->width, err)) ||
        (st = vt_config_section_int(cfg, prefix, "layers", 1, 64, &c->layers, err)) ||
        (st = vt_config_section_int(cfg, prefix, "heads", 1, 1 << 10, &c->heads, err)) ||
        (st = vt_config_section_int(cfg, prefix, "cross_every", 1, 64, &c->cross_every, err)) ||
        (st = vt_config_section_int(cfg, prefix, "max_text", 1, 1 << 16, &c->max_text, err)) ||
        (st = vt_config_section_float(cfg, prefix, "mlp_ratio", &c->mlp_ratio, true, err)) ||
        (st = vt_config_section_float(cfg, prefix, "init_std", &c->init_std, false, err)))
        return st;
    if (c->width % c->heads)
        return vt_fail(err, VT_ERR_ARG, "%s.heads: %d does not divide width %d", prefix, c->heads,
                       c->width);
    return VT_OK;
}

vt_status vt_mhub_config_resolve(vt_mhub_config *c, int vis_dim, int text_dim, int out_dim,
                                 vt_error *err) {
    if (vis_dim <= 0 || text_dim <= 0 || out_dim <= 0)
        return vt_fail(err, VT_ERR_ARG, "mhub: vision width %d, text width %d and output width %d must be positive",
                       vis_dim, text_dim, out_dim);
    c->vis_dim = vis_dim;
    c->text_dim = text_dim;
    c->out_dim = out_dim;
    if (c->queries <= 0) return vt_fail(err, VT_ERR_ARG, "mhub.queries: must be positive, got %d", c->queries);
    if (c->width <= 0) return vt_fail(err, VT_ERR_ARG, "mhub.width: must be positive, got %d", c->width);
    if (c->heads <= 0 || c->width % c->heads)
        return vt_fail(err, VT_ERR_ARG, "mhub.heads: %d does not divide width %d", c->heads, c->width);
    if (c->layers <= 0) return vt_fail(err, VT_ERR_ARG, "mhub.layers: must be positive, got %d", c->layers);
    if (c->cross_every <= 0)
        return vt_fail(err, VT_ERR_ARG, "mhub.cross_every: must be positive, got %d", c->cross_every);
    if (c->max_text <= 0) return vt_fail(err, VT_ERR_ARG, "mhub.max_text: must be positive, got %d", c->max_text);
    if (mlp_dim(c) <= 0) return vt_fail(err, VT_ERR_ARG, "mhub.mlp_ratio: gives an empty MLP");
    return VT_OK;
}

/* ---- parameters ---- */

static void add_tensor(vt_mhub *h, const char *name, int64_t r, int64_t cdim, bool decay, size_t *off) {
    vt_mhub_tensor *t = &h->tensors[h->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cdim ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = cdim;
    t->numel = (size_t)r * (size_t)(cdim ? cdim : 1);
    t->offset = *off;
    t->decay = decay;
    *off += t->numel;
}

static void add_linear(vt_mhub *h, const char *prefix, int64_t r, int64_t cdim, size_t *off) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    add_tensor(h, nm, r, cdim, true, off);
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    add_tensor(h, nm, r, 0, false, off);
}

static void add_ln(vt_mhub *h, const char *prefix, int64_t n, size_t *off) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    add_tensor(h, nm, n, 0, false, off);
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    add_tensor(h, nm, n, 0, false, off);
}

static void set_views(vt_mhub *h, float *base, vt_mhub_views *vw) {
    int i = 0;
#define NEXT() (base + h->tensors[i++].offset)
    vw->queries = NEXT();
    vw->tin_w = NEXT(); vw->tin_b = NEXT();
    vw->text_pos = NEXT();
    vw->vln_w = NEXT(); vw->vln_b = NEXT();
    for (int l = 0; l < h->cfg.layers; l++) {
        vt_mhub_layer *y = &vw->layers[l];
        memset(y, 0, sizeof *y);
        y->ln1_w = NEXT(); y->ln1_b = NEXT();
        y->qkv_w = NEXT(); y->qkv_b = NEXT();
        y->proj_w = NEXT(); y->proj_b = NEXT();
        if (has_cross(&h->cfg, l)) {
            y->lnc_w = NEXT(); y->lnc_b = NEXT();
            y->cq_w = NEXT(); y->cq_b = NEXT();
            y->ckv_w = NEXT(); y->ckv_b = NEXT();
            y->cproj_w = NEXT(); y->cproj_b = NEXT();
        }
        y->ln2_w = NEXT(); y->ln2_b = NEXT();
        y->fc1_w = NEXT(); y->fc1_b = NEXT();
        y->fc2_w = NEXT(); y->fc2_b = NEXT();
    }
    vw->lnf_w = NEXT(); vw->lnf_b = NEXT();
    vw->out_w = NEXT(); vw->out_b = NEXT();
#undef NEXT
}

vt_status vt_mhub_create(vt_mhub **out, vt_ctx *ctx, const vt_mhub_config *cfg, uint64_t seed,
                         vt_error *err) {
    *out = NULL;
    if (vt_ctx_backend(ctx) != VT_BACKEND_CPU)
        return vt_fail(err, VT_ERR_DEVICE, "mhub: the M-Hub runs on the CPU backend only");
    vt_mhub_config c = *cfg;
    vt_status st = vt_mhub_config_resolve(&c, cfg->vis_dim, cfg->text_dim, cfg->out_dim, err);
    if (st) return st;
    vt_mhub *h = calloc(1, sizeof *h);
    if (!h) return vt_fail(err, VT_ERR_NOMEM, "mhub: no memory");
    h->cfg = c;
    h->ctx = ctx;
    int64_t W = c.width, V = c.vis_dim, E = c.text_dim, D = c.out_dim, M = mlp_dim(&c);
    h->tensors = calloc((size_t)(10 + 20 * c.layers), sizeof *h->tensors);
    h->w.layers = calloc((size_t)c.layers, sizeof(vt_mhub_layer));
    h->g.layers = calloc((size_t)c.layers, sizeof(vt_mhub_layer));
    h->work = calloc(1, sizeof *h->work);
    if (h->work) h->work->la = calloc((size_t)c.layers, sizeof(layer_acts));
    if (!h->tensors || !h->w.layers || !h->g.layers || !h->work || !h->work->la) goto nomem;
    size_t off = 0;
    add_tensor(h, "mhub.queries", c.queries, W, false, &off);
    add_linear(h, "mhub.text_in", W, E, &off);
    add_tensor(h, "mhub.text_pos", c.max_text, W, false, &off);
    add_ln(h, "mhub.vis_ln", V, &off);
    for (int l = 0; l < c.layers; l++) {
        char nm[64];
#define NM(s) (snprintf(nm, sizeof nm, "mhub.layers.%d.%s", l, s), nm)
        add_ln(h, NM("ln1"), W, &off);
        add_linear(h, NM("attn.qkv"), 3 * W, W, &off);
        add_linear(h, NM("attn.proj"), W, W, &off);
        if (has_cross(&c, l)) {
            add_ln(h, NM("lnc"), W, &off);
            add_linear(h, NM("cross.q"), W, W, &off);
            add_linear(h, NM("cross.kv"), 2 * W, V, &off);
            add_linear(h, NM("cross.proj"), W, W, &off);
        }
        add_ln(h, NM("ln2"), W, &off);
        add_linear(h, NM("mlp.fc1"), M, W, &off);
        add_linear(h, NM("mlp.fc2"), W, M, &off);
#undef NM
    }
    add_ln(h, "mhub.ln_f", W, &off);
    add_linear(h, "mhub.out", D, W, &off);
    h->num_params = off;
    h->params = calloc(off, sizeof(float));
    h->grads = calloc(off, sizeof(float));
    if (!h->params || !h->grads) goto nomem;
    set_views(h, h->params, &h->w);
    set_views(h, h->grads, &h->g);
    for (int i = 0; i < h->ntensors; i++) {
        const vt_mhub_tensor *t = &h->tensors[i];
        float *p = h->params + t->offset;
        size_t n = strlen(t->name);
        bool is_ln = strstr(t->name, ".ln1.") || strstr(t->name, ".ln2.") || strstr(t->name, ".lnc.") ||
                     strstr(t->name, ".ln_f.") || strstr(t->name, ".vis_ln.");
        bool bias = n > 5 && !strcmp(t->name + n - 5, ".bias");
        if (is_ln && !bias) {
            for (size_t k = 0; k < t->numel; k++) p[k] = 1.0f;
            continue;
        }
        if (bias) continue; /* zero */
        vt_rng r;
        vt_rng_init(&r, vt_hash_bytes(t->name, strlen(t->name), seed));
        for (size_t k = 0; k < t->numel; k++) p[k] = c.init_std * (float)vt_rng_normal(&r);
    }
    *out = h;
    return VT_OK;
nomem:
    vt_mhub_free(h);
    return vt_fail(err, VT_ERR_NOMEM, "mhub: no memory for the M-Hub");
}

void vt_mhub_free(vt_mhub *h) {
    if (!h) return;
    if (h->work) {
        free(h->work->slab);
        free(h->work->la);
        free(h->work);
    }
    free(h->tensors);
    free(h->w.layers);
    free(h->g.layers);
    free(h->params);
    free(h->grads);
    free(h);
}

void vt_mhub_zero_grad(vt_mhub *h) { memset(h->grads, 0, h->num_params * sizeof(float)); }

const float *vt_mhub_output(const vt_mhub *h) { return h->work->out; }

/* ---- activation memory ---- */

static size_t layout(vt_mhub *h, int B, int Nv, int L, float *base) {
    const vt_mhub_config *c = &h->cfg;
    vt_mhub_work *w = h->work;
    size_t Q = (size_t)c->queries, T = Q + (size_t)L, R = (size_t)B * T, W = (size_t)c->width;
    size_t V = (size_t)c->vis_dim, E = (size_t)c->text_dim, D = (size_t)c->out_dim;
    size_t M = (size_t)mlp_dim(c), H = (size_t)c->heads, Rv = (size_t)B * Nv, Rq = (size_t)B * Q;
    size_t Rt = (size_t)B * L, off = 0;
#define TAKE(p, n) do { if (base) (p) = base + off; off += ((n) + 15) & ~(size_t)15; } while (0)
    TAKE(w->vis, Rv * V); TAKE(w->text, Rt * E);
    float *ib = NULL;
    TAKE(ib, (size_t)B); if (base) w->len = (int32_t *)(void *)ib;
    TAKE(ib, (size_t)B); if (base) w->kvlen = (int32_t *)(void *)ib;
    TAKE(w->vn, Rv * V); TAKE(w->vmean, Rv); TAKE(w->vrstd, Rv); TAKE(w->tproj, Rt * W);
    TAKE(w->xs, ((size_t)c->layers + 1) * R * W);
    for (int l = 0; l < c->layers; l++) {
        layer_acts *a = &w->la[l];
        TAKE(a->ln1, R * W); TAKE(a->mean1, R); TAKE(a->rstd1, R);
        TAKE(a->q, R * W); TAKE(a->k, R * W); TAKE(a->v, R * W);
        TAKE(a->att, (size_t)B * H * T * T); TAKE(a->ao, R * W); TAKE(a->x1, R * W);
        if (has_cross(c, l)) {
            TAKE(a->xq, Rq * W); TAKE(a->lnc, Rq * W); TAKE(a->meanc, Rq); TAKE(a->rstdc, Rq);
            TAKE(a->cq, Rq * W); TAKE(a->ck, Rv * W); TAKE(a->cv, Rv * W);
            TAKE(a->cp, (size_t)B * H * Q * Nv); TAKE(a->co, Rq * W);
        }
        TAKE(a->x2, R * W); TAKE(a->ln2, R * W); TAKE(a->mean2, R); TAKE(a->rstd2, R);
        TAKE(a->f1, R * M); TAKE(a->f1g, R * M);
    }
    TAKE(w->lnf, R * W); TAKE(w->meanf, R); TAKE(w->rstdf, R); TAKE(w->out, R * D);
    TAKE(w->dout, R * D); TAKE(w->dx, R * W); TAKE(w->dl, R * W); TAKE(w->dao, R * W);
    TAKE(w->dq, R * W); TAKE(w->dk, R * W); TAKE(w->dv, R * W); TAKE(w->d1, R * W);
    TAKE(w->df1, R * M); TAKE(w->df1g, R * M);
    TAKE(w->dxq, Rq * W); TAKE(w->dlnc, Rq * W); TAKE(w->dcq, Rq * W); TAKE(w->dck, Rv * W);
    TAKE(w->dcv, Rv * W); TAKE(w->dco, Rq * W); TAKE(w->dvn, Rv * V); TAKE(w->dtp, Rt * W);
#undef TAKE
    return off;
}

static vt_status grow(vt_mhub *h, int B, int Nv, int L, vt_error *err) {
    vt_mhub_work *w = h->work;
    size_t need = layout(h, B, Nv, L, NULL);
    if (need > w->cap || !w->slab) {
        free(w->slab);
        w->slab = malloc((need ? need : 1) * sizeof(float));
        if (!w->slab) {
            w->cap = 0;
            return vt_fail(err, VT_ERR_NOMEM, "mhub: no memory for %d items (%zu floats)", B, need);
        }
        w->cap = need;
    }
    layout(h, B, Nv, L, w->slab);
    return VT_OK;
}

static vt_status ctx_fail(vt_mhub *h, vt_error *err) {
    const vt_error *e = vt_ctx_error(h->ctx);
    return vt_fail(err, e->code ? e->code : VT_ERR_STATE, "mhub: %s", e->msg);
}

#define OPS(call) do { if (call) return ctx_fail(h, err); } while (0)

/* ---- cross-attention (queries [B, Q, H, hd] over keys/values [B, Nv, H, hd]) ---- */

static void cross_forward(float *out, float *p, const float *q, const float *k, const float *v,
                          int B, int Q, int Nv, int H, int hd) {
    int W = H * hd;
    double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < H; hh++)
            for (int i = 0; i < Q; i++) {
                const float *qi = q + ((size_t)b * Q + i) * W + (size_t)hh * hd;
                float *pi = p + (((size_t)b * H + hh) * Q + i) * Nv;
                double mx = -DBL_MAX;
                for (int j = 0; j < Nv; j++) {
                    const float *kj = k + ((size_t)b * Nv + j) * W + (size_t)hh * hd;
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += (double)qi[d] * kj[d];
                    s *= scale;
                    pi[j] = (float)s;
                    if (s > mx) mx = s;
                }
                double sum = 0;
                for (int j = 0; j < Nv; j++) {
                    double e = exp((double)pi[j] - mx);
                    pi[j] = (float)e;
                    sum += e;
                }
                float *oi = out + ((size_t)b * Q + i) * W + (size_t)hh * hd;
                for (int d = 0; d < hd; d++) oi[d] = 0.0f;
                for (int j = 0; j < Nv; j++) {
                    pi[j] = (float)(pi[j] / sum);
                    const float *vj = v + ((size_t)b * Nv + j) * W + (size_t)hh * hd;
                    for (int d = 0; d < hd; d++) oi[d] += pi[j] * vj[d];
                }
            }
}

/* ADDS into dq, dk, dv. */
static void cross_backward(float *dq, float *dk, float *dv, const float *dout, const float *p,
                           const float *q, const float *k, const float *v, int B, int Q, int Nv,
                           int H, int hd) {
    int W = H * hd;
    float scale = (float)(1.0 / sqrt((double)hd));
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < H; hh++)
            for (int i = 0; i < Q; i++) {
                size_t qo = ((size_t)b * Q + i) * W + (size_t)hh * hd;
                const float *pi = p + (((size_t)b * H + hh) * Q + i) * Nv;
                const float *doi = dout + qo;
                double dot = 0;
                for (int j = 0; j < Nv; j++) {
                    size_t ko = ((size_t)b * Nv + j) * W + (size_t)hh * hd;
                    double dp = 0;
                    for (int d = 0; d < hd; d++) {
                        dp += (double)doi[d] * v[ko + d];
                        dv[ko + d] += pi[j] * doi[d];
                    }
                    dot += pi[j] * dp;
                }
                for (int j = 0; j < Nv; j++) {
                    size_t ko = ((size_t)b * Nv + j) * W + (size_t)hh * hd;
                    double dp = 0;
                    for (int d = 0; d < hd; d++) dp += (double)doi[d] * v[ko + d];
                    float ds = (float)(pi[j] * (dp - dot)) * scale;
                    for (int d = 0; d < hd; d++) {
                        dq[qo + d] += ds * k[ko + d];
                        dk[ko + d] += ds * q[qo + d];
                    }
                }
            }
}

/* ---- forward ---- */

static vt_status layer_forward(vt_mhub *h, int l, int B, int Nv, int T, vt_error *err) {
    const vt_mhub_config *c = &h->cfg;
    vt_mhub_work *w = h->work;
    const vt_mhub_layer *p = &h->w.layers[l];
    layer_acts *a = &w->la[l];
    int Q = c->queries, W = c->width, H = c->heads, M = mlp_dim(c), V = c->vis_dim;
    size_t R = (size_t)B * T, RW = R * W, WW = (size_t)W * W;
    const float *x0 = w->xs + (size_t)l * RW;
    float *x3 = w->xs + (size_t)(l + 1) * RW;
    /* self-attention over queries + text, keys limited to Q + len */
    OPS(vt_layernorm_forward(h->ctx, a->ln1, a->mean1, a->rstd1, x0, p->ln1_w, p->ln1_b, (int)R, W, LN_EPS));
    OPS(vt_linear_forward(h->ctx, a->q, a->ln1, p->qkv_w, p->qkv_b, (int)R, W, W));
    OPS(vt_linear_forward(h->ctx, a->k, a->ln1, p->qkv_w + WW, p->qkv_b + W, (int)R, W, W));
    OPS(vt_linear_forward(h->ctx, a->v, a->ln1, p->qkv_w + 2 * WW, p->qkv_b + 2 * W, (int)R, W, W));
    OPS(vt_attention_forward(h->ctx, a->ao, a->att, a->q, a->k, a->v, w->kvlen, B, T, H, H, W / H, 0));
    OPS(vt_linear_forward(h->ctx, a->x1, a->ao, p->proj_w, p->proj_b, (int)R, W, W));
    for (size_t j = 0; j < RW; j++) a->x1[j] += x0[j];
    memcpy(a->x2, a->x1, RW * sizeof(float));
    if (has_cross(c, l)) {
        size_t Rq = (size_t)B * Q, Rv = (size_t)B * Nv;
        for (int b = 0; b < B; b++)
            memcpy(a->xq + (size_t)b * Q * W, a->x1 + (size_t)b * T * W, (size_t)Q * W * sizeof(float));
        OPS(vt_layernorm_forward(h->ctx, a->lnc, a->meanc, a->rstdc, a->xq, p->lnc_w, p->lnc_b, (int)Rq, W,
                                 LN_EPS));
        OPS(vt_linear_forward(h->ctx, a->cq, a->lnc, p->cq_w, p->cq_b, (int)Rq, W, W));
        OPS(vt_linear_forward(h->ctx, a->ck, w->vn, p->ckv_w, p->ckv_b, (int)Rv, V, W));
        OPS(vt_linear_forward(h->ctx, a->cv, w->vn, p->ckv_w + (size_t)W * V, p->ckv_b + W, (int)Rv, V, W));
        cross_forward(a->co, a->cp, a->cq, a->ck, a->cv, B, Q, Nv, H, W / H);
        /* x2[query rows] += CProj(co), through dxq as scratch */
        OPS(vt_linear_forward(h->ctx, w->dxq, a->co, p->cproj_w, p->cproj_b, (int)Rq, W, W));
        for (int b = 0; b < B; b++) {
            float *dst = a->x2 + (size_t)b * T * W;
            const float *src = w->dxq + (size_t)b * Q * W;
            for (size_t j = 0; j < (size_t)Q * W; j++) dst[j] += src[j];
        }
    }
    OPS(vt_layernorm_forward(h->ctx, a->ln2, a->mean2, a->rstd2, a->x2, p->ln2_w, p->ln2_b, (int)R, W, LN_EPS));
    OPS(vt_linear_forward(h->ctx, a->f1, a->ln2, p->fc1_w, p->fc1_b, (int)R, W, M));
    OPS(vt_activation_forward(h->ctx, VT_ACT_GELU, a->f1g, a->f1, R * (size_t)M));
    OPS(vt_linear_forward(h->ctx, x3, a->f1g, p->fc2_w, p->fc2_b, (int)R, M, W));
    for (size_t j = 0; j < RW; j++) x3[j] += a->x2[j];
    return VT_OK;
}

vt_status vt_mhub_forward(vt_mhub *h, const float *vis, int B, int Nv, const float *text,
                          const int32_t *text_len, int L, vt_error *err) {
    const vt_mhub_config *c = &h->cfg;
    vt_mhub_work *w = h->work;
    w->ready = false;
    if (B < 0 || Nv <= 0 || L < 0 || L > c->max_text)
        return vt_fail(err, VT_ERR_ARG, "mhub: bad shape (%d items, %d vision tokens, %d text positions; max_text %d)",
                       B, Nv, L, c->max_text);
    for (int b = 0; b < B; b++)
        if (text_len[b] < 0 || text_len[b] > L)
            return vt_fail(err, VT_ERR_ARG, "mhub: text length %d of item %d is outside [0, %d]",
                           text_len[b], b, L);
    vt_status st = grow(h, B, Nv, L, err);
    if (st) return st;
    h->n_items = B;
    h->n_vis = Nv;
    h->text_len = L;
    if (B == 0) {
        w->ready = true;
        return VT_OK;
    }
    int Q = c->queries, W = c->width, V = c->vis_dim, E = c->text_dim, D = c->out_dim, T = Q + L;
    size_t R = (size_t)B * T, Rv = (size_t)B * Nv, Rt = (size_t)B * L;
    memcpy(w->vis, vis, Rv * V * sizeof(float));
    if (Rt) memcpy(w->text, text, Rt * E * sizeof(float));
    for (int b = 0; b < B; b++) {
        w->len[b] = text_len[b];
        w->kvlen[b] = Q + text_len[b];
    }
    OPS(vt_layernorm_forward(h->ctx, w->vn, w->vmean, w->vrstd, w->vis, h->w.vln_w, h->w.vln_b, (int)Rv, V,
                             LN_EPS));
    if (Rt) OPS(vt_linear_forward(h->ctx, w->tproj, w->text, h->w.tin_w, h->w.tin_b, (int)Rt, E, W));
    for (int b = 0; b < B; b++) {
        float *x = w->xs + (size_t)b * T * W;
        memcpy(x, h->w.queries, (size_t)Q * W * sizeof(float));
        for (int t = 0; t < L; t++) {
            float *xr = x + (size_t)(Q + t) * W;
            const float *tp = w->tproj + ((size_t)b * L + t) * W, *pe = h->w.text_pos + (size_t)t * W;
            for (int j = 0; j < W; j++) xr[j] = tp[j] + pe[j];
        }
    }
    for (int l = 0; l < c->layers; l++)
        if ((st = layer_forward(h, l, B, Nv, T, err))) return st;
    OPS(vt_layernorm_forward(h->ctx, w->lnf, w->meanf, w->rstdf, w->xs + (size_t)c->layers * R * W, h->w.lnf_w,
                             h->w.lnf_b, (int)R, W, LN_EPS));
    OPS(vt_linear_forward(h->ctx, w->out, w->lnf, h->w.out_w, h->w.out_b, (int)R, W, D));
    for (int b = 0; b < B; b++)
        for (int t = Q + w->len[b]; t < T; t++)
            memset(w->out + ((size_t)b * T + t) * D, 0, (size_t)D * sizeof(float));
    w->ready = true;
    return VT_OK;
}

/* ---- backward ---- */

/* w->dx holds dL/d(layer output) on entry, dL/d(layer input) on return. */
static vt_status layer_backward(vt_mhub *h, int l, int B, int Nv, int T, vt_error *err) {
    const vt_mhub_config *c = &h->cfg;
    vt_mhub_work *w = h->work;
    const vt_mhub_layer *p = &h->w.layers[l], *g = &h->g.layers[l];
    layer_acts *a = &w->la[l];
    int Q = c->queries, W = c->width, H = c->heads, M = mlp_dim(c), V = c->vis_dim;
    size_t R = (size_t)B * T, RW = R * W, WW = (size_t)W * W, RM = R * (size_t)M;
    const float *x0 = w->xs + (size_t)l * RW;
    /* MLP: x3 = x2 + FC2(GELU(FC1(LN2(x2)))) */
    memset(w->df1g, 0, RM * sizeof(float));
    OPS(vt_linear_backward(h->ctx, w->df1g, g->fc2_w, g->fc2_b, w->dx, a->f1g, p->fc2_w, (int)R, M, W));
    memset(w->df1, 0, RM * sizeof(float));
    OPS(vt_activation_backward(h->ctx, VT_ACT_GELU, w->df1, w->df1g, a->f1, RM));
    memset(w->dl, 0, RW * sizeof(float));
    OPS(vt_linear_backward(h->ctx, w->dl, g->fc1_w, g->fc1_b, w->df1, a->ln2, p->fc1_w, (int)R, W, M));
    OPS(vt_layernorm_backward(h->ctx, w->dx, g->ln2_w, g->ln2_b, w->dl, a->x2, p->ln2_w, a->mean2, a->rstd2,
                              (int)R, W));
    /* cross-attention on the query rows: x2[:Q] = x1[:Q] + CProj(attn) */
    if (has_cross(c, l)) {
        size_t Rq = (size_t)B * Q, Rv = (size_t)B * Nv, RqW = Rq * W, RvW = Rv * W;
        for (int b = 0; b < B; b++)
            memcpy(w->dxq + (size_t)b * Q * W, w->dx + (size_t)b * T * W, (size_t)Q * W * sizeof(float));
        memset(w->dco, 0, RqW * sizeof(float));
        OPS(vt_linear_backward(h->ctx, w->dco, g->cproj_w, g->cproj_b, w->dxq, a->co, p->cproj_w, (int)Rq, W, W));
        memset(w->dcq, 0, RqW * sizeof(float));
        memset(w->dck, 0, RvW * sizeof(float));
        memset(w->dcv, 0, RvW * sizeof(float));
        cross_backward(w->dcq, w->dck, w->dcv, w->dco, a->cp, a->cq, a->ck, a->cv, B, Q, Nv, H, W / H);
        OPS(vt_linear_backward(h->ctx, w->dvn, g->ckv_w, g->ckv_b, w->dck, w->vn, p->ckv_w, (int)Rv, V, W));
        OPS(vt_linear_backward(h->ctx, w->dvn, g->ckv_w + (size_t)W * V, g->ckv_b + W, w->dcv, w->vn,
                               p->ckv_w + (size_t)W * V, (int)Rv, V, W));
        memset(w->dlnc, 0, RqW * sizeof(float));
        OPS(vt_linear_backward(h->ctx, w->dlnc, g->cq_w, g->cq_b, w->dcq, a->lnc, p->cq_w, (int)Rq, W, W));
        memset(w->dxq, 0, RqW * sizeof(float));
        OPS(vt_layernorm_backward(h->ctx, w->dxq, g->lnc_w, g->lnc_b, w->dlnc, a->xq, p->lnc_w, a->meanc,
                                  a->rstdc, (int)Rq, W));
        for (int b = 0; b < B; b++) {
            float *dst = w->dx + (size_t)b * T * W;
            const float *src = w->dxq + (size_t)b * Q * W;
            for (size_t j = 0; j < (size_t)Q * W; j++) dst[j] += src[j];
        }
    }
    /* self-attention: x1 = x0 + Proj(MHA(LN1(x0))) */
    memset(w->dao, 0, RW * sizeof(float));
    OPS(vt_linear_backward(h->ctx, w->dao, g->proj_w, g->proj_b, w->dx, a->ao, p->proj_w, (int)R, W, W));
    memset(w->dq, 0, RW * sizeof(float));
    memset(w->dk, 0, RW * sizeof(float));
    memset(w->dv, 0, RW * sizeof(float));
    OPS(vt_attention_backward(h->ctx, w->dq, w->dk, w->dv, w->dao, a->att, a->q, a->k, a->v, B, T, H, H,
                              W / H));
    memset(w->dl, 0, RW * sizeof(float));
    OPS(vt_linear_backward(h->ctx, w->dl, g->qkv_w, g->qkv_b, w->dq, a->ln1, p->qkv_w, (int)R, W, W));
    OPS(vt_linear_backward(h->ctx, w->dl, g->qkv_w + WW, g->qkv_b + W, w->dk, a->ln1, p->qkv_w + WW, (int)R,
                           W, W));
    OPS(vt_linear_backward(h->ctx, w->dl, g->qkv_w + 2 * WW, g->qkv_b + 2 * W, w->dv, a->ln1,
                           p->qkv_w + 2 * WW, (int)R, W, W));
    OPS(vt_layernorm_backward(h->ctx, w->dx, g->ln1_w, g->ln1_b, w->dl, x0, p->ln1_w, a->mean1, a->rstd1,
                              (int)R, W));
    return VT_OK;
}

vt_status vt_mhub_backward(vt_mhub *h, const float *dout, float *dvis, float *dtext, vt_error *err) {
    const vt_mhub_config *c = &h->cfg;
    vt_mhub_work *w = h->work;
    if (!w->ready) return vt_fail(err, VT_ERR_STATE, "mhub: backward without a successful forward");
    int B = h->n_items, Nv = h->n_vis, L = h->text_len;
    if (B == 0) return VT_OK;
    int Q = c->queries, W = c->width, V = c->vis_dim, E = c->text_dim, D = c->out_dim, T = Q + L;
    size_t R = (size_t)B * T, RW = R * W, Rv = (size_t)B * Nv, Rt = (size_t)B * L;
    vt_status st;
    memcpy(w->dout, dout, R * D * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = Q + w->len[b]; t < T; t++)
            memset(w->dout + ((size_t)b * T + t) * D, 0, (size_t)D * sizeof(float));
    memset(w->dl, 0, RW * sizeof(float));
    OPS(vt_linear_backward(h->ctx, w->dl, h->g.out_w, h->g.out_b, w->dout, w->lnf, h->w.out_w, (int)R, W, D));
    memset(w->dx, 0, RW * sizeof(float));
    OPS(vt_layernorm_backward(h->ctx, w->dx, h->g.lnf_w, h->g.lnf_b, w->dl, w->xs + (size_t)c->layers * RW,
                              h->w.lnf_w, w->meanf, w->rstdf, (int)R, W));
    memset(w->dvn, 0, Rv * V * sizeof(float));
    for (int l = c->layers - 1; l >= 0; l--)
        if ((st = layer_backward(h, l, B, Nv, T, err))) return st;
    /* embeddings: queries (summed over items), text rows */
    for (int b = 0; b < B; b++) {
        const float *dxb = w->dx + (size_t)b * T * W;
        for (size_t j = 0; j < (size_t)Q * W; j++) h->g.queries[j] += dxb[j];
        for (int t = 0; t < L; t++) {
            const float *dr = dxb + (size_t)(Q + t) * W;
            float *dt = w->dtp + ((size_t)b * L + t) * W, *dp = h->g.text_pos + (size_t)t * W;
            bool real = t < w->len[b];
            for (int j = 0; j < W; j++) {
                float v = real ? dr[j] : 0.0f;
                dt[j] = v;
                dp[j] += v;
            }
        }
    }
    if (Rt)
        OPS(vt_linear_backward(h->ctx, dtext, h->g.tin_w, h->g.tin_b, w->dtp, w->text, h->w.tin_w, (int)Rt, E,
                               W));
    OPS(vt_layernorm_backward(h->ctx, dvis, h->g.vln_w, h->g.vln_b, w->dvn, w->vis, h->w.vln_w, w->vmean,
                              w->vrstd, (int)Rv, V));
    return VT_OK;
}

/* ---- save / load ---- */

vt_status vt_mhub_save(const vt_mhub *h, const char *path, vt_error *err) {
    vt_st_writer *wr = vt_st_writer_new();
    if (!wr) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    vt_status st = vt_st_writer_meta(wr, "format", "pt", err);
    if (!st) st = vt_st_writer_meta(wr, "vistune_method", "mmict", err);
    for (int i = 0; i < h->ntensors && !st; i++) {
        const vt_mhub_tensor *t = &h->tensors[i];
        st = vt_st_writer_add(wr, t->name, VT_ST_F32, t->ndim, t->shape, h->params + t->offset, err);
    }
    if (!st) st = vt_st_writer_write(wr, path, err);
    vt_st_writer_free(wr);
    return st;
}

vt_status vt_mhub_load(vt_mhub *h, const char *path, vt_error *err) {
    vt_st_flat *t = malloc((size_t)h->ntensors * sizeof *t);
    if (!t) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    for (int k = 0; k < h->ntensors; k++) {
        const vt_mhub_tensor *m = &h->tensors[k];
        t[k] = (vt_st_flat){m->name, m->ndim, m->shape, m->offset, m->numel};
    }
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (!st)
        st = vt_st_read_flat(f, path, t, h->ntensors, h->params, "layers or cross_every differ?", "the M-Hub's", err);
    vt_st_close(f);
    free(t);
    return st;
}

/* ---- demonstration selection ---- */

int vt_mmict_select_demos(const uint32_t *group, const float *emb, int dim, int n, int query,
                          int k, uint64_t seed, int *out) {
    if (query < 0 || query >= n || k <= 0) return 0;
    int m = 0; /* candidates: same group, not the query; collected into out as we go */
    int got = 0;
    if (!emb) {
        /* reservoir-free: count candidates, then a partial Fisher-Yates over their ranks */
        for (int i = 0; i < n; i++) m += i != query && group[i] == group[query];
        if (m == 0) return 0;
        int *cand = malloc((size_t)m * sizeof(int));
        if (!cand) return 0;
        int j = 0;
        for (int i = 0; i < n; i++)
            if (i != query && group[i] == group[query]) cand[j++] = i;
        vt_rng r;
        vt_rng_init(&r, vt_hash4(seed, (uint64_t)query, 0x4d4d4943u /* "MMIC" */, 0));
        got = k < m ? k : m;
        for (int s = 0; s < got; s++) {
            int pick = s + (int)vt_rng_below(&r, (uint64_t)(m - s));
            int tmp = cand[s];
            cand[s] = cand[pick];
            cand[pick] = tmp;
            out[s] = cand[s];
        }
        free(cand);
        return got;
    }
    /* similarity: insertion into out, ordered by (similarity desc, index asc) */
    double qn = 0;
    const float *qe = emb + (size_t)query * dim;
    for (int d = 0; d < dim; d++) qn += (double)qe[d] * qe[d];
    double *sims = malloc((size_t)k * sizeof(double));
    if (!sims) return 0;
    for (int i = 0; i < n; i++) {
        if (i == query || group[i] != group[query]) continue;
        const float *e = emb + (size_t)i * dim;
        double dot = 0, en = 0;
        for (int d = 0; d < dim; d++) {
            dot += (double)qe[d] * e[d];
            en += (double)e[d] * e[d];
        }
        double s = (qn > 0 && en > 0) ? dot / sqrt(qn * en) : 0.0;
        /* strictly greater wins, so an equal later index stays behind */
        int pos = got;
        while (pos > 0 && s > sims[pos - 1]) pos--;
        if (pos >= k) continue;
        int last = got < k ? got : k - 1;
        for (int q = last; q > pos; q--) {
            sims[q] = sims[q - 1];
            out[q] = out[q - 1];
        }
        sims[pos] = s;
        out[pos] = i;
        if (got < k) got++;
    }
    free(sims);
    return got;
}
