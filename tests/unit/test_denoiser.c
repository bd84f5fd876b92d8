/* ROSS denoiser, pure logic: the cosine schedule's values and shape, the
 * zero-initialised output (prediction 0, loss = mean eps^2, only the output
 * layer gets a gradient on the first step), the noise key's determinism,
 * config keys and bad values, pixel-patch targets in the patch embedding's
 * order, save/load, and call-order errors. Gradients are checked against
 * PyTorch in parity.denoiser. */
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
#include "common/rng.h"
#include "ops/ctx.h"
#include "trainer/denoiser.h"

#define assert_close(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static void test_cosine_schedule(void **state) {
    (void)state;
    double ab[1000];
    vt_ross_cosine_schedule(1000, ab);
    /* alpha_bar(1/T) / alpha_bar(0) with alpha_bar(s) = cos((s + 0.008) / 1.008 pi/2)^2 */
    double f0 = cos(0.008 / 1.008 * M_PI / 2), f1 = cos((0.001 + 0.008) / 1.008 * M_PI / 2);
    assert_close(ab[0], (f1 * f1) / (f0 * f0), 1e-15);
    assert_close(ab[0], 0.999958715775178, 1e-12);
    assert_close(ab[499], 0.4938435904406382, 1e-12);
    /* the last beta is clipped to 0.999 (alpha_bar(1) = 0 would make it 1) */
    assert_close(ab[999], ab[998] * 0.001, 1e-20);
    assert_close(ab[999] / 2.4287669070348567e-09, 1.0, 1e-9);
    for (int t = 1; t < 1000; t++) assert_true(ab[t] < ab[t - 1]);
    assert_true(ab[999] > 0.0 && ab[0] < 1.0);
}

static vt_denoiser *make(vt_ctx *ctx, vt_ross_variant variant, uint64_t seed) {
    vt_denoiser_config c;
    vt_denoiser_config_default(&c);
    c.variant = variant;
    c.width = 16;
    c.depth = 2;
    c.heads = 4;
    c.freq_dim = 32;
    c.draws = 3;
    vt_error err = {0};
    assert_int_equal(vt_denoiser_config_resolve(&c, 24, 2, 12, &err), VT_OK);
    vt_denoiser *dn = NULL;
    assert_int_equal(vt_denoiser_create(&dn, ctx, &c, seed, &err), VT_OK);
    return dn;
}

static void test_zero_init(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_denoiser *dn = make(ctx, VT_ROSS_DENOISE, 9);
    enum { NI = 2, N = 4, D = 24, C = 12, K = 3 };
    float cond[NI * N * D], tgt[NI * N * C], eps[NI * K * N * C], dcond[NI * N * D] = {0};
    int32_t t[NI * K];
    vt_rng r;
    vt_rng_init(&r, 5);
    for (int i = 0; i < NI * N * D; i++) cond[i] = (float)vt_rng_normal(&r);
    for (int i = 0; i < NI * N * C; i++) tgt[i] = (float)vt_rng_normal(&r);
    vt_denoiser_noise(&dn->cfg, NI, 77, t, eps);
    vt_denoiser_zero_grad(dn);
    assert_int_equal(vt_denoiser_forward(dn, cond, tgt, NI, t, eps, &err), VT_OK);
    const float *pred = vt_denoiser_prediction(dn);
    double sq = 0;
    for (int i = 0; i < NI * K * N * C; i++) {
        assert_true(pred[i] == 0.0f);
        sq += (double)eps[i] * eps[i];
    }
    assert_close(dn->loss, sq / (NI * K * N * C), 1e-9);
    assert_int_equal(vt_denoiser_backward(dn, dcond, 1.0f, &err), VT_OK);
    /* adaLN-Zero: only the output projection learns on the first step, and
     * nothing reaches the condition yet */
    for (int i = 0; i < dn->ntensors; i++) {
        const vt_denoiser_tensor *tt = &dn->tensors[i];
        double s = 0;
        for (size_t k = 0; k < tt->numel; k++) s += fabs(dn->grads[tt->offset + k]);
        if (strstr(tt->name, "final.linear")) assert_true(s > 0);
        else assert_true(s == 0);
    }
    for (int i = 0; i < NI * N * D; i++) assert_true(dcond[i] == 0.0f);
    /* the embedders are initialised (not zero), the modulations are zero */
    for (int i = 0; i < dn->ntensors; i++) {
        const vt_denoiser_tensor *tt = &dn->tensors[i];
        double s = 0;
        for (size_t k = 0; k < tt->numel; k++) s += fabs(dn->params[tt->offset + k]);
        bool zero = strstr(tt->name, "adaln") || strstr(tt->name, "final.linear") || !tt->decay;
        assert_true(zero ? s == 0 : s > 0);
    }
    /* REGRESS: prediction 0 too, loss = mean target^2, t/eps not needed */
    vt_denoiser *rg = make(ctx, VT_ROSS_REGRESS, 9);
    assert_int_equal(vt_denoiser_forward(rg, cond, tgt, NI, NULL, NULL, &err), VT_OK);
    sq = 0;
    for (int i = 0; i < NI * N * C; i++) sq += (double)tgt[i] * tgt[i];
    assert_close(rg->loss, sq / (NI * N * C), 1e-9);
    vt_denoiser_free(rg);
    vt_denoiser_free(dn);
    vt_ctx_destroy(ctx);
}

static void test_noise_key(void **state) {
    (void)state;
    vt_denoiser_config c;
    vt_denoiser_config_default(&c);
    vt_error err = {0};
    assert_int_equal(vt_denoiser_config_resolve(&c, 32, 3, 5, &err), VT_OK);
    enum { NC = 9 * 5, K = 4 };
    int32_t t1[3 * K], t2[3 * K], t3[2 * K], t4[3 * K];
    float e1[3 * K * NC], e2[3 * K * NC], e3[2 * K * NC], e4[3 * K * NC];
    uint64_t key = vt_hash4(1234, 17, 2, 1); /* (seed, step, micro, rank) */
    vt_denoiser_noise(&c, 3, key, t1, e1);
    vt_denoiser_noise(&c, 3, key, t2, e2);
    assert_memory_equal(t1, t2, sizeof t1);
    assert_memory_equal(e1, e2, sizeof e1);
    /* image i's draws do not depend on how many images the call has */
    vt_denoiser_noise(&c, 2, key, t3, e3);
    assert_memory_equal(t3, t1, sizeof t3);
    assert_memory_equal(e3, e1, sizeof e3);
    /* another key gives other noise; timesteps stay in range; draws differ */
    vt_denoiser_noise(&c, 3, vt_hash4(1234, 18, 2, 1), t4, e4);
    assert_true(memcmp(e1, e4, sizeof e1) != 0);
    for (int b = 0; b < 3 * K; b++) assert_true(t1[b] >= 0 && t1[b] < 1000);
    assert_true(memcmp(e1, e1 + NC, NC * sizeof(float)) != 0);
    double mean = 0;
    for (int i = 0; i < 3 * K * NC; i++) mean += e1[i];
    assert_true(fabs(mean / (3 * K * NC)) < 0.2);
}

static void test_config(void **state) {
    (void)state;
    const char *y = "ross:\n  variant: regress\n  width: 64\n  depth: 1\n  heads: 8\n  draws: 2\n"
                    "  weight: 0.5\n  mlp_ratio: 2\n";
    vt_config *cfg = NULL;
    vt_error err = {0};
    assert_int_equal(vt_config_parse(y, strlen(y), "run.yaml", &cfg, &err), VT_OK);
    vt_denoiser_config c;
    vt_denoiser_config_default(&c);
    assert_int_equal(vt_denoiser_config_read(cfg, "ross", &c, &err), VT_OK);
    assert_int_equal(c.variant, VT_ROSS_REGRESS);
    assert_int_equal(c.width, 64);
    assert_int_equal(c.depth, 1);
    assert_int_equal(c.heads, 8);
    assert_int_equal(c.draws, 2);
    assert_int_equal(c.steps, 1000);
    assert_int_equal(c.freq_dim, 256);
    assert_close(c.weight, 0.5, 1e-7);
    assert_close(c.mlp_ratio, 2.0, 1e-7);
    vt_config_free(cfg);

    const char *bad[][2] = {{"ross:\n  variant: diffuse\n", "ross.variant"},
                            {"ross:\n  draws: 0\n", "ross.draws"},
                            {"ross:\n  depth: 0\n", "ross.depth"},
                            {"ross:\n  weight: -1\n", "ross.weight"},
                            {"ross:\n  freq_dim: 7\n", "ross.freq_dim"},
                            {"ross:\n  mlp_ratio: 0\n", "ross.mlp_ratio"},
                            {"ross:\n  width: 30\n", "ross.width"},
                            {"ross:\n  width: 32\n  heads: 5\n", "ross.heads"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vt_config_parse(bad[i][0], strlen(bad[i][0]), "run.yaml", &cfg, &err), VT_OK);
        vt_denoiser_config_default(&c);
        assert_int_not_equal(vt_denoiser_config_read(cfg, "ross", &c, &err), VT_OK);
        assert_non_null(strstr(err.msg, bad[i][1]));
        vt_config_free(cfg);
    }
    /* resolve: width 0 = the decoder width (capped at 1024), shape checks */
    vt_denoiser_config_default(&c);
    c.heads = 4;
    assert_int_equal(vt_denoiser_config_resolve(&c, 64, 4, 192, &err), VT_OK);
    assert_int_equal(c.width, 64);
    vt_denoiser_config_default(&c);
    assert_int_equal(vt_denoiser_config_resolve(&c, 4096, 24, 64, &err), VT_OK);
    assert_int_equal(c.width, 1024);
    vt_denoiser_config_default(&c);
    c.width = 18;
    c.heads = 2;
    assert_int_equal(vt_denoiser_config_resolve(&c, 64, 4, 192, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "ross.width"));
    c.width = 24;
    c.heads = 16;
    assert_int_equal(vt_denoiser_config_resolve(&c, 64, 4, 192, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "ross.heads"));
}

static void test_pixel_targets(void **state) {
    (void)state;
    enum { S = 4, P = 2, G = 2, KP = 3 * P * P };
    float pix[2 * 3 * S * S], out[2 * G * G * KP];
    for (int i = 0; i < 2 * 3 * S * S; i++) pix[i] = (float)i;
    vt_error err = {0};
    assert_int_equal(vt_ross_pixel_targets(pix, 2, S, P, NULL, NULL, out, &err), VT_OK);
    /* image 1, token 3 (grid row 1, column 1), channel 2, y 1, x 0 */
    int img = 1, tok = 3, c = 2, y = 1, x = 0;
    float want = pix[((img * 3 + c) * S + (tok / G) * P + y) * S + (tok % G) * P + x];
    assert_true(out[(img * G * G + tok) * KP + (c * P + y) * P + x] == want);
    /* token 1 = row 0, column 1: its first value is pixel (0, 0, 0, 2) */
    assert_true(out[1 * KP] == pix[2]);
    /* undoing a normalisation: mean 0.5, std 0.25 -> (v * 0.25) / 0.5, clamped */
    const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
    float one[3 * S * S];
    for (int i = 0; i < 3 * S * S; i++) one[i] = i == 0 ? 1.0f : i == 1 ? 100.0f : -100.0f;
    assert_int_equal(vt_ross_pixel_targets(one, 1, S, P, mean, sd, out, &err), VT_OK);
    assert_close(out[0], 0.5, 1e-7);
    assert_true(out[1] == 1.0f && out[2] == -1.0f);
    assert_int_equal(vt_ross_pixel_targets(one, 1, 5, 2, NULL, NULL, out, &err), VT_ERR_ARG);
}

static void test_save_load_and_errors(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_denoiser *a = make(ctx, VT_ROSS_DENOISE, 1), *b = make(ctx, VT_ROSS_DENOISE, 2);
    assert_true(memcmp(a->params, b->params, a->num_params * sizeof(float)) != 0);
    for (size_t i = 0; i < a->num_params; i++) a->params[i] += 0.001f * (float)i;
    const char *tmp = getenv("VT_TEST_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/ross.safetensors", tmp ? tmp : ".");
    assert_int_equal(vt_denoiser_save(a, path, &err), VT_OK);
    assert_int_equal(vt_denoiser_load(b, path, &err), VT_OK);
    assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
    /* another depth: refused, naming a tensor */
    vt_denoiser_config c = a->cfg;
    c.depth = 1;
    vt_denoiser *d1 = NULL;
    assert_int_equal(vt_denoiser_create(&d1, ctx, &c, 3, &err), VT_OK);
    assert_int_equal(vt_denoiser_load(d1, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "ross.blocks.1"));
    /* backward before any forward; a failed forward leaves no state */
    assert_int_equal(vt_denoiser_backward(d1, NULL, 1.0f, &err), VT_ERR_STATE);
    float cond[4 * 24] = {0}, tgt[4 * 12] = {0}, eps[3 * 4 * 12] = {0};
    int32_t t[3] = {0, 1000, 5};
    assert_int_equal(vt_denoiser_forward(d1, cond, tgt, 1, t, eps, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "timestep 1000"));
    assert_int_equal(vt_denoiser_backward(d1, NULL, 1.0f, &err), VT_ERR_STATE);
    assert_int_equal(vt_denoiser_forward(d1, cond, tgt, 1, NULL, NULL, &err), VT_ERR_ARG);
    /* no images: loss 0 and an empty backward */
    assert_int_equal(vt_denoiser_forward(d1, cond, tgt, 0, NULL, NULL, &err), VT_OK);
    assert_true(d1->loss == 0.0);
    assert_int_equal(vt_denoiser_backward(d1, NULL, 1.0f, &err), VT_OK);
    vt_denoiser_free(d1);
    vt_denoiser_free(a);
    vt_denoiser_free(b);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cosine_schedule),
        cmocka_unit_test(test_zero_init),
        cmocka_unit_test(test_noise_key),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_pixel_targets),
        cmocka_unit_test(test_save_load_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
