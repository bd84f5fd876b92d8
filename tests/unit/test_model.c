/* The LLaVA model object: config reading and validation, the parameter table
 * (names, sizes, frozen-first layout), deterministic init, Hugging Face
 * export/import (bit-identical round trip, name/shape mismatches), optimizer
 * state round trip, batch validation errors, and freezing: a frozen part gets
 * no gradient while the others' gradients are unchanged. Numerical parity
 * with PyTorch lives in tests/parity/test_model_parity.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/fs.h"
#include "ops/ops.h"
#include "trainer/model.h"
#include "trainer/safetensors.h"

static const char *scratch(void) {
    const char *t = getenv("VT_TEST_TMP");
    return t ? t : "/tmp";
}

static vt_ctx *cpu(void) {
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    vt_ctx_options opt = {.backend = VT_BACKEND_CPU, .threads = 1};
    assert_int_equal(vt_ctx_create(&ctx, &opt, &err), VT_OK);
    return ctx;
}

static float *host_params(vt_model *m) {
    float *h = malloc(sizeof(float) * m->num_params);
    assert_int_equal(vt_ctx_memcpy_d2h(m->ctx, h, m->params, sizeof(float) * m->num_params), VT_OK);
    return h;
}

static void test_config(void **state) {
    (void)state;
    vt_model_config c;
    vt_error err = {0};
    vt_model_config_default(&c);
    assert_int_equal(vt_model_config_validate(&c, &err), VT_OK);
    assert_int_equal(vt_model_image_tokens(&c), 16);
    const char *yaml = "model:\n"
                       "  vision_config: {hidden_size: 48, num_attention_heads: 3, hidden_act: gelu}\n"
                       "  text_config: {num_attention_heads: 8, num_key_value_heads: 4, tie_word_embeddings: true}\n"
                       "  vision_feature_layer: -1\n"
                       "  freeze: {vision_tower: false, language_model: true}\n";
    vt_config *cfg = NULL;
    assert_int_equal(vt_config_parse(yaml, strlen(yaml), "run.yaml", &cfg, &err), VT_OK);
    assert_int_equal(vt_model_config_read(cfg, "model", &c, &err), VT_OK);
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_OK);
    vt_config_free(cfg);
    assert_int_equal(c.v_hidden, 48);
    assert_int_equal(c.v_heads, 3);
    assert_int_equal(c.v_act, VT_ACT_GELU);
    assert_int_equal(c.heads, 8);
    assert_int_equal(c.kv_heads, 4);
    assert_true(c.tie_embeddings);
    assert_int_equal(c.vision_feature_layer, -1);
    assert_false(c.freeze_vision);
    assert_true(c.freeze_language);

    /* Each bad value names its key. */
    struct {
        const char *yaml, *want;
    } bad[] = {
        {"model: {text_config: {num_attention_heads: 5}}\n", "num_attention_heads"},
        {"model: {text_config: {num_key_value_heads: 3}}\n", "num_key_value_heads"},
        {"model: {vision_config: {patch_size: 7}}\n", "patch_size"},
        {"model: {vision_config: {hidden_act: swish2}}\n", "hidden_act"},
        {"model: {vision_feature_layer: 5}\n", "vision_feature_layer"},
        {"model: {text_config: {vocab_size: 0}}\n", "vocab_size"},
        {"model: {text_config: {hidden_size: lots}}\n", "hidden_size"},
        {"model: {freeze: {vision_tower: maybe}}\n", "vision_tower"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vt_model_config_default(&c);
        assert_int_equal(vt_config_parse(bad[i].yaml, strlen(bad[i].yaml), "run.yaml", &cfg, &err), VT_OK);
        vt_status st = vt_model_config_read(cfg, "model", &c, &err);
        vt_config_free(cfg);
        if (st == VT_OK || !strstr(err.msg, bad[i].want))
            fail_msg("'%s': status %d, message '%s'", bad[i].yaml, st, err.msg);
    }
    /* LLaMA without num_key_value_heads = plain multi-head attention. */
    const char *mha = "model: {text_config: {num_attention_heads: 8}}\n";
    vt_model_config_default(&c);
    assert_int_equal(vt_config_parse(mha, strlen(mha), "run.yaml", &cfg, &err), VT_OK);
    assert_int_equal(vt_model_config_read(cfg, "model", &c, &err), VT_OK);
    vt_config_free(cfg);
    assert_int_equal(c.kv_heads, 8);
}

/* Parameter count from the architecture, written out independently of the table. */
static size_t expected_params(const vt_model_config *c) {
    size_t Dv = c->v_hidden, Iv = c->v_inter, P = c->patch_size, N = vt_model_image_tokens(c);
    size_t D = c->hidden, I = c->inter, V = c->vocab, KV = (size_t)c->kv_heads * (D / c->heads);
    size_t vision = Dv + Dv * 3 * P * P + (N + 1) * Dv + 2 * Dv + 2 * Dv +
                    c->v_layers * (4 * (Dv * Dv + Dv) + 4 * Dv + Iv * Dv + Iv + Dv * Iv + Dv);
    size_t proj = D * Dv + D + D * D + D;
    size_t lang = V * D + c->layers * (2 * D * D + 2 * KV * D + 3 * I * D + 2 * D) + D + (c->tie_embeddings ? 0 : V * D);
    return vision + proj + lang;
}

static void test_table_and_init(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model_config c;
    vt_model_config_default(&c);
    vt_error err = {0};
    vt_model *m = NULL, *m2 = NULL, *m3 = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 7, &err), VT_OK);
    assert_int_equal(m->num_params, expected_params(&c));
    /* 5 + 16 per vision layer + 2, 4 projector, 1 + 9 per decoder layer + 2. */
    assert_int_equal(m->ntensors, 5 + 16 * c.v_layers + 2 + 4 + 1 + 9 * c.layers + 2);
    /* Vision frozen by default: it sits first, and only it is outside the trainable suffix. */
    for (int i = 0; i < m->ntensors; i++) {
        const vt_param_info *p = &m->tensors[i];
        assert_int_equal(p->trainable, p->part != VT_PART_VISION);
        assert_int_equal(p->offset >= m->train_offset, p->trainable);
    }
    assert_null(m->g.patch_w);
    assert_null(m->g.vl[0].q_w);
    assert_non_null(m->g.p1_w);
    assert_ptr_equal(m->g.ll[1].down_w, m->grads + (vt_model_find(m, "language_model.model.layers.1.mlp.down_proj.weight")->offset - m->train_offset));
    const vt_param_info *k = vt_model_find(m, "language_model.model.layers.0.self_attn.k_proj.weight");
    assert_non_null(k);
    assert_int_equal(k->shape[0], 32); /* 2 kv heads x 16 */
    assert_int_equal(k->shape[1], 64);
    assert_null(vt_model_find(m, "language_model.model.layers.2.self_attn.k_proj.weight"));
    /* Init: norms 1, biases 0, weights ~ N(0, 0.02) and seeded per name. */
    float *h = host_params(m);
    const vt_param_info *ln = vt_model_find(m, "language_model.model.norm.weight");
    const vt_param_info *b = vt_model_find(m, "multi_modal_projector.linear_1.bias");
    const vt_param_info *e = vt_model_find(m, "language_model.model.embed_tokens.weight");
    for (size_t i = 0; i < ln->numel; i++) assert_true(h[ln->offset + i] == 1.0f);
    for (size_t i = 0; i < b->numel; i++) assert_true(h[b->offset + i] == 0.0f);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < e->numel; i++) {
        s += h[e->offset + i];
        s2 += (double)h[e->offset + i] * h[e->offset + i];
    }
    double mean = s / e->numel, sd = sqrt(s2 / e->numel - mean * mean);
    assert_true(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.002);
    /* Same seed, different layout (vision trainable): same values by name. */
    vt_model_config c2 = c;
    c2.freeze_vision = false;
    assert_int_equal(vt_model_create(&m2, ctx, &c2, 7, &err), VT_OK);
    assert_int_equal(m2->train_offset, 0);
    float *h2 = host_params(m2);
    for (int i = 0; i < m->ntensors; i++) {
        const vt_param_info *p = &m->tensors[i], *q = vt_model_find(m2, p->name);
        assert_memory_equal(h + p->offset, h2 + q->offset, p->numel * sizeof(float));
    }
    assert_int_equal(vt_model_create(&m3, ctx, &c, 8, &err), VT_OK);
    float *h3 = host_params(m3);
    assert_true(memcmp(h + e->offset, h3 + e->offset, e->numel * sizeof(float)) != 0);
    /* Tied embeddings: no lm_head tensor, the view aliases embed_tokens. */
    vt_model *t = NULL;
    c2 = c;
    c2.tie_embeddings = true;
    assert_int_equal(vt_model_create(&t, ctx, &c2, 7, &err), VT_OK);
    assert_null(vt_model_find(t, "language_model.lm_head.weight"));
    assert_ptr_equal(t->w.lm_head, t->w.embed);
    assert_ptr_equal(t->g.lm_head, t->g.embed);
    assert_int_equal(t->num_params, expected_params(&c2));
    free(h);
    free(h2);
    free(h3);
    vt_model_free(t);
    vt_model_free(m);
    vt_model_free(m2);
    vt_model_free(m3);
    vt_ctx_destroy(ctx);
}

static void test_export_import(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model_config c;
    vt_model_config_default(&c);
    vt_error err = {0};
    vt_model *a = NULL, *b = NULL;
    assert_int_equal(vt_model_create(&a, ctx, &c, 1, &err), VT_OK);
    assert_int_equal(vt_model_create(&b, ctx, &c, 2, &err), VT_OK);
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s/export", scratch());
    const char *meta[] = {"step", "42", NULL};
    assert_int_equal(vt_model_export_hf(a, dir, meta, &err), VT_OK);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    vt_st_file *f = NULL;
    assert_int_equal(vt_st_open(file, &f, &err), VT_OK);
    assert_int_equal(vt_st_count(f), a->ntensors);
    assert_string_equal(vt_st_metadata(f, "step"), "42");
    assert_string_equal(vt_st_metadata(f, "format"), "pt");
    vt_st_close(f);
    assert_int_equal(vt_model_import_hf(b, dir, &err), VT_OK);
    float *ha = host_params(a), *hb = host_params(b);
    assert_memory_equal(ha, hb, sizeof(float) * a->num_params);
    free(hb);
    /* config.json reads back into the same configuration. */
    vt_model_config back;
    vt_model_config_default(&back);
    back.vocab = 1; /* overwritten by the file */
    snprintf(file, sizeof file, "%s/config.json", dir);
    assert_int_equal(vt_model_config_from_hf_json(file, &back, &err), VT_OK);
    assert_int_equal(back.vocab, c.vocab);
    assert_int_equal(back.kv_heads, c.kv_heads);
    assert_int_equal(back.v_act, c.v_act);
    assert_true(back.v_ln_eps == c.v_ln_eps && back.rope_theta == c.rope_theta);
    assert_int_equal(back.vision_feature_layer, c.vision_feature_layer);
    assert_int_equal(back.image_token_index, c.image_token_index);

    /* A model of another shape: the first mismatching tensor is named with both shapes. */
    vt_model_config c3 = c;
    c3.inter = 96;
    vt_model *d = NULL;
    assert_int_equal(vt_model_create(&d, ctx, &c3, 1, &err), VT_OK);
    assert_int_equal(vt_model_import_hf(d, dir, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mlp.gate_proj.weight"));
    assert_non_null(strstr(err.msg, "[128, 64]"));
    assert_non_null(strstr(err.msg, "[96, 64]"));
    vt_model_free(d);
    /* Fewer layers: the file has tensors the model does not know. */
    c3 = c;
    c3.layers = 1;
    assert_int_equal(vt_model_create(&d, ctx, &c3, 1, &err), VT_OK);
    assert_int_equal(vt_model_import_hf(d, dir, &err), VT_ERR_FORMAT);
    if (!strstr(err.msg, "language_model.model.layers.1.")) fail_msg("%s", err.msg);
    assert_non_null(strstr(err.msg, "not part of this model"));
    vt_model_free(d);
    /* More layers: a tensor is missing. */
    c3.layers = 3;
    assert_int_equal(vt_model_create(&d, ctx, &c3, 1, &err), VT_OK);
    assert_int_equal(vt_model_import_hf(d, dir, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "layers.2."));
    assert_non_null(strstr(err.msg, "missing"));
    vt_model_free(d);
    /* A tied model reads an untied file's embed_tokens and ignores lm_head. */
    c3 = c;
    c3.tie_embeddings = true;
    assert_int_equal(vt_model_create(&d, ctx, &c3, 1, &err), VT_OK);
    assert_int_equal(vt_model_import_hf(d, dir, &err), VT_OK);
    vt_model_free(d);
    /* Import converts BF16: write one from the exported floats (top halves). */
    snprintf(file, sizeof file, "%s/bf16.safetensors", scratch());
    vt_st_writer *w = vt_st_writer_new();
    uint16_t *bf = malloc(sizeof(uint16_t) * a->num_params);
    for (size_t i = 0; i < a->num_params; i++) {
        uint32_t u;
        memcpy(&u, &ha[i], 4);
        bf[i] = (uint16_t)(u >> 16);
    }
    for (int i = 0; i < a->ntensors; i++) {
        const vt_param_info *p = &a->tensors[i];
        assert_int_equal(vt_st_writer_add(w, p->name, VT_ST_BF16, p->ndim, p->shape, bf + p->offset, &err), VT_OK);
    }
    assert_int_equal(vt_st_writer_write(w, file, &err), VT_OK);
    vt_st_writer_free(w);
    assert_int_equal(vt_model_import_hf(b, file, &err), VT_OK);
    hb = host_params(b);
    for (size_t i = 0; i < a->num_params; i++) {
        uint32_t u;
        memcpy(&u, &hb[i], 4);
        assert_int_equal(u, (uint32_t)bf[i] << 16);
    }
    free(bf);
    free(ha);
    free(hb);
    assert_int_equal(vt_model_import_hf(b, "/nonexistent/dir/model.safetensors", &err), VT_ERR_IO);
    vt_model_free(a);
    vt_model_free(b);
    vt_ctx_destroy(ctx);
}

/* A small real-shaped batch: B=2, sequence 0 with the image at positions 3..18,
 * sequence 1 text only and padded to length 20. */
typedef struct tbatch {
    vt_batch b;
    float pixels[2 * 3 * 32 * 32];
    int32_t tokens[2 * 24], targets[2 * 24], lengths[2];
    uint8_t mask[2 * 24];
} tbatch;

static void make_batch(tbatch *t) {
    memset(t, 0, sizeof *t);
    int T = 24, N = 16;
    for (int i = 0; i < 2 * 3 * 32 * 32; i++) t->pixels[i] = sinf(0.37f * (float)i);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < T; i++) {
            int32_t id = (int32_t)((b * 31 + i * 7) % 256);
            if (b == 0 && i >= 3 && i < 3 + N) id = 287;
            t->tokens[b * T + i] = id;
            t->targets[b * T + i] = (int32_t)((i * 13 + b) % 288);
            t->mask[b * T + i] = (uint8_t)(i >= 19);
        }
    t->lengths[0] = 24;
    t->lengths[1] = 22;
    t->b.shape = (vt_batch_shape){.batch = 2, .channels = 3, .height = 32, .width = 32, .seq_len = 24};
    t->b.pixels = t->pixels;
    t->b.tokens = t->tokens;
    t->b.targets = t->targets;
    t->b.loss_mask = t->mask;
    t->b.lengths = t->lengths;
}

static float *grads_of(vt_model *m, const tbatch *t, float *loss) {
    vt_error err = {0};
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, loss, &err), VT_OK);
    assert_int_equal(vt_model_zero_grad(m, &err), VT_OK);
    assert_int_equal(vt_model_backward(m, 1.0f / (float)m->loss_count, &err), VT_OK);
    float *g = malloc(sizeof(float) * m->num_trainable);
    assert_int_equal(vt_ctx_memcpy_d2h(m->ctx, g, m->grads, sizeof(float) * m->num_trainable), VT_OK);
    return g;
}

/* grads_ready: every report's range [ready_from, n) already holds its final
 * values (snapshot == gradient after the whole backward), the reports come
 * once per decoder block, highest first, and reach down to block 0. */
typedef struct ready_log {
    vt_model *m;
    int n;
    size_t from[8];
    float *snap[8];
} ready_log;

static vt_status log_ready(void *arg, size_t ready_from, vt_error *err) {
    (void)err;
    ready_log *r = arg;
    assert_true(r->n < 8);
    size_t k = r->m->num_trainable - ready_from;
    r->from[r->n] = ready_from;
    r->snap[r->n] = malloc(sizeof(float) * (k ? k : 1));
    memcpy(r->snap[r->n], r->m->grads + ready_from, sizeof(float) * k);
    r->n++;
    return VT_OK;
}

static void test_grads_ready_reports_final_ranges(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t);
    vt_model_config c;
    vt_model_config_default(&c);
    c.layers = 3;
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 5, &err), VT_OK);
    ready_log log = {.m = m};
    m->grads_ready = (vt_grads_ready){.fn = log_ready, .arg = &log};
    float loss;
    float *g = grads_of(m, t, &loss);
    assert_int_equal(log.n, c.layers);
    for (int i = 0; i < log.n; i++) {
        assert_true(log.from[i] < m->num_trainable);
        if (i) assert_true(log.from[i] < log.from[i - 1]);
        size_t k = m->num_trainable - log.from[i];
        assert_memory_equal(log.snap[i], g + log.from[i], sizeof(float) * k);
        free(log.snap[i]);
    }
    /* The last report starts at block 0: below it only the embeddings and
     * the projector, which finish after the decoder. */
    assert_int_equal(log.from[log.n - 1], (size_t)(m->g.ll[0].q_w - m->grads));
    free(g);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    free(t);
}

/* Decoder hooks: forwards run by block, and in the order added within a
 * block, so a later hook sees what an earlier one wrote (ROSS reads the
 * state Vittle's bottleneck made when both sit after the last block);
 * backwards run in exactly the reverse order. One hook per method, at most
 * VT_MODEL_MAX_HOOKS, only after existing blocks; removing one keeps the
 * others' order. */
typedef struct hook_log {
    char calls[32];
    int n;
    float seen; /* h[0] as hook 'b' found it */
} hook_log;

typedef struct hook_arg {
    hook_log *log;
    char name;
} hook_arg;

static vt_status hook_record(void *arg, float *h) {
    hook_arg *a = arg;
    a->log->calls[a->log->n++] = a->name;
    if (a->name == 'a') h[0] = 42.0f;
    if (a->name == 'b') a->log->seen = h[0];
    return VT_OK;
}
/* Distinct functions: the model tells methods apart by their forward. */
#define RECORDING_HOOK(fn)                                                                 \
    static vt_status fn(void *arg, vt_model *m, const vt_batch *b, float *h, vt_error *err) { \
        (void)m, (void)b, (void)err;                                                       \
        return hook_record(arg, h);                                                        \
    }
RECORDING_HOOK(hook_a)
RECORDING_HOOK(hook_b)
RECORDING_HOOK(hook_x)
RECORDING_HOOK(hook_y)
RECORDING_HOOK(hook_z)
static vt_status hook_back(void *arg, vt_model *m, float *dh, vt_error *err) {
    (void)m, (void)dh, (void)err;
    hook_arg *a = arg;
    a->log->calls[a->log->n++] = (char)(a->name - 'a' + 'A');
    return VT_OK;
}

static void test_decoder_hook_order(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t);
    vt_model_config c;
    vt_model_config_default(&c);
    c.layers = 3;
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 5, &err), VT_OK);
    hook_log log = {0};
    hook_arg a = {&log, 'a'}, b = {&log, 'b'}, z = {&log, 'z'};
    vt_decoder_hook ha = {.layer = 2, .forward = hook_a, .backward = hook_back, .arg = &a};
    vt_decoder_hook hb = {.layer = 2, .forward = hook_b, .backward = hook_back, .arg = &b};
    vt_decoder_hook hz = {.layer = 0, .forward = hook_z, .backward = hook_back, .arg = &z};
    assert_int_equal(vt_model_add_hook(m, &ha, &err), VT_OK);
    assert_int_equal(vt_model_add_hook(m, &hb, &err), VT_OK);
    assert_int_equal(vt_model_add_hook(m, &hz, &err), VT_OK);
    float loss;
    free(grads_of(m, t, &loss));
    log.calls[log.n] = 0;
    assert_string_equal(log.calls, "zabBAZ");
    assert_true(log.seen == 42.0f);
    /* the same method twice; a block that does not exist */
    vt_decoder_hook again = ha, beyond = {.layer = 3, .forward = hook_x, .backward = hook_back, .arg = &a};
    again.arg = &b;
    assert_int_equal(vt_model_add_hook(m, &again, &err), VT_ERR_STATE);
    assert_non_null(strstr(err.msg, "already has"));
    assert_int_equal(vt_model_add_hook(m, &beyond, &err), VT_ERR_RANGE);
    /* removing one keeps the others' order */
    vt_model_remove_hook(m, &a);
    assert_int_equal(m->nhooks, 2);
    log.n = 0;
    free(grads_of(m, t, &loss));
    log.calls[log.n] = 0;
    assert_string_equal(log.calls, "zbBZ");
    vt_model_remove_hook(m, &a); /* not there: nothing */
    assert_int_equal(m->nhooks, 2);
    /* a full list */
    assert_int_equal(VT_MODEL_MAX_HOOKS, 4);
    vt_decoder_hook hx = {.layer = 1, .forward = hook_x, .backward = hook_back, .arg = &a};
    vt_decoder_hook hy = {.layer = 1, .forward = hook_y, .backward = hook_back, .arg = &a};
    assert_int_equal(vt_model_add_hook(m, &ha, &err), VT_OK);
    assert_int_equal(vt_model_add_hook(m, &hx, &err), VT_OK);
    assert_int_equal(vt_model_add_hook(m, &hy, &err), VT_ERR_STATE);
    assert_non_null(strstr(err.msg, "4 decoder hooks"));
    while (m->nhooks) vt_model_remove_hook(m, m->hooks[0].arg);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    free(t);
}

static void test_freezing(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t);
    vt_model_config all;
    vt_model_config_default(&all);
    all.freeze_vision = false;
    vt_error err = {0};
    vt_model *full = NULL;
    assert_int_equal(vt_model_create(&full, ctx, &all, 3, &err), VT_OK);
    float loss_full = 0;
    float *gfull = grads_of(full, t, &loss_full);
    assert_int_equal(full->loss_count, 5 + 3); /* positions 19..23; sequence 1 stops at length 22 */
    assert_true(isfinite(loss_full) && loss_full > 4.0f && loss_full < 7.0f); /* ~ln 288 at init */
    /* Default (vision frozen), stage 1 (projector only), decoder only. */
    struct {
        bool fv, fp, fl;
    } cases[] = {{true, false, false}, {true, false, true}, {true, true, false}, {false, true, true}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        vt_model_config c = all;
        c.freeze_vision = cases[k].fv;
        c.freeze_projector = cases[k].fp;
        c.freeze_language = cases[k].fl;
        vt_model *m = NULL;
        assert_int_equal(vt_model_create(&m, ctx, &c, 3, &err), VT_OK);
        float loss = 0;
        float *g = grads_of(m, t, &loss);
        assert_true(loss == loss_full);
        size_t ntrain = 0;
        for (int i = 0; i < m->ntensors; i++) {
            const vt_param_info *p = &m->tensors[i], *q = vt_model_find(full, p->name);
            if (!p->trainable) continue;
            ntrain += p->numel;
            /* Same gradient as the fully trainable model, up to float summation order. */
            const float *a = g + (p->offset - m->train_offset), *b = gfull + q->offset;
            double d = 0, n = 0;
            for (size_t j = 0; j < p->numel; j++) {
                d += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
                n += (double)b[j] * b[j];
            }
            if (sqrt(d) > 1e-5 * sqrt(n) + 1e-12) fail_msg("case %zu: %s differs: %g vs norm %g", k, p->name, sqrt(d), sqrt(n));
        }
        assert_int_equal(ntrain, m->num_trainable);
        free(g);
        vt_model_free(m);
    }
    /* Stage-1 style projector gradients are nonzero (the image reaches the loss). */
    const vt_param_info *p1 = vt_model_find(full, "multi_modal_projector.linear_1.weight");
    double n = 0;
    for (size_t j = 0; j < p1->numel; j++) n += fabs(gfull[p1->offset + j]);
    assert_true(n > 0);
    free(gfull);
    vt_model_free(full);
    /* Everything frozen: backward refuses. */
    vt_model_config c = all;
    c.freeze_vision = c.freeze_projector = c.freeze_language = true;
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 3, &err), VT_OK);
    assert_int_equal(m->num_trainable, 0);
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_OK);
    assert_int_equal(vt_model_backward(m, 1.0f, &err), VT_ERR_STATE);
    vt_model_free(m);
    free(t);
    vt_ctx_destroy(ctx);
}

static void test_batch_errors(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    vt_model_config c;
    vt_model_config_default(&c);
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 3, &err), VT_OK);
    make_batch(t);
    /* Logits-only forward works and leaves no backward possible. */
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_int_equal(vt_model_backward(m, 1.0f, &err), VT_ERR_STATE);
    t->tokens[5] = 300;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "tokens[0][5] = 300"));
    make_batch(t);
    t->tokens[24 + 2] = 287; /* one stray image token in sequence 1 */
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "sequence 1 has 1 image tokens"));
    make_batch(t);
    t->lengths[1] = 25;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "lengths[1] = 25"));
    make_batch(t);
    t->targets[20] = -3; /* counted position */
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_RANGE);
    make_batch(t);
    t->b.shape.height = 16;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "3x32x32"));
    make_batch(t);
    t->b.shape.seq_len = 20; /* smaller batches fit the activations */
    t->lengths[0] = 20;
    t->lengths[1] = 20;
    if (vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err)) fail_msg("%s", err.msg);
    t->b.shape.batch = 3;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "exceeds the activations"));
    make_batch(t);
    t->b.targets = NULL;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, NULL, &err), VT_ERR_ARG);
    vt_model_free(m);
    free(t);
    vt_ctx_destroy(ctx);
}

/* The image reaches the decoder where it should: changing sequence 0's pixels
 * changes its logits at the image positions and every later one (causal
 * attention lets the answer see the image), leaves the positions before the
 * image and the text-only sequence 1 bit-identical; and an image swapped
 * between two sequences swaps their logits after the image. A layout bug
 * (features spliced at the wrong positions, a pixel plane from another row,
 * a mask hiding the image) breaks one of these. */
static void test_image_reaches_logits(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t), *u = malloc(sizeof *u);
    vt_model_config c;
    vt_model_config_default(&c);
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 5, &err), VT_OK);
    const int T = 24, V = c.vocab, P = 3 * 32 * 32;
    size_t nl = (size_t)2 * T * V;
    float *a = malloc(sizeof(float) * nl), *b = malloc(sizeof(float) * nl);
    make_batch(t);
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, a, vt_model_logits(m), sizeof(float) * nl), VT_OK);
    for (int i = 0; i < P; i++) t->pixels[i] = cosf(1.3f * (float)i); /* another image for sequence 0 */
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, b, vt_model_logits(m), sizeof(float) * nl), VT_OK);
    for (int pos = 0; pos < T; pos++) {
        double d = 0, r = 0;
        for (int v = 0; v < V; v++) {
            size_t k = (size_t)pos * V + v;
            d += fabs((double)a[k] - b[k]);
            r += fabs((double)a[k]);
        }
        if (pos < 3) {
            if (d != 0) fail_msg("position %d before the image changed with the image (%g)", pos, d);
        } else if (!(d > 1e-4 * r)) {
            fail_msg("position %d at/after the image does not depend on it (|d| %g, |logits| %g)", pos, d, r);
        }
    }
    assert_memory_equal(a + (size_t)T * V, b + (size_t)T * V, sizeof(float) * (size_t)T * V);
    /* Two sequences with the same text and different images: swapping the
     * images swaps the logits (row r's image drives row r only). */
    make_batch(u);
    memcpy(u->tokens + T, u->tokens, sizeof(int32_t) * (size_t)T);
    u->lengths[1] = T;
    for (int i = 0; i < P; i++) u->pixels[P + i] = cosf(1.3f * (float)i);
    assert_int_equal(vt_model_forward(m, &u->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, a, vt_model_logits(m), sizeof(float) * nl), VT_OK);
    float *tmp = malloc(sizeof(float) * (size_t)P);
    memcpy(tmp, u->pixels, sizeof(float) * (size_t)P);
    memcpy(u->pixels, u->pixels + P, sizeof(float) * (size_t)P);
    memcpy(u->pixels + P, tmp, sizeof(float) * (size_t)P);
    assert_int_equal(vt_model_forward(m, &u->b, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, b, vt_model_logits(m), sizeof(float) * nl), VT_OK);
    size_t row = (size_t)T * V;
    double diff = 0;
    for (size_t k = 0; k < row; k++) {
        assert_true(fabsf(a[k] - b[row + k]) <= 1e-5f * (1.0f + fabsf(a[k])));
        assert_true(fabsf(a[row + k] - b[k]) <= 1e-5f * (1.0f + fabsf(a[row + k])));
        diff += fabs((double)a[k] - a[row + k]);
    }
    assert_true(diff > 0); /* the two images did give different logits */
    free(tmp);
    free(a);
    free(b);
    vt_model_free(m);
    free(t);
    free(u);
    vt_ctx_destroy(ctx);
}

static void test_step_and_optimizer_state(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t);
    vt_model_config c;
    vt_model_config_default(&c);
    vt_error err = {0};
    vt_model *m = NULL, *r = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 5, &err), VT_OK);
    vt_adamw_hparams hp = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    float first = 0, last = 0, norm = 0;
    for (int s = 1; s <= 8; s++) {
        float loss;
        free(grads_of(m, t, &loss));
        if (s == 1) first = loss;
        last = loss;
        assert_int_equal(vt_model_step(m, &hp, s, 1.0f, &norm, &err), VT_OK);
        assert_true(norm > 0 && isfinite(norm));
    }
    assert_true(last < first - 0.1f); /* it learns the fixed batch */
    char path[512];
    snprintf(path, sizeof path, "%s/adam.safetensors", scratch());
    assert_int_equal(vt_model_save_optimizer(m, path, NULL, &err), VT_OK);
    /* Load into a model whose layout differs (vision trainable too): fails, a tensor is missing. */
    vt_model_config c2 = c;
    c2.freeze_vision = false;
    assert_int_equal(vt_model_create(&r, ctx, &c2, 5, &err), VT_OK);
    assert_int_equal(vt_model_load_optimizer(r, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "exp_avg.vision_tower"));
    vt_model_free(r);
    assert_int_equal(vt_model_create(&r, ctx, &c, 6, &err), VT_OK);
    assert_int_equal(vt_model_load_optimizer(r, path, &err), VT_OK);
    float *a = malloc(sizeof(float) * m->num_trainable), *b = malloc(sizeof(float) * m->num_trainable);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, a, m->v, sizeof(float) * m->num_trainable), VT_OK);
    assert_int_equal(vt_ctx_memcpy_d2h(ctx, b, r->v, sizeof(float) * m->num_trainable), VT_OK);
    assert_memory_equal(a, b, sizeof(float) * m->num_trainable);
    free(a);
    free(b);
    vt_model_free(r);
    vt_model_free(m);
    free(t);
    vt_ctx_destroy(ctx);
}

/* Input override (model.h): with EVERY part frozen, the gradient returned
 * at the override rows matches central finite differences of the loss (in
 * double over the float model), the rows really replace the lookup (other
 * tokens at those positions give the same loss), and nothing else changes. */
static double override_loss(vt_model *m, tbatch *t, vt_input_override *o) {
    vt_error err = {0};
    float loss = 0;
    m->input = *o;
    m->input.grad = NULL;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    m->input = (vt_input_override){0};
    return (double)loss * m->loss_count;
}

static void test_input_override_gradient(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    tbatch *t = malloc(sizeof *t);
    make_batch(t);
    vt_model_config c;
    vt_model_config_default(&c);
    c.freeze_vision = c.freeze_projector = c.freeze_language = true;
    vt_error err = {0};
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, ctx, &c, 5, &err), VT_OK);
    assert_int_equal(m->num_trainable, 0);
    int D = c.hidden, T = 24;
    /* rows at sequence 0 positions 0..1 (before its image) and 20, sequence 1 positions 2 and 10 */
    int32_t pos[5] = {0, 1, 20, T + 2, T + 10};
    float *rows = malloc(sizeof(float) * 5 * D), *grad = calloc((size_t)5 * D, sizeof(float));
    for (int i = 0; i < 5 * D; i++) rows[i] = 0.5f * sinf(0.91f * (float)i + 0.3f);
    vt_input_override o = {.n = 5, .pos = pos, .rows = rows, .grad = grad};
    /* the backward refuses a frozen model without an override gradient */
    float loss = 0;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    assert_int_equal(vt_model_backward(m, 1.0f, &err), VT_ERR_STATE);
    m->input = o;
    assert_int_equal(vt_model_forward(m, &t->b, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    double base = (double)loss * m->loss_count;
    assert_int_equal(vt_model_backward(m, 1.0f, &err), VT_OK); /* gradient of the summed loss */
    m->input = (vt_input_override){0};
    /* the token ids under the override do not matter */
    int32_t keep = t->tokens[T + 2];
    t->tokens[T + 2] = 77;
    assert_true(fabs(override_loss(m, t, &o) - base) < 1e-6 * fabs(base));
    t->tokens[T + 2] = keep;
    /* and the rows do */
    double gmax = 0;
    for (int i = 0; i < 5 * D; i++) gmax = fmax(gmax, fabs(grad[i]));
    assert_true(gmax > 1e-3);
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < 5; i++)
        for (int d = 0; d < D; d += 7) {
            float *x = rows + (size_t)i * D + d, x0 = *x;
            const float h = 1e-2f;
            *x = x0 + h;
            double lp = override_loss(m, t, &o);
            *x = x0 - h;
            double lm = override_loss(m, t, &o);
            *x = x0;
            double fd = (lp - lm) / (2.0 * h), an = grad[(size_t)i * D + d];
            double e = fabs(fd - an) / fmax(1e-2, fabs(an));
            if (e > worst) worst = e;
            checked++;
        }
    print_message("input override: %d elements, worst relative error %.3g\n", checked, worst);
    assert_true(worst < 3e-2);
    /* position 20 of sequence 0 is after the last supervised position? no: 19..23 are supervised,
     * so its row reaches the loss; a row past sequence 1's length (22) would not. */
    free(rows);
    free(grad);
    free(t);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_table_and_init),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_freezing),
        cmocka_unit_test(test_grads_ready_reports_final_ranges),
        cmocka_unit_test(test_decoder_hook_order),
        cmocka_unit_test(test_batch_errors),
        cmocka_unit_test(test_image_reaches_logits),
        cmocka_unit_test(test_step_and_optimizer_state),
        cmocka_unit_test(test_input_override_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
