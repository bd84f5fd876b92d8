/* ROSS inside the model (trainer/ross.h via the decoder hook after the last
 * block): the hook leaves the logits bit-identical and does nothing unless
 * training; only sequences with an image enter the loss; the image rows it
 * conditions on are the final-normed states (RMSNorm with the model's
 * weight) of exactly the image positions; and the gradients of CE +
 * scale * ROSS loss match central finite differences for denoiser weights,
 * the final norm's weight and decoder weights (so the reconstruction
 * gradient really flows back into the decoder), for ROSS-D and ROSS-R. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "ops/ctx.h"
#include "trainer/model.h"
#include "trainer/ross.h"

#include "tiny_batch.h"

static void small_config(vt_denoiser_config *c, vt_ross_variant variant) {
    vt_denoiser_config_default(c);
    c->variant = variant;
    c->width = 16;
    c->depth = 1;
    c->heads = 2;
    c->freq_dim = 16;
    c->draws = 2;
}

static void test_logits_unchanged(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t, 1.5f);
    vt_model_config mc;
    vt_model_config_default(&mc);
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &mc, 5, &err), VT_OK);
    size_t n = (size_t)B * T * mc.vocab;
    float loss0 = 0;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, &loss0, &err), VT_OK);
    float *ref = malloc(n * sizeof(float));
    memcpy(ref, vt_model_logits(m), n * sizeof(float));
    vt_denoiser_config c;
    small_config(&c, VT_ROSS_DENOISE);
    vt_ross *r = NULL, *r2 = NULL;
    assert_int_equal(vt_ross_attach(&r, m, &c, VT_ROSS_PIX_CLIP, 9, &err), VT_OK);
    assert_int_equal(m->nhooks, 1);
    assert_int_equal(m->hooks[0].layer, mc.layers - 1);
    assert_int_equal(r->dn->cfg.target_dim, 3 * 8 * 8);
    assert_int_equal(r->dn->cfg.grid, 4);
    assert_int_equal(vt_ross_attach(&r2, m, &c, VT_ROSS_PIX_CLIP, 9, &err), VT_ERR_STATE);
    /* not training: no loss, nothing touched */
    float loss = 0;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    assert_false(r->active);
    assert_true(loss == loss0);
    /* training: a loss over the one sequence with an image, logits unchanged */
    vt_ross_set(r, true, 77, 1.0f);
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    assert_true(r->active);
    assert_int_equal(r->n_img, 1);
    assert_int_equal(r->img[0], 0);
    for (int k = 0; k < NIMG; k++) assert_int_equal(r->rows[k], 3 + k);
    assert_true(loss == loss0);
    assert_memory_equal(ref, vt_model_logits(m), n * sizeof(float));
    assert_true(r->dn->loss > 0.5 && r->dn->loss < 2.0); /* zero init: mean eps^2 ~ 1 */
    /* the condition is the final-normed state: RMSNorm(h) with weight 1 has
     * mean square 1 per row */
    for (int k = 0; k < NIMG; k++) {
        const float *h = r->h + (size_t)k * mc.hidden, *hn = r->hn + (size_t)k * mc.hidden;
        double ms = 0;
        for (int j = 0; j < mc.hidden; j++) ms += (double)h[j] * h[j];
        double rs = 1.0 / sqrt(ms / mc.hidden + mc.rms_eps);
        for (int j = 0; j < mc.hidden; j++) assert_true(fabs(hn[j] - h[j] * rs) <= 1e-5 * (1 + fabs(hn[j])));
    }
    vt_ross_free(r);
    assert_int_equal(m->nhooks, 0);
    free(ref);
    free(t);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

typedef struct run {
    vt_model *m;
    vt_ross *r;
    const tbatch *t;
    float scale;
} run;

/* CE (mean over masked tokens) + scale x the ROSS loss, with fixed noise. */
static double objective(const void *arg) {
    const run *x = arg;
    vt_error err = {0};
    float loss = 0;
    assert_int_equal(vt_model_forward(x->m, &x->t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    return (double)loss + x->scale * x->r->dn->loss;
}

static void gradients(vt_ross_variant variant) {
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t, 1.5f);
    vt_model_config mc;
    vt_model_config_default(&mc);
    mc.init_std = 0.1f;
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &mc, 5, &err), VT_OK);
    /* a non-zero final norm weight, so its gradient is a real check */
    for (int j = 0; j < mc.hidden; j++) m->w.norm_w[j] = 1.0f + 0.3f * sinf((float)j);
    vt_denoiser_config c;
    small_config(&c, variant);
    vt_ross *r = NULL;
    assert_int_equal(vt_ross_attach(&r, m, &c, VT_ROSS_PIX_CLIP, 9, &err), VT_OK);
    /* past the zero init, so the gradient reaches the condition */
    vt_rng g;
    vt_rng_init(&g, 42);
    for (size_t i = 0; i < r->dn->num_params; i++) r->dn->params[i] = 0.3f * (float)vt_rng_normal(&g);
    const float scale = 3.0f;
    size_t nd = (size_t)mc.hidden * mc.inter;
    /* decoder gradient without ROSS, for comparison */
    vt_ross_set(r, true, 1234, 0.0f);
    run x = {m, r, t, 0.0f};
    (void)objective(&x);
    assert_int_equal(vt_model_zero_grad(m, &err), VT_OK);
    assert_int_equal(vt_model_backward(m, 1.0f / (float)m->loss_count, &err), VT_OK);
    float *plain = malloc(nd * sizeof(float));
    memcpy(plain, m->g.ll[0].down_w, nd * sizeof(float));
    vt_ross_set(r, true, 1234, scale);
    x.scale = scale;
    double J = objective(&x);
    assert_true(isfinite(J) && r->active);
    assert_int_equal(vt_model_zero_grad(m, &err), VT_OK);
    vt_denoiser_zero_grad(r->dn);
    assert_int_equal(vt_model_backward(m, 1.0f / (float)m->loss_count, &err), VT_OK);
    assert_true(memcmp(plain, m->g.ll[0].down_w, nd * sizeof(float)) != 0);
    size_t k = argmax_abs(r->dn->g.z_w, (size_t)c.width * mc.hidden);
    check_fd(objective, &x, &r->dn->w.z_w[k], r->dn->g.z_w[k], "ross.z_embed.weight");
    k = argmax_abs(r->dn->g.blocks[0].qkv_w, (size_t)3 * c.width * c.width);
    check_fd(objective, &x, &r->dn->w.blocks[0].qkv_w[k], r->dn->g.blocks[0].qkv_w[k], "ross.blocks.0.attn.qkv");
    k = argmax_abs(m->g.norm_w, (size_t)mc.hidden);
    check_fd(objective, &x, &m->w.norm_w[k], m->g.norm_w[k], "language_model.norm");
    /* the decoder entry where ROSS changes the gradient most */
    float *diff = calloc(nd, sizeof(float));
    for (size_t i = 0; i < nd; i++) diff[i] = m->g.ll[0].down_w[i] - plain[i];
    k = argmax_abs(diff, nd);
    print_message("ROSS share of layers.0.mlp.down_proj[%zu]: %.3g of %.3g\n", k, (double)diff[k],
                  (double)m->g.ll[0].down_w[k]);
    check_fd(objective, &x, &m->w.ll[0].down_w[k], m->g.ll[0].down_w[k], "layers.0.mlp.down_proj");
    k = argmax_abs(m->g.ll[1].q_w, (size_t)mc.hidden * mc.hidden);
    check_fd(objective, &x, &m->w.ll[1].q_w[k], m->g.ll[1].q_w[k], "layers.1.self_attn.q_proj");
    free(diff);
    free(plain);
    vt_ross_free(r);
    free(t);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

static void test_gradients_denoise(void **state) {
    (void)state;
    gradients(VT_ROSS_DENOISE);
}

static void test_gradients_regress(void **state) {
    (void)state;
    gradients(VT_ROSS_REGRESS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_unchanged),
        cmocka_unit_test(test_gradients_denoise),
        cmocka_unit_test(test_gradients_regress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
