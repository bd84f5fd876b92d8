/* The black-box output adapter (trainer/bbadapter.h): starts as the
 * identity, its analytic gradient (CE + λ·KL(service ‖ adapted)) matches
 * central finite differences of its own loss for every parameter, the KL term
 * is the stated direction, training lowers the loss, and a state restored
 * mid-training (parameters, Adam moments, step) continues bit-identically. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "common/rng.h"
#include "trainer/bbadapter.h"

enum { V = 7, H = 5, N = 24 };

static void data(float *x, int32_t *y, uint64_t seed) {
    vt_rng g;
    vt_rng_init(&g, seed);
    for (int i = 0; i < N * V; i++) x[i] = (float)(2.0 * vt_rng_normal(&g));
    for (int i = 0; i < N; i++) y[i] = (int32_t)((i * 3) % V); /* a pattern the logits do not encode */
}

static void test_identity_at_start(void **state) {
    (void)state;
    vt_bbadapter *a;
    vt_error err = {0};
    assert_int_equal(vt_bbadapter_create(&a, V, H, 9, &err), VT_OK);
    float x[N * V];
    int32_t y[N];
    data(x, y, 1);
    double out[V], h[H];
    vt_bbadapter_apply(a, x, out, h);
    for (int v = 0; v < V; v++) assert_true(out[v] == (double)x[v]);
    /* at the identity the KL term is 0: the loss is the raw cross-entropy */
    uint32_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = (uint32_t)i;
    double ce, ce_ad;
    size_t right, right_ad;
    vt_bbadapter_eval(NULL, V, x, y, N, &ce, &right);
    vt_bbadapter_eval(a, V, x, y, N, &ce_ad, &right_ad);
    assert_true(ce == ce_ad && right == right_ad);
    assert_true(fabs(vt_bbadapter_loss_grad(a, x, y, idx, N, 0.5, NULL) - ce / N) < 1e-12);
    vt_bbadapter_free(a);
}

static void test_gradient_matches_finite_differences(void **state) {
    (void)state;
    vt_bbadapter *a;
    vt_error err = {0};
    assert_int_equal(vt_bbadapter_create(&a, V, H, 4, &err), VT_OK);
    vt_rng g;
    vt_rng_init(&g, 77);
    for (size_t i = 0; i < a->n; i++) a->p[i] = 0.4 * vt_rng_normal(&g); /* away from the identity: W2 != 0 */
    float x[N * V];
    int32_t y[N];
    data(x, y, 2);
    uint32_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = (uint32_t)((i * 5) % N);
    const double kl = 0.3, eps = 1e-6;
    double *grad = malloc(a->n * sizeof *grad);
    double f0 = vt_bbadapter_loss_grad(a, x, y, idx, N, kl, grad);
    assert_true(isfinite(f0));
    double worst = 0;
    int nonzero = 0;
    for (size_t i = 0; i < a->n; i++) {
        double keep = a->p[i];
        a->p[i] = keep + eps;
        double fp = vt_bbadapter_loss_grad(a, x, y, idx, N, kl, NULL);
        a->p[i] = keep - eps;
        double fm = vt_bbadapter_loss_grad(a, x, y, idx, N, kl, NULL);
        a->p[i] = keep;
        double fd = (fp - fm) / (2 * eps);
        double e = fabs(fd - grad[i]) / fmax(1e-4, fabs(fd) + fabs(grad[i]));
        worst = fmax(worst, e);
        nonzero += fabs(grad[i]) > 1e-6;
    }
    print_message("adapter gradient check: %zu parameters, worst relative error %.3g, %d nonzero\n", a->n, worst,
                  nonzero);
    assert_true(worst < 1e-5);
    assert_true(nonzero > (int)a->n / 2);

    /* the KL term is KL(softmax(z) ‖ softmax(z')): computed by hand for one row */
    double za[V], hh[H], lpa[V], lps[V], ma = -1e300, ms = -1e300, sa = 0, ss = 0, want = 0;
    vt_bbadapter_apply(a, x, za, hh);
    for (int v = 0; v < V; v++) ma = fmax(ma, za[v]), ms = fmax(ms, x[v]);
    for (int v = 0; v < V; v++) sa += exp(za[v] - ma), ss += exp(x[v] - ms);
    for (int v = 0; v < V; v++) lpa[v] = za[v] - ma - log(sa), lps[v] = x[v] - ms - log(ss);
    for (int v = 0; v < V; v++) want += exp(lps[v]) * (lps[v] - lpa[v]);
    uint32_t one = 0;
    double with = vt_bbadapter_loss_grad(a, x, y, &one, 1, 1.0, NULL);
    double without = vt_bbadapter_loss_grad(a, x, y, &one, 1, 0.0, NULL);
    assert_true(fabs((with - without) - want) < 1e-12);
    free(grad);
    vt_bbadapter_free(a);
}

static void test_training_lowers_loss_and_resumes_exactly(void **state) {
    (void)state;
    float x[N * V];
    int32_t y[N];
    data(x, y, 3);
    vt_bbadapter_opts o = {.lr = 0.05, .kl_weight = 0.01, .beta1 = 0.9, .beta2 = 0.999, .batch = 8};
    vt_bbadapter *a, *b, *c;
    vt_error err = {0};
    assert_int_equal(vt_bbadapter_create(&a, V, H, 21, &err), VT_OK);
    assert_int_equal(vt_bbadapter_create(&b, V, H, 21, &err), VT_OK);
    assert_int_equal(vt_bbadapter_create(&c, V, H, 21, &err), VT_OK);
    double ce0, ce1;
    size_t r0, r1;
    vt_bbadapter_eval(a, V, x, y, N, &ce0, &r0);
    assert_int_equal(vt_bbadapter_train(a, x, y, N, &o, 60, &err), VT_OK);
    vt_bbadapter_eval(a, V, x, y, N, &ce1, &r1);
    print_message("adapter training: mean CE %.4f -> %.4f, right %zu -> %zu of %d\n", ce0 / N, ce1 / N, r0, r1, N);
    assert_true(ce1 < 0.5 * ce0);
    assert_true(r1 > r0);
    /* b: 25 steps, then its state copied into c (as a checkpoint), c finishes */
    assert_int_equal(vt_bbadapter_train(b, x, y, N, &o, 25, &err), VT_OK);
    memcpy(c->p, b->p, b->n * sizeof *b->p);
    memcpy(c->m, b->m, b->n * sizeof *b->m);
    memcpy(c->v, b->v, b->n * sizeof *b->v);
    c->step = b->step;
    assert_int_equal(vt_bbadapter_train(c, x, y, N, &o, 60, &err), VT_OK);
    assert_int_equal(c->step, 60);
    assert_memory_equal(a->p, c->p, a->n * sizeof *a->p);
    assert_memory_equal(a->m, c->m, a->n * sizeof *a->m);
    /* nothing to do when the step is already reached */
    assert_int_equal(vt_bbadapter_train(c, x, y, N, &o, 60, &err), VT_OK);
    assert_memory_equal(a->p, c->p, a->n * sizeof *a->p);
    vt_bbadapter_free(a);
    vt_bbadapter_free(b);
    vt_bbadapter_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_at_start),
        cmocka_unit_test(test_gradient_matches_finite_differences),
        cmocka_unit_test(test_training_lowers_loss_and_resumes_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
