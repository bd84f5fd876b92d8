/* Vittle inside the model (trainer/vittle.h via the decoder hook): token
 * roles from a batch, alpha 0 at inference leaves the logits unchanged, and
 * the gradients of CE + KL through the hook match central finite differences
 * for bottleneck weights and for decoder weights before and after the hook
 * (which proves the hook's backward is wired into the decoder's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ops/ctx.h"
#include "trainer/model.h"
#include "trainer/vittle.h"

#include "tiny_batch.h"

static void test_roles(void **state) {
    (void)state;
    tbatch *t = malloc(sizeof *t);
    make_batch(t, 1.0f);
    uint8_t role[B * T];
    vt_vittle_roles(&t->b, 287, role);
    for (int i = 0; i < 3; i++) assert_int_equal(role[i], VT_BN_TEXT_KL);
    for (int i = 3; i < 19; i++) assert_int_equal(role[i], VT_BN_VISUAL);
    assert_int_equal(role[19], VT_BN_TEXT_KL); /* its target is supervised, the token itself is not */
    for (int i = 20; i < 24; i++) assert_int_equal(role[i], VT_BN_TEXT);
    assert_int_equal(role[T + 19], VT_BN_TEXT_KL);
    assert_int_equal(role[T + 21], VT_BN_TEXT);
    assert_int_equal(role[T + 22], VT_BN_PASS);
    assert_int_equal(role[T + 23], VT_BN_PASS);
    free(t);
}

typedef struct run {
    vt_model *m;
    vt_vittle *v;
    const tbatch *t;
} run;

/* CE (mean over masked tokens) + bottleneck loss, with fixed noise. */
static double objective(const void *arg) {
    const run *x = arg;
    vt_error err = {0};
    float loss = 0;
    assert_int_equal(vt_model_forward(x->m, &x->t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    return (double)loss + x->v->bn->loss;
}

static void test_alpha_zero_is_identity(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t, 1.0f);
    vt_model_config mc;
    vt_model_config_default(&mc);
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &mc, 5, &err), VT_OK);
    size_t n = (size_t)B * T * mc.vocab;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    float *ref = malloc(n * sizeof(float));
    memcpy(ref, vt_model_logits(m), n * sizeof(float));
    vt_bottleneck_config c;
    vt_bottleneck_config_default(&c);
    vt_vittle *v = NULL;
    assert_int_equal(vt_vittle_attach(&v, m, &c, 9, &err), VT_OK);
    vt_vittle *v2 = NULL;
    assert_int_equal(vt_vittle_attach(&v2, m, &c, 9, &err), VT_ERR_STATE);
    vt_vittle_set(v, false, 0.0f, 0, 1.0f);
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_memory_equal(ref, vt_model_logits(m), n * sizeof(float));
    /* alpha_end at inference changes them. */
    vt_vittle_set(v, false, 0.5f, 0, 1.0f);
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_true(memcmp(ref, vt_model_logits(m), n * sizeof(float)) != 0);
    vt_vittle_free(v);
    assert_int_equal(m->nhooks, 0);
    free(ref);
    free(t);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

static void test_gradients_through_hook(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t, 1.0f);
    vt_model_config mc;
    vt_model_config_default(&mc);
    mc.init_std = 0.1f; /* larger weights: gradients well above finite-difference noise */
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &mc, 5, &err), VT_OK);
    vt_bottleneck_config c;
    vt_bottleneck_config_default(&c);
    c.layer = 0; /* block 1 runs after the hook, block 0 before it */
    c.beta_v = c.beta_t = 0.5f;
    c.init_std = 0.05f; /* log sigma^2 stays inside the clamp, whose gradient is straight-through */
    vt_vittle *v = NULL;
    assert_int_equal(vt_vittle_attach(&v, m, &c, 9, &err), VT_OK);
    vt_vittle_set(v, true, 0.4f, 1234, 1.0f);
    run x = {m, v, t};
    double J = objective(&x);
    assert_true(isfinite(J));
    assert_true(v->bn->count_v == NIMG && v->bn->count_t > 0);
    assert_int_equal(vt_model_zero_grad(m, &err), VT_OK);
    vt_bottleneck_zero_grad(v->bn);
    assert_int_equal(vt_model_backward(m, 1.0f / (float)m->loss_count, &err), VT_OK);
    /* Bottleneck weights of both heads. */
    size_t k = argmax_abs(v->bn->g.v.fc1_w, (size_t)mc.hidden * mc.hidden);
    check_fd(objective, &x, &v->bn->w.v.fc1_w[k], v->bn->g.v.fc1_w[k], "head_v.fc1.weight");
    k = argmax_abs(v->bn->g.t.fc2_w, (size_t)2 * mc.hidden * mc.hidden);
    check_fd(objective, &x, &v->bn->w.t.fc2_w[k], v->bn->g.t.fc2_w[k], "head_t.fc2.weight");
    /* Decoder weights after the hook (block 1) and before it (block 0). */
    size_t nd = (size_t)mc.hidden * mc.inter;
    k = argmax_abs(m->g.ll[1].down_w, nd);
    check_fd(objective, &x, &m->w.ll[1].down_w[k], m->g.ll[1].down_w[k], "layers.1.mlp.down_proj");
    k = argmax_abs(m->g.ll[0].down_w, nd);
    check_fd(objective, &x, &m->w.ll[0].down_w[k], m->g.ll[0].down_w[k], "layers.0.mlp.down_proj");
    k = argmax_abs(m->g.ll[0].q_w, (size_t)mc.hidden * mc.hidden);
    check_fd(objective, &x, &m->w.ll[0].q_w[k], m->g.ll[0].q_w[k], "layers.0.self_attn.q_proj");
    vt_vittle_free(v);
    free(t);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_alpha_zero_is_identity),
        cmocka_unit_test(test_gradients_through_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
