/* Vittle bottleneck: the alpha schedule's defining points, layer default and
 * bounds, config keys and bad values, inference = mixing with mu, PASS rows
 * untouched, KL of a zero head against N(0, I), bad roles and backward
 * before forward. Gradients are checked against PyTorch in parity.bottleneck. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"
#include "ops/ctx.h"
#include "trainer/bottleneck.h"

#define assert_close(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static void test_alpha_and_layer(void **state) {
    (void)state;
    vt_bottleneck_config c;
    vt_bottleneck_config_default(&c);
    assert_close(vt_bottleneck_alpha(&c, 0.5), 0.25, 1e-7);
    assert_close(vt_bottleneck_alpha(&c, 0.0), 0.5 / (1 + exp(5.0)), 1e-7);
    assert_close(vt_bottleneck_alpha(&c, 1.0), 0.5 / (1 + exp(-5.0)), 1e-7);
    for (int i = 0; i < 10; i++)
        assert_true(vt_bottleneck_alpha(&c, i / 10.0) < vt_bottleneck_alpha(&c, (i + 1) / 10.0));
    /* by step: over the run's steps, or over a fixed horizon (then held) */
    assert_close(vt_bottleneck_alpha_at(&c, 1500, 3000), 0.25, 1e-7);
    c.alpha_steps = 1000;
    assert_close(vt_bottleneck_alpha_at(&c, 500, 3000), 0.25, 1e-7);
    assert_close(vt_bottleneck_alpha_at(&c, 2500, 3000), vt_bottleneck_alpha(&c, 1.0), 1e-7);
    c.alpha_steps = 0;
    vt_error err = {0};
    assert_int_equal(vt_bottleneck_config_resolve(&c, 64, 32, &err), VT_OK);
    assert_int_equal(c.layer, 24); /* block 24 of 32, as the reference's layer-24 */
    assert_int_equal(c.hidden, 64);
    c.layer = 32;
    assert_int_equal(vt_bottleneck_config_resolve(&c, 64, 32, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "vittle.layer"));
}

static void test_config(void **state) {
    (void)state;
    const char *y = "vittle:\n  layer: 1\n  alpha_end: 0.3\n  beta_v: 0.2\n  prior: learnable\n"
                    "  kl: reference\n  alpha_steps: 3000\n";
    vt_config *cfg = NULL;
    vt_error err = {0};
    assert_int_equal(vt_config_parse(y, strlen(y), "run.yaml", &cfg, &err), VT_OK);
    vt_bottleneck_config c;
    vt_bottleneck_config_default(&c);
    assert_int_equal(vt_bottleneck_config_read(cfg, "vittle", &c, &err), VT_OK);
    assert_int_equal(c.layer, 1);
    assert_close(c.alpha_end, 0.3, 1e-7);
    assert_close(c.beta_v, 0.2, 1e-7);
    assert_close(c.beta_t, 0.1, 1e-7);
    assert_true(c.learnable_prior);
    assert_int_equal(c.kl, VT_BN_KL_REFERENCE);
    assert_int_equal(c.alpha_steps, 3000);
    vt_config_free(cfg);

    const char *bad[] = {"vittle:\n  prior: gaussian\n", "vittle:\n  kl: exact\n",
                         "vittle:\n  alpha_end: 1.5\n", "vittle:\n  beta_t: -1\n",
                         "vittle:\n  layer: -2\n", "vittle:\n  beta_v: lots\n", "vittle:\n  alpha_steps: -5\n"};
    const char *key[] = {"prior", "kl", "alpha_end", "beta_t", "layer", "beta_v", "alpha_steps"};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(vt_config_parse(bad[i], strlen(bad[i]), "run.yaml", &cfg, &err), VT_OK);
        vt_bottleneck_config_default(&c);
        assert_int_not_equal(vt_bottleneck_config_read(cfg, "vittle", &c, &err), VT_OK);
        assert_non_null(strstr(err.msg, key[i]));
        vt_config_free(cfg);
    }
}

static void test_forward_semantics(void **state) {
    (void)state;
    enum { D = 8, N = 5 };
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_bottleneck_config c;
    vt_bottleneck_config_default(&c);
    assert_int_equal(vt_bottleneck_config_resolve(&c, D, 4, &err), VT_OK);
    vt_bottleneck *bn = NULL;
    assert_int_equal(vt_bottleneck_create(&bn, ctx, &c, 1, &err), VT_OK);
    /* Zero second layers: mu = 0, log sigma^2 = 0, so KL against N(0, I) is 0
     * and inference gives h' = (1 - a) h. */
    memset(bn->w.v.fc2_w, 0, 2 * D * D * sizeof(float));
    memset(bn->w.t.fc2_w, 0, 2 * D * D * sizeof(float));
    float h[N * D], h0[N * D], eps[N * D];
    for (int i = 0; i < N * D; i++) h[i] = h0[i] = (float)(i % 7) - 3.0f, eps[i] = 1.0f;
    uint8_t role[N] = {VT_BN_TEXT_KL, VT_BN_VISUAL, VT_BN_VISUAL, VT_BN_TEXT, VT_BN_PASS};
    assert_int_equal(vt_bottleneck_forward(bn, h, role, N, 0.5f, NULL, &err), VT_OK);
    for (int i = 0; i < 4 * D; i++) assert_close(h[i], 0.5f * h0[i], 1e-6);
    for (int i = 4 * D; i < N * D; i++) assert_close(h[i], h0[i], 0); /* PASS row */
    assert_close(bn->kl_v, 0, 1e-9);
    assert_close(bn->kl_t, 0, 1e-9);
    assert_int_equal(bn->count_v, 2);
    assert_int_equal(bn->count_t, 1);
    /* Training with eps = 1 and sigma = 1: h' = (1 - a) h + a. */
    memcpy(h, h0, sizeof h);
    assert_int_equal(vt_bottleneck_forward(bn, h, role, N, 0.5f, eps, &err), VT_OK);
    for (int i = 0; i < 4 * D; i++) assert_close(h[i], 0.5f * h0[i] + 0.5f, 1e-6);
    /* A positive fc2 bias on mu gives KL = mu^2 / 2 per dimension. */
    for (int d = 0; d < D; d++) bn->w.v.fc2_b[d] = 2.0f;
    memcpy(h, h0, sizeof h);
    assert_int_equal(vt_bottleneck_forward(bn, h, role, N, 0.5f, eps, &err), VT_OK);
    assert_close(bn->kl_v, 2.0, 1e-6);
    assert_close(bn->loss, 0.1 * 2.0, 1e-6);
    /* Bad role. */
    role[2] = 9;
    assert_int_equal(vt_bottleneck_forward(bn, h, role, N, 0.5f, eps, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "row 2"));
    /* The failed forward leaves nothing to differentiate. */
    assert_int_equal(vt_bottleneck_backward(bn, h, 1.0f, &err), VT_ERR_STATE);
    vt_bottleneck_free(bn);
    vt_ctx_destroy(ctx);
}

/* vittle.safetensors round trip, and a file of another layout refused. */
static void test_save_load(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    const char *tmp = getenv("VT_TEST_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/vittle.safetensors", tmp ? tmp : "/tmp");
    vt_bottleneck_config c;
    vt_bottleneck_config_default(&c);
    c.learnable_prior = true;
    assert_int_equal(vt_bottleneck_config_resolve(&c, 8, 4, &err), VT_OK);
    vt_bottleneck *a = NULL, *b = NULL, *fixed = NULL, *wide = NULL;
    assert_int_equal(vt_bottleneck_create(&a, ctx, &c, 1, &err), VT_OK);
    assert_int_equal(vt_bottleneck_create(&b, ctx, &c, 2, &err), VT_OK);
    for (size_t i = 0; i < a->num_params; i++) a->params[i] += 0.001f * (float)i;
    assert_int_equal(vt_bottleneck_save(a, path, &err), VT_OK);
    assert_int_equal(vt_bottleneck_load(b, path, &err), VT_OK);
    assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
    /* The file describes its layer (what evaluation attaches without a run config). */
    vt_bottleneck_config back;
    assert_int_equal(vt_bottleneck_config_from_file(path, &back, &err), VT_OK);
    assert_int_equal(back.hidden, 8);
    assert_int_equal(back.layer, 3);
    assert_true(back.learnable_prior && back.kl == VT_BN_KL_TEXTBOOK);
    assert_true(back.alpha_end == c.alpha_end && back.beta_v == c.beta_v && back.logvar_clamp == c.logvar_clamp);
    c.learnable_prior = false;
    assert_int_equal(vt_bottleneck_create(&fixed, ctx, &c, 1, &err), VT_OK);
    assert_int_equal(vt_bottleneck_load(fixed, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "vittle.prior_v.mean"));
    c.learnable_prior = true;
    assert_int_equal(vt_bottleneck_config_resolve(&c, 16, 4, &err), VT_OK);
    assert_int_equal(vt_bottleneck_create(&wide, ctx, &c, 1, &err), VT_OK);
    assert_int_equal(vt_bottleneck_load(wide, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "vittle.head_v.fc1.weight"));
    fixed->cfg.kl = VT_BN_KL_REFERENCE;
    assert_int_equal(vt_bottleneck_save(fixed, path, &err), VT_OK);
    assert_int_equal(vt_bottleneck_config_from_file(path, &back, &err), VT_OK);
    assert_true(!back.learnable_prior && back.kl == VT_BN_KL_REFERENCE);
    assert_int_equal(vt_bottleneck_load(a, path, &err), VT_ERR_FORMAT); /* prior missing */
    assert_non_null(strstr(err.msg, "missing"));
    vt_bottleneck_free(a);
    vt_bottleneck_free(b);
    vt_bottleneck_free(fixed);
    vt_bottleneck_free(wide);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_and_layer),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_forward_semantics),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
