/* Every image-bearing shift of the catalog on the procedural scene:
 * deterministic per seed, different items draw different noise (for the
 * random shifts), no severity is the identity, PSNR vs clean falls with
 * severity (except where the ImageNet-C tables are not monotone, listed
 * below), size and range kept, bad inputs rejected. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "pipeline/shift.h"
#include "pipeline/shift_scene.h"

enum { W = 128, H = 96, N = W * H * 3 };

/* Shifts whose output does not depend on the seed (pure functions of the image). */
static const char *const DETERMINISTIC[] = {"defocus_blur", "zoom_blur", "gaussian_blur", "brightness", "contrast",
                                            "saturate", "pixelate", "jpeg_compression", "low_res",
                                            "joint_defocus_synonym", "joint_jpeg_worddelete",
                                            "joint_lowres_distractor", NULL};

/* Severity pairs (s, s+1) where PSNR may rise because the ImageNet-C table
 * itself is not monotone in effect (measured on this scene at 128x96 and at
 * 224x224 alike; docs/shifts.md):
 * - elastic_transform: s1/s2 use a huge smoothing sigma (170.8, 19.52) with
 *   alpha 488, s3-s5 a tiny sigma (2.44) with alpha 12-29 -- a different
 *   regime; and s3-s5 share the affine jitter 4.88 that dominates the error,
 *   so s4 and s5 tie within noise. Only s3 -> s5 is required to be ordered.
 * - spatter: s1-s3 are "water" and s4-s5 "mud", two different effects.
 * - saturate: s1/s2 desaturate (m .3, .1), s3-s5 oversaturate (m 2, 5, 20).
 * - glass_blur: s1 (2 passes, delta 1) vs s2 (1 pass, delta 2) is not ordered.
 * - frost (and the joint shift on it): s3 -> s4 only lowers a (.7 -> .65)
 *   with b fixed at .7, darkening the image against a bright frost layer,
 *   which partly cancels the blend's brightening.
 * - pixelate: f = .4 vs .3 -- PIL BOX resampling at non-integer ratios
 *   aliases fine texture differently (89 vs 67 px at 224); s3/s4 tie. */
static int exempt(const char *name, int s) {
    if (!strcmp(name, "elastic_transform")) return s <= 2 || s == 4;
    if (!strcmp(name, "spatter")) return s == 3;
    if (!strcmp(name, "saturate")) return s <= 2;
    if (!strcmp(name, "glass_blur")) return s == 1;
    if (!strcmp(name, "frost_proc") || !strcmp(name, "joint_frost_chardelete")) return s == 3;
    if (!strcmp(name, "pixelate")) return s == 3;
    return 0;
}

static int is_deterministic(const char *name) {
    for (int i = 0; DETERMINISTIC[i]; i++)
        if (!strcmp(name, DETERMINISTIC[i])) return 1;
    return 0;
}

static uint8_t clean[N];

static int setup(void **state) {
    (void)state;
    vt_shift_scene(clean, W, H, 7);
    return 0;
}

static void test_catalog_shape(void **state) {
    (void)state;
    size_t n = vt_shift_count(), nimg = 0, ntxt = 0, njoint = 0;
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        const vt_shift *s = vt_shift_at(i);
        assert_non_null(s->name), assert_non_null(s->family), assert_non_null(s->params), assert_non_null(s->note);
        for (size_t j = 0; j < i; j++) assert_string_not_equal(s->name, vt_shift_at(j)->name);
        const vt_shift *f;
        vt_error err;
        assert_int_equal(vt_shift_find(s->name, &f, &err), VT_OK);
        assert_ptr_equal(f, s);
        assert_int_equal(s->image != NULL, (s->modality & VT_SHIFT_IMAGE) != 0);
        assert_int_equal(s->text != NULL, (s->modality & VT_SHIFT_TEXT) != 0);
        nimg += s->modality == VT_SHIFT_IMAGE, ntxt += s->modality == VT_SHIFT_TEXT;
        njoint += s->modality == VT_SHIFT_JOINT;
    }
    assert_null(vt_shift_at(n));
    assert_true(nimg >= 19 && ntxt >= 11 && njoint >= 5);
}

/* Effect vs severity is judged on the mean squared error over NITEMS items:
 * the random shifts draw a new texture/angle/field per (item, severity), so
 * one item alone can invert neighbouring severities by chance. Shifts
 * that draw nothing are judged on one item. */
enum { NITEMS = 6 };

static void test_every_image_shift(void **state) {
    (void)state;
    static uint8_t out[N + 16], again[N], other[N];
    int failures = 0;
    for (size_t i = 0; i < vt_shift_count(); i++) {
        const vt_shift *s = vt_shift_at(i);
        if (!s->image) continue;
        double p[5];
        for (int sev = 1; sev <= 5; sev++) {
            vt_error err;
            double mse = 0;
            int any_differs = 0;
            int nitems = is_deterministic(s->name) ? 1 : NITEMS;
            for (int item = 0; item < nitems; item++) {
                uint64_t seed = vt_shift_seed(42 + (uint64_t)item, s, sev);
                memset(out, 0xA5, sizeof out);
                assert_int_equal(vt_shift_apply_image(s, sev, seed, clean, W, H, out, &err), VT_OK);
                for (int k = N; k < N + 16; k++) assert_int_equal(out[k], 0xA5); /* size kept */
                if (memcmp(out, clean, N) == 0) printf("# %s s%d item %d: identity\n", s->name, sev, item), failures++;
                if (item == 0) {
                    assert_int_equal(vt_shift_apply_image(s, sev, seed, clean, W, H, again, &err), VT_OK);
                    assert_memory_equal(out, again, N); /* deterministic */
                    memcpy(other, out, N);
                } else {
                    any_differs |= memcmp(out, other, N) != 0;
                }
                double se = 0;
                for (int k = 0; k < N; k++) se += ((double)out[k] - clean[k]) * ((double)out[k] - clean[k]);
                mse += se / N / nitems;
            }
            if (any_differs == is_deterministic(s->name)) {
                printf("# %s s%d: other items %s\n", s->name, sev, any_differs ? "differ (expected same)" : "identical");
                failures++;
            }
            p[sev - 1] = 10 * log10(255.0 * 255.0 / mse);
        }
        printf("# %-24s PSNR %6.2f %6.2f %6.2f %6.2f %6.2f\n", s->name, p[0], p[1], p[2], p[3], p[4]);
        for (int sev = 1; sev < 5; sev++)
            if (p[sev] > p[sev - 1] + 1e-9 && !exempt(s->name, sev)) {
                printf("# %s: PSNR rises from s%d to s%d\n", s->name, sev, sev + 1);
                failures++;
            }
        /* the listed exemptions still order their extreme severities */
        if (!strcmp(s->name, "elastic_transform")) assert_true(p[4] < p[2]);
        if (!strcmp(s->name, "spatter")) assert_true(p[2] < p[0] && p[4] < p[3]);
        if (!strcmp(s->name, "saturate")) assert_true(p[1] < p[0] && p[4] < p[2]);
        if (!strcmp(s->name, "frost_proc")) assert_true(p[4] < p[2] && p[2] < p[0]);
        if (!strcmp(s->name, "pixelate")) assert_true(p[4] < p[2]);
    }
    assert_int_equal(failures, 0);
}

/* In-place application (out == in) gives the same result. */
static void test_in_place(void **state) {
    (void)state;
    static uint8_t a[N], b[N];
    const vt_shift *s;
    vt_error err;
    assert_int_equal(vt_shift_find("glass_blur", &s, &err), VT_OK);
    memcpy(b, clean, N);
    assert_int_equal(vt_shift_apply_image(s, 3, 9, clean, W, H, a, &err), VT_OK);
    assert_int_equal(vt_shift_apply_image(s, 3, 9, b, W, H, b, &err), VT_OK);
    assert_memory_equal(a, b, N);
}

/* gaussian_noise adds N(0, sigma) in [0,1] units: on pixels away from the
 * clip bounds the standardised residual has mean 0 and variance 1 (up to
 * rounding to 8 bits, sd 1/sqrt(12)/255 -- negligible next to sigma). */
static void test_gaussian_noise_statistics(void **state) {
    (void)state;
    static const double sigma[5] = {.08, .12, .18, .26, .38};
    static uint8_t flat[N], out[N];
    memset(flat, 128, N);
    const vt_shift *s;
    vt_error err;
    assert_int_equal(vt_shift_find("gaussian_noise", &s, &err), VT_OK);
    for (int sev = 1; sev <= 2; sev++) { /* s1, s2: clipping at 0/255 is >4.8 sigma away */
        assert_int_equal(vt_shift_apply_image(s, sev, vt_shift_seed(1, s, sev), flat, W, H, out, &err), VT_OK);
        double m = 0, v = 0;
        for (int i = 0; i < N; i++) {
            double z = (out[i] - 128.0) / 255.0 / sigma[sev - 1];
            m += z, v += z * z;
        }
        m /= N, v = v / N - m * m;
        assert_true(fabs(m) < 0.03);
        assert_true(fabs(v - 1) < 0.05);
    }
}

/* impulse_noise: the fraction of elements forced to 0 or 255 matches amount. */
static void test_impulse_fraction(void **state) {
    (void)state;
    static uint8_t flat[N], out[N];
    memset(flat, 100, N);
    const vt_shift *s;
    vt_error err;
    assert_int_equal(vt_shift_find("impulse_noise", &s, &err), VT_OK);
    assert_int_equal(vt_shift_apply_image(s, 5, 3, flat, W, H, out, &err), VT_OK);
    int lo = 0, hi = 0;
    for (int i = 0; i < N; i++) lo += out[i] == 0, hi += out[i] == 255;
    assert_true(fabs((lo + hi) / (double)N - .27) < .02);
    assert_true(fabs((double)(lo - hi)) / (double)N < .02);
}

static void test_bad_inputs(void **state) {
    (void)state;
    static uint8_t out[N];
    const vt_shift *s;
    vt_error err;
    assert_int_equal(vt_shift_find("gausian_noise", &s, &err), VT_ERR_ARG);
    assert_null(s);
    assert_non_null(strstr(err.msg, "unknown shift 'gausian_noise'"));
    assert_non_null(strstr(err.msg, "gaussian_noise"));
    assert_int_equal(vt_shift_find("zzzzzzzzzzzzzzzzzz", &s, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "--list"));
    assert_int_equal(vt_shift_find("blur", &s, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "did you mean"));
    assert_int_equal(vt_shift_find("fog", &s, &err), VT_OK);
    assert_int_equal(vt_shift_apply_image(s, 0, 1, clean, W, H, out, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "severity 0"));
    assert_int_equal(vt_shift_apply_image(s, 6, 1, clean, W, H, out, &err), VT_ERR_RANGE);
    assert_int_equal(vt_shift_apply_image(s, 1, 1, clean, 4, 4, out, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "4x4"));
    assert_int_equal(vt_shift_apply_image(s, 1, 1, clean, 100000, 8, out, &err), VT_ERR_RANGE);
}

/* A text-only shift leaves the image alone (evaluators call both halves). */
static void test_text_shift_copies_image(void **state) {
    (void)state;
    static uint8_t out[N];
    const vt_shift *s;
    vt_error err;
    assert_int_equal(vt_shift_find("keyboard", &s, &err), VT_OK);
    assert_int_equal(vt_shift_apply_image(s, 5, 1, clean, W, H, out, &err), VT_OK);
    assert_memory_equal(out, clean, N);
}

/* Seeds separate item, shift, severity. */
static void test_seeds(void **state) {
    (void)state;
    const vt_shift *a = vt_shift_at(0), *b = vt_shift_at(1);
    assert_true(vt_shift_seed(1, a, 1) != vt_shift_seed(2, a, 1));
    assert_true(vt_shift_seed(1, a, 1) != vt_shift_seed(1, b, 1));
    assert_true(vt_shift_seed(1, a, 1) != vt_shift_seed(1, a, 2));
    assert_true(vt_shift_seed(1, a, 1) == vt_shift_seed(1, a, 1));
    assert_true(vt_shift_item_key("coco/123") != vt_shift_item_key("coco/124"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog_shape),          cmocka_unit_test(test_every_image_shift),
        cmocka_unit_test(test_in_place),               cmocka_unit_test(test_gaussian_noise_statistics),
        cmocka_unit_test(test_impulse_fraction),       cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_text_shift_copies_image), cmocka_unit_test(test_seeds),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
