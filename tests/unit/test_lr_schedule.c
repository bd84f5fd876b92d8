/* Warmup + cosine schedule: the defining points (first warmup step, peak,
 * midpoint, floor), monotonicity, clamping after the end, bad settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "trainer/lr_schedule.h"

/* cmocka 1.1 has no double comparison. */
#define assert_close(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static void test_shape(void **state) {
    (void)state;
    vt_lr_schedule s = {.peak = 1e-3, .floor = 1e-5, .warmup_steps = 10, .total_steps = 110};
    assert_int_equal(vt_lr_schedule_check(&s, NULL), VT_OK);
    assert_close(vt_lr_at(&s, 0), 1e-4, 1e-15);
    assert_close(vt_lr_at(&s, 4), 5e-4, 1e-15);
    assert_close(vt_lr_at(&s, 9), 1e-3, 1e-15);
    assert_close(vt_lr_at(&s, 10), 1e-3, 1e-15);           /* cosine starts at peak */
    assert_close(vt_lr_at(&s, 60), (1e-3 + 1e-5) / 2, 1e-15); /* halfway */
    assert_close(vt_lr_at(&s, 35), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + cos(M_PI / 4)), 1e-15);
    assert_close(vt_lr_at(&s, 110), 1e-5, 1e-15);
    assert_close(vt_lr_at(&s, 1000), 1e-5, 1e-15);
    for (uint64_t t = 10; t < 110; t++) assert_true(vt_lr_at(&s, t + 1) <= vt_lr_at(&s, t));
    for (uint64_t t = 0; t < 9; t++) assert_true(vt_lr_at(&s, t + 1) > vt_lr_at(&s, t));
}

static void test_no_warmup(void **state) {
    (void)state;
    vt_lr_schedule s = {.peak = 2.0, .floor = 0, .warmup_steps = 0, .total_steps = 4};
    assert_int_equal(vt_lr_schedule_check(&s, NULL), VT_OK);
    assert_close(vt_lr_at(&s, 0), 2.0, 1e-15);
    assert_close(vt_lr_at(&s, 2), 1.0, 1e-15);
    assert_close(vt_lr_at(&s, 4), 0.0, 1e-15);
}

static void test_bad_settings(void **state) {
    (void)state;
    vt_error err = {0};
    vt_lr_schedule s = {.peak = 0, .floor = 0, .warmup_steps = 0, .total_steps = 10};
    assert_int_equal(vt_lr_schedule_check(&s, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "train.lr"));
    s.peak = 1e-3;
    s.floor = 2e-3;
    assert_int_equal(vt_lr_schedule_check(&s, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "train.min_lr"));
    s.floor = 0;
    s.warmup_steps = 10;
    assert_int_equal(vt_lr_schedule_check(&s, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "train.warmup_steps"));
    s.total_steps = 0;
    s.warmup_steps = 0;
    assert_int_equal(vt_lr_schedule_check(&s, &err), VT_ERR_ARG);
    s.peak = NAN;
    s.total_steps = 5;
    assert_int_equal(vt_lr_schedule_check(&s, &err), VT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_no_warmup),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
