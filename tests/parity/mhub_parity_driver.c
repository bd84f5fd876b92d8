/* Parity driver for MMICT's M-Hub (trainer/mhub.h): runs forward + backward
 * for several configurations on seeded inputs (ragged text lengths, an
 * item without text, layers with and without cross-attention) and writes
 * inputs, parameters, the output and every gradient to one file for
 * test_mhub_parity.py, which recomputes them in PyTorch float64.
 *
 * File: "VTMHPAR1" then tensors until an empty name; a tensor is u32 name
 * length | name ("case<k>/<what>") | u32 ndim | i64 dims[ndim] | f32 data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/ctx.h"
#include "trainer/mhub.h"

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
    int Q, W, layers, heads, cross_every, max_text, V, E, D;
    float mlp_ratio;
    int B, Nv, L;
    int lens[4];
    bool random_params; /* every tensor random vs the real initialisation */
} parity_case;

static int run_case(vt_ctx *ctx, int k, const parity_case *pc) {
    vt_error err = {0};
    vt_mhub_config cfg;
    vt_mhub_config_default(&cfg);
    cfg.queries = pc->Q;
    cfg.width = pc->W;
    cfg.layers = pc->layers;
    cfg.heads = pc->heads;
    cfg.cross_every = pc->cross_every;
    cfg.max_text = pc->max_text;
    cfg.mlp_ratio = pc->mlp_ratio;
    if (vt_mhub_config_resolve(&cfg, pc->V, pc->E, pc->D, &err)) goto fail;
    vt_mhub *h = NULL;
    if (vt_mhub_create(&h, ctx, &cfg, 700 + (uint64_t)k, &err)) goto fail;
    vt_rng r;
    vt_rng_init(&r, vt_hash4(21, (uint64_t)k, 0, 0));
    if (pc->random_params)
        for (size_t j = 0; j < h->num_params; j++) h->params[j] = 0.3f * (float)vt_rng_normal(&r);
    int T = pc->Q + pc->L;
    size_t nvis = (size_t)pc->B * pc->Nv * pc->V, ntxt = (size_t)pc->B * pc->L * pc->E;
    size_t nout = (size_t)pc->B * T * pc->D;
    float *vis = malloc(nvis * sizeof(float)), *dvis = malloc(nvis * sizeof(float));
    float *dvis0 = malloc(nvis * sizeof(float));
    float *txt = malloc((ntxt + 1) * sizeof(float)), *dtxt = malloc((ntxt + 1) * sizeof(float));
    float *dtxt0 = malloc((ntxt + 1) * sizeof(float)), *dout = malloc(nout * sizeof(float));
    float lensf[4];
    int32_t lens[4];
    for (size_t j = 0; j < nvis; j++) {
        vis[j] = 1.3f * (float)vt_rng_normal(&r) + 0.2f;
        dvis[j] = dvis0[j] = (float)vt_rng_normal(&r);
    }
    for (size_t j = 0; j < ntxt; j++) {
        txt[j] = (float)vt_rng_normal(&r);
        dtxt[j] = dtxt0[j] = (float)vt_rng_normal(&r);
    }
    /* dout everywhere, padding rows included (the module must ignore them) */
    for (size_t j = 0; j < nout; j++) dout[j] = (float)vt_rng_normal(&r);
    for (int b = 0; b < pc->B; b++) {
        lens[b] = pc->lens[b];
        lensf[b] = (float)pc->lens[b];
    }
    vt_mhub_zero_grad(h);
    if (vt_mhub_forward(h, vis, pc->B, pc->Nv, txt, lens, pc->L, &err)) goto fail;
    if (vt_mhub_backward(h, dout, dvis, dtxt, &err)) goto fail;

    float conf[13] = {pc->Q, pc->W, pc->layers, pc->heads, pc->cross_every, pc->max_text, pc->V,
                      pc->E, pc->D, pc->mlp_ratio, pc->B, pc->Nv, pc->L};
    put_tensor(k, "config", conf, 1, (const int64_t[]){13});
    put_tensor(k, "lens", lensf, 1, (const int64_t[]){pc->B});
    put_tensor(k, "vis", vis, 3, (const int64_t[]){pc->B, pc->Nv, pc->V});
    put_tensor(k, "text", txt, 3, (const int64_t[]){pc->B, pc->L, pc->E});
    put_tensor(k, "dout", dout, 3, (const int64_t[]){pc->B, T, pc->D});
    put_tensor(k, "dvis0", dvis0, 3, (const int64_t[]){pc->B, pc->Nv, pc->V});
    put_tensor(k, "dtext0", dtxt0, 3, (const int64_t[]){pc->B, pc->L, pc->E});
    put_tensor(k, "out", vt_mhub_output(h), 3, (const int64_t[]){pc->B, T, pc->D});
    put_tensor(k, "dvis", dvis, 3, (const int64_t[]){pc->B, pc->Nv, pc->V});
    put_tensor(k, "dtext", dtxt, 3, (const int64_t[]){pc->B, pc->L, pc->E});
    for (int i = 0; i < h->ntensors; i++) {
        const vt_mhub_tensor *tt = &h->tensors[i];
        char nm[128];
        snprintf(nm, sizeof nm, "param/%s", tt->name);
        put_tensor(k, nm, h->params + tt->offset, tt->ndim, tt->shape);
        snprintf(nm, sizeof nm, "grad/%s", tt->name);
        put_tensor(k, nm, h->grads + tt->offset, tt->ndim, tt->shape);
    }
    free(vis); free(dvis); free(dvis0); free(txt); free(dtxt); free(dtxt0); free(dout);
    vt_mhub_free(h);
    return 0;
fail:
    fprintf(stderr, "mhub_parity_driver: case %d: %s\n", k, err.msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: mhub_parity_driver OUT\n");
        return 2;
    }
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    if (vt_ctx_create(&ctx, NULL, &err)) {
        fprintf(stderr, "mhub_parity_driver: %s\n", err.msg);
        return 1;
    }
    out_f = fopen(argv[1], "wb");
    if (!out_f) {
        perror(argv[1]);
        return 1;
    }
    fwrite("VTMHPAR1", 1, 8, out_f);
    /* Q, W, layers, heads, cross_every, max_text, V, E, D, mlp_ratio, B, Nv, L, lens, random */
    const parity_case cases[] = {
        {4, 16, 2, 2, 1, 8, 12, 10, 14, 4.0f, 3, 5, 6, {6, 3, 0}, true},   /* ragged, one without text */
        {3, 12, 3, 3, 2, 6, 8, 8, 10, 2.0f, 2, 7, 4, {2, 4}, true},        /* cross on layers 0 and 2 */
        {5, 16, 2, 4, 1, 10, 20, 12, 16, 4.0f, 2, 9, 7, {7, 5}, false},    /* the real initialisation */
        {2, 8, 1, 1, 1, 4, 6, 5, 7, 3.0f, 1, 3, 0, {0}, true},             /* queries only (L = 0) */
    };
    int rc = 0;
    for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]) && !rc; k++) rc = run_case(ctx, k, &cases[k]);
    uint32_t zero = 0;
    fwrite(&zero, 4, 1, out_f);
    fclose(out_f);
    vt_ctx_destroy(ctx);
    return rc;
}
