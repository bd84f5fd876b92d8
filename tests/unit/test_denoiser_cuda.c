/* The ROSS denoiser on the CUDA backend against the CPU backend: the same
 * network (same seed, all parameters randomised so every adaLN path carries
 * signal), ROSS-D and ROSS-R, several images and draws; compares the loss,
 * the prediction, dL/dcond and every parameter gradient. The CPU denoiser
 * itself is checked against PyTorch in parity.denoiser. Exits 77 (skip)
 * without a device. */
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
#include "trainer/denoiser.h"

/* Relative L2 error allowed between the backends (both float32). */
#define REL_TOL 2e-5

enum { NI = 3, GRID = 3, N = GRID * GRID, D = 40, C = 12, K = 2 };

typedef struct {
    double loss;
    float pred[NI * K * N * C], dcond[NI * N * D];
    float *grads;
    size_t np;
} pass_result;

static void run(vt_ctx *ctx, vt_ross_variant variant, pass_result *out) {
    vt_denoiser_config c;
    vt_denoiser_config_default(&c);
    c.variant = variant;
    c.width = 32;
    c.depth = 2;
    c.heads = 4;
    c.freq_dim = 16;
    c.draws = K;
    vt_error err = {0};
    assert_int_equal(vt_denoiser_config_resolve(&c, D, GRID, C, &err), VT_OK);
    vt_denoiser *dn = NULL;
    assert_int_equal(vt_denoiser_create(&dn, ctx, &c, 11, &err), VT_OK);
    float *p = malloc(dn->num_params * sizeof(float));
    fill_normal(p, dn->num_params, 3, 0.2f); /* no zero adaLN: every path gets a gradient */
    assert_int_equal(vt_ctx_memcpy_h2d(ctx, dn->params, p, dn->num_params * sizeof(float)), VT_OK);
    free(p);
    float cond[NI * N * D], tgt[NI * N * C], eps[NI * K * N * C], dc[NI * N * D];
    int32_t t[NI * K];
    fill_normal(cond, NI * N * D, 4, 1.0f);
    fill_normal(tgt, NI * N * C, 5, 1.0f);
    fill_normal(dc, NI * N * D, 6, 0.01f); /* dcond is added into */
    vt_denoiser_noise(&dn->cfg, NI, 77, t, eps);
    float *cond_d = NULL, *dcond_d = NULL;
    assert_int_equal(vt_ctx_alloc(ctx, (void **)&cond_d, sizeof cond), VT_OK);
    assert_int_equal(vt_ctx_alloc(ctx, (void **)&dcond_d, sizeof dc), VT_OK);
    assert_int_equal(vt_ctx_memcpy_h2d(ctx, cond_d, cond, sizeof cond), VT_OK);
    assert_int_equal(vt_ctx_memcpy_h2d(ctx, dcond_d, dc, sizeof dc), VT_OK);
    vt_denoiser_zero_grad(dn);
    assert_int_equal(vt_denoiser_forward(dn, cond_d, tgt, NI, t, eps, &err), VT_OK);
    assert_int_equal(vt_denoiser_backward(dn, dcond_d, 0.5f, &err), VT_OK);
    int k = variant == VT_ROSS_DENOISE ? K : 1;
    out->loss = dn->loss;
    memcpy(out->pred, vt_denoiser_prediction(dn), (size_t)NI * k * N * C * sizeof(float));
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, out->dcond, dcond_d, sizeof dc), VT_OK);
    out->np = dn->num_params;
    out->grads = malloc(dn->num_params * sizeof(float));
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, out->grads, dn->grads, dn->num_params * sizeof(float)), VT_OK);
    vt_ctx_free(ctx, cond_d);
    vt_ctx_free(ctx, dcond_d);
    vt_denoiser_free(dn);
}

static void compare(vt_ross_variant variant, const char *what) {
    vt_error err = {0};
    vt_ctx *c = NULL, *g = NULL;
    vt_ctx_options oc = {VT_BACKEND_CPU, 0, 0}, og = {VT_BACKEND_CUDA, 0, 0};
    assert_int_equal(vt_ctx_create(&c, &oc, &err), VT_OK);
    assert_int_equal(vt_ctx_create(&g, &og, &err), VT_OK);
    static pass_result a, b;
    run(c, variant, &a);
    run(g, variant, &b);
    assert_int_equal(a.np, b.np);
    int k = variant == VT_ROSS_DENOISE ? K : 1;
    double el = fabs(a.loss - b.loss) / a.loss, ep = rel_l2(a.pred, b.pred, (size_t)NI * k * N * C);
    double ed = rel_l2(a.dcond, b.dcond, NI * N * D), eg = rel_l2(a.grads, b.grads, a.np);
    fprintf(stderr, "%s: rel. error loss %.1e, prediction %.1e, dcond %.1e, grads %.1e\n", what, el, ep, ed, eg);
    assert_true(el < REL_TOL && ep < REL_TOL && ed < REL_TOL && eg < REL_TOL);
    free(a.grads);
    free(b.grads);
    vt_ctx_destroy(c);
    vt_ctx_destroy(g);
}

static void test_denoise(void **state) {
    (void)state;
    compare(VT_ROSS_DENOISE, "ROSS-D");
}

static void test_regress(void **state) {
    (void)state;
    compare(VT_ROSS_REGRESS, "ROSS-R");
}

int main(void) {
    if (vt_cuda_device_count() == 0) {
        fprintf(stderr, "test_denoiser_cuda: no CUDA device (or no CUDA backend): skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_denoise),
        cmocka_unit_test(test_regress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
