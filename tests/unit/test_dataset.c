/* The dataset reader: store records -> model rows. Pixels are the stored
 * image CLIP-normalised (lossless WebP, so exact), tokens follow the chat
 * template with the image span expanded, targets are the next tokens, the
 * loss mask covers exactly the answer and its end-of-turn token; jitter is
 * seeded by (seed, epoch, index); prompt rows stop open after "ASSISTANT:"
 * and carry the reference; the shift hook sees and changes each row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/fs.h"
#include "common/rng.h"
#include "pipeline/dataset.h"
#include "pipeline/image.h"
#include "pipeline/store.h"

enum { S = 32, N = 16, T = 96, COUNT = 3 };
static char store_dir[512];
static uint8_t images[COUNT][S * S * 3];
static const char *questions[COUNT] = {"<image>\nWhat colour is the circle?", "<image>\nHow many shapes?",
                                       "<image>\nIs there a square?"};
static const char *answers[COUNT] = {"red", "3", "no"};

static int make_store(void **state) {
    (void)state;
    const char *tmp = getenv("VT_TEST_TMP");
    snprintf(store_dir, sizeof store_dir, "%s/dataset_store", tmp ? tmp : "/tmp");
    vt_error err = {0};
    vt_remove_tree(store_dir, &err);
    vt_store_writer *w;
    vt_store_writer_opts o = {.source = "test"};
    assert_int_equal(vt_store_writer_open(store_dir, &o, &w, &err), VT_OK);
    vt_rng r;
    vt_rng_init(&r, 3);
    for (int i = 0; i < COUNT; i++) {
        for (int k = 0; k < S * S * 3; k++) images[i][k] = (uint8_t)vt_rng_u32(&r);
        vt_image img = {S, S, images[i]};
        uint8_t *webp;
        size_t len;
        assert_int_equal(vt_image_encode_webp(&img, 100, true, &webp, &len, &err), VT_OK);
        Vt__Image im = VT__IMAGE__INIT;
        im.webp.data = webp;
        im.webp.len = len;
        im.width = im.height = S;
        im.lossless = true;
        Vt__Turn u = VT__TURN__INIT, a = VT__TURN__INIT;
        u.role = VT__ROLE__ROLE_USER;
        u.text = (char *)questions[i];
        a.role = VT__ROLE__ROLE_ASSISTANT;
        a.text = (char *)answers[i];
        Vt__Turn *turns[2] = {&u, &a};
        Vt__Sample s = VT__SAMPLE__INIT;
        s.image = &im;
        s.n_turns = 2;
        s.turns = turns;
        s.task = "color";
        s.split = i == 2 ? VT__SPLIT__SPLIT_VAL : VT__SPLIT__SPLIT_TRAIN;
        assert_int_equal(vt_store_writer_put(w, &s, NULL, &err), VT_OK);
        free(webp);
    }
    assert_int_equal(vt_store_writer_finish(w, &err), VT_OK);
    return 0;
}

static vt_dataset *open_dataset(double jitter) {
    vt_dataset_config c;
    vt_dataset_config_default(&c);
    c.store = store_dir;
    c.image_size = S;
    c.n_image_tokens = N;
    c.seq_len = T;
    c.jitter = jitter;
    c.seed = 11;
    c.system = ""; /* the vicuna system prompt alone is ~160 byte tokens */
    vt_dataset *d = NULL;
    vt_error err = {0};
    assert_int_equal(vt_dataset_open(&c, &d, &err), VT_OK);
    return d;
}

static void alloc(vt_batch *b, uint32_t rows, const uint64_t *indices) {
    vt_batch_shape shape = {rows, 3, S, S, T};
    vt_error err = {0};
    assert_int_equal(vt_batch_alloc(b, &shape, &err), VT_OK);
    memcpy(b->sample_indices, indices, rows * sizeof *indices);
}

static char *decode(vt_dataset *d, const int32_t *ids, size_t n) {
    char *text = NULL;
    size_t len = 0;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_decode(vt_dataset_tokenizer(d), ids, n, 0, &text, &len, &err), VT_OK);
    return text;
}

static void test_training_rows(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(0);
    assert_int_equal(vt_dataset_count(d), COUNT);
    const uint64_t idx[2] = {1, 0};
    vt_batch b;
    alloc(&b, 2, idx);
    vt_batch_source src = vt_dataset_source(d);
    vt_error err = {0};
    vt_status st = src.fill(src.ctx, &b, &err);
    if (st) fprintf(stderr, "fill: %s\n", err.msg);
    assert_int_equal(st, VT_OK);
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    int32_t image_id = vt_dataset_template(d)->image_token;
    for (int row = 0; row < 2; row++) {
        const uint8_t *src_px = images[idx[row]];
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < S * S; i++)
                assert_float_equal(b.pixels[(size_t)row * 3 * S * S + (size_t)ch * S * S + i],
                                   (src_px[i * 3 + ch] / 255.0f - mean[ch]) / sd[ch], 1e-5);
        const int32_t *tok = b.tokens + row * T, *tgt = b.targets + row * T;
        const uint8_t *m = b.loss_mask + row * T;
        int len = b.lengths[row], images_seen = 0;
        assert_true(len > N && len < T);
        for (int t = 0; t < len; t++) images_seen += tok[t] == image_id;
        assert_int_equal(images_seen, N);
        for (int t = 0; t + 1 < len; t++) assert_int_equal(tgt[t], tok[t + 1]);
        /* The masked targets are exactly the answer and "</s>". */
        int32_t answer[T];
        size_t na = 0;
        for (int t = 0; t < T; t++)
            if (m[t]) answer[na++] = tgt[t];
        char *text = decode(d, answer, na);
        char want[64];
        /* As in LLaVA, the space after "ASSISTANT:" belongs to the answer. */
        snprintf(want, sizeof want, " %s</s>", answers[idx[row]]);
        assert_string_equal(text, want);
        free(text);
        char *prompt = decode(d, tok + N + 1, (size_t)len - N - 1); /* after bos + image span */
        assert_non_null(strstr(prompt, questions[idx[row]] + 8)); /* question without "<image>\n" */
        assert_non_null(strstr(prompt, "ASSISTANT: "));
        free(prompt);
    }
    int split = -1;
    assert_int_equal(vt_dataset_split(d, 2, &split, &err), VT_OK);
    assert_int_equal(split, VT__SPLIT__SPLIT_VAL);
    vt_batch_free(&b);
    vt_dataset_close(d);
}

static void test_jitter_is_seeded_by_epoch_and_index(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(0.3);
    const uint64_t idx[1] = {0};
    vt_batch a, b;
    alloc(&a, 1, idx);
    alloc(&b, 1, idx);
    vt_batch_source src = vt_dataset_source(d);
    vt_error err = {0};
    a.epoch = b.epoch = 4;
    assert_int_equal(src.fill(src.ctx, &a, &err), VT_OK);
    assert_int_equal(src.fill(src.ctx, &b, &err), VT_OK);
    assert_memory_equal(a.pixels, b.pixels, sizeof(float) * 3 * S * S);
    b.epoch = 5;
    assert_int_equal(src.fill(src.ctx, &b, &err), VT_OK);
    assert_memory_not_equal(a.pixels, b.pixels, sizeof(float) * 3 * S * S);
    /* A second handle (another loader) produces the same row. */
    vt_dataset *d2 = open_dataset(0.3);
    vt_batch_source src2 = vt_dataset_source(d2);
    b.epoch = 4;
    assert_int_equal(src2.fill(src2.ctx, &b, &err), VT_OK);
    assert_memory_equal(a.pixels, b.pixels, sizeof(float) * 3 * S * S);
    vt_batch_free(&a);
    vt_batch_free(&b);
    vt_dataset_close(d);
    vt_dataset_close(d2);
}

static int hook_calls;
static vt_status invert_and_shout(void *ctx, uint64_t index, uint8_t *rgb, int w, int h, char **question,
                                  vt_error *err) {
    (void)ctx;
    (void)index;
    (void)err;
    hook_calls++;
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)(255 - rgb[i]);
    size_t n = strlen(*question);
    char *q = malloc(n + 3);
    memcpy(q, *question, n);
    memcpy(q + n, "!!", 3);
    free(*question);
    *question = q;
    return VT_OK;
}

static void test_prompt_rows_and_shift_hook(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(0);
    const uint64_t idx[2] = {2, 0};
    vt_batch b;
    alloc(&b, 2, idx);
    vt_eval_row rows[2] = {{0}};
    vt_error err = {0};
    hook_calls = 0;
    assert_int_equal(vt_dataset_fill_prompts(d, &b, 8, invert_and_shout, NULL, rows, &err), VT_OK);
    assert_int_equal(hook_calls, 2);
    for (int row = 0; row < 2; row++) {
        assert_string_equal(rows[row].reference, answers[idx[row]]);
        assert_string_equal(rows[row].task, "color");
        assert_non_null(strstr(rows[row].question, "!!"));
        char *text = decode(d, b.tokens + row * T + N + 1, (size_t)b.lengths[row] - N - 1);
        size_t n = strlen(text);
        assert_true(n >= 10 && !strcmp(text + n - 10, "ASSISTANT:"));
        assert_non_null(strstr(text, "!!"));
        free(text);
        assert_float_equal(b.pixels[(size_t)row * 3 * S * S],
                           ((255 - images[idx[row]][0]) / 255.0f - 0.48145466f) / 0.26862954f, 1e-5);
        vt_eval_row_free(&rows[row]);
    }
    /* No room for 80 new tokens. */
    assert_int_equal(vt_dataset_fill_prompts(d, &b, 80, NULL, NULL, rows, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "sample 000000000002: prompt of"));
    assert_non_null(strstr(err.msg, "leaves no room for 80 new tokens in seq_len 96"));
    for (int row = 0; row < 2; row++) vt_eval_row_free(&rows[row]);
    vt_batch_free(&b);
    vt_dataset_close(d);
}

static void test_errors(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(0);
    const uint64_t idx[1] = {7};
    vt_batch b;
    alloc(&b, 1, idx);
    vt_batch_source src = vt_dataset_source(d);
    vt_error err = {0};
    assert_int_equal(src.fill(src.ctx, &b, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "000000000007"));
    vt_batch_free(&b);
    vt_dataset_close(d);
    vt_dataset_config c;
    vt_dataset_config_default(&c);
    c.image_size = S;
    c.n_image_tokens = N;
    c.seq_len = T;
    assert_int_equal(vt_dataset_open(&c, &d, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "no store given (data.store)"));
    c.store = "/nonexistent/store";
    assert_int_not_equal(vt_dataset_open(&c, &d, &err), VT_OK);
    assert_non_null(strstr(err.msg, "/nonexistent/store"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_rows), cmocka_unit_test(test_jitter_is_seeded_by_epoch_and_index),
        cmocka_unit_test(test_prompt_rows_and_shift_hook), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, make_store, NULL);
}
