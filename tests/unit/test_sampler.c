/* The sampler's determinism contract: coverage per epoch for R in {1,2,3,4},
 * equal batch counts, epochs differ, elastic resume with a different R,
 * micro-batch splits, remainder modes, and each bad split's error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/sampler.h"

static vt_sampler make(uint64_t n, uint32_t g, uint64_t seed, vt_remainder rem) {
    vt_sampler s;
    vt_sampler_config cfg = {.num_samples = n, .seed = seed, .global_batch = g, .remainder = rem};
    vt_error err = {0};
    assert_int_equal(vt_sampler_init(&s, &cfg, &err), VT_OK);
    return s;
}

/* The whole epoch as rank r of R sees it, concatenated over steps and micros;
 * counts[i] += occurrences. Returns the number of micro-batches. */
static uint64_t rank_epoch(vt_sampler *s, uint64_t epoch, uint32_t r, uint32_t R, uint32_t M,
                           uint32_t *counts) {
    uint32_t b;
    assert_int_equal(vt_sampler_check_split(s, R, M, &b, NULL), VT_OK);
    uint64_t *buf = malloc(b * sizeof *buf);
    uint64_t batches = 0;
    for (uint64_t step = 0; step < vt_sampler_steps_per_epoch(s); step++)
        for (uint32_t m = 0; m < M; m++) {
            assert_int_equal(vt_sampler_slice(s, epoch, step, r, R, m, M, buf, NULL), VT_OK);
            for (uint32_t j = 0; j < b; j++) {
                assert_true(buf[j] < s->cfg.num_samples);
                counts[buf[j]]++;
            }
            batches++;
        }
    free(buf);
    return batches;
}

static void test_exactly_once_when_divisible(void **state) {
    (void)state;
    const uint64_t n = 120;
    for (uint32_t R = 1; R <= 4; R++) {
        vt_sampler s = make(n, 24, 7, VT_REMAINDER_DROP);
        for (uint64_t epoch = 0; epoch < 3; epoch++) {
            uint32_t counts[120] = {0};
            uint64_t first = rank_epoch(&s, epoch, 0, R, 2, counts);
            for (uint32_t r = 1; r < R; r++) assert_int_equal(rank_epoch(&s, epoch, r, R, 2, counts), first);
            assert_int_equal(first, 5 * 2);
            for (uint64_t i = 0; i < n; i++) assert_int_equal(counts[i], 1);
        }
        vt_sampler_free(&s);
    }
}

static void test_drop_remainder_at_most_once(void **state) {
    (void)state;
    const uint64_t n = 125; /* G = 12: 10 steps, 5 samples left out per epoch */
    for (uint32_t R = 1; R <= 4; R++) {
        if (12 % R) continue; /* R=... all of 1..4 divide 12 */
        vt_sampler s = make(n, 12, 3, VT_REMAINDER_DROP);
        assert_int_equal(vt_sampler_steps_per_epoch(&s), 10);
        uint32_t left_out_prev[5] = {0};
        for (uint64_t epoch = 0; epoch < 3; epoch++) {
            uint32_t counts[125] = {0};
            uint64_t first = rank_epoch(&s, epoch, 0, R, 1, counts);
            for (uint32_t r = 1; r < R; r++) assert_int_equal(rank_epoch(&s, epoch, r, R, 1, counts), first);
            uint32_t seen = 0, left = 0, left_out[5] = {0};
            for (uint64_t i = 0; i < n; i++) {
                assert_true(counts[i] <= 1);
                if (counts[i]) seen++;
                else left_out[left++] = (uint32_t)i;
            }
            assert_int_equal(seen, 120);
            assert_int_equal(left, 5);
            /* The left-out set changes between epochs. */
            if (epoch) assert_memory_not_equal(left_out, left_out_prev, sizeof left_out);
            memcpy(left_out_prev, left_out, sizeof left_out);
        }
        vt_sampler_free(&s);
    }
}

static void test_wrap_remainder_at_least_once(void **state) {
    (void)state;
    const uint64_t n = 125; /* G = 12: 11 steps = 132 positions, 7 samples twice */
    for (uint32_t R = 1; R <= 4; R++) {
        vt_sampler s = make(n, 12, 3, VT_REMAINDER_WRAP);
        assert_int_equal(vt_sampler_steps_per_epoch(&s), 11);
        uint32_t counts[125] = {0};
        uint64_t first = rank_epoch(&s, 1, 0, R, 1, counts);
        for (uint32_t r = 1; r < R; r++) assert_int_equal(rank_epoch(&s, 1, r, R, 1, counts), first);
        uint32_t twice = 0;
        for (uint64_t i = 0; i < n; i++) {
            assert_true(counts[i] == 1 || counts[i] == 2);
            twice += counts[i] == 2;
        }
        assert_int_equal(twice, 7);
        vt_sampler_free(&s);
    }
    /* G larger than N is allowed in wrap mode (tiny datasets). */
    vt_sampler s = make(5, 8, 1, VT_REMAINDER_WRAP);
    uint32_t counts[5] = {0};
    assert_int_equal(rank_epoch(&s, 0, 0, 1, 1, counts), 1);
    for (int i = 0; i < 5; i++) assert_true(counts[i] >= 1);
    vt_sampler_free(&s);
}

static void global_order(vt_sampler *s, uint64_t epoch, uint64_t step, uint32_t R, uint32_t M, uint64_t *out) {
    uint32_t b = s->cfg.global_batch / R / M;
    for (uint32_t r = 0; r < R; r++)
        for (uint32_t m = 0; m < M; m++)
            assert_int_equal(vt_sampler_slice(s, epoch, step, r, R, m, M, out + (r * M + m) * b, NULL), VT_OK);
}

static void test_epochs_differ_and_seeds_reproduce(void **state) {
    (void)state;
    vt_sampler a = make(1000, 10, 42, VT_REMAINDER_DROP), b = make(1000, 10, 42, VT_REMAINDER_DROP);
    vt_sampler c = make(1000, 10, 43, VT_REMAINDER_DROP);
    uint64_t x[10], y[10], z[10];
    for (uint64_t step = 0; step < 100; step += 33) {
        global_order(&a, 0, step, 1, 1, x);
        global_order(&a, 1, step, 1, 1, y);
        assert_memory_not_equal(x, y, sizeof x);
        global_order(&b, 0, step, 2, 1, y); /* same seed, another sampler, another R */
        assert_memory_equal(x, y, sizeof x);
        global_order(&c, 0, step, 1, 1, z);
        assert_memory_not_equal(x, z, sizeof x);
    }
    vt_sampler_free(&a);
    vt_sampler_free(&b);
    vt_sampler_free(&c);
}

/* Run to step s with R=2 (M=3), "crash", resume at (epoch, s) with R=3 (M=1)
 * and with R=4 (M=3): the global order equals a single-rank run's. */
static void test_elastic_resume(void **state) {
    (void)state;
    const uint64_t n = 240;
    const uint32_t g = 12;
    vt_sampler ref = make(n, g, 9, VT_REMAINDER_DROP), run = make(n, g, 9, VT_REMAINDER_DROP);
    uint64_t steps = vt_sampler_steps_per_epoch(&ref);
    for (uint64_t epoch = 0; epoch < 2; epoch++)
        for (uint64_t s = 0; s < steps; s++) {
            uint64_t want[12], got[12];
            global_order(&ref, epoch, s, 1, 1, want);
            uint32_t R = epoch == 0 && s < 7 ? 2 : (epoch == 0 ? 3 : 4);
            uint32_t M = R == 2 ? 3 : (R == 3 ? 1 : 3);
            global_order(&run, epoch, s, R, M, got);
            assert_memory_equal(want, got, sizeof want);
        }
    vt_sampler_free(&ref);
    vt_sampler_free(&run);
}

static void test_cursor(void **state) {
    (void)state;
    vt_sampler s = make(20, 4, 1, VT_REMAINDER_DROP); /* 5 steps */
    vt_sampler_cursor c = {.epoch = 0, .step = 4, .micro = 0};
    vt_sampler_cursor_advance(&s, &c, 2);
    assert_int_equal(c.micro, 1);
    vt_sampler_cursor_advance(&s, &c, 2);
    assert_int_equal(c.epoch, 1);
    assert_int_equal(c.step, 0);
    assert_int_equal(c.micro, 0);
    vt_sampler_free(&s);
}

/* Fisher-Yates with an unbiased vt_rng_below: each sample lands in position
 * 0 with probability 1/N. 6000 epochs of N=6: counts near 1000 each. */
static void test_uniform_first_position(void **state) {
    (void)state;
    vt_sampler s = make(6, 1, 5, VT_REMAINDER_DROP);
    uint32_t counts[6] = {0};
    for (uint64_t e = 0; e < 6000; e++) {
        uint64_t x;
        assert_int_equal(vt_sampler_slice(&s, e, 0, 0, 1, 0, 1, &x, NULL), VT_OK);
        counts[x]++;
    }
    for (int i = 0; i < 6; i++) assert_in_range(counts[i], 880, 1120);
    vt_sampler_free(&s);
}

static void test_bad_inputs(void **state) {
    (void)state;
    vt_sampler s;
    vt_error err = {0};
    vt_sampler_config cfg = {.num_samples = 0, .seed = 1, .global_batch = 4};
    assert_int_equal(vt_sampler_init(&s, &cfg, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "empty"));
    cfg.num_samples = 3;
    assert_int_equal(vt_sampler_init(&s, &cfg, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "exceeds the 3 samples"));
    cfg.global_batch = 0;
    assert_int_equal(vt_sampler_init(&s, &cfg, &err), VT_ERR_ARG);
    cfg.global_batch = 2;
    cfg.remainder = (vt_remainder)7;
    assert_int_equal(vt_sampler_init(&s, &cfg, &err), VT_ERR_ARG);

    s = make(100, 12, 1, VT_REMAINDER_DROP);
    uint64_t out[12];
    assert_int_equal(vt_sampler_slice(&s, 0, 0, 0, 5, 0, 1, out, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "global batch 12 is not divisible by the 5 trainer ranks"));
    assert_int_equal(vt_sampler_slice(&s, 0, 0, 0, 2, 0, 4, out, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "per-rank batch 6"));
    assert_int_equal(vt_sampler_slice(&s, 0, 8, 0, 1, 0, 1, out, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "step 8 out of range (8 steps per epoch)"));
    assert_int_equal(vt_sampler_slice(&s, 0, 0, 2, 2, 0, 1, out, &err), VT_ERR_ARG);
    assert_int_equal(vt_sampler_slice(&s, 0, 0, 0, 2, 1, 1, out, &err), VT_ERR_ARG);
    assert_int_equal(vt_sampler_slice(&s, 0, 0, 0, 0, 0, 1, out, &err), VT_ERR_ARG);
    vt_sampler_free(&s);
}

static void test_sample_seed(void **state) {
    (void)state;
    uint64_t a = vt_sampler_sample_seed(1, 0, 5, VT_PURPOSE_AUGMENT);
    assert_true(a == vt_sampler_sample_seed(1, 0, 5, VT_PURPOSE_AUGMENT));
    assert_true(a != vt_sampler_sample_seed(1, 1, 5, VT_PURPOSE_AUGMENT));
    assert_true(a != vt_sampler_sample_seed(1, 0, 6, VT_PURPOSE_AUGMENT));
    assert_true(a != vt_sampler_sample_seed(1, 0, 5, VT_PURPOSE_SHIFT));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exactly_once_when_divisible),
        cmocka_unit_test(test_drop_remainder_at_most_once),
        cmocka_unit_test(test_wrap_remainder_at_least_once),
        cmocka_unit_test(test_epochs_differ_and_seeds_reproduce),
        cmocka_unit_test(test_elastic_resume),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_uniform_first_position),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_sample_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
