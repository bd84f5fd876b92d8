/* Philox4x32-10 against the Random123 known-answer vectors, plus the
 * properties the determinism contract relies on. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rng.h"

static void test_known_answers(void **state) {
    (void)state;
    uint32_t out[4];
    vt_philox4x32(0, 0, 0, out);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    vt_philox4x32(UINT64_MAX, UINT64_MAX, UINT64_MAX, out);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
    /* counter words (243f6a88, 85a308d3, 13198a2e, 03707344), key (a4093822, 299f31d0) */
    vt_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, out);
    assert_int_equal(out[0], 0xd16cfe09u);
    assert_int_equal(out[1], 0x94fdccebu);
    assert_int_equal(out[2], 0x5001e420u);
    assert_int_equal(out[3], 0x24126ea1u);
}

static void test_streams_are_reproducible_and_distinct(void **state) {
    (void)state;
    vt_rng a, b, c;
    vt_rng_init(&a, vt_hash4(1, 2, 3, 4));
    vt_rng_init(&b, vt_hash4(1, 2, 3, 4));
    vt_rng_init(&c, vt_hash4(1, 2, 3, 5));
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = vt_rng_u32(&a);
        assert_int_equal(x, vt_rng_u32(&b));
        same_c += x == vt_rng_u32(&c);
    }
    assert_true(same_c < 3);
    /* Saving a generator is copying it. */
    vt_rng saved = a;
    uint64_t next = vt_rng_u64(&a);
    assert_true(next == vt_rng_u64(&saved));
}

static void test_distributions(void **state) {
    (void)state;
    vt_rng r;
    vt_rng_init(&r, 42);
    enum { N = 200000, BINS = 10 };
    int bins[BINS] = {0};
    double sum = 0, sumsq = 0;
    for (int i = 0; i < N; i++) {
        float u = vt_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        bins[(int)(u * BINS)]++;
        double z = vt_rng_normal(&r);
        sum += z;
        sumsq += z * z;
    }
    /* Chi-square with 9 dof: 99.9% quantile is 27.9. */
    double chi = 0;
    for (int i = 0; i < BINS; i++) chi += pow(bins[i] - N / BINS, 2) / (N / BINS);
    assert_true(chi < 27.9);
    double mean = sum / N, var = sumsq / N - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[vt_rng_below(&r, 7)]++;
    for (int i = 0; i < 7; i++) assert_true(abs(counts[i] - 10000) < 500);
}

static void test_hashes(void **state) {
    (void)state;
    assert_true(vt_hash4(1, 2, 3, 4) != vt_hash4(1, 2, 4, 3));
    assert_true(vt_hash4(0, 0, 0, 0) != 0);
    assert_true(vt_hash_bytes("gaussian_noise", 14, 0) != vt_hash_bytes("gaussian_noisf", 14, 0));
    assert_true(vt_hash_bytes("abc", 3, 1) != vt_hash_bytes("abc", 3, 2));
    assert_true(vt_hash_bytes("abc", 3, 1) == vt_hash_bytes("abc", 3, 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_streams_are_reproducible_and_distinct),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
