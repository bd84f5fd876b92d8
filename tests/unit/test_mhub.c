/* MMICT M-Hub, pure logic: config keys and bad values, the parameter table
 * (cross-attention only on layers l % cross_every == 0, initialisation,
 * decay flags, seed determinism), the masking contract (padding rows are 0,
 * padding text and other items do not change an item's output, text
 * beyond len does not reach the queries), argument and call-order errors,
 * save/load, and demonstration selection. Values and gradients are checked
 * against PyTorch in parity.mhub. */
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
#include "trainer/mhub.h"

enum { Q = 3, W = 8, V = 6, E = 5, D = 7, NV = 4, L = 5 };

static vt_mhub *make(vt_ctx *ctx, int layers, int cross_every, uint64_t seed) {
    vt_mhub_config c;
    vt_mhub_config_default(&c);
    c.queries = Q;
    c.width = W;
    c.layers = layers;
    c.heads = 2;
    c.cross_every = cross_every;
    c.max_text = L;
    vt_error err = {0};
    assert_int_equal(vt_mhub_config_resolve(&c, V, E, D, &err), VT_OK);
    vt_mhub *h = NULL;
    assert_int_equal(vt_mhub_create(&h, ctx, &c, seed, &err), VT_OK);
    return h;
}

static const vt_mhub_tensor *find(const vt_mhub *h, const char *name) {
    for (int i = 0; i < h->ntensors; i++)
        if (!strcmp(h->tensors[i].name, name)) return &h->tensors[i];
    return NULL;
}

static void test_config(void **state) {
    (void)state;
    const char *y = "icl:\n  queries: 8\n  width: 64\n  layers: 3\n  heads: 8\n  mlp_ratio: 2\n"
                    "  cross_every: 2\n  max_text: 40\n  init_std: 0.01\n";
    vt_config *cfg = NULL;
    vt_error err = {0};
    assert_int_equal(vt_config_parse(y, strlen(y), "run.yaml", &cfg, &err), VT_OK);
    vt_mhub_config c;
    vt_mhub_config_default(&c);
    assert_int_equal(c.queries, 32);
    assert_int_equal(vt_mhub_config_read(cfg, "icl", &c, &err), VT_OK);
    assert_int_equal(c.queries, 8);
    assert_int_equal(c.width, 64);
    assert_int_equal(c.layers, 3);
    assert_int_equal(c.heads, 8);
    assert_int_equal(c.cross_every, 2);
    assert_int_equal(c.max_text, 40);
    assert_true(c.mlp_ratio == 2.0f && fabsf(c.init_std - 0.01f) < 1e-9f);
    vt_config_free(cfg);
    const char *bad[][2] = {
        {"icl:\n  width: 30\n  heads: 4\n", "icl.heads"},
        {"icl:\n  layers: 0\n", "icl.layers"},
        {"icl:\n  queries: -1\n", "icl.queries"},
        {"icl:\n  mlp_ratio: 0\n", "icl.mlp_ratio"},
        {"icl:\n  init_std: -1\n", "icl.init_std"},
        {"icl:\n  cross_every: x\n", "icl.cross_every"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vt_config_parse(bad[i][0], strlen(bad[i][0]), "run.yaml", &cfg, &err), VT_OK);
        vt_mhub_config_default(&c);
        assert_int_not_equal(vt_mhub_config_read(cfg, "icl", &c, &err), VT_OK);
        assert_non_null(strstr(err.msg, bad[i][1]));
        vt_config_free(cfg);
    }
    vt_mhub_config_default(&c);
    assert_int_equal(vt_mhub_config_resolve(&c, 0, 4, 4, &err), VT_ERR_ARG);
}

static void test_params(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_mhub *h = make(ctx, 3, 2, 5);
    /* cross-attention on layers 0 and 2 only */
    assert_non_null(find(h, "mhub.layers.0.cross.kv.weight"));
    assert_null(find(h, "mhub.layers.1.cross.kv.weight"));
    assert_null(find(h, "mhub.layers.1.lnc.weight"));
    assert_non_null(find(h, "mhub.layers.2.cross.q.weight"));
    assert_null(h->w.layers[1].cq_w);
    const vt_mhub_tensor *kv = find(h, "mhub.layers.2.cross.kv.weight");
    assert_int_equal(kv->shape[0], 2 * W);
    assert_int_equal(kv->shape[1], V);
    const vt_mhub_tensor *qs = find(h, "mhub.queries");
    assert_int_equal(qs->shape[0], Q);
    assert_false(qs->decay);
    assert_false(find(h, "mhub.text_pos")->decay);
    assert_true(find(h, "mhub.out.weight")->decay);
    assert_false(find(h, "mhub.out.bias")->decay);
    assert_false(find(h, "mhub.ln_f.weight")->decay);
    /* the tensors tile the buffer exactly */
    size_t total = 0;
    for (int i = 0; i < h->ntensors; i++) {
        assert_int_equal(h->tensors[i].offset, total);
        total += h->tensors[i].numel;
    }
    assert_int_equal(total, h->num_params);
    /* LayerNorm weights 1, biases 0, matrices ~ N(0, 0.02) */
    for (int j = 0; j < V; j++) {
        assert_true(h->w.vln_w[j] == 1.0f);
        assert_true(h->w.vln_b[j] == 0.0f);
    }
    for (int j = 0; j < D; j++) assert_true(h->w.out_b[j] == 0.0f);
    double ss = 0;
    const vt_mhub_tensor *f1 = find(h, "mhub.layers.0.mlp.fc1.weight");
    for (size_t j = 0; j < f1->numel; j++) ss += (double)h->params[f1->offset + j] * h->params[f1->offset + j];
    double sd = sqrt(ss / (double)f1->numel);
    assert_true(sd > 0.012 && sd < 0.028);
    /* same seed -> same parameters; another seed -> different */
    vt_mhub *h2 = make(ctx, 3, 2, 5), *h3 = make(ctx, 3, 2, 6);
    assert_memory_equal(h->params, h2->params, h->num_params * sizeof(float));
    assert_memory_not_equal(h->params, h3->params, h->num_params * sizeof(float));
    vt_mhub_free(h);
    vt_mhub_free(h2);
    vt_mhub_free(h3);
    vt_ctx_destroy(ctx);
}

static void fill(float *p, size_t n, vt_rng *r) {
    for (size_t j = 0; j < n; j++) p[j] = (float)vt_rng_normal(r);
}

static void test_masking(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_mhub *h = make(ctx, 2, 1, 9);
    vt_rng r;
    vt_rng_init(&r, 77);
    /* make the output depend on everything */
    for (size_t j = 0; j < h->num_params; j++) h->params[j] += 0.2f * (float)vt_rng_normal(&r);
    enum { B = 2, T = Q + L };
    float vis[B * NV * V], txt[B * L * E], out1[B * T * D];
    fill(vis, B * NV * V, &r);
    fill(txt, B * L * E, &r);
    int32_t lens[B] = {L, 2};
    assert_int_equal(vt_mhub_forward(h, vis, B, NV, txt, lens, L, &err), VT_OK);
    memcpy(out1, vt_mhub_output(h), sizeof out1);
    /* padding rows of item 1 are zero, real rows are not */
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += fabs(out1[((size_t)T + t) * D + j]);
        if (t < Q + 2) assert_true(s > 0);
        else assert_true(s == 0);
    }
    /* padded text of item 1 does not change any output */
    float txt2[B * L * E];
    memcpy(txt2, txt, sizeof txt);
    for (int t = 2; t < L; t++)
        for (int j = 0; j < E; j++) txt2[((size_t)L + t) * E + j] = 100.0f;
    assert_int_equal(vt_mhub_forward(h, vis, B, NV, txt2, lens, L, &err), VT_OK);
    assert_memory_equal(out1, vt_mhub_output(h), sizeof out1);
    /* item 1 alone (a batch of one, shorter L) gives the same rows */
    float out_single[(Q + 2) * D];
    assert_int_equal(vt_mhub_forward(h, vis + NV * V, 1, NV, txt + L * E, (int32_t[]){2}, 2, &err), VT_OK);
    memcpy(out_single, vt_mhub_output(h), sizeof out_single);
    for (size_t j = 0; j < (size_t)(Q + 2) * D; j++)
        assert_true(fabsf(out_single[j] - out1[(size_t)T * D + j]) <= 1e-5f * (1.0f + fabsf(out_single[j])));
    /* the image reaches the text rows (through the queries) and the text reaches the queries */
    float vis2[B * NV * V];
    memcpy(vis2, vis, sizeof vis);
    vis2[0] += 1.0f;
    assert_int_equal(vt_mhub_forward(h, vis2, B, NV, txt, lens, L, &err), VT_OK);
    assert_true(fabsf(vt_mhub_output(h)[(size_t)(Q + 1) * D] - out1[(size_t)(Q + 1) * D]) > 0);
    assert_memory_equal(vt_mhub_output(h) + (size_t)T * D, out1 + (size_t)T * D, (size_t)T * D * sizeof(float));
    memcpy(txt2, txt, sizeof txt);
    txt2[0] += 1.0f;
    assert_int_equal(vt_mhub_forward(h, vis, B, NV, txt2, lens, L, &err), VT_OK);
    assert_true(fabsf(vt_mhub_output(h)[0] - out1[0]) > 0);
    vt_mhub_free(h);
    vt_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_mhub *h = make(ctx, 1, 1, 1);
    float vis[NV * V] = {0}, txt[(L + 1) * E] = {0}, dout[(Q + L) * D] = {0};
    assert_int_equal(vt_mhub_backward(h, dout, NULL, NULL, &err), VT_ERR_STATE);
    assert_int_equal(vt_mhub_forward(h, vis, 1, NV, txt, (int32_t[]){L + 1}, L, &err), VT_ERR_ARG);
    assert_int_equal(vt_mhub_forward(h, vis, 1, NV, txt, (int32_t[]){-1}, L, &err), VT_ERR_ARG);
    assert_int_equal(vt_mhub_forward(h, vis, 1, NV, txt, (int32_t[]){1}, L + 1, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "max_text"));
    assert_int_equal(vt_mhub_forward(h, vis, 1, 0, txt, (int32_t[]){1}, L, &err), VT_ERR_ARG);
    /* a failed forward leaves nothing to differentiate */
    assert_int_equal(vt_mhub_backward(h, dout, NULL, NULL, &err), VT_ERR_STATE);
    /* an empty batch is fine and leaves the gradients alone */
    assert_int_equal(vt_mhub_forward(h, vis, 0, NV, txt, NULL, L, &err), VT_OK);
    assert_int_equal(vt_mhub_backward(h, dout, NULL, NULL, &err), VT_OK);
    for (size_t j = 0; j < h->num_params; j++) assert_true(h->grads[j] == 0.0f);
    vt_mhub_free(h);
    vt_ctx_destroy(ctx);
}

static void test_save_load(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    const char *tmp = getenv("VT_TEST_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/mhub.safetensors", tmp ? tmp : ".");
    vt_mhub *a = make(ctx, 2, 1, 3), *b = make(ctx, 2, 1, 4), *c = make(ctx, 3, 1, 3);
    assert_int_equal(vt_mhub_save(a, path, &err), VT_OK);
    assert_int_equal(vt_mhub_load(b, path, &err), VT_OK);
    assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
    assert_int_equal(vt_mhub_load(c, path, &err), VT_ERR_FORMAT); /* a layer missing */
    vt_mhub_free(a);
    vt_mhub_free(b);
    vt_mhub_free(c);
    vt_ctx_destroy(ctx);
    remove(path);
}

static void test_select_demos(void **state) {
    (void)state;
    const uint32_t group[10] = {1, 2, 1, 1, 2, 1, 3, 1, 2, 1};
    int out[8], out2[8];
    /* random: same group, never the query, no repeats, deterministic */
    for (uint64_t seed = 0; seed < 20; seed++) {
        int n = vt_mmict_select_demos(group, NULL, 0, 10, 2, 3, seed, out);
        assert_int_equal(n, 3);
        for (int i = 0; i < n; i++) {
            assert_int_equal(group[out[i]], 1);
            assert_int_not_equal(out[i], 2);
            for (int j = 0; j < i; j++) assert_int_not_equal(out[i], out[j]);
        }
        assert_int_equal(vt_mmict_select_demos(group, NULL, 0, 10, 2, 3, seed, out2), 3);
        assert_memory_equal(out, out2, 3 * sizeof(int));
    }
    /* different seeds give different choices somewhere */
    bool differ = false;
    vt_mmict_select_demos(group, NULL, 0, 10, 0, 2, 1, out);
    for (uint64_t seed = 2; seed < 30 && !differ; seed++) {
        vt_mmict_select_demos(group, NULL, 0, 10, 0, 2, seed, out2);
        differ = memcmp(out, out2, 2 * sizeof(int)) != 0;
    }
    assert_true(differ);
    /* a small group: all of it (5 others for group 1), a singleton: none */
    assert_int_equal(vt_mmict_select_demos(group, NULL, 0, 10, 0, 8, 7, out), 5);
    assert_int_equal(vt_mmict_select_demos(group, NULL, 0, 10, 6, 2, 7, out), 0);
    assert_int_equal(vt_mmict_select_demos(group, NULL, 0, 10, 10, 2, 7, out), 0);
    /* similarity: by cosine, most similar first, ties to the lower index */
    const float emb[10 * 2] = {1, 0,  9, 9,  0, 1,  1, 1,  1, 0,  2, 0.1f,  1, 0,  -1, 0,  1, 0,  2, 2};
    int n = vt_mmict_select_demos(group, emb, 2, 10, 0, 3, 0, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 5); /* (2, 0.1): cos 0.9988 */
    assert_int_equal(out[1], 3); /* (1, 1) and (2, 2) tie at 0.707: lower index first */
    assert_int_equal(out[2], 9);
    n = vt_mmict_select_demos(group, emb, 2, 10, 0, 8, 0, out);
    assert_int_equal(n, 5);
    assert_int_equal(out[3], 2); /* (0, 1): cos 0 */
    assert_int_equal(out[4], 7); /* (-1, 0): cos -1 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),      cmocka_unit_test(test_params),
        cmocka_unit_test(test_masking),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_save_load),   cmocka_unit_test(test_select_demos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
