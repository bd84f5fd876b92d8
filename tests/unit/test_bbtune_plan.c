/* The pure pieces of `vistune bbtune`: how a round is cut over ranks, how
 * retry slack is dealt out without passing the budget, which items a step
 * uses, which token ids carry the context, how a row is prefixed, what the
 * query ledger says after a kill, and that a CMA-ES state copied into a fresh
 * optimiser continues the run exactly (what a checkpoint restores). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "trainer/bbtune.h"
#include "trainer/cmaes.h"

static void test_share(void **state) {
    (void)state;
    for (int n = 0; n < 40; n++)
        for (int R = 1; R <= 7; R++) {
            int next = 0, mn = n, mx = 0;
            for (int r = 0; r < R; r++) {
                int lo, hi;
                vt_bbtune_share(n, R, r, &lo, &hi);
                assert_int_equal(lo, next); /* contiguous, in rank order, nothing twice */
                assert_true(hi >= lo);
                next = hi;
                if (hi - lo < mn) mn = hi - lo;
                if (hi - lo > mx) mx = hi - lo;
            }
            assert_int_equal(next, n); /* every unit once */
            assert_true(mx - mn <= 1);
        }
}

static void test_retry_allowance(void **state) {
    (void)state;
    for (uint64_t slack = 0; slack < 50; slack++)
        for (int R = 1; R <= 5; R++) {
            uint64_t sum = 0;
            for (int r = 0; r < R; r++) {
                uint64_t a = vt_bbtune_retry_allowance(slack, R, r, 3, 2);
                assert_true(a <= 6); /* at most `retries` repeats of the share */
                sum += a;
            }
            assert_true(sum <= slack); /* together never past the budget */
        }
    assert_int_equal(vt_bbtune_retry_allowance(10, 2, 0, 4, 0), 0); /* no retries: no slack */
    assert_int_equal(vt_bbtune_retry_allowance(7, 2, 0, 9, 5), 4);
    assert_int_equal(vt_bbtune_retry_allowance(7, 2, 1, 9, 5), 3);
}

static void test_minibatch(void **state) {
    (void)state;
    enum { N = 10, B = 3 }; /* 3 steps an epoch, one item left out each epoch */
    uint32_t a[B], b[B];
    for (uint64_t epoch = 0; epoch < 4; epoch++) {
        int seen[N] = {0};
        for (uint64_t k = 0; k < 3; k++) {
            vt_bbtune_minibatch(7, epoch * 3 + k, N, B, a);
            vt_bbtune_minibatch(7, epoch * 3 + k, N, B, b);
            assert_memory_equal(a, b, sizeof a); /* a pure function of (seed, step) */
            for (int i = 0; i < B; i++) {
                assert_true(a[i] < N);
                assert_int_equal(seen[a[i]]++, 0); /* no item twice within an epoch */
            }
        }
    }
    int differ = 0;
    for (uint64_t s = 0; s < 6; s++) {
        vt_bbtune_minibatch(7, s, N, B, a);
        vt_bbtune_minibatch(8, s, N, B, b);
        differ |= memcmp(a, b, sizeof a) != 0;
    }
    assert_true(differ); /* the seed matters */
    uint32_t all[N];
    vt_bbtune_minibatch(3, 5, N, N, all); /* batch = every item: a permutation */
    int seen[N] = {0};
    for (int i = 0; i < N; i++) seen[all[i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
}

static void test_pick_ctx_ids(void **state) {
    (void)state;
    int32_t toks[] = {1, 2, 9, 7, 0, 9};
    int32_t ids[3];
    vt_error err = {0};
    /* vocab 10, image token 8: 9 and 7 are used, 8 is the image token */
    assert_int_equal(vt_bbtune_pick_ctx_ids(toks, 6, 10, 8, 3, ids, &err), VT_OK);
    assert_int_equal(ids[0], 6);
    assert_int_equal(ids[1], 5);
    assert_int_equal(ids[2], 4);
    int32_t many[6];
    assert_int_equal(vt_bbtune_pick_ctx_ids(toks, 6, 10, 8, 6, many, &err), VT_ERR_ARG); /* only 6, 5, 4, 3 are free */
    assert_non_null(strstr(err.msg, "only 4"));
}

static void test_prefix_row(void **state) {
    (void)state;
    enum { T = 8, C = 2 };
    const int32_t ids[C] = {50, 51};
    const int32_t tok[T - C] = {1, 2, 3, 4, 0, 0}, tgt[T - C] = {2, 3, 4, 9, 9, 9};
    const uint8_t mask[T - C] = {0, 0, 1, 1, 0, 0};
    int32_t ot[T], og[T], len = 4;
    uint8_t om[T];
    vt_bbtune_prefix_row(ids, C, T, tok, tgt, mask, ot, og, om, &len);
    const int32_t et[T] = {50, 51, 1, 2, 3, 4, 0, 0}, eg[T] = {51, 1, 2, 3, 4, 9, 9, 9};
    const uint8_t em[T] = {0, 0, 0, 0, 1, 1, 0, 0};
    assert_memory_equal(ot, et, sizeof et);
    assert_memory_equal(og, eg, sizeof eg);
    assert_memory_equal(om, em, sizeof em);
    assert_int_equal(len, 6);
}

static void test_ledger(void **state) {
    (void)state;
    assert_int_equal(vt_bbtune_ledger_total(NULL, NULL, 0), 0);
    /* two ranks in the same round: both sends count */
    uint64_t b1[] = {100, 100}, s1[] = {5, 4};
    assert_int_equal(vt_bbtune_ledger_total(b1, s1, 2), 109);
    /* a rank still showing an older round: contained in the newer base */
    uint64_t b2[] = {120, 100}, s2[] = {3, 9};
    assert_int_equal(vt_bbtune_ledger_total(b2, s2, 2), 123);
}

static void test_cmaes_state_roundtrip(void **state) {
    (void)state;
    enum { N = 4 };
    vt_cmaes_options o = {.lambda = 8, .sigma0 = 0.5, .bound = 5, .seed = 3};
    vt_cmaes *a, *b;
    vt_error err = {0};
    assert_int_equal(vt_cmaes_create(&a, N, NULL, &o, &err), VT_OK);
    assert_int_equal(vt_cmaes_create(&b, N, NULL, &o, &err), VT_OK);
    double pop[8 * N], pop2[8 * N], fit[8];
    for (int g = 0; g < 5; g++) { /* a few generations on a sphere around 1 */
        vt_cmaes_ask(a, pop);
        for (int k = 0; k < 8; k++) {
            fit[k] = 0;
            for (int i = 0; i < N; i++) fit[k] += (pop[k * N + i] - 1) * (pop[k * N + i] - 1);
        }
        assert_int_equal(vt_cmaes_tell(a, fit, &err), VT_OK);
    }
    vt_cmaes_state sa = vt_cmaes_get_state(a), sb = vt_cmaes_get_state(b);
    memcpy(sb.mean, sa.mean, N * sizeof(double));
    memcpy(sb.pc, sa.pc, N * sizeof(double));
    memcpy(sb.ps, sa.ps, N * sizeof(double));
    memcpy(sb.C, sa.C, N * N * sizeof(double));
    memcpy(sb.B, sa.B, N * N * sizeof(double));
    memcpy(sb.D, sa.D, N * sizeof(double));
    vt_cmaes_set_state(b, sa.gen, sa.sigma, &sa.rng);
    for (int g = 0; g < 3; g++) {
        vt_cmaes_ask(a, pop);
        vt_cmaes_ask(b, pop2);
        assert_memory_equal(pop, pop2, sizeof pop); /* the restored one samples the same */
        for (int k = 0; k < 8; k++) fit[k] = pop[k * N] * pop[k * N];
        assert_int_equal(vt_cmaes_tell(a, fit, &err), VT_OK);
        assert_int_equal(vt_cmaes_tell(b, fit, &err), VT_OK);
    }
    assert_memory_equal(vt_cmaes_mean(a), vt_cmaes_mean(b), N * sizeof(double));
    assert_int_equal(vt_cmaes_generation(a), vt_cmaes_generation(b));
    vt_cmaes_free(a);
    vt_cmaes_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share),         cmocka_unit_test(test_retry_allowance),
        cmocka_unit_test(test_minibatch),     cmocka_unit_test(test_pick_ctx_ids),
        cmocka_unit_test(test_prefix_row),    cmocka_unit_test(test_ledger),
        cmocka_unit_test(test_cmaes_state_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
