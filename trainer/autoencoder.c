/* The per-patch KL-autoencoder (trainer/autoencoder.h): network, noise,
 * forward/backward, autoencoder.safetensors, and the `autoencoder` recipe. */
#include "trainer/autoencoder.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/rng.h"
#include "trainer/denoiser.h"
#include "trainer/ross.h"
#include "trainer/safetensors.h"

/* CLIP's normalisation (openai/clip-vit-*), as pipeline/dataset.c applies it
 * and trainer/ross.c undoes it for pixel targets. */
static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static const char *const norm_names[] = {"clip", "none"};

void vt_ae_config_default(vt_ae_config *c) {
    *c = (vt_ae_config){.latent_dim = 16, .hidden = 256, .beta = 1e-3f, .pixel_norm = 0, .patch = 0};
}

/* a value out of range is a configuration error (exit 2), as a bad one */
static vt_status as_arg(vt_status st, vt_error *err) {
    if (st == VT_ERR_RANGE) {
        if (err) err->code = VT_ERR_ARG;
        st = VT_ERR_ARG;
    }
    return st;
}

vt_status vt_ae_config_read(const vt_config *cfg, const char *prefix, vt_ae_config *c, vt_error *err) {
    char path[256];
    int64_t v = c->latent_dim;
    snprintf(path, sizeof path, "%s.latent_dim", prefix);
    vt_status st = as_arg(vt_config_int_range(cfg, path, 1, 1 << 16, &v, err), err);
    if (st) return st;
    c->latent_dim = (int)v;
    v = c->hidden;
    snprintf(path, sizeof path, "%s.hidden", prefix);
    if ((st = as_arg(vt_config_int_range(cfg, path, 1, 1 << 16, &v, err), err))) return st;
    c->hidden = (int)v;
    double beta = c->beta;
    snprintf(path, sizeof path, "%s.beta", prefix);
    if ((st = vt_config_double(cfg, path, &beta, err))) return st;
    if (!isfinite(beta) || beta < 0)
        return vt_fail(err, VT_ERR_ARG, "%s: must be finite and >= 0, got %g", path, beta);
    c->beta = (float)beta;
    snprintf(path, sizeof path, "%s.pixel_norm", prefix);
    return vt_config_enum(cfg, path, norm_names, 2, &c->pixel_norm, err);
}

/* ---- parameters ---- */

static void layout(vt_autoencoder *ae) {
    int K = ae->K, H = ae->H, C = ae->C;
    static const char *const names[VT_AE_TENSORS] = {
        "autoencoder.encoder.fc1.weight", "autoencoder.encoder.fc1.bias",
        "autoencoder.encoder.out.weight", "autoencoder.encoder.out.bias",
        "autoencoder.decoder.fc1.weight", "autoencoder.decoder.fc1.bias",
        "autoencoder.decoder.out.weight", "autoencoder.decoder.out.bias"};
    const int64_t shapes[VT_AE_TENSORS][2] = {{H, K}, {H, 0}, {2 * C, H}, {2 * C, 0},
                                              {H, C}, {H, 0}, {K, H},     {K, 0}};
    size_t off = 0;
    for (int i = 0; i < VT_AE_TENSORS; i++) {
        vt_ae_tensor *t = &ae->tensors[i];
        t->name = names[i];
        t->shape[0] = shapes[i][0];
        t->shape[1] = shapes[i][1];
        t->ndim = shapes[i][1] ? 2 : 1;
        t->numel = (size_t)shapes[i][0] * (size_t)(shapes[i][1] ? shapes[i][1] : 1);
        t->offset = off;
        off += t->numel;
    }
    ae->num_params = off;
}

static void views(vt_autoencoder *ae) {
    float **v[VT_AE_TENSORS] = {&ae->e1_w, &ae->e1_b, &ae->e2_w, &ae->e2_b,
                                &ae->d1_w, &ae->d1_b, &ae->d2_w, &ae->d2_b};
    for (int i = 0; i < VT_AE_TENSORS; i++) *v[i] = ae->params + ae->tensors[i].offset;
}

vt_status vt_ae_create(vt_autoencoder **out, const vt_ae_config *cfg, uint64_t seed, vt_error *err) {
    *out = NULL;
    if (cfg->patch <= 0 || cfg->latent_dim <= 0 || cfg->hidden <= 0)
        return vt_fail(err, VT_ERR_ARG, "autoencoder: bad sizes (patch %d, latent_dim %d, hidden %d)", cfg->patch,
                       cfg->latent_dim, cfg->hidden);
    vt_autoencoder *ae = calloc(1, sizeof *ae);
    if (!ae) return vt_fail(err, VT_ERR_NOMEM, "autoencoder: no memory");
    ae->cfg = *cfg;
    ae->K = 3 * cfg->patch * cfg->patch;
    ae->H = cfg->hidden;
    ae->C = cfg->latent_dim;
    layout(ae);
    ae->params = calloc(ae->num_params, sizeof(float));
    ae->grads = calloc(ae->num_params, sizeof(float));
    if (!ae->params || !ae->grads) {
        vt_ae_free(ae);
        return vt_fail(err, VT_ERR_NOMEM, "autoencoder: no memory for %zu parameters", ae->num_params);
    }
    views(ae);
    for (int i = 0; i < VT_AE_TENSORS; i++) {
        const vt_ae_tensor *t = &ae->tensors[i];
        if (t->ndim != 2) continue; /* biases 0 */
        vt_rng r;
        vt_rng_init(&r, vt_hash_bytes(t->name, strlen(t->name), seed));
        double bound = sqrt(6.0 / (double)(t->shape[0] + t->shape[1])); /* xavier_uniform */
        float *p = ae->params + t->offset;
        for (size_t k = 0; k < t->numel; k++) p[k] = (float)((2.0 * vt_rng_uniform_double(&r) - 1.0) * bound);
    }
    *out = ae;
    return VT_OK;
}

static void free_work(vt_autoencoder *ae) {
    free(ae->x); free(ae->a1); free(ae->h1); free(ae->ml); free(ae->eps); free(ae->z);
    free(ae->a2); free(ae->h2); free(ae->xh); free(ae->d_ml); free(ae->d_h);
    ae->x = ae->a1 = ae->h1 = ae->ml = ae->eps = ae->z = ae->a2 = ae->h2 = ae->xh = ae->d_ml = ae->d_h = NULL;
    ae->cap = 0;
}

void vt_ae_free(vt_autoencoder *ae) {
    if (!ae) return;
    free_work(ae);
    free(ae->params);
    free(ae->grads);
    free(ae);
}

static vt_status ensure(vt_autoencoder *ae, size_t rows, vt_error *err) {
    if (rows <= ae->cap && ae->x) return VT_OK;
    free_work(ae);
    size_t K = (size_t)ae->K, H = (size_t)ae->H, C = (size_t)ae->C;
    ae->x = malloc(rows * K * sizeof(float));
    ae->a1 = malloc(rows * H * sizeof(float));
    ae->h1 = malloc(rows * H * sizeof(float));
    ae->ml = malloc(rows * 2 * C * sizeof(float));
    ae->eps = malloc(rows * C * sizeof(float));
    ae->z = malloc(rows * C * sizeof(float));
    ae->a2 = malloc(rows * H * sizeof(float));
    ae->h2 = malloc(rows * H * sizeof(float));
    ae->xh = malloc(rows * K * sizeof(float));
    ae->d_ml = malloc(rows * 2 * C * sizeof(float));
    ae->d_h = malloc(rows * (H > K ? H : K) * sizeof(float));
    if (!ae->x || !ae->a1 || !ae->h1 || !ae->ml || !ae->eps || !ae->z || !ae->a2 || !ae->h2 || !ae->xh ||
        !ae->d_ml || !ae->d_h) {
        free_work(ae);
        return vt_fail(err, VT_ERR_NOMEM, "autoencoder: no memory for %zu patches", rows);
    }
    ae->cap = rows;
    return VT_OK;
}

void vt_ae_noise(const vt_autoencoder *ae, int tokens, uint64_t key, float *eps) {
    vt_rng r;
    vt_rng_init(&r, key);
    for (size_t i = 0; i < (size_t)tokens * ae->C; i++) eps[i] = (float)vt_rng_normal(&r);
}

/* y [R, no] = x [R, ni] W^T + b, W [no, ni] */
static void linear(float *y, const float *x, const float *W, const float *b, size_t R, int no, int ni) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, no, ni, 1.0f, x, ni, W, ni, 0.0f, y, no);
    for (size_t r = 0; r < R; r++)
        for (int o = 0; o < no; o++) y[r * no + o] += b[o];
}

/* gW [no, ni] += dy^T x, gb += column sums of dy; dx [R, ni] = dy W (when not NULL) */
static void linear_back(float *dx, float *gW, float *gb, const float *dy, const float *x, const float *W,
                        size_t R, int no, int ni) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, no, ni, (int)R, 1.0f, dy, no, x, ni, 1.0f, gW, ni);
    for (size_t r = 0; r < R; r++)
        for (int o = 0; o < no; o++) gb[o] += dy[r * no + o];
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, ni, no, 1.0f, dy, no, W, ni, 0.0f, dx, ni);
}

static float sigm(float a) { return 1.0f / (1.0f + expf(-a)); }

static void silu(float *h, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = a[i] * sigm(a[i]);
}

/* dh *= SiLU'(a) */
static void silu_back(float *dh, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = sigm(a[i]);
        dh[i] *= s * (1.0f + a[i] * (1.0f - s));
    }
}

static void encode_rows(vt_autoencoder *ae, const float *x, size_t R) {
    linear(ae->a1, x, ae->e1_w, ae->e1_b, R, ae->H, ae->K);
    silu(ae->h1, ae->a1, R * ae->H);
    linear(ae->ml, ae->h1, ae->e2_w, ae->e2_b, R, 2 * ae->C, ae->H);
}

vt_status vt_ae_forward(vt_autoencoder *ae, const float *x, size_t rows, const float *eps, vt_error *err) {
    ae->rows = rows;
    ae->recon = ae->kl = ae->loss = 0;
    if (rows == 0) return VT_OK;
    vt_status st = ensure(ae, rows, err);
    if (st) return st;
    int K = ae->K, H = ae->H, C = ae->C;
    memcpy(ae->x, x, rows * K * sizeof(float));
    memcpy(ae->eps, eps, rows * C * sizeof(float));
    encode_rows(ae, ae->x, rows);
    double kl = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *mu = ae->ml + r * 2 * C, *lv = mu + C;
        for (int c = 0; c < C; c++) {
            ae->z[r * C + c] = mu[c] + expf(0.5f * lv[c]) * ae->eps[r * C + c];
            kl += 0.5 * ((double)mu[c] * mu[c] + exp((double)lv[c]) - 1.0 - lv[c]);
        }
    }
    linear(ae->a2, ae->z, ae->d1_w, ae->d1_b, rows, H, C);
    silu(ae->h2, ae->a2, rows * H);
    linear(ae->xh, ae->h2, ae->d2_w, ae->d2_b, rows, K, H);
    double se = 0;
    for (size_t i = 0; i < rows * K; i++) {
        double d = (double)ae->xh[i] - ae->x[i];
        se += d * d;
    }
    ae->recon = se / ((double)rows * K);
    ae->kl = kl / (double)rows;
    ae->loss = ae->recon + (double)ae->cfg.beta * ae->kl;
    if (!isfinite(ae->loss))
        return vt_fail(err, VT_ERR_RANGE, "autoencoder: non-finite loss (recon %g, kl %g)", ae->recon, ae->kl);
    return VT_OK;
}

vt_status vt_ae_backward(vt_autoencoder *ae, float scale, vt_error *err) {
    (void)err;
    size_t R = ae->rows;
    if (R == 0 || scale == 0.0f) return VT_OK;
    int K = ae->K, H = ae->H, C = ae->C;
    float *g = ae->grads;
    const vt_ae_tensor *t = ae->tensors;
    float *ge1w = g + t[0].offset, *ge1b = g + t[1].offset, *ge2w = g + t[2].offset, *ge2b = g + t[3].offset;
    float *gd1w = g + t[4].offset, *gd1b = g + t[5].offset, *gd2w = g + t[6].offset, *gd2b = g + t[7].offset;
    /* d(recon)/d(xhat), into xh (no longer needed) */
    float kr = 2.0f * scale / (float)((double)R * K);
    for (size_t i = 0; i < R * K; i++) ae->xh[i] = kr * (ae->xh[i] - ae->x[i]);
    float *dh2 = ae->d_h;
    linear_back(dh2, gd2w, gd2b, ae->xh, ae->h2, ae->d2_w, R, K, H);
    silu_back(dh2, ae->a2, R * H);
    float *dz = ae->z; /* z is not needed after its weight gradient */
    linear_back(NULL, gd1w, gd1b, dh2, ae->z, ae->d1_w, R, H, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, C, H, 1.0f, dh2, H, ae->d1_w, C, 0.0f, dz, C);
    float kk = scale * ae->cfg.beta / (float)R;
    for (size_t r = 0; r < R; r++) {
        const float *mu = ae->ml + r * 2 * C, *lv = mu + C;
        float *dmu = ae->d_ml + r * 2 * C, *dlv = dmu + C;
        for (int c = 0; c < C; c++) {
            float sd = expf(0.5f * lv[c]), e = ae->eps[r * C + c], d = dz[r * C + c];
            dmu[c] = d + kk * mu[c];
            dlv[c] = 0.5f * d * e * sd + 0.5f * kk * (sd * sd - 1.0f);
        }
    }
    float *dh1 = ae->d_h;
    linear_back(dh1, ge2w, ge2b, ae->d_ml, ae->h1, ae->e2_w, R, 2 * C, H);
    silu_back(dh1, ae->a1, R * H);
    linear_back(NULL, ge1w, ge1b, dh1, ae->x, ae->e1_w, R, H, K);
    ae->rows = 0; /* one backward per forward */
    return VT_OK;
}

vt_status vt_ae_encode(vt_autoencoder *ae, const float *x, size_t rows, float *mean, vt_error *err) {
    if (rows == 0) return VT_OK;
    vt_status st = ensure(ae, rows, err);
    if (st) return st;
    encode_rows(ae, x, rows);
    int C = ae->C;
    for (size_t r = 0; r < rows; r++) memcpy(mean + r * C, ae->ml + r * 2 * C, (size_t)C * sizeof(float));
    ae->rows = 0;
    return VT_OK;
}

/* ---- autoencoder.safetensors ---- */

vt_status vt_ae_save(const vt_autoencoder *ae, const char *path, vt_error *err) {
    vt_st_writer *w = vt_st_writer_new();
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    char beta[32];
    snprintf(beta, sizeof beta, "%.9g", (double)ae->cfg.beta);
    vt_status st = vt_st_writer_meta(w, "format", "pt", err);
    if (!st) st = vt_st_writer_meta(w, "vistune_method", "autoencoder", err);
    if (!st) st = vt_st_writer_meta(w, "autoencoder_pixel_norm", norm_names[ae->cfg.pixel_norm], err);
    if (!st) st = vt_st_writer_meta(w, "autoencoder_beta", beta, err);
    for (int i = 0; i < VT_AE_TENSORS && !st; i++) {
        const vt_ae_tensor *t = &ae->tensors[i];
        st = vt_st_writer_add(w, t->name, VT_ST_F32, t->ndim, t->shape, ae->params + t->offset, err);
    }
    if (!st) st = vt_st_writer_write(w, path, err);
    vt_st_writer_free(w);
    return st;
}

static vt_status load_from(vt_autoencoder *ae, vt_st_file *f, const char *path, vt_error *err) {
    vt_st_flat t[VT_AE_TENSORS];
    for (int k = 0; k < VT_AE_TENSORS; k++) {
        const vt_ae_tensor *a = &ae->tensors[k];
        t[k] = (vt_st_flat){a->name, a->ndim, a->shape, a->offset, a->numel};
    }
    char owner[128];
    snprintf(owner, sizeof owner, "the autoencoder's (patch values %d, hidden %d, latent_dim %d)", ae->K, ae->H,
             ae->C);
    return vt_st_read_flat(f, path, t, VT_AE_TENSORS, ae->params, NULL, owner, err);
}

vt_status vt_ae_load(vt_autoencoder *ae, const char *path, vt_error *err) {
    vt_st_file *f = NULL;
    vt_status st = vt_st_open(path, &f, err);
    if (st) return st;
    st = load_from(ae, f, path, err);
    vt_st_close(f);
    return st;
}

vt_status vt_ae_load_teacher(vt_autoencoder **out, const char *key, const char *dir, vt_error *err) {
    *out = NULL;
    char path[4096];
    if (!vt_is_dir(dir))
        return vt_fail(err, VT_ERR_ARG, "%s: '%s' is not a directory (an autoencoder checkpoint directory)", key, dir);
    vt_status st = vt_path_join(path, sizeof path, dir, "autoencoder.safetensors", err);
    if (st) return st;
    if (!vt_path_exists(path))
        return vt_fail(err, VT_ERR_ARG, "%s: '%s' has no autoencoder.safetensors (not a checkpoint of recipe "
                       "autoencoder)", key, dir);
    vt_st_file *f = NULL;
    if ((st = vt_st_open(path, &f, err))) {
        vt_error_prefix(err, "%s: ", key);
        return VT_ERR_ARG;
    }
    const char *method = vt_st_metadata(f, "vistune_method"), *norm = vt_st_metadata(f, "autoencoder_pixel_norm");
    const vt_st_tensor *e1 = vt_st_find(f, "autoencoder.encoder.fc1.weight");
    const vt_st_tensor *d1 = vt_st_find(f, "autoencoder.decoder.fc1.weight");
    vt_ae_config c;
    vt_ae_config_default(&c);
    int P = 0;
    if (e1 && e1->ndim == 2)
        while ((int64_t)3 * (P + 1) * (P + 1) <= e1->shape[1]) P++;
    if (!method || strcmp(method, "autoencoder") || !norm || !e1 || !d1 || e1->ndim != 2 || d1->ndim != 2 ||
        (int64_t)3 * P * P != e1->shape[1]) {
        vt_st_close(f);
        return vt_fail(err, VT_ERR_ARG, "%s: %s is not an autoencoder of vistune's recipe autoencoder", key, path);
    }
    c.pixel_norm = strcmp(norm, "none") ? 0 : 1;
    c.patch = P;
    c.hidden = (int)e1->shape[0];
    c.latent_dim = (int)d1->shape[1];
    vt_autoencoder *ae = NULL;
    if (!(st = vt_ae_create(&ae, &c, 0, err)) && (st = load_from(ae, f, path, err))) {
        vt_ae_free(ae);
        ae = NULL;
    }
    vt_st_close(f);
    if (st) {
        vt_error_prefix(err, "%s: ", key);
        return VT_ERR_ARG;
    }
    *out = ae;
    return VT_OK;
}

/* ---- the recipe ---- */

typedef struct ae_state {
    vt_ae_config cfg;
    vt_autoencoder *ae;
    vt_model *m;
    uint8_t *decay;
    int grid;
    float *pix, *eps; /* scratch: one micro-batch's image patches and noise */
    size_t cap_img;
    uint64_t seed, step;
    int64_t global_images, global_tokens;
    double recon_sum, kl_sum; /* this rank's sums of images x micro-batch means */
} ae_state;

vt_status vt_ae_recipe_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    mc->freeze_vision = true; /* the LLaVA model is not trained (nor run) */
    mc->freeze_projector = true;
    mc->freeze_language = true;
    ae_state *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "autoencoder: no memory");
    *state = s;
    vt_ae_config_default(&s->cfg);
    return vt_ae_config_read(cfg, "autoencoder", &s->cfg, err);
}

vt_status vt_ae_recipe_init(void *state, vt_model *m, uint64_t seed, vt_error *err) {
    ae_state *s = state;
    s->m = m;
    int P = m->cfg.patch_size;
    if (P <= 0 || m->cfg.image_size % P)
        return vt_fail(err, VT_ERR_ARG, "autoencoder: image size %d is not a multiple of the patch size %d",
                       m->cfg.image_size, P);
    s->grid = m->cfg.image_size / P;
    s->cfg.patch = P;
    vt_status st = vt_ae_create(&s->ae, &s->cfg, vt_hash4(seed, 0x41453031u /* "AE01" */, 0, 0), err);
    if (st) return st;
    s->decay = calloc(s->ae->num_params, 1);
    if (!s->decay) return vt_fail(err, VT_ERR_NOMEM, "autoencoder: no memory");
    for (int i = 0; i < VT_AE_TENSORS; i++)
        if (s->ae->tensors[i].ndim == 2) memset(s->decay + s->ae->tensors[i].offset, 1, s->ae->tensors[i].numel);
    return VT_OK;
}

vt_status vt_ae_recipe_param_groups(void *state, vt_param_group *out, int *n, vt_error *err) {
    (void)err;
    ae_state *s = state;
    out[0] = (vt_param_group){.name = "autoencoder", .params = s->ae->params, .grads = s->ae->grads,
                              .decay_mask = s->decay, .n = s->ae->num_params};
    *n = 1;
    return VT_OK;
}

vt_status vt_ae_recipe_begin_step(void *state, const vt_recipe_step *rs, vt_error *err) {
    ae_state *s = state;
    int64_t local = 0;
    for (uint32_t k = 0; k < rs->micro_count; k++)
        local += vt_ross_count_images(&rs->batches[k], s->m->cfg.image_token_index);
    if (MPI_Allreduce(&local, &s->global_images, 1, MPI_INT64_T, MPI_SUM, rs->comm) != MPI_SUCCESS)
        return vt_fail(err, VT_ERR_MPI, "autoencoder: counting the step's images");
    s->global_tokens = rs->global_loss_tokens;
    s->seed = rs->seed;
    s->step = rs->step;
    s->recon_sum = s->kl_sum = 0;
    return VT_OK;
}

vt_status vt_ae_recipe_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale,
                                  double progress, double *loss_sum, vt_error *err) {
    (void)dloss_scale, (void)progress;
    ae_state *s = state;
    vt_autoencoder *ae = s->ae;
    *loss_sum = 0;
    int B = (int)b->shape.batch, T = (int)b->shape.seq_len, S = m->cfg.image_size, P = s->cfg.patch;
    int N = s->grid * s->grid;
    size_t tokK = (size_t)N * ae->K, tokC = (size_t)N * ae->C, pix = (size_t)3 * S * S;
    if ((size_t)B > s->cap_img) {
        free(s->pix);
        free(s->eps);
        s->pix = malloc((size_t)B * tokK * sizeof(float));
        s->eps = malloc((size_t)B * tokC * sizeof(float));
        s->cap_img = (size_t)B;
        if (!s->pix || !s->eps) {
            s->cap_img = 0;
            return vt_fail(err, VT_ERR_NOMEM, "autoencoder: no memory for %d images", B);
        }
    }
    int n = 0;
    uint64_t key = vt_hash4(s->seed, s->step, 0x4155544fu /* "AUTO" */, 0);
    for (int i = 0; i < B; i++) {
        int len = b->lengths ? b->lengths[i] : T;
        bool has = false;
        for (int t = 0; t < len && !has; t++) has = b->tokens[(size_t)i * T + t] == m->cfg.image_token_index;
        if (!has) continue;
        if (!b->pixels || b->shape.channels != 3 || (int)b->shape.height != S || (int)b->shape.width != S)
            return vt_fail(err, VT_ERR_ARG, "autoencoder: the batch has no %dx%d RGB pixels for its images", S, S);
        bool clip = s->cfg.pixel_norm == 0;
        vt_status st = vt_ross_pixel_targets(b->pixels + (size_t)i * pix, 1, S, P, clip ? clip_mean : NULL,
                                             clip ? clip_std : NULL, s->pix + (size_t)n * tokK, err);
        if (st) return st;
        uint64_t id = b->sample_indices ? b->sample_indices[i] : (uint64_t)i;
        vt_ae_noise(ae, N, vt_hash4(key, id, 0, 0), s->eps + (size_t)n * tokC);
        n++;
    }
    if (n == 0 || s->global_images == 0) return VT_OK;
    vt_status st = vt_ae_forward(ae, s->pix, (size_t)n * N, s->eps, err);
    if (st) return st;
    double share = (double)n / (double)s->global_images;
    s->recon_sum += n * ae->recon;
    s->kl_sum += n * ae->kl;
    /* the loop reports loss = (sum over ranks and micro-batches) / the global
     * batch's supervised tokens: make that the autoencoder objective */
    *loss_sum = share * ae->loss * (double)s->global_tokens;
    return vt_ae_backward(ae, (float)share, err);
}

vt_status vt_ae_recipe_end_step(void *state, const vt_recipe_step *rs, vt_recipe_scalars *out, vt_error *err) {
    ae_state *s = state;
    double local[2] = {s->recon_sum, s->kl_sum}, global[2] = {0, 0};
    if (MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_SUM, rs->comm) != MPI_SUCCESS)
        return vt_fail(err, VT_ERR_MPI, "autoencoder: reducing the step's losses");
    double gi = (double)s->global_images;
    out->names[out->n] = "recon_loss";
    out->values[out->n++] = gi > 0 ? global[0] / gi : NAN;
    out->names[out->n] = "kl";
    out->values[out->n++] = gi > 0 ? global[1] / gi : NAN;
    return VT_OK;
}

vt_status vt_ae_recipe_save(void *state, vt_ckpt_writer *w, vt_error *err) {
    ae_state *s = state;
    if (vt_ckpt_writer_rank(w) != 0) return VT_OK; /* replicated: rank 0 writes it */
    char path[4096];
    vt_status st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "autoencoder.safetensors", err);
    if (st) return st;
    return vt_ae_save(s->ae, path, err);
}

vt_status vt_ae_recipe_load(void *state, const vt_ckpt *c, vt_error *err) {
    ae_state *s = state;
    char path[4096];
    vt_status st = vt_ckpt_file(c, "autoencoder.safetensors", path, sizeof path, err);
    if (st) return st;
    return vt_ae_load(s->ae, path, err);
}

void vt_ae_recipe_destroy(void *state) {
    ae_state *s = state;
    if (!s) return;
    vt_ae_free(s->ae);
    free(s->decay);
    free(s->pix);
    free(s->eps);
    free(s);
}
