/* Vittle and ROSS in one model (recipe vittle_ross): the bottleneck after a
 * decoder block and the denoiser after the last, both training in the same
 * forward and backward. The gradients of CE + KL + scale * ROSS loss match
 * central finite differences for the bottleneck, the denoiser, the final
 * norm and decoder weights below, between and above the two hooks, with
 * the bottleneck after block 0 (the hooks apart) and after block 1 (the
 * same block as ROSS: ROSS then reconstructs from the bottleneck's output,
 * and its gradient flows back through the bottleneck). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "ops/ctx.h"
#include "trainer/model.h"
#include "trainer/ross.h"
#include "trainer/vittle.h"

#include "tiny_batch.h"

typedef struct both {
    vt_model *m;
    vt_vittle *v;
    vt_ross *r;
    const tbatch *t;
    float scale;
} both;

static double objective(const void *arg) {
    const both *x = arg;
    vt_error err = {0};
    float loss = 0;
    assert_int_equal(vt_model_forward(x->m, &x->t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    return (double)loss + x->v->bn->loss + x->scale * x->r->dn->loss;
}

static void gradients(int vittle_layer) {
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t, 1.5f);
    vt_model_config mc;
    vt_model_config_default(&mc);
    mc.init_std = 0.1f;
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &mc, 5, &err), VT_OK);
    for (int j = 0; j < mc.hidden; j++) m->w.norm_w[j] = 1.0f + 0.3f * sinf((float)j);
    vt_bottleneck_config bc;
    vt_bottleneck_config_default(&bc);
    bc.layer = vittle_layer;
    bc.beta_v = bc.beta_t = 0.5f;
    bc.init_std = 0.05f;
    vt_denoiser_config dc;
    vt_denoiser_config_default(&dc);
    dc.width = 16, dc.depth = 1, dc.heads = 2, dc.freq_dim = 16, dc.draws = 2;
    both x = {.m = m, .t = t, .scale = 3.0f};
    /* the recipe's order: Vittle first */
    assert_int_equal(vt_vittle_attach(&x.v, m, &bc, 9, &err), VT_OK);
    assert_int_equal(vt_ross_attach(&x.r, m, &dc, VT_ROSS_PIX_CLIP, 9, &err), VT_OK);
    assert_int_equal(m->nhooks, 2);
    vt_rng g;
    vt_rng_init(&g, 42);
    for (size_t i = 0; i < x.r->dn->num_params; i++) x.r->dn->params[i] = 0.3f * (float)vt_rng_normal(&g);
    vt_vittle_set(x.v, true, 0.4f, 1234, 1.0f);
    vt_ross_set(x.r, true, 77, x.scale);
    assert_true(isfinite(objective(&x)));
    assert_true(x.r->active && x.v->bn->count_v == NIMG);
    assert_int_equal(vt_model_zero_grad(m, &err), VT_OK);
    vt_bottleneck_zero_grad(x.v->bn);
    vt_denoiser_zero_grad(x.r->dn);
    assert_int_equal(vt_model_backward(m, 1.0f / (float)m->loss_count, &err), VT_OK);
    size_t D = (size_t)mc.hidden, nd = D * mc.inter, k;
    k = argmax_abs(x.v->bn->g.v.fc1_w, D * D);
    check_fd(objective, &x, &x.v->bn->w.v.fc1_w[k], x.v->bn->g.v.fc1_w[k], "head_v.fc1.weight");
    k = argmax_abs(x.r->dn->g.z_w, (size_t)dc.width * D);
    check_fd(objective, &x, &x.r->dn->w.z_w[k], x.r->dn->g.z_w[k], "ross.z_embed.weight");
    k = argmax_abs(m->g.norm_w, D);
    check_fd(objective, &x, &m->w.norm_w[k], m->g.norm_w[k], "language_model.norm");
    for (int l = 0; l < mc.layers; l++) {
        char what[64];
        snprintf(what, sizeof what, "layers.%d.mlp.down_proj", l);
        k = argmax_abs(m->g.ll[l].down_w, nd);
        check_fd(objective, &x, &m->w.ll[l].down_w[k], m->g.ll[l].down_w[k], what);
    }
    /* freeing one leaves the other installed */
    vt_vittle_free(x.v);
    assert_int_equal(m->nhooks, 1);
    vt_ross_free(x.r);
    assert_int_equal(m->nhooks, 0);
    free(t);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

static void test_hooks_apart(void **state) {
    (void)state;
    gradients(0);
}

static void test_hooks_after_the_same_block(void **state) {
    (void)state;
    gradients(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_apart),
        cmocka_unit_test(test_hooks_after_the_same_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
