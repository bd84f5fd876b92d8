/* Held-out selection and the validation pass of `vistune train`: the train
 * list holds exactly the SPLIT_TRAIN samples (everything when the store has
 * no splits), the sampler over it never hands out a val or test sample in
 * any step, rank or micro-batch of several epochs; vt_validate counts every
 * item under its task, its loss equals a per-item forward computed here, and
 * it leaves parameters and gradients untouched; bad arguments are errors. */
#include <math.h>
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
#include "pipeline/sampler.h"
#include "pipeline/store.h"
#include "trainer/heldout.h"
#include "trainer/model.h"

enum { S = 32, T = 96, COUNT = 30 };
static char split_dir[512], flat_dir[512];

static int expected_split(int i) {
    return i % 5 == 0 ? VT__SPLIT__SPLIT_VAL : i % 7 == 3 ? VT__SPLIT__SPLIT_TEST : VT__SPLIT__SPLIT_TRAIN;
}

static void make_store(const char *dir, int with_splits) {
    vt_error err = {0};
    vt_remove_tree(dir, &err);
    vt_store_writer *w;
    vt_store_writer_opts o = {.source = "test"};
    assert_int_equal(vt_store_writer_open(dir, &o, &w, &err), VT_OK);
    vt_rng r;
    vt_rng_init(&r, 5);
    static uint8_t px[S * S * 3];
    for (int i = 0; i < COUNT; i++) {
        for (int k = 0; k < S * S * 3; k++) px[k] = (uint8_t)vt_rng_u32(&r);
        vt_image img = {S, S, px};
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
        u.text = i % 2 ? "<image>\nHow many shapes?" : "<image>\nWhat color is the circle?";
        a.role = VT__ROLE__ROLE_ASSISTANT;
        a.text = i % 2 ? "3" : "red";
        Vt__Turn *turns[2] = {&u, &a};
        Vt__Sample s = VT__SAMPLE__INIT;
        s.image = &im;
        s.n_turns = 2;
        s.turns = turns;
        s.task = i % 2 ? "count" : "color";
        s.split = with_splits ? expected_split(i) : VT__SPLIT__SPLIT_UNSPECIFIED;
        assert_int_equal(vt_store_writer_put(w, &s, NULL, &err), VT_OK);
        free(webp);
    }
    assert_int_equal(vt_store_writer_finish(w, &err), VT_OK);
}

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("VT_TEST_TMP");
    snprintf(split_dir, sizeof split_dir, "%s/heldout_split", tmp ? tmp : "/tmp");
    snprintf(flat_dir, sizeof flat_dir, "%s/heldout_flat", tmp ? tmp : "/tmp");
    make_store(split_dir, 1);
    make_store(flat_dir, 0);
    return 0;
}

static vt_dataset *open_dataset(const char *dir) {
    vt_dataset_config c;
    vt_dataset_config_default(&c);
    c.store = dir;
    c.image_size = S;
    c.n_image_tokens = (S / 8) * (S / 8);
    c.seq_len = T;
    c.seed = 3;
    c.system = "";
    vt_dataset *d = NULL;
    vt_error err = {0};
    assert_int_equal(vt_dataset_open(&c, &d, &err), VT_OK);
    return d;
}

static void test_split_lists(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(split_dir);
    vt_heldout_split sp;
    vt_error err = {0};
    assert_int_equal(vt_heldout_split_build(d, &sp, &err), VT_OK);
    assert_true(sp.has_splits);
    size_t nt = 0, nv = 0;
    for (int i = 0; i < COUNT; i++) {
        if (expected_split(i) == VT__SPLIT__SPLIT_TRAIN) assert_int_equal(sp.train[nt++], i);
        if (expected_split(i) == VT__SPLIT__SPLIT_VAL) assert_int_equal(sp.val[nv++], i);
    }
    assert_int_equal(sp.n_train, nt);
    assert_int_equal(sp.n_val, nv);
    assert_true(nv == 6 && nt + nv < COUNT); /* the test samples are in neither list */
    vt_heldout_split_free(&sp);
    vt_dataset_close(d);

    d = open_dataset(flat_dir);
    assert_int_equal(vt_heldout_split_build(d, &sp, &err), VT_OK);
    assert_false(sp.has_splits);
    assert_int_equal(sp.n_train, COUNT);
    assert_int_equal(sp.n_val, 0);
    for (int i = 0; i < COUNT; i++) assert_int_equal(sp.train[i], i);
    vt_heldout_split_free(&sp);
    vt_dataset_close(d);
}

/* Every slice of every step of three epochs, 2 ranks x 2 micro-batches:
 * only train samples, none twice within an epoch. */
static void test_no_val_in_training_batches(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(split_dir);
    vt_heldout_split sp;
    vt_error err = {0};
    assert_int_equal(vt_heldout_split_build(d, &sp, &err), VT_OK);
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = sp.n_train, .seed = 9, .global_batch = 4, .indices = sp.train};
    assert_int_equal(vt_sampler_init(&s, &sc, &err), VT_OK);
    uint64_t spe = vt_sampler_steps_per_epoch(&s);
    assert_int_equal(spe, sp.n_train / 4);
    for (uint64_t e = 0; e < 3; e++) {
        int seen[COUNT] = {0};
        for (uint64_t st = 0; st < spe; st++)
            for (uint32_t r = 0; r < 2; r++)
                for (uint32_t m = 0; m < 2; m++) {
                    uint64_t out[1];
                    assert_int_equal(vt_sampler_slice(&s, e, st, r, 2, m, 2, out, &err), VT_OK);
                    assert_true(out[0] < COUNT);
                    int split = -1;
                    assert_int_equal(vt_dataset_split(d, out[0], &split, &err), VT_OK);
                    assert_int_equal(split, VT__SPLIT__SPLIT_TRAIN);
                    assert_int_equal(seen[out[0]]++, 0);
                }
    }
    vt_sampler_free(&s);
    vt_heldout_split_free(&sp);
    vt_dataset_close(d);
}

static void test_validate(void **state) {
    (void)state;
    vt_dataset *d = open_dataset(split_dir);
    vt_heldout_split sp;
    vt_error err = {0};
    assert_int_equal(vt_heldout_split_build(d, &sp, &err), VT_OK);
    vt_ctx *ctx;
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    vt_model_config mc;
    vt_model_config_default(&mc);
    mc.vocab = vt_dataset_vocab_size(d);
    mc.image_token_index = vt_dataset_template(d)->image_token;
    mc.image_size = S;
    vt_model *m;
    assert_int_equal(vt_model_create(&m, ctx, &mc, 7, &err), VT_OK);
    assert_int_equal(vt_model_zero_grad(m, &err), VT_OK);
    float *before = malloc(m->num_params * sizeof *before);
    memcpy(before, m->params, m->num_params * sizeof *before);

    vt_batch b;
    vt_batch_shape shape = {4, 3, S, S, T};
    assert_int_equal(vt_batch_alloc(&b, &shape, &err), VT_OK);
    vt_val_result v;
    vt_status st = vt_validate(m, d, sp.val, sp.n_val, &b, 6, &v, &err);
    if (st) fprintf(stderr, "validate: %s\n", err.msg);
    assert_int_equal(st, VT_OK);
    assert_int_equal(b.shape.batch, 4);
    assert_int_equal(v.n_items, sp.n_val);
    /* val items 0,5,10,15,20,25: color for even, count for odd. */
    assert_int_equal(v.n_types, 2);
    assert_string_equal(v.types[0].task, "color");
    assert_string_equal(v.types[1].task, "count");
    assert_int_equal(v.types[0].n, 3);
    assert_int_equal(v.types[1].n, 3);
    assert_true(v.accuracy >= 0 && v.accuracy <= 1);
    assert_true(fabs(v.accuracy - (v.types[0].correct + v.types[1].correct) / 6.0) < 1e-12);
    /* The loss, one item at a time here. */
    vt_batch_source src = vt_dataset_source(d);
    double sum = 0;
    int64_t cnt = 0;
    b.shape.batch = 1;
    for (size_t i = 0; i < sp.n_val; i++) {
        b.sample_indices[0] = sp.val[i];
        assert_int_equal(src.fill(src.ctx, &b, &err), VT_OK);
        float l;
        assert_int_equal(vt_model_forward(m, &b, VT_FORWARD_LOSS, &l, &err), VT_OK);
        sum += (double)l * m->loss_count;
        cnt += m->loss_count;
    }
    b.shape.batch = 4;
    assert_int_equal(v.loss_tokens, cnt);
    assert_true(isfinite(v.loss) && fabs(v.loss - sum / (double)cnt) <= 1e-5 * fabs(v.loss));
    /* Nothing of the training state moved. */
    assert_memory_equal(before, m->params, m->num_params * sizeof *before);
    for (size_t i = 0; i < m->num_trainable; i++) assert_true(m->grads[i] == 0.0f);
    vt_val_result_free(&v);

    /* Bad arguments: no room to generate, max_new < 1. */
    assert_int_equal(vt_validate(m, d, sp.val, sp.n_val, &b, T, &v, &err), VT_ERR_RANGE);
    assert_int_equal(vt_validate(m, d, sp.val, sp.n_val, &b, 0, &v, &err), VT_ERR_ARG);

    free(before);
    vt_batch_free(&b);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    vt_heldout_split_free(&sp);
    vt_dataset_close(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_lists),
        cmocka_unit_test(test_no_val_in_training_batches),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
