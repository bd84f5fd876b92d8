/* Greedy decoding: a batch of prompts of different lengths decodes exactly
 * like each prompt alone (right padding never leaks into a row), every
 * emitted token is the argmax of a fresh forward over the extended row, a
 * row stops at EOS, and a prompt that leaves no room is an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"
#include "trainer/generate.h"

enum { B = 3, T = 40, NEW = 8 };

static vt_model *make_model(vt_ctx **ctx) {
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(ctx, NULL, &err), VT_OK);
    vt_model_config c;
    vt_model_config_default(&c);
    c.init_std = 0.5f; /* sharp logits, so argmax ties cannot happen by accident */
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, *ctx, &c, 7, &err), VT_OK);
    return m;
}

/* Row b: text tokens, N image tokens, text tokens; prompt length varies. */
static void fill_prompts(vt_batch *batch, const vt_model *m, int rows, const int *lens) {
    int N = vt_model_image_tokens(&m->cfg);
    vt_rng r;
    vt_rng_init(&r, 99);
    size_t npix = (size_t)3 * m->cfg.image_size * m->cfg.image_size;
    for (int b = 0; b < rows; b++) {
        for (size_t i = 0; i < npix; i++) batch->pixels[b * npix + i] = (float)vt_rng_normal(&r);
        for (int t = 0; t < T; t++) batch->tokens[b * T + t] = 0;
        for (int t = 0; t < lens[b]; t++)
            batch->tokens[b * T + t] = (t >= 2 && t < 2 + N) ? m->cfg.image_token_index
                                                              : (int32_t)(1 + vt_rng_below(&r, 250));
        batch->lengths[b] = lens[b];
    }
}

static void alloc_batch(vt_batch *batch, const vt_model *m, int rows) {
    vt_batch_shape s = {.batch = (uint32_t)rows, .channels = 3, .height = (uint32_t)m->cfg.image_size,
                        .width = (uint32_t)m->cfg.image_size, .seq_len = T};
    vt_error err = {0};
    assert_int_equal(vt_batch_alloc(batch, &s, &err), VT_OK);
}

static void test_batched_equals_single_and_argmax(void **state) {
    (void)state;
    vt_ctx *ctx;
    vt_model *m = make_model(&ctx);
    const int lens[B] = {20, 25, 31};
    vt_batch batch;
    alloc_batch(&batch, m, B);
    fill_prompts(&batch, m, B, lens);
    int32_t out[B * NEW], out_len[B];
    vt_error err = {0};
    assert_int_equal(vt_generate_greedy(m, &batch, NEW, -1, -1, out, out_len, &err), VT_OK);
    for (int b = 0; b < B; b++) assert_int_equal(out_len[b], NEW); /* no EOS: full length */

    /* Each row alone, in a one-row batch (same model, same T). */
    vt_ctx *ctx_single;
    vt_model *single = make_model(&ctx_single);
    for (int b = 0; b < B; b++) {
        vt_batch one;
        alloc_batch(&one, single, 1);
        vt_batch all;
        alloc_batch(&all, single, B);
        fill_prompts(&all, single, B, lens);
        memcpy(one.pixels, all.pixels + (size_t)b * 3 * single->cfg.image_size * single->cfg.image_size,
               sizeof(float) * 3 * single->cfg.image_size * single->cfg.image_size);
        memcpy(one.tokens, all.tokens + (size_t)b * T, sizeof(int32_t) * T);
        one.lengths[0] = lens[b];
        int32_t o1[NEW], l1;
        assert_int_equal(vt_generate_greedy(single, &one, NEW, -1, -1, o1, &l1, &err), VT_OK);
        assert_int_equal(l1, NEW);
        assert_memory_equal(o1, out + b * NEW, sizeof o1);
        /* The last token is the argmax of a fresh forward over the row. */
        one.lengths[0]--;
        assert_int_equal(vt_model_forward(single, &one, VT_FORWARD_LOGITS, NULL, &err), VT_OK);
        const float *lg = vt_model_logits(single) + (size_t)(one.lengths[0] - 1) * single->cfg.vocab;
        int best = 0;
        for (int v = 1; v < single->cfg.vocab; v++)
            if (lg[v] > lg[best]) best = v;
        assert_int_equal(best, o1[NEW - 1]);
        vt_batch_free(&one);
        vt_batch_free(&all);
    }
    vt_model_free(single);
    vt_ctx_destroy(ctx_single);
    vt_batch_free(&batch);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

static void test_stops_at_eos_and_checks_room(void **state) {
    (void)state;
    vt_ctx *ctx;
    vt_model *m = make_model(&ctx);
    const int lens[B] = {20, 25, 31};
    vt_batch batch;
    alloc_batch(&batch, m, B);
    fill_prompts(&batch, m, B, lens);
    int32_t out[B * NEW], out_len[B];
    vt_error err = {0};
    assert_int_equal(vt_generate_greedy(m, &batch, NEW, -1, -1, out, out_len, &err), VT_OK);
    /* Declaring row 1's third token the EOS stops row 1 after two tokens
     * (unless that id already appeared earlier in the row). */
    int32_t eos = out[1 * NEW + 2];
    int expect = 2;
    for (int k = 0; k < 2; k++)
        if (out[NEW + k] == eos) expect = k;
    fill_prompts(&batch, m, B, lens);
    int32_t out2[B * NEW], len2[B];
    assert_int_equal(vt_generate_greedy(m, &batch, NEW, eos, -1, out2, len2, &err), VT_OK);
    assert_int_equal(len2[1], expect);
    assert_int_equal(batch.lengths[1], lens[1] + expect);
    /* No room for NEW tokens after a 35-token prompt in T = 40. */
    const int long_lens[B] = {20, 35, 31};
    fill_prompts(&batch, m, B, long_lens);
    assert_int_equal(vt_generate_greedy(m, &batch, NEW, -1, -1, out, out_len, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "row 1: prompt of 35 tokens + 8 new exceeds the batch length 40"));
    vt_batch_free(&batch);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_single_and_argmax),
        cmocka_unit_test(test_stops_at_eos_and_checks_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
