/* Parity driver for the Vittle bottleneck (trainer/bottleneck.h): runs
 * forward + backward for several configurations on seeded inputs and writes
 * inputs, parameters, outputs and gradients to one file for
 * test_bottleneck_parity.py, which recomputes them in PyTorch float64.
 *
 * File: "VTBNPAR1" then tensors until an empty name; a tensor is u32 name
 * length | name ("case<k>/<what>") | u32 ndim | i64 dims[ndim] | f32 data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/ctx.h"
#include "trainer/bottleneck.h"

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
static void put_vec(int k, const char *what, const float *p, int64_t n) {
    put_tensor(k, what, p, 1, (const int64_t[]){n});
}

typedef struct parity_case {
    bool learnable;
    vt_bottleneck_kl kl;
    bool train;
    float init_std;     /* large values push log sigma^2 past the clamp */
    float kl_scale;
    float alpha;
} parity_case;

static int run_case(vt_ctx *ctx, int k, const parity_case *pc) {
    enum { D = 16, N = 26 };
    vt_error err = {0};
    vt_bottleneck_config cfg;
    vt_bottleneck_config_default(&cfg);
    cfg.learnable_prior = pc->learnable;
    cfg.kl = pc->kl;
    cfg.init_std = pc->init_std;
    cfg.beta_v = 0.3f;
    cfg.beta_t = 0.7f;
    if (vt_bottleneck_config_resolve(&cfg, D, 4, &err)) goto fail;
    vt_bottleneck *bn = NULL;
    if (vt_bottleneck_create(&bn, ctx, &cfg, 1000 + (uint64_t)k, &err)) goto fail;
    vt_rng r;
    vt_rng_init(&r, vt_hash4(7, (uint64_t)k, 0, 0));
    /* Biases and priors start at 0; give them values so their paths are tested. */
    for (int i = 0; i < bn->ntensors; i++) {
        const vt_bottleneck_tensor *t = &bn->tensors[i];
        if (t->decay) continue;
        float sc = strstr(t->name, "logvar") ? 2.0f : 0.3f;
        for (size_t j = 0; j < t->numel; j++) bn->params[t->offset + j] = sc * (float)vt_rng_normal(&r);
    }
    float h[N * D], h0[N * D], eps[N * D], dh[N * D], dout[N * D], rolef[N];
    uint8_t role[N];
    for (int i = 0; i < N * D; i++) {
        h[i] = h0[i] = (float)vt_rng_normal(&r);
        eps[i] = (float)vt_rng_normal(&r);
        dh[i] = dout[i] = (float)vt_rng_normal(&r);
    }
    /* A sequence-like mix: text prompt, an image span, prompt, answer, padding. */
    for (int i = 0; i < N; i++) {
        role[i] = i < 3 ? VT_BN_TEXT_KL : i < 11 ? VT_BN_VISUAL : i < 15 ? VT_BN_TEXT_KL
                : i < 22 ? VT_BN_TEXT : VT_BN_PASS;
        rolef[i] = role[i];
    }
    if (vt_bottleneck_forward(bn, h, role, N, pc->alpha, pc->train ? eps : NULL, &err)) goto fail;
    vt_bottleneck_zero_grad(bn);
    if (vt_bottleneck_backward(bn, dh, pc->kl_scale, &err)) goto fail;

    float conf[10] = {D, pc->alpha, cfg.beta_v, cfg.beta_t, pc->learnable, (float)pc->kl,
                      cfg.logvar_clamp, pc->train, pc->kl_scale, cfg.kl_max};
    put_vec(k, "config", conf, 10);
    put_vec(k, "role", rolef, N);
    const int64_t nd[2] = {N, D};
    put_tensor(k, "h", h0, 2, nd);
    put_tensor(k, "eps", eps, 2, nd);
    put_tensor(k, "dout", dout, 2, nd);
    put_tensor(k, "out", h, 2, nd);
    put_tensor(k, "dh", dh, 2, nd);
    float kl[3] = {(float)bn->kl_v, (float)bn->kl_t, (float)bn->loss};
    put_vec(k, "kl", kl, 3);
    for (int i = 0; i < bn->ntensors; i++) {
        const vt_bottleneck_tensor *t = &bn->tensors[i];
        char nm[128];
        snprintf(nm, sizeof nm, "param/%s", t->name);
        put_tensor(k, nm, bn->params + t->offset, t->ndim, t->shape);
        snprintf(nm, sizeof nm, "grad/%s", t->name);
        put_tensor(k, nm, bn->grads + t->offset, t->ndim, t->shape);
    }
    vt_bottleneck_free(bn);
    return 0;
fail:
    fprintf(stderr, "bottleneck_parity_driver: case %d: %s\n", k, err.msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bottleneck_parity_driver OUT\n");
        return 2;
    }
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    if (vt_ctx_create(&ctx, NULL, &err)) {
        fprintf(stderr, "bottleneck_parity_driver: %s\n", err.msg);
        return 1;
    }
    out_f = fopen(argv[1], "wb");
    if (!out_f) {
        perror(argv[1]);
        return 1;
    }
    fwrite("VTBNPAR1", 1, 8, out_f);
    const parity_case cases[] = {
        {false, VT_BN_KL_TEXTBOOK, true, 0.3f, 1.0f, 0.4f},
        {true, VT_BN_KL_REFERENCE, true, 0.3f, 1.0f, 0.25f},
        {false, VT_BN_KL_REFERENCE, false, 0.3f, 2.0f, 0.5f},
        {true, VT_BN_KL_TEXTBOOK, true, 1.5f, 1.0f, 0.5f}, /* log sigma^2 hits the clamp */
    };
    int rc = 0;
    for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]) && !rc; k++) rc = run_case(ctx, k, &cases[k]);
    uint32_t zero = 0;
    fwrite(&zero, 4, 1, out_f);
    fclose(out_f);
    vt_ctx_destroy(ctx);
    return rc;
}
