/* White-box prompt tuning's local model (trainer/whitebox.h) on the tiny
 * default model: its scores equal what the service computes (context written
 * into the embedding rows of the context ids, every occurrence, losses from
 * the logits) for several context sets; its gradient equals central finite
 * differences of that score; tied embeddings and trainable models are
 * refused; vt_zo_apply with the true gradient is the CBBT optimiser's update. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "trainer/whitebox.h"
#include "trainer/zeroth_order.h"

enum { B = 2, T = 40, NC = 2 };
static const int32_t IDS[NC] = {280, 281};

typedef struct rows {
    int32_t tok[B * T], tgt[B * T], len[B];
    uint8_t mask[B * T];
    float *pix;
} rows;

static vt_ctx *cpu(void) {
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    vt_ctx_options opt = {.backend = VT_BACKEND_CPU, .threads = 1};
    assert_int_equal(vt_ctx_create(&ctx, &opt, &err), VT_OK);
    return ctx;
}

/* Row 0: context, 16 image positions, text; row 1: context, text with a
 * second occurrence of the first context id at position 20 (the service
 * writes every occurrence), shorter. Answers counted from position 24. */
static void make_rows(rows *r, const vt_model_config *c) {
    vt_rng g;
    vt_rng_init(&g, 99);
    int N = (c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = (int32_t)vt_rng_below(&g, 250);
            if (t < NC) id = IDS[t];
            else if (b == 0 && t < NC + N) id = c->image_token_index;
            else if (b == 1 && t == 20) id = IDS[0];
            r->tok[b * T + t] = id;
        }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            r->tgt[b * T + t] = t + 1 < T ? r->tok[b * T + t + 1] : 0;
            if (r->tgt[b * T + t] >= 250) r->tgt[b * T + t] = 7;
            r->mask[b * T + t] = t >= 24;
        }
    r->len[0] = T;
    r->len[1] = 33;
    size_t np = (size_t)B * 3 * c->image_size * c->image_size;
    r->pix = malloc(np * sizeof(float));
    for (size_t i = 0; i < np; i++) r->pix[i] = (float)vt_rng_normal(&g);
}

static vt_serve_query query(const rows *r, const vt_model_config *c, const float *ctx, int n_sets) {
    return (vt_serve_query){.n_ctx = NC, .ctx_token_ids = IDS, .n_sets = n_sets, .ctx = ctx, .batch = B,
                            .seq_len = T, .tokens = r->tok, .targets = r->tgt, .loss_mask = r->mask,
                            .lengths = r->len, .pixels = r->pix, .image_size = c->image_size,
                            .hidden = c->hidden};
}

static vt_model *frozen(vt_ctx *ctx, vt_model_config *c) {
    vt_model_config_default(c);
    c->freeze_vision = c->freeze_projector = c->freeze_language = true;
    vt_model *m = NULL;
    vt_error err = {0};
    assert_int_equal(vt_model_create(&m, ctx, c, 11, &err), VT_OK);
    return m;
}

/* count-weighted mean of the scores of one set */
static double mean_score(vt_whitebox *w, const rows *r, const vt_model_config *c, const float *ctx) {
    vt_serve_query q = query(r, c, ctx, 1);
    float loss[B];
    uint32_t cnt[B];
    vt_error err = {0};
    assert_int_equal(vt_whitebox_score(w, &q, loss, cnt, NULL, &err), VT_OK);
    double s = 0, n = 0;
    for (int b = 0; b < B; b++) s += (double)loss[b] * cnt[b], n += cnt[b];
    return s / n;
}

static void test_score_is_the_services(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model_config c;
    vt_model *m = frozen(ctx, &c);
    rows *r = calloc(1, sizeof *r);
    make_rows(r, &c);
    int D = c.hidden, V = c.vocab;
    float *sets = malloc(sizeof(float) * 3 * NC * D);
    vt_rng g;
    vt_rng_init(&g, 5);
    for (int i = 0; i < 3 * NC * D; i++) sets[i] = 0.5f * (float)vt_rng_normal(&g);
    vt_whitebox *w = NULL;
    vt_error err = {0};
    assert_int_equal(vt_whitebox_wrap(&w, m, 4, 64, &err), VT_OK);
    float loss[3 * B], *lg = malloc(sizeof(float) * 3 * B * T * V);
    uint32_t cnt[B];
    vt_serve_query q = query(r, &c, sets, 3);
    assert_int_equal(vt_whitebox_score(w, &q, loss, cnt, lg, &err), VT_OK);
    assert_int_equal(cnt[0], T - 24);
    assert_int_equal(cnt[1], 33 - 24);
    /* the service's way: the context in the embedding rows, a plain forward */
    vt_batch bt = {0};
    vt_batch_shape sh = {.batch = B, .channels = 3, .height = (uint32_t)c.image_size, .width = (uint32_t)c.image_size,
                         .seq_len = T};
    assert_int_equal(vt_batch_alloc(&bt, &sh, &err), VT_OK);
    memcpy(bt.tokens, r->tok, sizeof r->tok);
    memcpy(bt.targets, r->tgt, sizeof r->tgt);
    memcpy(bt.loss_mask, r->mask, sizeof r->mask);
    memcpy(bt.lengths, r->len, sizeof r->len);
    memcpy(bt.pixels, r->pix, sizeof(float) * B * 3 * c.image_size * c.image_size);
    float *saved = malloc(sizeof(float) * NC * D);
    for (int i = 0; i < NC; i++) memcpy(saved + i * D, m->w.embed + (size_t)IDS[i] * D, sizeof(float) * D);
    double worst = 0;
    size_t row = 0;
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < NC; i++) memcpy(m->w.embed + (size_t)IDS[i] * D, sets + (s * NC + i) * D, sizeof(float) * D);
        assert_int_equal(vt_model_forward(m, &bt, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
        const float *L = vt_model_logits(m);
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int t = 0; t < r->len[b]; t++) {
                if (!r->mask[b * T + t]) continue;
                const float *z = L + ((size_t)b * T + t) * V;
                for (int v = 0; v < V; v++) worst = fmax(worst, fabs((double)z[v] - lg[row * V + v]));
                row++;
                double mx = z[0], zz = 0;
                for (int v = 1; v < V; v++) mx = fmax(mx, z[v]);
                for (int v = 0; v < V; v++) zz += exp(z[v] - mx);
                sum += mx + log(zz) - z[r->tgt[b * T + t]];
            }
            double want = sum / (r->len[b] - 24);
            worst = fmax(worst, fabs(want - loss[s * B + b]));
        }
    }
    for (int i = 0; i < NC; i++) memcpy(m->w.embed + (size_t)IDS[i] * D, saved + i * D, sizeof(float) * D);
    print_message("whitebox vs the service's embedding-row scoring: worst |difference| %.3g (losses and logits)\n",
                  worst);
    assert_true(worst < 1e-4);
    /* the three sets really differ */
    assert_true(fabs(loss[0] - loss[B]) > 1e-4 || fabs(loss[1] - loss[B + 1]) > 1e-4);
    vt_batch_free(&bt);
    vt_whitebox_close(w);
    free(saved);
    free(lg);
    free(sets);
    free(r->pix);
    free(r);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

static void test_gradient_finite_differences(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model_config c;
    vt_model *m = frozen(ctx, &c);
    rows *r = calloc(1, sizeof *r);
    make_rows(r, &c);
    int D = c.hidden;
    float *x = malloc(sizeof(float) * NC * D), *grad = malloc(sizeof(float) * NC * D);
    vt_rng g;
    vt_rng_init(&g, 6);
    for (int i = 0; i < NC * D; i++) x[i] = 0.5f * (float)vt_rng_normal(&g);
    vt_whitebox *w = NULL;
    vt_error err = {0};
    assert_int_equal(vt_whitebox_wrap(&w, m, B, T, &err), VT_OK);
    vt_serve_query q = query(r, &c, x, 1);
    double l = 0;
    assert_int_equal(vt_whitebox_grad(w, &q, grad, &l, &err), VT_OK);
    double f0 = mean_score(w, r, &c, x);
    assert_true(fabs(l - f0) < 1e-4 * fabs(f0));
    double gmax = 0, worst = 0;
    for (int i = 0; i < NC * D; i++) gmax = fmax(gmax, fabs(grad[i]));
    assert_true(gmax > 1e-3);
    int checked = 0;
    for (int i = 0; i < NC * D; i += 3) {
        float x0 = x[i];
        const float h = 5e-2f; /* the float model: differences of ~1e-6 in a loss of ~5 need a wide step */
        x[i] = x0 + h;
        double fp = mean_score(w, r, &c, x);
        x[i] = x0 - h;
        double fm = mean_score(w, r, &c, x);
        x[i] = x0;
        double fd = (fp - fm) / (2.0 * h);
        /* elements under 5% of the largest are compared against that floor: the
         * differences of a float model carry ~1e-6 noise */
        double e = fabs(fd - grad[i]) / fmax(5e-2 * gmax, fabs(grad[i]));
        worst = fmax(worst, e);
        if (e > 3e-2) print_message("  element %d: analytic %.6g, central difference %.6g\n", i, grad[i], fd);
        checked++;
    }
    print_message("whitebox gradient (max %.3g): %d of %d elements vs central differences, worst relative error %.3g\n", gmax, checked,
                  NC * D, worst);
    assert_true(worst < 3e-2);
    /* the second occurrence of IDS[0] (row 1, position 20) contributes: the
     * gradient differs from the one without it */
    int32_t keep = r->tok[T + 20];
    r->tok[T + 20] = 5;
    float *g2 = malloc(sizeof(float) * NC * D);
    assert_int_equal(vt_whitebox_grad(w, &q, g2, NULL, &err), VT_OK);
    double diff = 0;
    for (int j = 0; j < D; j++) diff = fmax(diff, fabs(g2[j] - grad[j]));
    assert_true(diff > 1e-5);
    r->tok[T + 20] = keep;
    /* one Adam step with the true gradient lowers the loss */
    vt_zo_options o;
    vt_zo_options_default(&o);
    o.lr = 1e-2f;
    vt_zo *z = NULL;
    assert_int_equal(vt_zo_create(&z, (size_t)NC * D, &o, &err), VT_OK);
    for (int s = 0; s < 5; s++) {
        assert_int_equal(vt_whitebox_grad(w, &q, grad, NULL, &err), VT_OK);
        vt_zo_apply(z, x, grad);
    }
    assert_int_equal(vt_zo_steps(z), 5);
    double f1 = mean_score(w, r, &c, x);
    print_message("whitebox: 5 Adam steps, loss %.5f -> %.5f\n", f0, f1);
    assert_true(f1 < f0 - 1e-3);
    /* bad input: a batch over the size given at wrap */
    q.batch = B + 1;
    assert_int_equal(vt_whitebox_grad(w, &q, grad, NULL, &err), VT_ERR_ARG);
    vt_zo_free(z);
    vt_whitebox_close(w);
    free(g2);
    free(x);
    free(grad);
    free(r->pix);
    free(r);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

static void test_refused(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model_config c;
    vt_model_config_default(&c);
    vt_error err = {0};
    vt_model *m = NULL;
    vt_whitebox *w = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 1, &err), VT_OK); /* projector + language trainable */
    assert_int_equal(vt_whitebox_wrap(&w, m, 2, 16, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "frozen"));
    vt_model_free(m);
    c.freeze_vision = c.freeze_projector = c.freeze_language = true;
    c.tie_embeddings = true;
    assert_int_equal(vt_model_create(&m, ctx, &c, 1, &err), VT_OK);
    assert_int_equal(vt_whitebox_wrap(&w, m, 2, 16, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "tied"));
    vt_model_free(m);
    assert_int_equal(vt_whitebox_open(&w, "/nonexistent/ckpt", 1, 2, 16, &err) != VT_OK, 1);
    assert_null(w);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_is_the_services),
        cmocka_unit_test(test_gradient_finite_differences),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
