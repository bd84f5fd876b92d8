/* Parity driver for the ROSS denoiser (trainer/denoiser.h): runs forward +
 * backward for several configurations on seeded inputs with fixed timesteps
 * and noise, and writes inputs, parameters, the loss, the prediction and
 * every gradient to one file for test_denoiser_parity.py, which recomputes
 * them in PyTorch float64.
 *
 * File: "VTRSPAR1" then tensors until an empty name; a tensor is u32 name
 * length | name ("case<k>/<what>") | u32 ndim | i64 dims[ndim] | f32 data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/ctx.h"
#include "trainer/denoiser.h"

static FILE *out_f;

static void put_tensor(int k, const char *what, const float *p, int ndim, const int64_t *dims) {
    char name[128];
    snprintf(name, sizeof name, "case%d/%s", k, what);
    uint32_t n = (uint32_t)strlen(name), nd = (uint32_t)ndim;
    fwrite(&n, 4, 1, out_f);
    fwrite(name, 1, n, out_f);
    fwrite(&nd, 4, 1, out_f);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        fwrite(&dims[i], 8, 1, out_f);
        count *= (size_t)dims[i];
    }
    fwrite(p, sizeof(float), count, out_f);
}

typedef struct parity_case {
    vt_ross_variant variant;
    int D, grid, C, width, depth, heads, freq_dim, draws, n_img;
    float mlp_ratio;
    bool random_params; /* every tensor random (all paths get gradients) vs the real init */
    float scale;        /* gradient of scale * loss */
} parity_case;

static int run_case(vt_ctx *ctx, int k, const parity_case *pc) {
    vt_error err = {0};
    vt_denoiser_config cfg;
    vt_denoiser_config_default(&cfg);
    cfg.variant = pc->variant;
    cfg.width = pc->width;
    cfg.depth = pc->depth;
    cfg.heads = pc->heads;
    cfg.freq_dim = pc->freq_dim;
    cfg.draws = pc->draws;
    cfg.mlp_ratio = pc->mlp_ratio;
    if (vt_denoiser_config_resolve(&cfg, pc->D, pc->grid, pc->C, &err)) goto fail;
    vt_denoiser *dn = NULL;
    if (vt_denoiser_create(&dn, ctx, &cfg, 500 + (uint64_t)k, &err)) goto fail;
    vt_rng r;
    vt_rng_init(&r, vt_hash4(11, (uint64_t)k, 0, 0));
    if (pc->random_params)
        for (size_t j = 0; j < dn->num_params; j++) dn->params[j] = 0.25f * (float)vt_rng_normal(&r);
    int N = pc->grid * pc->grid, K = pc->variant == VT_ROSS_DENOISE ? pc->draws : 1;
    size_t ncond = (size_t)pc->n_img * N * pc->D, ntgt = (size_t)pc->n_img * N * pc->C;
    size_t neps = (size_t)pc->n_img * pc->draws * N * pc->C, nt = (size_t)pc->n_img * pc->draws;
    float *cond = malloc(ncond * sizeof(float)), *tgt = malloc(ntgt * sizeof(float));
    float *eps = malloc(neps * sizeof(float)), *dcond = malloc(ncond * sizeof(float));
    float *dcond0 = malloc(ncond * sizeof(float)), *tf = malloc(nt * sizeof(float));
    int32_t *t = malloc(nt * sizeof(int32_t));
    for (size_t j = 0; j < ncond; j++) {
        cond[j] = 1.5f * (float)vt_rng_normal(&r) + 0.3f;
        dcond[j] = dcond0[j] = (float)vt_rng_normal(&r);
    }
    for (size_t j = 0; j < ntgt; j++) tgt[j] = 2.0f * vt_rng_uniform(&r) - 1.0f;
    /* the module's own noise draw, then the schedule's ends forced in */
    vt_denoiser_noise(&cfg, pc->n_img, vt_hash4(3, (uint64_t)k, 0, 0), t, eps);
    t[0] = 0;
    if (nt > 1) t[nt - 1] = cfg.steps - 1;
    for (size_t j = 0; j < nt; j++) tf[j] = (float)t[j];
    vt_denoiser_zero_grad(dn);
    if (vt_denoiser_forward(dn, cond, tgt, pc->n_img, t, eps, &err)) goto fail;
    if (vt_denoiser_backward(dn, dcond, pc->scale, &err)) goto fail;

    float conf[14] = {(float)pc->variant, pc->D, pc->grid, pc->C, cfg.width, pc->depth, pc->heads,
                      pc->mlp_ratio, pc->freq_dim, cfg.steps, pc->draws, pc->n_img, pc->scale,
                      pc->random_params};
    put_tensor(k, "config", conf, 1, (const int64_t[]){14});
    put_tensor(k, "cond", cond, 3, (const int64_t[]){pc->n_img, N, pc->D});
    put_tensor(k, "target", tgt, 3, (const int64_t[]){pc->n_img, N, pc->C});
    put_tensor(k, "t", tf, 2, (const int64_t[]){pc->n_img, pc->draws});
    put_tensor(k, "eps", eps, 4, (const int64_t[]){pc->n_img, pc->draws, N, pc->C});
    put_tensor(k, "dcond0", dcond0, 3, (const int64_t[]){pc->n_img, N, pc->D});
    put_tensor(k, "dcond", dcond, 3, (const int64_t[]){pc->n_img, N, pc->D});
    float loss = (float)dn->loss;
    put_tensor(k, "loss", &loss, 1, (const int64_t[]){1});
    put_tensor(k, "pred", vt_denoiser_prediction(dn), 3, (const int64_t[]){(int64_t)pc->n_img * K, N, pc->C});
    for (int i = 0; i < dn->ntensors; i++) {
        const vt_denoiser_tensor *tt = &dn->tensors[i];
        char nm[128];
        snprintf(nm, sizeof nm, "param/%s", tt->name);
        put_tensor(k, nm, dn->params + tt->offset, tt->ndim, tt->shape);
        snprintf(nm, sizeof nm, "grad/%s", tt->name);
        put_tensor(k, nm, dn->grads + tt->offset, tt->ndim, tt->shape);
    }
    free(cond); free(tgt); free(eps); free(dcond); free(dcond0); free(tf); free(t);
    vt_denoiser_free(dn);
    return 0;
fail:
    fprintf(stderr, "denoiser_parity_driver: case %d: %s\n", k, err.msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: denoiser_parity_driver OUT\n");
        return 2;
    }
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    if (vt_ctx_create(&ctx, NULL, &err)) {
        fprintf(stderr, "denoiser_parity_driver: %s\n", err.msg);
        return 1;
    }
    out_f = fopen(argv[1], "wb");
    if (!out_f) {
        perror(argv[1]);
        return 1;
    }
    fwrite("VTRSPAR1", 1, 8, out_f);
    /* variant, D, grid, C, width, depth, heads, freq_dim, draws, n_img, mlp_ratio, random, scale */
    const parity_case cases[] = {
        {VT_ROSS_DENOISE, 12, 3, 6, 16, 2, 2, 8, 3, 2, 4.0f, true, 0.7f},
        {VT_ROSS_REGRESS, 12, 3, 6, 16, 2, 4, 8, 3, 2, 2.0f, true, 1.0f},
        {VT_ROSS_DENOISE, 20, 2, 12, 8, 1, 1, 16, 4, 3, 4.0f, false, 1.0f}, /* the real init */
        {VT_ROSS_DENOISE, 16, 4, 48, 32, 3, 4, 256, 2, 1, 4.0f, true, 2.0f}, /* 4x4 grid, 256 freqs */
    };
    int rc = 0;
    for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]) && !rc; k++) rc = run_case(ctx, k, &cases[k]);
    uint32_t zero = 0;
    fwrite(&zero, 4, 1, out_f);
    fclose(out_f);
    vt_ctx_destroy(ctx);
    return rc;
}
