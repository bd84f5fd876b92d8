/* CBBT zeroth-order estimator on a quadratic with a known gradient: the
 * cosine similarity to the true gradient grows with q (≈ sqrt(q/(q+d))),
 * one step costs exactly q+1 evaluations, eps = max(1/d, 1e-3), clipping
 * bounds the step's estimate, Adam steps drive the loss down, momentum and
 * a restored step counter reproduce a run exactly. CraFT's CMA-ES finds the
 * minimum of an ill-conditioned quadratic, and in a random subspace a target
 * that lies in it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "common/rng.h"
#include "trainer/cmaes.h"
#include "trainer/zeroth_order.h"

enum { D = 64 };

/* f(x) = 0.5 * sum a_j (x_j - c_j)^2, gradient a_j (x_j - c_j) */
typedef struct quad {
    float a[D], c[D];
    long evals;
} quad;

static void quad_init(quad *f) {
    vt_rng r;
    vt_rng_init(&r, 17);
    for (int j = 0; j < D; j++) {
        f->a[j] = 0.5f + (float)vt_rng_uniform(&r) * 2.0f;
        f->c[j] = (float)vt_rng_normal(&r);
    }
    f->evals = 0;
}

static vt_status quad_eval(void *arg, const float *pts, int n, float *vals, vt_error *err) {
    (void)err;
    quad *f = arg;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) {
            double e = pts[(size_t)i * D + j] - f->c[j];
            s += 0.5 * f->a[j] * e * e;
        }
        vals[i] = (float)s;
    }
    f->evals += n;
    return VT_OK;
}

static double cosine(const float *a, const float *b) {
    double ab = 0, aa = 0, bb = 0;
    for (int j = 0; j < D; j++) {
        ab += (double)a[j] * b[j];
        aa += (double)a[j] * a[j];
        bb += (double)b[j] * b[j];
    }
    return ab / sqrt(aa * bb);
}

static void test_cosine_grows_with_q(void **state) {
    (void)state;
    quad f;
    quad_init(&f);
    float theta[D], truth[D], g[D];
    for (int j = 0; j < D; j++) {
        theta[j] = 0;
        truth[j] = f.a[j] * (theta[j] - f.c[j]);
    }
    const int qs[3] = {4, 32, 256};
    double mean_cos[3];
    vt_error err = {0};
    for (int k = 0; k < 3; k++) {
        double sum = 0;
        for (int seed = 0; seed < 20; seed++) {
            vt_zo_options o;
            vt_zo_options_default(&o);
            o.q = qs[k];
            o.seed = (uint64_t)seed;
            vt_zo *z;
            assert_int_equal(vt_zo_create(&z, D, &o, &err), VT_OK);
            assert_true(fabsf(vt_zo_eps(z) - 1.0f / D) < 1e-9f);
            long before = f.evals;
            float f0;
            assert_int_equal(vt_zo_estimate(z, theta, quad_eval, &f, g, &f0, &err), VT_OK);
            assert_int_equal(f.evals - before, qs[k] + 1);
            sum += cosine(g, truth);
            vt_zo_free(z);
        }
        mean_cos[k] = sum / 20;
        double expect = sqrt((double)qs[k] / (qs[k] + D));
        print_message("q %3d: mean cosine %.3f (sqrt(q/(q+d)) = %.3f)\n", qs[k], mean_cos[k], expect);
        assert_true(fabs(mean_cos[k] - expect) < 0.12);
    }
    assert_true(mean_cos[0] < mean_cos[1] && mean_cos[1] < mean_cos[2]);
    assert_true(mean_cos[2] > 0.8);
}

static void test_steps_minimise_clip_and_resume(void **state) {
    (void)state;
    quad f;
    quad_init(&f);
    vt_error err = {0};
    vt_zo_options o;
    vt_zo_options_default(&o);
    o.q = 16;
    o.lr = 0.05f;
    o.momentum = 0.4f;
    o.seed = 3;
    vt_zo *z;
    assert_int_equal(vt_zo_create(&z, D, &o, &err), VT_OK);
    float theta[D] = {0}, start, last = 0;
    assert_int_equal(quad_eval(&f, theta, 1, &start, &err), VT_OK);
    f.evals = 0;
    float snap_theta[D], snap_m[D], snap_v[D], snap_p[D];
    for (int s = 0; s < 400; s++) {
        if (s == 200) { /* snapshot for the resume check */
            vt_zo_state st = vt_zo_get_state(z);
            memcpy(snap_theta, theta, sizeof theta);
            memcpy(snap_m, st.m, sizeof snap_m);
            memcpy(snap_v, st.v, sizeof snap_v);
            memcpy(snap_p, st.prev, sizeof snap_p);
        }
        assert_int_equal(vt_zo_step(z, theta, quad_eval, &f, &last, &err), VT_OK);
    }
    assert_int_equal(f.evals, 400 * 17);
    assert_int_equal(vt_zo_steps(z), 400);
    print_message("loss %.4f -> %.4f after 400 steps (%ld evaluations)\n", start, last, f.evals);
    assert_true(last < 0.02f * start);

    /* resume from step 200 with restored buffers: bit-identical theta */
    vt_zo *r;
    assert_int_equal(vt_zo_create(&r, D, &o, &err), VT_OK);
    vt_zo_state rs = vt_zo_get_state(r);
    memcpy(rs.m, snap_m, sizeof snap_m);
    memcpy(rs.v, snap_v, sizeof snap_v);
    memcpy(rs.prev, snap_p, sizeof snap_p);
    vt_zo_set_step(r, 200);
    for (int s = 200; s < 400; s++) assert_int_equal(vt_zo_step(r, snap_theta, quad_eval, &f, NULL, &err), VT_OK);
    assert_memory_equal(snap_theta, theta, sizeof theta);
    vt_zo_free(r);
    vt_zo_free(z);

    /* clipping: the applied estimate is the raw one scaled to norm 1e-3 */
    o.momentum = 0;
    o.clip = 1e-3f;
    o.q = 4;
    vt_zo *raw;
    assert_int_equal(vt_zo_create(&z, D, &o, &err), VT_OK);
    assert_int_equal(vt_zo_create(&raw, D, &o, &err), VT_OK);
    float t2[D] = {0}, graw[D];
    assert_int_equal(vt_zo_estimate(raw, t2, quad_eval, &f, graw, NULL, &err), VT_OK);
    assert_int_equal(vt_zo_step(z, t2, quad_eval, &f, NULL, &err), VT_OK);
    const float *gc = vt_zo_last_gradient(z);
    double nraw = 0, nc = 0;
    for (int j = 0; j < D; j++) {
        nraw += (double)graw[j] * graw[j];
        nc += (double)gc[j] * gc[j];
    }
    assert_true(sqrt(nraw) > 1.0);
    assert_true(fabs(sqrt(nc) - 1e-3) < 1e-7);
    assert_true(cosine(gc, graw) > 0.999999);
    vt_zo_free(raw);
    vt_zo_free(z);

    /* bad options and a non-finite objective */
    o.q = 0;
    assert_int_equal(vt_zo_create(&z, D, &o, &err), VT_ERR_ARG);
    o.q = 4;
    o.momentum = 1;
    assert_int_equal(vt_zo_create(&z, D, &o, &err), VT_ERR_ARG);
}

static vt_status nan_eval(void *arg, const float *pts, int n, float *vals, vt_error *err) {
    (void)arg, (void)pts, (void)err;
    for (int i = 0; i < n; i++) vals[i] = i == 2 ? NAN : 1.0f;
    return VT_OK;
}

static void test_non_finite_objective(void **state) {
    (void)state;
    vt_zo_options o;
    vt_zo_options_default(&o);
    o.q = 4;
    vt_zo *z;
    vt_error err = {0};
    assert_int_equal(vt_zo_create(&z, D, &o, &err), VT_OK);
    float th[D] = {0}, g[D];
    assert_int_equal(vt_zo_estimate(z, th, nan_eval, NULL, g, NULL, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "value 2"));
    vt_zo_free(z);
}

/* ---- CMA-ES ---- */

enum { N = 8 };

static double ellipsoid(const double *x) {
    double s = 0;
    for (int i = 0; i < N; i++) {
        double e = x[i] - 0.5 * (i + 1) / N;
        s += pow(100.0, (double)i / (N - 1)) * e * e; /* condition number 100 */
    }
    return s;
}

/* vt_zo_step = vt_zo_estimate + vt_zo_apply (white-box tuning applies the
 * true gradient through the same update), bit for bit, with momentum and
 * clipping on. */
static void test_apply_is_the_update(void **state) {
    (void)state;
    quad f;
    quad_init(&f);
    vt_zo_options o;
    vt_zo_options_default(&o);
    o.q = 8;
    o.lr = 0.05f;
    o.momentum = 0.4f;
    o.clip = 1.0f;
    o.seed = 3;
    vt_zo *a = NULL, *b = NULL;
    vt_error err = {0};
    assert_int_equal(vt_zo_create(&a, D, &o, &err), VT_OK);
    assert_int_equal(vt_zo_create(&b, D, &o, &err), VT_OK);
    float xa[D] = {0}, xb[D] = {0}, g[D], g0[D];
    for (int s = 0; s < 6; s++) {
        assert_int_equal(vt_zo_step(a, xa, quad_eval, &f, NULL, &err), VT_OK);
        assert_int_equal(vt_zo_estimate(b, xb, quad_eval, &f, g, NULL, &err), VT_OK);
        memcpy(g0, g, sizeof g);
        vt_zo_apply(b, xb, g);
        assert_memory_equal(g, g0, sizeof g); /* the caller's gradient is not touched */
    }
    assert_int_equal(vt_zo_steps(b), 6);
    assert_memory_equal(xa, xb, sizeof xa);
    assert_memory_equal(vt_zo_last_gradient(a), vt_zo_last_gradient(b), sizeof xa);
    vt_zo_free(a);
    vt_zo_free(b);
}

static void test_cmaes_quadratic(void **state) {
    (void)state;
    vt_cmaes_options o = {.lambda = 0, .sigma0 = 0.5, .bound = 5, .seed = 1};
    vt_cmaes *es;
    vt_error err = {0};
    assert_int_equal(vt_cmaes_create(&es, N, NULL, &o, &err), VT_OK);
    int L = vt_cmaes_lambda(es);
    assert_int_equal(L, 4 + (int)floor(3 * log(N)));
    double *pop = malloc((size_t)L * N * sizeof(double)), *fit = malloc((size_t)L * sizeof(double));
    double first = ellipsoid(vt_cmaes_mean(es));
    for (int g = 0; g < 400 && ellipsoid(vt_cmaes_mean(es)) > 1e-10; g++) {
        vt_cmaes_ask(es, pop);
        for (int k = 0; k < L; k++) {
            for (int i = 0; i < N; i++) assert_true(fabs(pop[k * N + i]) <= 5);
            fit[k] = ellipsoid(pop + k * N);
        }
        assert_int_equal(vt_cmaes_tell(es, fit, &err), VT_OK);
    }
    double final = ellipsoid(vt_cmaes_mean(es));
    print_message("cma-es: %.3g -> %.3g in %ld generations\n", first, final, vt_cmaes_generation(es));
    assert_true(final < 1e-8);
    fit[1] = NAN;
    vt_cmaes_ask(es, pop);
    assert_int_equal(vt_cmaes_tell(es, fit, &err), VT_ERR_RANGE);
    free(pop);
    free(fit);
    vt_cmaes_free(es);
    o.sigma0 = 0;
    assert_int_equal(vt_cmaes_create(&es, N, NULL, &o, &err), VT_ERR_ARG);
}

/* A context of 48 floats reachable only through a 6-dim subspace: the
 * target is x0 + A z*; CMA-ES over z recovers it. */
static void test_cmaes_subspace(void **state) {
    (void)state;
    enum { DD = 48, n = 6 };
    float x0[DD], target[DD], x[DD];
    double zs[n] = {0.3, -0.7, 1.1, 0.2, -0.4, 0.9};
    for (int j = 0; j < DD; j++) x0[j] = 0.1f * (float)j;
    vt_subspace_map(42, DD, n, x0, zs, target);
    vt_cmaes_options o = {.lambda = 20, .sigma0 = 0.5, .bound = 5, .seed = 2};
    vt_cmaes *es;
    vt_error err = {0};
    assert_int_equal(vt_cmaes_create(&es, n, NULL, &o, &err), VT_OK);
    double pop[20 * n], fit[20];
    for (int g = 0; g < 300; g++) {
        vt_cmaes_ask(es, pop);
        for (int k = 0; k < 20; k++) {
            vt_subspace_map(42, DD, n, x0, pop + k * n, x);
            double s = 0;
            for (int j = 0; j < DD; j++) s += (double)(x[j] - target[j]) * (x[j] - target[j]);
            fit[k] = s;
        }
        assert_int_equal(vt_cmaes_tell(es, fit, &err), VT_OK);
    }
    for (int k = 0; k < n; k++) assert_true(fabs(vt_cmaes_mean(es)[k] - zs[k]) < 1e-3);
    vt_cmaes_free(es);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cosine_grows_with_q),
        cmocka_unit_test(test_steps_minimise_clip_and_resume),
        cmocka_unit_test(test_non_finite_objective),
        cmocka_unit_test(test_apply_is_the_update),
        cmocka_unit_test(test_cmaes_quadratic),
        cmocka_unit_test(test_cmaes_subspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
