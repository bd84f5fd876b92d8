/* ROSS denoiser: forward (condition embedding, timestep embedding, DiT
 * blocks with adaLN-Zero, final layer, MSE) and backward on flat buffers.
 * Rows: cond rows are images x tokens (Ni = n_img N); denoiser rows are
 * samples x tokens (R = B N with B = n_img K samples, sample b = i K + k
 * belongs to image i = b / K). Every layer runs as ops on the ctx (the
 * device on CUDA); the inputs drawn on the host (targets, timesteps, noise,
 * hence the noisy input x_t and the timestep features) are uploaded, and
 * the prediction comes back for the MSE, which is summed on the host in
 * double. */
#include "trainer/denoiser.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/activation.h"
#include "ops/adaln.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rows.h"

#define COND_LN_EPS 1e-5f  /* the condition's LayerNorm (torch default) */
#define BLOCK_LN_EPS 1e-6f /* DiT's LayerNorms */

/* Activations of one DiT block. */
typedef struct dit_acts {
    float *ln1, *mean1, *rstd1, *mod, *m1, *q, *k, *v, *att, *ao, *a, *xmid;
    float *ln2, *mean2, *rstd2, *m2, *f1, *f1g, *f2;
} dit_acts;

struct vt_denoiser_work {
    int cap;       /* images the buffers hold */
    int maps_for;  /* images whose row maps idx holds (0: none); they depend on nothing else */
    bool ready;    /* a forward has run */
    float *slab;   /* ctx memory: everything below except the host part */
    int32_t *idx;  /* ctx memory: the row maps below */
    float *host;   /* host memory: the host part below */
    /* the condition (copied) [Ni, D] */
    float *cond;
    /* condition path [Ni, .] */
    float *hn, *mean0, *rstd0, *hs, *z;
    /* timestep path [B, .] */
    float *tf, *t1, *t1s, *temb;
    /* rows [R, .] */
    float *c, *sc, *xt, *xs; /* xs: (depth + 1) x [R, W], block inputs then the last output */
    dit_acts *blk;
    float *lnf, *meanf, *rstdf, *modf, *y, *out;
    /* backward scratch */
    float *dout, *dy, *dx, *d1, *dm, *dao, *dq, *dk, *dv, *dmod, *df1g, *df1, *dsc, *dc;
    float *dz, *dtemb, *dt1s, *dt1, *dhs, *dhn;
    /* row maps (ctx): row r -> its condition row, sample, position; and the
     * CSR lists that sum rows back per condition row and per sample */
    int32_t *row_z, *row_b, *row_p, *z_off, *z_src, *b_off, *b_src;
    /* host part: the inputs drawn on the host, and the MSE's operands */
    float *target_h, *eps_h, *xt_h, *tf_h, *out_h, *dout_h;
    int32_t *t_h, *idx_h; /* timesteps [B]; the host twin of idx */
};

void vt_denoiser_config_default(vt_denoiser_config *c) {
    memset(c, 0, sizeof *c);
    c->variant = VT_ROSS_DENOISE;
    c->width = 0;
    c->depth = 3;
    c->heads = 16;
    c->mlp_ratio = 4.0f;
    c->freq_dim = 256;
    c->init_std = 0.02f;
    c->steps = 1000;
    c->draws = 4;
    c->weight = 1.0f;
}

vt_status vt_denoiser_config_read(const vt_config *cfg, const char *prefix,
                                  vt_denoiser_config *c, vt_error *err) {
    char path[256];
    static const char *const variants[] = {"denoise", "regress"};
    int variant = (int)c->variant;
    snprintf(path, sizeof path, "%s.variant", prefix);
    vt_status st = vt_config_enum(cfg, path, variants, 2, &variant, err);
    if (st) return st;
    c->variant = (vt_ross_variant)variant;
    if ((st = vt_config_section_int(cfg, prefix, "width", 0, 1 << 16, &c->width, err)) ||
        (st = vt_config_section_int(cfg, prefix, "depth", 1, 64, &c->depth, err)) ||
        (st = vt_config_section_int(cfg, prefix, "heads", 1, 1 << 10, &c->heads, err)) ||
        (st = vt_config_section_int(cfg, prefix, "freq_dim", 2, 1 << 16, &c->freq_dim, err)) ||
        (st = vt_config_section_int(cfg, prefix, "steps", 2, 1 << 20, &c->steps, err)) ||
        (st = vt_config_section_int(cfg, prefix, "draws", 1, 1024, &c->draws, err)) ||
        (st = vt_config_section_float(cfg, prefix, "mlp_ratio", &c->mlp_ratio, true, err)) ||
        (st = vt_config_section_float(cfg, prefix, "init_std", &c->init_std, false, err)) ||
        (st = vt_config_section_float(cfg, prefix, "weight", &c->weight, false, err)))
        return st;
    if (c->freq_dim % 2)
        return vt_fail(err, VT_ERR_ARG, "%s.freq_dim: must be even, got %d", prefix, c->freq_dim);
    /* an explicit width can be checked now (width 0 waits for the model) */
    if (c->width % 4)
        return vt_fail(err, VT_ERR_ARG, "%s.width: %d is not a multiple of 4 (2-D sin-cos position embedding)",
                       prefix, c->width);
    if (c->width && c->width % c->heads)
        return vt_fail(err, VT_ERR_ARG, "%s.heads: %d does not divide width %d", prefix, c->heads, c->width);
    return VT_OK;
}

static int mlp_dim(const vt_denoiser_config *c) { return (int)((float)c->width * c->mlp_ratio); }

vt_status vt_denoiser_config_resolve(vt_denoiser_config *c, int cond_dim, int grid,
                                     int target_dim, vt_error *err) {
    if (cond_dim <= 0 || grid <= 0 || target_dim <= 0)
        return vt_fail(err, VT_ERR_ARG, "ross: condition width %d, grid %d and target width %d must be positive",
                       cond_dim, grid, target_dim);
    c->cond_dim = cond_dim;
    c->grid = grid;
    c->target_dim = target_dim;
    if (c->width == 0) c->width = cond_dim < 1024 ? cond_dim : 1024;
    if (c->width % 4)
        return vt_fail(err, VT_ERR_ARG, "ross.width: %d is not a multiple of 4 (2-D sin-cos position embedding)",
                       c->width);
    if (c->heads <= 0 || c->width % c->heads)
        return vt_fail(err, VT_ERR_ARG, "ross.heads: %d does not divide width %d", c->heads, c->width);
    if (mlp_dim(c) <= 0) return vt_fail(err, VT_ERR_ARG, "ross.mlp_ratio: gives an empty MLP");
    if (c->depth <= 0) return vt_fail(err, VT_ERR_ARG, "ross.depth: must be positive, got %d", c->depth);
    if (c->freq_dim <= 0 || c->freq_dim % 2)
        return vt_fail(err, VT_ERR_ARG, "ross.freq_dim: must be even and positive, got %d", c->freq_dim);
    if (c->steps < 2) return vt_fail(err, VT_ERR_ARG, "ross.steps: must be >= 2, got %d", c->steps);
    if (c->draws <= 0) return vt_fail(err, VT_ERR_ARG, "ross.draws: must be positive, got %d", c->draws);
    return VT_OK;
}

/* ---- schedule, noise, targets ---- */

static double cosine_alpha_bar(double s) {
    double v = cos((s + 0.008) / 1.008 * M_PI / 2.0);
    return v * v;
}

void vt_ross_cosine_schedule(int T, double *out) {
    double prod = 1.0;
    for (int t = 0; t < T; t++) {
        double beta = 1.0 - cosine_alpha_bar((double)(t + 1) / T) / cosine_alpha_bar((double)t / T);
        if (beta > 0.999) beta = 0.999;
        prod *= 1.0 - beta;
        out[t] = prod;
    }
}

/* The draws per image of the last forward (1 for REGRESS). */
static int draws_of(const vt_denoiser_config *c) {
    return c->variant == VT_ROSS_DENOISE ? c->draws : 1;
}

void vt_denoiser_noise(const vt_denoiser_config *c, int n_img, uint64_t key, int32_t *t,
                       float *eps) {
    size_t NC = (size_t)c->grid * c->grid * c->target_dim;
    for (int i = 0; i < n_img; i++)
        for (int k = 0; k < c->draws; k++) {
            size_t b = (size_t)i * c->draws + k;
            vt_rng r;
            vt_rng_init(&r, vt_hash4(key, (uint64_t)i, (uint64_t)k, 0x524f5353u /* "ROSS" */));
            t[b] = (int32_t)vt_rng_below(&r, (uint64_t)c->steps);
            for (size_t j = 0; j < NC; j++) eps[b * NC + j] = (float)vt_rng_normal(&r);
        }
}

vt_status vt_ross_pixel_targets(const float *pixels, int n_img, int S, int P, const float *mean,
                                const float *std, float *out, vt_error *err) {
    if (n_img < 0 || S <= 0 || P <= 0 || S % P)
        return vt_fail(err, VT_ERR_ARG, "ross: image size %d is not a positive multiple of the patch size %d",
                       S, P);
    int g = S / P, K = 3 * P * P;
    for (int i = 0; i < n_img; i++)
        for (int p = 0; p < g * g; p++) {
            int gy = p / g, gx = p % g;
            float *row = out + ((size_t)i * g * g + p) * K;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++) {
                        float v = pixels[(((size_t)i * 3 + c) * S + (size_t)gy * P + y) * S +
                                         (size_t)gx * P + x];
                        if (mean && std) {
                            v = (v * std[c] + mean[c] - 0.5f) / 0.5f;
                            v = fminf(fmaxf(v, -1.0f), 1.0f);
                        }
                        row[((size_t)c * P + y) * P + x] = v;
                    }
        }
    return VT_OK;
}

/* ---- parameters ---- */

typedef enum init_kind { INIT_ZERO, INIT_XAVIER, INIT_NORMAL } init_kind;

static void add_tensor(vt_denoiser *dn, const char *name, int64_t r, int64_t cdim, size_t *off) {
    vt_denoiser_tensor *t = &dn->tensors[dn->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cdim ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = cdim;
    t->numel = (size_t)r * (size_t)(cdim ? cdim : 1);
    t->offset = *off;
    t->decay = cdim != 0;
    *off += t->numel;
}

/* Adds weight [r, cdim] and bias [r] named prefix.weight / prefix.bias. */
static void add_linear(vt_denoiser *dn, const char *prefix, int64_t r, int64_t cdim, size_t *off) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    add_tensor(dn, nm, r, cdim, off);
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    add_tensor(dn, nm, r, 0, off);
}

static void set_views(vt_denoiser *dn, float *base, vt_denoiser_views *vw) {
    int i = 0;
#define NEXT() (base + dn->tensors[i++].offset)
    vw->x_w = NEXT(); vw->x_b = NEXT();
    vw->t1_w = NEXT(); vw->t1_b = NEXT();
    vw->t2_w = NEXT(); vw->t2_b = NEXT();
    vw->z_w = NEXT(); vw->z_b = NEXT();
    for (int l = 0; l < dn->cfg.depth; l++) {
        vt_dit_block *b = &vw->blocks[l];
        b->ada_w = NEXT(); b->ada_b = NEXT();
        b->qkv_w = NEXT(); b->qkv_b = NEXT();
        b->proj_w = NEXT(); b->proj_b = NEXT();
        b->fc1_w = NEXT(); b->fc1_b = NEXT();
        b->fc2_w = NEXT(); b->fc2_b = NEXT();
    }
    vw->fada_w = NEXT(); vw->fada_b = NEXT();
    vw->out_w = NEXT(); vw->out_b = NEXT();
#undef NEXT
}

static init_kind init_of(const char *name) {
    size_t n = strlen(name);
    bool bias = n > 5 && !strcmp(name + n - 5, ".bias");
    if (bias || strstr(name, "adaln") || strstr(name, "final.linear")) return INIT_ZERO;
    if (strstr(name, "t_embed") || strstr(name, "z_embed")) return INIT_NORMAL;
    return INIT_XAVIER;
}

/* MAE's 2-D sin-cos embedding: the first W/2 channels encode the column,
 * the last W/2 the row; each half is [sin(p w_d), cos(p w_d)] with w_d =
 * 10000^(-d / (W/4)), d < W/4. Token n = row * grid + column. */
static void sincos_2d(float *pos, int grid, int W) {
    int q = W / 4;
    for (int r = 0; r < grid; r++)
        for (int col = 0; col < grid; col++) {
            float *p = pos + ((size_t)r * grid + col) * W;
            for (int half = 0; half < 2; half++) {
                double coord = half == 0 ? col : r;
                for (int d = 0; d < q; d++) {
                    double a = coord * pow(10000.0, -(double)d / q);
                    p[half * 2 * q + d] = (float)sin(a);
                    p[half * 2 * q + q + d] = (float)cos(a);
                }
            }
        }
}

vt_status vt_denoiser_create(vt_denoiser **out, vt_ctx *ctx, const vt_denoiser_config *cfg,
                             uint64_t seed, vt_error *err) {
    *out = NULL;
    vt_denoiser_config c = *cfg;
    vt_status st = vt_denoiser_config_resolve(&c, cfg->cond_dim, cfg->grid, cfg->target_dim, err);
    if (st) return st;
    vt_denoiser *dn = calloc(1, sizeof *dn);
    if (!dn) return vt_fail(err, VT_ERR_NOMEM, "ross: no memory");
    dn->cfg = c;
    dn->ctx = ctx;
    int64_t W = c.width, C = c.target_dim, D = c.cond_dim, F = c.freq_dim, M = mlp_dim(&c);
    int N = c.grid * c.grid;
    dn->tensors = calloc((size_t)(10 + 10 * c.depth + 4), sizeof *dn->tensors);
    dn->w.blocks = calloc((size_t)c.depth, sizeof(vt_dit_block));
    dn->g.blocks = calloc((size_t)c.depth, sizeof(vt_dit_block));
    dn->alpha_bar = malloc((size_t)c.steps * sizeof(double));
    float *pos = malloc((size_t)N * (size_t)W * sizeof(float)), *init = NULL;
    dn->work = calloc(1, sizeof *dn->work);
    if (dn->work) dn->work->blk = calloc((size_t)c.depth, sizeof(dit_acts));
    if (!dn->tensors || !dn->w.blocks || !dn->g.blocks || !dn->alpha_bar || !pos || !dn->work ||
        !dn->work->blk)
        goto nomem;
    size_t off = 0;
    add_linear(dn, "ross.x_embed", W, C, &off);
    add_linear(dn, "ross.t_embed.fc1", W, F, &off);
    add_linear(dn, "ross.t_embed.fc2", W, W, &off);
    add_linear(dn, "ross.z_embed", W, D, &off);
    for (int l = 0; l < c.depth; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "ross.blocks.%d.adaln", l);
        add_linear(dn, nm, 6 * W, W, &off);
        snprintf(nm, sizeof nm, "ross.blocks.%d.attn.qkv", l);
        add_linear(dn, nm, 3 * W, W, &off);
        snprintf(nm, sizeof nm, "ross.blocks.%d.attn.proj", l);
        add_linear(dn, nm, W, W, &off);
        snprintf(nm, sizeof nm, "ross.blocks.%d.mlp.fc1", l);
        add_linear(dn, nm, M, W, &off);
        snprintf(nm, sizeof nm, "ross.blocks.%d.mlp.fc2", l);
        add_linear(dn, nm, W, M, &off);
    }
    add_linear(dn, "ross.final.adaln", 2 * W, W, &off);
    add_linear(dn, "ross.final.linear", C, W, &off);
    dn->num_params = off;
    if (!(init = calloc(off, sizeof(float))) || vt_ctx_alloc(ctx, (void **)&dn->params, off * sizeof(float)) ||
        vt_ctx_alloc(ctx, (void **)&dn->grads, off * sizeof(float)) ||
        vt_ctx_alloc(ctx, (void **)&dn->pos, (size_t)N * (size_t)W * sizeof(float)))
        goto nomem;
    set_views(dn, dn->params, &dn->w);
    set_views(dn, dn->grads, &dn->g);
    for (int i = 0; i < dn->ntensors; i++) {
        const vt_denoiser_tensor *t = &dn->tensors[i];
        init_kind kind = init_of(t->name);
        if (kind == INIT_ZERO) continue;
        vt_rng r;
        vt_rng_init(&r, vt_hash_bytes(t->name, strlen(t->name), seed));
        float *p = init + t->offset;
        /* xavier_uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out)) */
        double bound = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
        for (size_t k = 0; k < t->numel; k++)
            p[k] = kind == INIT_NORMAL ? c.init_std * (float)vt_rng_normal(&r)
                                       : (float)((2.0 * vt_rng_uniform_double(&r) - 1.0) * bound);
    }
    vt_ross_cosine_schedule(c.steps, dn->alpha_bar);
    sincos_2d(pos, c.grid, (int)W);
    if (vt_ctx_memcpy_h2d(ctx, dn->params, init, off * sizeof(float)) ||
        vt_ctx_memcpy_h2d(ctx, dn->pos, pos, (size_t)N * (size_t)W * sizeof(float))) {
        free(pos);
        free(init);
        vt_denoiser_free(dn);
        return vt_fail(err, VT_ERR_DEVICE, "ross: %s", vt_ctx_error(ctx)->msg);
    }
    free(pos);
    free(init);
    *out = dn;
    return VT_OK;
nomem:
    free(pos);
    free(init);
    vt_denoiser_free(dn);
    return vt_fail(err, VT_ERR_NOMEM, "ross: no memory for the denoiser");
}

void vt_denoiser_free(vt_denoiser *dn) {
    if (!dn) return;
    if (dn->work) {
        vt_ctx_free(dn->ctx, dn->work->slab);
        vt_ctx_free(dn->ctx, dn->work->idx);
        free(dn->work->host);
        free(dn->work->idx_h);
        free(dn->work->blk);
        free(dn->work);
    }
    free(dn->tensors);
    free(dn->w.blocks);
    free(dn->g.blocks);
    free(dn->alpha_bar);
    vt_ctx_free(dn->ctx, dn->pos);
    vt_ctx_free(dn->ctx, dn->params);
    vt_ctx_free(dn->ctx, dn->grads);
    free(dn);
}

void vt_denoiser_zero_grad(vt_denoiser *dn) {
    vt_ctx_memset_zero(dn->ctx, dn->grads, dn->num_params * sizeof(float));
}

const float *vt_denoiser_prediction(const vt_denoiser *dn) { return dn->work->out_h; }

/* ---- activation memory ---- */

/* Carves the ctx work buffers for n_img images out of base (NULL: only
 * counts). Returns the floats needed. */
static size_t layout(vt_denoiser *dn, int n_img, float *base) {
    const vt_denoiser_config *c = &dn->cfg;
    vt_denoiser_work *w = dn->work;
    size_t N = (size_t)c->grid * c->grid, K = (size_t)draws_of(c), Ni = (size_t)n_img * N;
    size_t B = (size_t)n_img * K, R = B * N, W = (size_t)c->width, C = (size_t)c->target_dim;
    size_t D = (size_t)c->cond_dim, F = (size_t)c->freq_dim, M = (size_t)mlp_dim(c);
    size_t H = (size_t)c->heads, off = 0;
#define TAKE(p, n) do { if (base) (p) = base + off; off += ((n) + 15) & ~(size_t)15; } while (0)
    TAKE(w->cond, Ni * D);
    TAKE(w->hn, Ni * D); TAKE(w->mean0, Ni); TAKE(w->rstd0, Ni); TAKE(w->hs, Ni * D);
    TAKE(w->z, Ni * W);
    TAKE(w->tf, B * F); TAKE(w->t1, B * W); TAKE(w->t1s, B * W); TAKE(w->temb, B * W);
    TAKE(w->c, R * W); TAKE(w->sc, R * W); TAKE(w->xt, R * C);
    TAKE(w->xs, ((size_t)c->depth + 1) * R * W);
    for (int l = 0; l < c->depth; l++) {
        dit_acts *a = &w->blk[l];
        TAKE(a->ln1, R * W); TAKE(a->mean1, R); TAKE(a->rstd1, R); TAKE(a->mod, R * 6 * W);
        TAKE(a->m1, R * W); TAKE(a->q, R * W); TAKE(a->k, R * W); TAKE(a->v, R * W);
        TAKE(a->att, B * H * N * N); TAKE(a->ao, R * W); TAKE(a->a, R * W); TAKE(a->xmid, R * W);
        TAKE(a->ln2, R * W); TAKE(a->mean2, R); TAKE(a->rstd2, R); TAKE(a->m2, R * W);
        TAKE(a->f1, R * M); TAKE(a->f1g, R * M); TAKE(a->f2, R * W);
    }
    TAKE(w->lnf, R * W); TAKE(w->meanf, R); TAKE(w->rstdf, R); TAKE(w->modf, R * 2 * W);
    TAKE(w->y, R * W); TAKE(w->out, R * C);
    TAKE(w->dout, R * C); TAKE(w->dy, R * W); TAKE(w->dx, R * W); TAKE(w->d1, R * W);
    TAKE(w->dm, R * W); TAKE(w->dao, R * W); TAKE(w->dq, R * W); TAKE(w->dk, R * W);
    TAKE(w->dv, R * W); TAKE(w->dmod, R * 6 * W); TAKE(w->df1g, R * M); TAKE(w->df1, R * M);
    TAKE(w->dsc, R * W); TAKE(w->dc, R * W);
    TAKE(w->dz, Ni * W); TAKE(w->dtemb, B * W); TAKE(w->dt1s, B * W); TAKE(w->dt1, B * W);
    TAKE(w->dhs, Ni * D); TAKE(w->dhn, Ni * D);
#undef TAKE
    return off;
}

/* The host part and the row maps for n_img images, carved out of host and
 * of idx (ctx) / idx_h (host, the same layout: maps are built on the host
 * and uploaded whole; its first B ints hold the timesteps). NULL bases only
 * count: returns the floats of the host part, *ints the int32s of a map block. */
static size_t layout_host(vt_denoiser *dn, int n_img, float *host, int32_t *idx, int32_t *idx_h, size_t *ints) {
    const vt_denoiser_config *c = &dn->cfg;
    vt_denoiser_work *w = dn->work;
    size_t N = (size_t)c->grid * c->grid, K = (size_t)draws_of(c), Ni = (size_t)n_img * N;
    size_t B = (size_t)n_img * K, R = B * N, C = (size_t)c->target_dim, F = (size_t)c->freq_dim, off = 0;
#define TAKE(p, n) do { if (host) (p) = host + off; off += (n); } while (0)
    TAKE(w->target_h, Ni * C); TAKE(w->eps_h, R * C); TAKE(w->xt_h, R * C); TAKE(w->tf_h, B * F);
    TAKE(w->out_h, R * C); TAKE(w->dout_h, R * C);
#undef TAKE
    if (idx_h) w->t_h = idx_h;
    size_t n = B;
#define TAKEI(p, k) do { if (idx) (p) = idx + n; n += (k); } while (0)
    TAKEI(w->row_z, R); TAKEI(w->row_b, R); TAKEI(w->row_p, R);
    TAKEI(w->z_off, Ni + 1); TAKEI(w->z_src, R); TAKEI(w->b_off, B + 1); TAKEI(w->b_src, R);
#undef TAKEI
    *ints = n;
    return off;
}

static vt_status grow(vt_denoiser *dn, int n_img, vt_error *err) {
    vt_denoiser_work *w = dn->work;
    size_t ints = 0;
    if (n_img <= w->cap && w->slab) { /* same buffers, views for this n_img */
        layout(dn, n_img, w->slab);
        layout_host(dn, n_img, w->host, w->idx, w->idx_h, &ints);
        return VT_OK;
    }
    size_t need = layout(dn, n_img, NULL), hneed = layout_host(dn, n_img, NULL, NULL, NULL, &ints);
    vt_ctx_free(dn->ctx, w->slab);
    vt_ctx_free(dn->ctx, w->idx);
    free(w->host);
    free(w->idx_h);
    w->slab = NULL, w->idx = NULL, w->cap = 0, w->maps_for = 0;
    w->host = malloc((hneed ? hneed : 1) * sizeof(float));
    w->idx_h = malloc(ints * sizeof(int32_t));
    if (!w->host || !w->idx_h || vt_ctx_alloc(dn->ctx, (void **)&w->slab, (need ? need : 1) * sizeof(float)) ||
        vt_ctx_alloc(dn->ctx, (void **)&w->idx, ints * sizeof(int32_t)))
        return vt_fail(err, VT_ERR_NOMEM, "ross: no memory for %d images (%zu floats)", n_img, need);
    w->cap = n_img;
    layout(dn, n_img, w->slab);
    layout_host(dn, n_img, w->host, w->idx, w->idx_h, &ints);
    return VT_OK;
}

/* The row maps of n_img images (host, in idx_h), uploaded to idx: row r =
 * (b, n) of sample b = i K + k reads condition row i N + n, sample b and
 * position n; the CSR lists gather the rows of each condition row (over the
 * draws) and of each sample (over the tokens) in row order. */
static vt_status upload_maps(vt_denoiser *dn, int n_img) {
    vt_denoiser_work *w = dn->work;
    if (w->maps_for == n_img) return VT_OK; /* same image count: same maps, already there */
    size_t N = (size_t)dn->cfg.grid * dn->cfg.grid, K = (size_t)draws_of(&dn->cfg);
    size_t Ni = (size_t)n_img * N, B = (size_t)n_img * K, R = B * N;
#define H(p) (w->idx_h + ((p) - w->idx))
    int32_t *rz = H(w->row_z), *rb = H(w->row_b), *rp = H(w->row_p);
    int32_t *zo = H(w->z_off), *zs = H(w->z_src), *bo = H(w->b_off), *bs = H(w->b_src);
#undef H
    for (size_t r = 0; r < R; r++) {
        size_t b = r / N, n = r % N;
        rz[r] = (int32_t)((b / K) * N + n);
        rb[r] = (int32_t)b;
        rp[r] = (int32_t)n;
        bs[r] = (int32_t)r; /* a sample's rows are contiguous */
    }
    for (size_t b = 0; b <= B; b++) bo[b] = (int32_t)(b * N);
    for (size_t j = 0; j < Ni; j++) { /* condition row (i, n): rows (i K + k, n), k < K */
        zo[j] = (int32_t)(j * K);
        for (size_t k = 0; k < K; k++) zs[j * K + k] = (int32_t)(((j / N) * K + k) * N + j % N);
    }
    zo[Ni] = (int32_t)(Ni * K);
    size_t ints = (size_t)(w->b_src - w->idx) + R;
    vt_status st = vt_ctx_memcpy_h2d(dn->ctx, w->idx, w->idx_h, ints * sizeof(int32_t));
    w->maps_for = st ? 0 : n_img;
    return st;
}

/* ---- forward ---- */

static vt_status ctx_fail(vt_denoiser *dn, vt_error *err) {
    const vt_error *e = vt_ctx_error(dn->ctx);
    return vt_fail(err, e->code ? e->code : VT_ERR_STATE, "ross: %s", e->msg);
}

#define OPS(call) do { if (call) return ctx_fail(dn, err); } while (0)

static vt_status block_forward(vt_denoiser *dn, int l, size_t B, vt_error *err) {
    const vt_denoiser_config *c = &dn->cfg;
    vt_denoiser_work *w = dn->work;
    const vt_dit_block *p = &dn->w.blocks[l];
    dit_acts *a = &w->blk[l];
    int N = c->grid * c->grid, W = c->width, M = mlp_dim(c), H = c->heads;
    size_t R = B * N, WW = (size_t)W * W;
    const float *xin = w->xs + (size_t)l * R * W;
    float *xout = w->xs + (size_t)(l + 1) * R * W;
    OPS(vt_linear_forward(dn->ctx, a->mod, w->sc, p->ada_w, p->ada_b, (int)R, W, 6 * W));
    OPS(vt_layernorm_forward(dn->ctx, a->ln1, a->mean1, a->rstd1, xin, NULL, NULL, (int)R, W,
                             BLOCK_LN_EPS));
    OPS(vt_modulate_forward(dn->ctx, a->m1, a->ln1, a->mod, 6 * W, 0, W, R, W));
    OPS(vt_linear_forward(dn->ctx, a->q, a->m1, p->qkv_w, p->qkv_b, (int)R, W, W));
    OPS(vt_linear_forward(dn->ctx, a->k, a->m1, p->qkv_w + WW, p->qkv_b + W, (int)R, W, W));
    OPS(vt_linear_forward(dn->ctx, a->v, a->m1, p->qkv_w + 2 * WW, p->qkv_b + 2 * W, (int)R, W, W));
    OPS(vt_attention_forward(dn->ctx, a->ao, a->att, a->q, a->k, a->v, NULL, (int)B, N, H, H,
                             W / H, 0));
    OPS(vt_linear_forward(dn->ctx, a->a, a->ao, p->proj_w, p->proj_b, (int)R, W, W));
    OPS(vt_gated_add_forward(dn->ctx, a->xmid, xin, a->a, a->mod, 6 * W, 2 * W, R, W));
    OPS(vt_layernorm_forward(dn->ctx, a->ln2, a->mean2, a->rstd2, a->xmid, NULL, NULL, (int)R, W,
                             BLOCK_LN_EPS));
    OPS(vt_modulate_forward(dn->ctx, a->m2, a->ln2, a->mod, 6 * W, 3 * W, 4 * W, R, W));
    OPS(vt_linear_forward(dn->ctx, a->f1, a->m2, p->fc1_w, p->fc1_b, (int)R, W, M));
    OPS(vt_activation_forward(dn->ctx, VT_ACT_GELU_TANH, a->f1g, a->f1, R * (size_t)M));
    OPS(vt_linear_forward(dn->ctx, a->f2, a->f1g, p->fc2_w, p->fc2_b, (int)R, M, W));
    OPS(vt_gated_add_forward(dn->ctx, xout, a->xmid, a->f2, a->mod, 6 * W, 5 * W, R, W));
    return VT_OK;
}

vt_status vt_denoiser_forward(vt_denoiser *dn, const float *cond, const float *target, int n_img,
                              const int32_t *t, const float *eps, vt_error *err) {
    const vt_denoiser_config *c = &dn->cfg;
    vt_denoiser_work *w = dn->work;
    w->ready = false;
    if (n_img < 0) return vt_fail(err, VT_ERR_ARG, "ross: negative image count %d", n_img);
    bool denoise = c->variant == VT_ROSS_DENOISE;
    if (denoise && n_img > 0 && (!t || !eps))
        return vt_fail(err, VT_ERR_ARG, "ross: the denoising variant needs timesteps and noise");
    vt_status st = grow(dn, n_img, err);
    if (st) return st;
    dn->n_img = n_img;
    dn->loss = 0.0;
    if (n_img == 0) {
        w->ready = true;
        return VT_OK;
    }
    int N = c->grid * c->grid, W = c->width, D = c->cond_dim, C = c->target_dim, F = c->freq_dim;
    int K = draws_of(c);
    size_t Ni = (size_t)n_img * N, B = (size_t)n_img * K, R = B * N;
    if (denoise)
        for (size_t b = 0; b < B; b++)
            if (t[b] < 0 || t[b] >= c->steps)
                return vt_fail(err, VT_ERR_ARG, "ross: timestep %d of draw %zu is outside [0, %d)",
                               t[b], b, c->steps);
    /* the host inputs: targets, and for DENOISE timesteps, noise, x_t and the timestep features */
    memcpy(w->target_h, target, Ni * C * sizeof(float));
    if (denoise) {
        memcpy(w->t_h, t, B * sizeof(int32_t));
        memcpy(w->eps_h, eps, R * C * sizeof(float));
        int half = F / 2;
        for (size_t b = 0; b < B; b++) {
            /* [cos(t f), sin(t f)], f_j = 10000^(-j / (F/2)) */
            for (int j = 0; j < half; j++) {
                double arg = (double)t[b] * exp(-log(10000.0) * j / half);
                w->tf_h[b * F + j] = (float)cos(arg);
                w->tf_h[b * F + half + j] = (float)sin(arg);
            }
            double sa = sqrt(dn->alpha_bar[t[b]]), sn = sqrt(1.0 - dn->alpha_bar[t[b]]);
            for (int n = 0; n < N; n++) {
                const float *x0 = w->target_h + ((b / K) * N + n) * C, *e = w->eps_h + (b * N + n) * C;
                float *xt = w->xt_h + (b * N + n) * C;
                for (int j = 0; j < C; j++) xt[j] = (float)(sa * x0[j] + sn * e[j]);
            }
        }
    }
    if ((st = upload_maps(dn, n_img)) || vt_ctx_memcpy_d2d(dn->ctx, w->cond, cond, Ni * D * sizeof(float)) ||
        (denoise ? vt_ctx_memcpy_h2d(dn->ctx, w->xt, w->xt_h, R * C * sizeof(float)) ||
                       vt_ctx_memcpy_h2d(dn->ctx, w->tf, w->tf_h, B * F * sizeof(float))
                 : vt_ctx_memset_zero(dn->ctx, w->xt, R * C * sizeof(float))))
        return ctx_fail(dn, err);
    /* condition: hn = LN(h), z = Linear(SiLU(hn)) */
    OPS(vt_layernorm_forward(dn->ctx, w->hn, w->mean0, w->rstd0, w->cond, NULL, NULL, (int)Ni, D,
                             COND_LN_EPS));
    OPS(vt_activation_forward(dn->ctx, VT_ACT_SILU, w->hs, w->hn, Ni * D));
    OPS(vt_linear_forward(dn->ctx, w->z, w->hs, dn->w.z_w, dn->w.z_b, (int)Ni, D, W));
    /* per-row condition c = z[image row] + temb[sample] (sc holds the temb rows for a moment) */
    OPS(vt_rows_gather(dn->ctx, w->c, w->z, w->row_z, (int)R, W));
    if (denoise) {
        OPS(vt_linear_forward(dn->ctx, w->t1, w->tf, dn->w.t1_w, dn->w.t1_b, (int)B, F, W));
        OPS(vt_activation_forward(dn->ctx, VT_ACT_SILU, w->t1s, w->t1, B * W));
        OPS(vt_linear_forward(dn->ctx, w->temb, w->t1s, dn->w.t2_w, dn->w.t2_b, (int)B, W, W));
        OPS(vt_rows_gather(dn->ctx, w->sc, w->temb, w->row_b, (int)R, W));
        OPS(vt_residual_forward(dn->ctx, w->c, w->c, w->sc, R * W));
    }
    OPS(vt_activation_forward(dn->ctx, VT_ACT_SILU, w->sc, w->c, R * W));
    /* x = Linear(x_t) + pos (dx holds the position rows for a moment) */
    OPS(vt_linear_forward(dn->ctx, w->xs, w->xt, dn->w.x_w, dn->w.x_b, (int)R, C, W));
    OPS(vt_rows_gather(dn->ctx, w->dx, dn->pos, w->row_p, (int)R, W));
    OPS(vt_residual_forward(dn->ctx, w->xs, w->xs, w->dx, R * W));
    for (int l = 0; l < c->depth; l++)
        if ((st = block_forward(dn, l, B, err))) return st;
    /* final layer */
    const float *xl = w->xs + (size_t)c->depth * R * W;
    OPS(vt_linear_forward(dn->ctx, w->modf, w->sc, dn->w.fada_w, dn->w.fada_b, (int)R, W, 2 * W));
    OPS(vt_layernorm_forward(dn->ctx, w->lnf, w->meanf, w->rstdf, xl, NULL, NULL, (int)R, W,
                             BLOCK_LN_EPS));
    OPS(vt_modulate_forward(dn->ctx, w->y, w->lnf, w->modf, 2 * W, 0, W, R, W));
    OPS(vt_linear_forward(dn->ctx, w->out, w->y, dn->w.out_w, dn->w.out_b, (int)R, W, C));
    /* MSE against eps (DENOISE) or the target (REGRESS), on the host in double */
    OPS(vt_ctx_memcpy_d2h(dn->ctx, w->out_h, w->out, R * C * sizeof(float)));
    double sum = 0.0;
    for (size_t r = 0; r < R; r++) {
        const float *want = denoise ? w->eps_h + r * C : w->target_h + ((r / N / K) * N + r % N) * C;
        const float *o = w->out_h + r * C;
        for (int j = 0; j < C; j++) {
            double d = (double)o[j] - want[j];
            sum += d * d;
        }
    }
    dn->loss = sum / ((double)R * C);
    w->ready = true;
    return VT_OK;
}

/* ---- backward ---- */

/* dx holds dL/d(block output) on entry, dL/d(block input) on return; dsc
 * accumulates. */
static vt_status block_backward(vt_denoiser *dn, int l, size_t B, vt_error *err) {
    const vt_denoiser_config *c = &dn->cfg;
    vt_denoiser_work *w = dn->work;
    const vt_dit_block *p = &dn->w.blocks[l], *g = &dn->g.blocks[l];
    dit_acts *a = &w->blk[l];
    int N = c->grid * c->grid, W = c->width, M = mlp_dim(c), H = c->heads;
    size_t R = B * N, RW = R * W, WW = (size_t)W * W;
    const float *xin = w->xs + (size_t)l * R * W;
    /* MLP branch: xout = xmid + gate_mlp * f2 */
    OPS(vt_gated_add_backward(dn->ctx, w->dx, a->f2, a->mod, w->dmod, w->d1, 6 * W, 5 * W, R, W));
    OPS(vt_ctx_memset_zero(dn->ctx, w->df1g, R * M * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->df1g, g->fc2_w, g->fc2_b, w->d1, a->f1g, p->fc2_w, (int)R, M, W));
    OPS(vt_ctx_memset_zero(dn->ctx, w->df1, R * M * sizeof(float)));
    OPS(vt_activation_backward(dn->ctx, VT_ACT_GELU_TANH, w->df1, w->df1g, a->f1, R * (size_t)M));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dm, RW * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->dm, g->fc1_w, g->fc1_b, w->df1, a->m2, p->fc1_w, (int)R, W, M));
    OPS(vt_modulate_backward(dn->ctx, w->dm, a->ln2, a->mod, w->dmod, 6 * W, 3 * W, 4 * W, R, W));
    OPS(vt_layernorm_backward(dn->ctx, w->dx, NULL, NULL, w->dm, a->xmid, NULL, a->mean2, a->rstd2,
                              (int)R, W));
    /* attention branch: xmid = xin + gate_msa * proj(attn(m1)) */
    OPS(vt_gated_add_backward(dn->ctx, w->dx, a->a, a->mod, w->dmod, w->d1, 6 * W, 2 * W, R, W));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dao, RW * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->dao, g->proj_w, g->proj_b, w->d1, a->ao, p->proj_w, (int)R, W, W));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dq, RW * sizeof(float)));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dk, RW * sizeof(float)));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dv, RW * sizeof(float)));
    OPS(vt_attention_backward(dn->ctx, w->dq, w->dk, w->dv, w->dao, a->att, a->q, a->k, a->v, (int)B,
                              N, H, H, W / H));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dm, RW * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->dm, g->qkv_w, g->qkv_b, w->dq, a->m1, p->qkv_w, (int)R, W, W));
    OPS(vt_linear_backward(dn->ctx, w->dm, g->qkv_w + WW, g->qkv_b + W, w->dk, a->m1, p->qkv_w + WW,
                           (int)R, W, W));
    OPS(vt_linear_backward(dn->ctx, w->dm, g->qkv_w + 2 * WW, g->qkv_b + 2 * W, w->dv, a->m1,
                           p->qkv_w + 2 * WW, (int)R, W, W));
    OPS(vt_modulate_backward(dn->ctx, w->dm, a->ln1, a->mod, w->dmod, 6 * W, 0, W, R, W));
    OPS(vt_layernorm_backward(dn->ctx, w->dx, NULL, NULL, w->dm, xin, NULL, a->mean1, a->rstd1,
                              (int)R, W));
    /* the modulation: mod = Linear(SiLU(c)) */
    OPS(vt_linear_backward(dn->ctx, w->dsc, g->ada_w, g->ada_b, w->dmod, w->sc, p->ada_w, (int)R, W,
                           6 * W));
    return VT_OK;
}

vt_status vt_denoiser_backward(vt_denoiser *dn, float *dcond, float scale, vt_error *err) {
    const vt_denoiser_config *c = &dn->cfg;
    vt_denoiser_work *w = dn->work;
    if (!w->ready) return vt_fail(err, VT_ERR_STATE, "ross: backward without a successful forward");
    int n_img = dn->n_img;
    if (n_img == 0) return VT_OK;
    bool denoise = c->variant == VT_ROSS_DENOISE;
    int N = c->grid * c->grid, W = c->width, D = c->cond_dim, C = c->target_dim, F = c->freq_dim;
    int K = draws_of(c);
    size_t Ni = (size_t)n_img * N, B = (size_t)n_img * K, R = B * N, RW = R * W;
    vt_status st;
    /* dL/dpred = scale * 2 (pred - want) / (R C), on the host from the forward's copy */
    double k2 = 2.0 * scale / ((double)R * C);
    for (size_t r = 0; r < R; r++) {
        const float *want = denoise ? w->eps_h + r * C : w->target_h + ((r / N / K) * N + r % N) * C;
        const float *o = w->out_h + r * C;
        float *d = w->dout_h + r * C;
        for (int j = 0; j < C; j++) d[j] = (float)(k2 * ((double)o[j] - want[j]));
    }
    OPS(vt_ctx_memcpy_h2d(dn->ctx, w->dout, w->dout_h, R * C * sizeof(float)));
    /* final layer */
    OPS(vt_ctx_memset_zero(dn->ctx, w->dy, RW * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->dy, dn->g.out_w, dn->g.out_b, w->dout, w->y, dn->w.out_w,
                           (int)R, W, C));
    OPS(vt_modulate_backward(dn->ctx, w->dy, w->lnf, w->modf, w->dmod, 2 * W, 0, W, R, W));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dx, RW * sizeof(float)));
    OPS(vt_layernorm_backward(dn->ctx, w->dx, NULL, NULL, w->dy, w->xs + (size_t)c->depth * RW, NULL,
                              w->meanf, w->rstdf, (int)R, W));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dsc, RW * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->dsc, dn->g.fada_w, dn->g.fada_b, w->dmod, w->sc,
                           dn->w.fada_w, (int)R, W, 2 * W));
    for (int l = c->depth - 1; l >= 0; l--)
        if ((st = block_backward(dn, l, B, err))) return st;
    /* x embedding (the noisy input needs no gradient) */
    OPS(vt_linear_backward(dn->ctx, NULL, dn->g.x_w, dn->g.x_b, w->dx, w->xt, dn->w.x_w, (int)R, C, W));
    /* c = z + temb -> dz (summed over draws), dtemb (summed over tokens) */
    OPS(vt_ctx_memset_zero(dn->ctx, w->dc, RW * sizeof(float)));
    OPS(vt_activation_backward(dn->ctx, VT_ACT_SILU, w->dc, w->dsc, w->c, RW));
    OPS(vt_ctx_memset_zero(dn->ctx, w->dz, Ni * W * sizeof(float)));
    OPS(vt_rows_reduce(dn->ctx, w->dz, w->dc, w->z_off, w->z_src, (int)Ni, W));
    if (denoise) {
        OPS(vt_ctx_memset_zero(dn->ctx, w->dtemb, B * W * sizeof(float)));
        OPS(vt_rows_reduce(dn->ctx, w->dtemb, w->dc, w->b_off, w->b_src, (int)B, W));
        OPS(vt_ctx_memset_zero(dn->ctx, w->dt1s, B * W * sizeof(float)));
        OPS(vt_linear_backward(dn->ctx, w->dt1s, dn->g.t2_w, dn->g.t2_b, w->dtemb, w->t1s, dn->w.t2_w,
                               (int)B, W, W));
        OPS(vt_ctx_memset_zero(dn->ctx, w->dt1, B * W * sizeof(float)));
        OPS(vt_activation_backward(dn->ctx, VT_ACT_SILU, w->dt1, w->dt1s, w->t1, B * W));
        OPS(vt_linear_backward(dn->ctx, NULL, dn->g.t1_w, dn->g.t1_b, w->dt1, w->tf, dn->w.t1_w, (int)B,
                               F, W));
    }
    /* condition path */
    OPS(vt_ctx_memset_zero(dn->ctx, w->dhs, Ni * D * sizeof(float)));
    OPS(vt_linear_backward(dn->ctx, w->dhs, dn->g.z_w, dn->g.z_b, w->dz, w->hs, dn->w.z_w, (int)Ni, D, W));
    if (dcond) {
        OPS(vt_ctx_memset_zero(dn->ctx, w->dhn, Ni * D * sizeof(float)));
        OPS(vt_activation_backward(dn->ctx, VT_ACT_SILU, w->dhn, w->dhs, w->hn, Ni * D));
        OPS(vt_layernorm_backward(dn->ctx, dcond, NULL, NULL, w->dhn, w->cond, NULL, w->mean0, w->rstd0,
                                  (int)Ni, D));
    }
    return VT_OK;
}
