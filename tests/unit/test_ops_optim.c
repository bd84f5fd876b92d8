/* AdamW against the textbook formulas evaluated in double (Loshchilov &
 * Hutter: bias-corrected moments, decoupled decay), and global-norm clipping
 * against hand-computed norms; bad hyper-parameters are rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ops_gradcheck.h"

static int setup(void **state) {
    vt_ctx *ctx = NULL;
    vt_ctx_options o = {VT_BACKEND_CPU, 2, 0};
    vt_error err = {0};
    if (vt_ctx_create(&ctx, &o, &err) != VT_OK) return -1;
    *state = ctx;
    return 0;
}
static int teardown(void **state) {
    vt_ctx_destroy(*state);
    return 0;
}

static void test_adamw_first_step(void **state) {
    /* After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps). */
    vt_ctx *ctx = *state;
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f}, g[4] = {0.1f, -0.02f, 3.0f, 0.0f};
    float m[4] = {0}, v[4] = {0};
    uint8_t mask[4] = {1, 0, 1, 1};
    vt_adamw_hparams hp = {0.01f, 0.9f, 0.999f, 1e-8f, 0.1f};
    float p0[4];
    memcpy(p0, p, sizeof p);
    assert_int_equal(vt_adamw_update(ctx, p, g, m, v, mask, 4, &hp, 1), VT_OK);
    for (int i = 0; i < 4; i++) {
        double decay = mask[i] ? 1.0 - 0.01 * 0.1 : 1.0;
        double want = p0[i] * decay - 0.01 * g[i] / (fabs(g[i]) + 1e-8);
        assert_true(fabs(p[i] - want) < 1e-6);
    }
}

static void test_adamw_many_steps(void **state) {
    vt_ctx *ctx = *state;
    enum { N = 300, STEPS = 20 };
    float *p = gc_alloc(N), *g = gc_alloc(N), *m = gc_alloc(N), *v = gc_alloc(N);
    double pd[N], md[N] = {0}, vd[N] = {0};
    vt_rng r;
    vt_rng_init(&r, 91);
    gc_fill(&r, p, N, 1);
    for (int i = 0; i < N; i++) pd[i] = p[i];
    vt_adamw_hparams hp = {3e-3f, 0.9f, 0.95f, 1e-6f, 0.05f};
    double b1 = hp.beta1, b2 = hp.beta2, lr = hp.lr, eps = hp.eps, wd = hp.weight_decay;
    for (int s = 1; s <= STEPS; s++) {
        gc_fill(&r, g, N, 0.5f);
        assert_int_equal(vt_adamw_update(ctx, p, g, m, v, NULL, N, &hp, s), VT_OK);
        for (int i = 0; i < N; i++) {
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            double mh = md[i] / (1 - pow(b1, s)), vh = vd[i] / (1 - pow(b2, s));
            pd[i] = pd[i] - lr * wd * pd[i] - lr * mh / (sqrt(vh) + eps);
        }
    }
    double maxerr = 0.0;
    for (int i = 0; i < N; i++) maxerr = fmax(maxerr, fabs(p[i] - pd[i]));
    fprintf(stderr, "adamw: %d steps, max abs diff to double reference %.3g\n", STEPS, maxerr);
    assert_true(maxerr < 1e-5);
    free(p); free(g); free(m); free(v);
}

static void test_adamw_bad_args(void **state) {
    vt_ctx *ctx = *state;
    float x[2] = {0};
    vt_adamw_hparams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f};
    assert_int_equal(vt_adamw_update(ctx, x, x, x, x, NULL, 2, &hp, 0), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "step=0"));
    hp.beta1 = 1.0f;
    assert_int_equal(vt_adamw_update(ctx, x, x, x, x, NULL, 2, &hp, 1), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "beta1=1"));
    hp.beta1 = 0.9f;
    hp.lr = -1.0f;
    assert_int_equal(vt_adamw_update(ctx, x, x, x, x, NULL, 2, &hp, 1), VT_ERR_ARG);
    hp.lr = 1e-3f;
    hp.eps = 0.0f;
    assert_int_equal(vt_adamw_update(ctx, x, x, x, x, NULL, 2, &hp, 1), VT_ERR_ARG);
    assert_int_equal(vt_adamw_update(ctx, x, x, NULL, x, NULL, 2, &hp, 1), VT_ERR_ARG);
}

static void test_grad_clip(void **state) {
    vt_ctx *ctx = *state;
    float g[3] = {3.0f, 0.0f, -4.0f}, norm = 0;
    assert_int_equal(vt_grad_clip(ctx, g, 3, 10.0f, &norm), VT_OK);
    assert_float_equal(norm, 5.0f, 1e-6);
    assert_float_equal(g[0], 3.0f, 0.0f); /* under the limit: untouched */
    assert_int_equal(vt_grad_clip(ctx, g, 3, 0.0f, &norm), VT_OK); /* 0 = measure only */
    assert_float_equal(g[2], -4.0f, 0.0f);
    assert_int_equal(vt_grad_clip(ctx, g, 3, 1.0f, &norm), VT_OK);
    assert_float_equal(norm, 5.0f, 1e-6);
    assert_float_equal(g[0], 0.6f, 1e-6);
    assert_float_equal(g[2], -0.8f, 1e-6);
    assert_int_equal(vt_grad_clip(ctx, g, 3, 1.0f, &norm), VT_OK);
    assert_float_equal(norm, 1.0f, 1e-5);
    /* A non-finite norm is reported and the gradients are left alone. */
    g[1] = INFINITY;
    assert_int_equal(vt_grad_clip(ctx, g, 3, 1.0f, &norm), VT_OK);
    assert_true(isinf(norm));
    assert_float_equal(g[0], 0.6f, 1e-6);
    assert_int_equal(vt_grad_clip(ctx, g, 3, -1.0f, &norm), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "max_norm=-1"));
    /* A larger buffer: the norm agrees with a double computation. */
    enum { N = 10000 };
    float *big = gc_alloc(N);
    vt_rng r;
    vt_rng_init(&r, 92);
    gc_fill(&r, big, N, 1);
    double want = sqrt(gc_dot(big, big, N));
    assert_int_equal(vt_grad_clip(ctx, big, N, 0.0f, &norm), VT_OK);
    assert_true(fabs(norm - want) < 1e-6 * want);
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adamw_first_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adamw_many_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adamw_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grad_clip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
