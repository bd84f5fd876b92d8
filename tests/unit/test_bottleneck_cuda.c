/* The Vittle bottleneck on the CUDA backend against the CPU backend (and its
 * training noise, ops/noise.h): the same layer (same seed), rows of every role, training noise, a learnable
 * prior with both KL variants and inference mode; compares h', the KL terms,
 * dL/dh and every parameter gradient. The CPU layer itself is checked
 * against PyTorch in parity.bottleneck. Exits 77 (skip) without a device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend_compare.h"

#include "common/rng.h"
#include "ops/ctx.h"
#include "ops/noise.h"
#include "trainer/bottleneck.h"

/* Relative L2 error allowed between the backends (both float32). */
#define REL_TOL 1e-5

enum { D = 48, N = 37 };

typedef struct {
    float h[N * D], dh[N * D];
    float *grads; /* np = the layer's num_params */
    size_t np;
    double kl_v, kl_t;
} pass_result;

/* One forward (train or inference) + backward of a fresh layer on ctx. */
static void run_layer(vt_ctx *ctx, const vt_bottleneck_config *cfg, bool train, pass_result *out) {
    vt_error err = {0};
    vt_bottleneck *bn = NULL;
    assert_int_equal(vt_bottleneck_create(&bn, ctx, cfg, 7, &err), VT_OK);
    if (cfg->learnable_prior) {
        /* a prior away from N(0, I): the four prior tensors are the last ones */
        size_t off = bn->tensors[8].offset, n = bn->num_params - off;
        float *p = malloc(n * sizeof(float));
        fill_normal(p, n, 99, 0.5f);
        assert_int_equal(vt_ctx_memcpy_h2d(ctx, bn->params + off, p, n * sizeof(float)), VT_OK);
        free(p);
    }
    uint8_t role[N];
    for (int r = 0; r < N; r++) role[r] = (uint8_t)(r % 4); /* PASS, VISUAL, TEXT, TEXT_KL */
    float h[N * D], eps[N * D], dh[N * D];
    fill_normal(h, N * D, 1, 1.0f);
    fill_normal(eps, N * D, 2, 1.0f);
    fill_normal(dh, N * D, 3, 0.1f);
    float *hd = NULL, *dhd = NULL, *epsd = NULL;
    assert_int_equal(vt_ctx_alloc(ctx, (void **)&hd, sizeof h), VT_OK);
    assert_int_equal(vt_ctx_alloc(ctx, (void **)&epsd, sizeof eps), VT_OK);
    assert_int_equal(vt_ctx_memcpy_h2d(ctx, epsd, eps, sizeof eps), VT_OK);
    assert_int_equal(vt_ctx_alloc(ctx, (void **)&dhd, sizeof dh), VT_OK);
    assert_int_equal(vt_ctx_memcpy_h2d(ctx, hd, h, sizeof h), VT_OK);
    assert_int_equal(vt_ctx_memcpy_h2d(ctx, dhd, dh, sizeof dh), VT_OK);
    assert_int_equal(vt_bottleneck_forward(bn, hd, role, N, 0.4f, train ? epsd : NULL, &err), VT_OK);
    assert_int_equal(vt_bottleneck_backward2(bn, dhd, 0.7f, 1.3f, &err), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, out->h, hd, sizeof h), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, out->dh, dhd, sizeof dh), VT_OK);
    out->np = bn->num_params;
    out->grads = malloc(bn->num_params * sizeof(float));
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, out->grads, bn->grads, bn->num_params * sizeof(float)), VT_OK);
    out->kl_v = bn->kl_v;
    out->kl_t = bn->kl_t;
    assert_true(bn->count_v > 0 && bn->count_t > 0);
    vt_ctx_free(ctx, hd);
    vt_ctx_free(ctx, dhd);
    vt_ctx_free(ctx, epsd);
    vt_bottleneck_free(bn);
}

static void compare(const vt_bottleneck_config *cfg, bool train, const char *what) {
    vt_error err = {0};
    vt_ctx *c = NULL, *g = NULL;
    vt_ctx_options oc = {VT_BACKEND_CPU, 0, 0}, og = {VT_BACKEND_CUDA, 0, 0};
    assert_int_equal(vt_ctx_create(&c, &oc, &err), VT_OK);
    assert_int_equal(vt_ctx_create(&g, &og, &err), VT_OK);
    static pass_result a, b;
    run_layer(c, cfg, train, &a);
    run_layer(g, cfg, train, &b);
    assert_int_equal(a.np, b.np);
    double eh = rel_l2(a.h, b.h, N * D), edh = rel_l2(a.dh, b.dh, N * D), eg = rel_l2(a.grads, b.grads, a.np);
    double ekv = fabs(a.kl_v - b.kl_v) / fabs(a.kl_v), ekt = fabs(a.kl_t - b.kl_t) / fabs(a.kl_t);
    fprintf(stderr, "%s: rel. error h' %.1e, dh %.1e, grads %.1e, kl_v %.1e, kl_t %.1e\n", what, eh, edh, eg, ekv,
            ekt);
    assert_true(eh < REL_TOL && edh < REL_TOL && eg < REL_TOL && ekv < REL_TOL && ekt < REL_TOL);
    /* PASS rows are untouched on the device too */
    for (int d = 0; d < D; d++) assert_true(b.h[d] == a.h[d]);
    free(a.grads);
    free(b.grads);
    vt_ctx_destroy(c);
    vt_ctx_destroy(g);
}

static void test_fixed_prior(void **state) {
    (void)state;
    vt_bottleneck_config cfg;
    vt_bottleneck_config_default(&cfg);
    cfg.hidden = D;
    cfg.init_std = 0.2f;
    compare(&cfg, true, "fixed prior, textbook KL, training");
    compare(&cfg, false, "fixed prior, textbook KL, inference");
}

static void test_learnable_prior(void **state) {
    (void)state;
    vt_bottleneck_config cfg;
    vt_bottleneck_config_default(&cfg);
    cfg.hidden = D;
    cfg.init_std = 0.2f;
    cfg.learnable_prior = true;
    compare(&cfg, true, "learnable prior, textbook KL");
    cfg.kl = VT_BN_KL_REFERENCE;
    compare(&cfg, true, "learnable prior, reference KL");
}

/* The training noise: the CUDA kernel draws the CPU's numbers (the same
 * Philox blocks; the double-precision transform may differ in the last bit). */
static void test_noise(void **state) {
    (void)state;
    vt_error err = {0};
    vt_ctx *c = NULL, *g = NULL;
    vt_ctx_options oc = {VT_BACKEND_CPU, 0, 0}, og = {VT_BACKEND_CUDA, 0, 0};
    assert_int_equal(vt_ctx_create(&c, &oc, &err), VT_OK);
    assert_int_equal(vt_ctx_create(&g, &og, &err), VT_OK);
    enum { S = 5, PER = 4097 };
    uint64_t keys[S];
    for (int s = 0; s < S; s++) keys[s] = vt_hash4(42, (uint64_t)s, 0, 0);
    static float a[S * PER], b[S * PER];
    float *d = NULL;
    assert_int_equal(vt_ctx_alloc(g, (void **)&d, sizeof b), VT_OK);
    assert_int_equal(vt_normal_noise(c, a, keys, S, PER), VT_OK);
    assert_int_equal(vt_normal_noise(g, d, keys, S, PER), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(g, b, d, sizeof b), VT_OK);
    double worst = 0;
    for (size_t i = 0; i < S * PER; i++) worst = fmax(worst, fabs((double)a[i] - b[i]) / fmax(fabs(a[i]), 1e-3));
    fprintf(stderr, "noise: worst relative difference CUDA vs CPU %.1e over %d values\n", worst, S * PER);
    assert_true(worst < 1e-6);
    vt_ctx_free(g, d);
    vt_ctx_destroy(c);
    vt_ctx_destroy(g);
}

int main(void) {
    if (vt_cuda_device_count() == 0) {
        fprintf(stderr, "test_bottleneck_cuda: no CUDA device (or no CUDA backend): skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_fixed_prior),
        cmocka_unit_test(test_learnable_prior),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
