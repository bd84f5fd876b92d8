/* vt_normal_noise on the CPU: each stream is the Box-Muller pairs of
 * sequential vt_rng draws from vt_rng_init(key) (the definition the Vittle
 * layer's noise had before it became an op, so runs keep their noise),
 * streams are independent of each other's length, an odd length ends on a
 * cosine value, and bad arguments are refused. The CUDA kernel is compared
 * with this in unit.bottleneck_cuda. */
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
#include "ops/noise.h"

/* The reference: sequential draws, both Box-Muller outputs per pair. */
static void sequential(float *out, size_t n, uint64_t key) {
    vt_rng r;
    vt_rng_init(&r, key);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = vt_rng_uniform_double(&r), u2 = vt_rng_uniform_double(&r);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(rad * sin(th));
    }
}

static void test_matches_sequential_draws(void **state) {
    (void)state;
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&ctx, NULL, &err), VT_OK);
    enum { S = 3, PER = 1001 }; /* odd: the last pair keeps only its cosine */
    uint64_t keys[S] = {1, vt_hash4(7, 8, 9, 0), 0xFFFFFFFFFFFFFFFFull};
    static float got[S * PER], want[PER];
    assert_int_equal(vt_normal_noise(ctx, got, keys, S, PER), VT_OK);
    double sum = 0, sq = 0;
    for (int s = 0; s < S; s++) {
        sequential(want, PER, keys[s]);
        assert_memory_equal(got + (size_t)s * PER, want, sizeof want);
        for (int i = 0; i < PER; i++) sum += got[s * PER + i], sq += (double)got[s * PER + i] * got[s * PER + i];
    }
    /* a standard normal, roughly (3003 draws: mean within 0.1, variance within 0.15) */
    assert_true(fabs(sum / (S * PER)) < 0.1 && fabs(sq / (S * PER) - 1.0) < 0.15);
    /* a stream's values do not depend on how many are asked for */
    float shorter[10];
    assert_int_equal(vt_normal_noise(ctx, shorter, keys + 1, 1, 10), VT_OK);
    assert_memory_equal(shorter, got + PER, sizeof shorter);
    /* bad arguments; nothing asked is nothing done */
    assert_int_equal(vt_normal_noise(ctx, got, keys, -1, 4), VT_ERR_ARG);
    assert_int_equal(vt_normal_noise(ctx, NULL, keys, 1, 4), VT_ERR_ARG);
    assert_int_equal(vt_normal_noise(ctx, got, NULL, 1, 4), VT_ERR_ARG);
    assert_int_equal(vt_normal_noise(ctx, NULL, NULL, 0, 4), VT_OK);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_sequential_draws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
