/* Glue between the ROSS denoiser and the model's decoder hook: image spans
 * from the batch, the final norm, pixel targets, keyed noise. */
#include "trainer/ross.h"

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/norm.h"
#include "ops/rows.h"

/* CLIP's normalisation (openai/clip-vit-*), as pipeline/dataset.c applies it. */
static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static void release(vt_ross *r) {
    vt_ctx *ctx = r->m->ctx;
    vt_ctx_free(ctx, r->rows);
    vt_ctx_free(ctx, r->h);
    vt_ctx_free(ctx, r->hn);
    vt_ctx_free(ctx, r->rstd);
    vt_ctx_free(ctx, r->dh);
    free(r->rows_h); free(r->img); free(r->tgt); free(r->eps); free(r->t); free(r->pix);
    r->rows = NULL, r->h = r->hn = r->rstd = r->dh = NULL;
    r->rows_h = NULL, r->img = NULL, r->tgt = r->eps = NULL, r->t = NULL, r->pix = NULL;
    r->cap_rows = 0;
}

static vt_status ensure(vt_ross *r, size_t images, vt_error *err) {
    const vt_denoiser_config *c = &r->dn->cfg;
    size_t N = (size_t)c->grid * c->grid, rows = images * N;
    if (rows <= r->cap_rows && r->rows) return VT_OK;
    size_t D = (size_t)c->cond_dim, C = (size_t)c->target_dim, K = (size_t)c->draws;
    vt_ctx *ctx = r->m->ctx;
    release(r);
    r->rows_h = malloc(rows * sizeof(int32_t));
    r->img = malloc(images * sizeof(int32_t));
    r->tgt = malloc(rows * C * sizeof(float));
    r->eps = malloc(rows * K * C * sizeof(float));
    r->t = malloc(images * K * sizeof(int32_t));
    if (r->teacher) r->pix = malloc((size_t)N * r->teacher->K * sizeof(float));
    if (!r->rows_h || !r->img || !r->tgt || !r->eps || !r->t || (r->teacher && !r->pix) ||
        vt_ctx_alloc(ctx, (void **)&r->rows, rows * sizeof(int32_t)) ||
        vt_ctx_alloc(ctx, (void **)&r->h, rows * D * sizeof(float)) ||
        vt_ctx_alloc(ctx, (void **)&r->hn, rows * D * sizeof(float)) ||
        vt_ctx_alloc(ctx, (void **)&r->rstd, rows * sizeof(float)) ||
        vt_ctx_alloc(ctx, (void **)&r->dh, rows * D * sizeof(float))) {
        release(r);
        return vt_fail(err, VT_ERR_NOMEM, "ross: no memory for %zu image tokens", rows);
    }
    r->cap_rows = rows;
    return VT_OK;
}

static vt_status ctx_fail(vt_ctx *ctx, vt_error *err) {
    const vt_error *e = vt_ctx_error(ctx);
    return vt_fail(err, e->code ? e->code : VT_ERR_STATE, "ross: %s", e->msg);
}

static vt_status hook_forward(void *arg, vt_model *m, const vt_batch *b, float *h, vt_error *err) {
    vt_ross *r = arg;
    r->active = false;
    r->n_img = 0;
    if (!r->train) return VT_OK;
    const vt_model_config *mc = &m->cfg;
    const vt_denoiser_config *c = &r->dn->cfg;
    int B = (int)b->shape.batch, T = (int)b->shape.seq_len, N = c->grid * c->grid, D = mc->hidden;
    vt_status st = ensure(r, (size_t)B, err);
    if (st) return st;
    /* image spans: the model has checked each sequence holds 0 or N image tokens */
    int n = 0;
    for (int s = 0; s < B; s++) {
        int len = b->lengths ? b->lengths[s] : T, k = 0;
        for (int t = 0; t < len; t++)
            if (b->tokens[(size_t)s * T + t] == mc->image_token_index) {
                if (k < N) r->rows_h[(size_t)n * N + k] = s * T + t;
                k++;
            }
        if (k == 0) continue;
        if (k != N)
            return vt_fail(err, VT_ERR_RANGE, "ross: sequence %d has %d image tokens, not %d", s, k, N);
        r->img[n++] = s;
    }
    r->n_img = n;
    if (n == 0) return vt_denoiser_forward(r->dn, NULL, NULL, 0, NULL, NULL, err);
    size_t rows = (size_t)n * N;
    /* the image rows, through the final norm as the LM head sees the state */
    if (vt_ctx_memcpy_h2d(m->ctx, r->rows, r->rows_h, rows * sizeof(int32_t)) ||
        vt_rows_gather(m->ctx, r->h, h, r->rows, (int)rows, D) ||
        vt_rmsnorm_forward(m->ctx, r->hn, r->rstd, r->h, m->w.norm_w, (int)rows, D, mc->rms_eps))
        return ctx_fail(m->ctx, err);
    /* pixel targets of the sequences that have images */
    int S = mc->image_size, P = mc->patch_size;
    size_t pix = (size_t)3 * S * S, tok = (size_t)N * c->target_dim;
    if (!b->pixels || b->shape.channels != 3 || (int)b->shape.height != S || (int)b->shape.width != S)
        return vt_fail(err, VT_ERR_ARG, "ross: the batch has no %dx%d RGB pixels for its images", S, S);
    if (r->teacher) {
        /* latent targets: the frozen teacher's posterior means per patch */
        bool clip = r->teacher->cfg.pixel_norm == 0;
        for (int i = 0; i < n; i++)
            if ((st = vt_ross_pixel_targets(b->pixels + (size_t)r->img[i] * pix, 1, S, P, clip ? clip_mean : NULL,
                                            clip ? clip_std : NULL, r->pix, err)) ||
                (st = vt_ae_encode(r->teacher, r->pix, (size_t)N, r->tgt + (size_t)i * tok, err)))
                return st;
    } else {
        bool clip = r->pixel_norm == VT_ROSS_PIX_CLIP;
        for (int i = 0; i < n; i++)
            if ((st = vt_ross_pixel_targets(b->pixels + (size_t)r->img[i] * pix, 1, S, P, clip ? clip_mean : NULL,
                                            clip ? clip_std : NULL, r->tgt + (size_t)i * tok, err)))
                return st;
    }
    if (c->variant == VT_ROSS_DENOISE) {
        /* per image, keyed by its dataset sample: the draws do not depend on
         * which rank or micro-batch the sample landed in */
        size_t K = (size_t)c->draws, NC = (size_t)N * c->target_dim;
        for (int i = 0; i < n; i++) {
            uint64_t id = b->sample_indices ? b->sample_indices[r->img[i]] : (uint64_t)r->img[i];
            vt_denoiser_noise(c, 1, vt_hash4(r->noise_key, id, 0, 0), r->t + i * K, r->eps + i * K * NC);
        }
    }
    if ((st = vt_denoiser_forward(r->dn, r->hn, r->tgt, n, r->t, r->eps, err))) return st;
    r->active = true;
    return VT_OK;
}

static vt_status hook_backward(void *arg, vt_model *m, float *dh, vt_error *err) {
    vt_ross *r = arg;
    if (!r->active || r->scale == 0.0f) return VT_OK;
    const vt_denoiser_config *c = &r->dn->cfg;
    int D = m->cfg.hidden;
    size_t rows = (size_t)r->n_img * c->grid * c->grid;
    if (vt_ctx_memset_zero(m->ctx, r->dh, rows * D * sizeof(float))) return ctx_fail(m->ctx, err);
    vt_status st = vt_denoiser_backward(r->dn, r->dh, r->scale, err);
    if (st) return st;
    /* through the final norm: d(hn) -> d(h), and the norm weight's gradient */
    float *dnorm = r->hn; /* reuse: hn is not needed any more */
    if (vt_ctx_memset_zero(m->ctx, dnorm, rows * D * sizeof(float)) ||
        vt_rmsnorm_backward(m->ctx, dnorm, m->g.norm_w, r->dh, r->h, m->w.norm_w, r->rstd, (int)rows, D) ||
        vt_rows_scatter(m->ctx, dh, dnorm, r->rows, (int)rows, D, true))
        return ctx_fail(m->ctx, err);
    r->active = false; /* one backward per forward */
    return VT_OK;
}

vt_status vt_ross_attach(vt_ross **out, vt_model *m, const vt_denoiser_config *cfg,
                         vt_ross_pixel_norm pixel_norm, uint64_t seed, vt_error *err) {
    return vt_ross_attach_ex(out, m, cfg, pixel_norm, NULL, seed, err);
}

vt_status vt_ross_attach_ex(vt_ross **out, vt_model *m, const vt_denoiser_config *cfg,
                            vt_ross_pixel_norm pixel_norm, vt_autoencoder *teacher, uint64_t seed,
                            vt_error *err) {
    *out = NULL;
    const vt_model_config *mc = &m->cfg;
    vt_denoiser_config c = *cfg;
    int P = mc->patch_size, grid = mc->image_size / P;
    if (teacher && teacher->cfg.patch != P)
        return vt_fail(err, VT_ERR_ARG, "ross.teacher: the autoencoder was trained on %dx%d patches, the model's "
                       "are %dx%d", teacher->cfg.patch, teacher->cfg.patch, P, P);
    vt_status st = vt_denoiser_config_resolve(&c, mc->hidden, grid, teacher ? teacher->C : 3 * P * P, err);
    if (st) return st;
    vt_ross *r = calloc(1, sizeof *r);
    if (!r) return vt_fail(err, VT_ERR_NOMEM, "ross: no memory");
    if ((st = vt_denoiser_create(&r->dn, m->ctx, &c, seed, err))) {
        free(r);
        return st;
    }
    r->m = m;
    r->pixel_norm = pixel_norm;
    r->teacher = teacher;
    r->scale = 1.0f;
    vt_decoder_hook hook = {.layer = mc->layers - 1, .forward = hook_forward, .backward = hook_backward, .arg = r};
    if ((st = vt_model_add_hook(m, &hook, err))) {
        vt_error_prefix(err, "ross: ");
        vt_ross_free(r);
        return st;
    }
    *out = r;
    return VT_OK;
}

void vt_ross_free(vt_ross *r) {
    if (!r) return;
    if (r->m) vt_model_remove_hook(r->m, r);
    vt_denoiser_free(r->dn);
    if (r->m) release(r);
    free(r);
}

void vt_ross_set(vt_ross *r, bool train, uint64_t noise_key, float scale) {
    r->train = train;
    r->noise_key = noise_key;
    r->scale = scale;
}
