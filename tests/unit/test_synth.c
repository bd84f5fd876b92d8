/* pipeline/synth: determinism in (seed, index), balanced answers per
 * question type (so chance is what docs/data.md says), the group format
 * rules, and pixels that show what the answer claims (the named colour is
 * present for colour/exist=yes questions, absent objects are absent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/synth.h"

static void test_deterministic(void **state) {
    (void)state;
    for (uint64_t i = 0; i < 50; i++) {
        vt_image a, b, c;
        vt_synth_item ia, ib, ic;
        assert_int_equal(vt_synth_make(3, i, 48, &a, &ia, NULL), VT_OK);
        assert_int_equal(vt_synth_make(3, i, 48, &b, &ib, NULL), VT_OK);
        assert_int_equal(vt_synth_make(4, i, 48, &c, &ic, NULL), VT_OK);
        assert_memory_equal(a.rgb, b.rgb, 48 * 48 * 3);
        assert_memory_equal(&ia, &ib, sizeof ia);
        assert_true(memcmp(a.rgb, c.rgb, 48 * 48 * 3) != 0 || strcmp(ia.question, ic.question) != 0);
        vt_image_free(&a);
        vt_image_free(&b);
        vt_image_free(&c);
    }
    vt_image img;
    vt_synth_item it;
    vt_error e = {0};
    assert_int_equal(vt_synth_make(1, 0, 8, &img, &it, &e), VT_ERR_ARG);
}

/* Counts answers per task over many items; each answer's share must be
 * within 25% (relative) of uniform. */
static void test_balanced_answers(void **state) {
    (void)state;
    enum { N = 9000 };
    static const char *const expected[VT_SYNTH_NTASKS][10] = {
        {"red", "green", "blue", "yellow", "purple", "orange", "black"},
        {"circle", "square", "triangle", "diamond", "cross"},
        {"1", "2", "3", "4"},
        {"left", "right", "above", "below"},
        {"yes", "no"},
        {"red", "green", "blue", "yellow", "purple", "orange", "black"},
        {"top left", "top center", "top right", "middle left", "middle center", "middle right",
         "bottom left", "bottom center", "bottom right"},
    };
    int counts[VT_SYNTH_NTASKS][10] = {{0}}, totals[VT_SYNTH_NTASKS] = {0}, groups[VT_SYNTH_NGROUPS] = {0};
    for (uint64_t i = 0; i < N; i++) {
        vt_image img;
        vt_synth_item it;
        assert_int_equal(vt_synth_make(11, i, 32, &img, &it, NULL), VT_OK);
        vt_image_free(&img);
        groups[it.group]++;
        int k = 0;
        for (; k < 10 && expected[it.task][k]; k++)
            if (!strcmp(expected[it.task][k], it.answer_raw)) break;
        if (k == 10 || !expected[it.task][k])
            fail_msg("task %s: unexpected answer '%s'", vt_synth_task_name(it.task), it.answer_raw);
        counts[it.task][k]++;
        totals[it.task]++;
        /* Format rules of groups 7 and 8. */
        if (it.group == VT_SYNTH_GROUP_PREFIX) {
            char want[300];
            snprintf(want, sizeof want, "answer: %s", it.answer_raw);
            assert_string_equal(it.answer, want);
        } else if (it.group == VT_SYNTH_GROUP_UPPER) {
            for (size_t c = 0; it.answer[c]; c++) assert_false(it.answer[c] >= 'a' && it.answer[c] <= 'z');
        } else {
            assert_string_equal(it.answer, it.answer_raw);
            assert_int_equal(it.group, it.task);
        }
    }
    for (int g = 0; g < VT_SYNTH_NGROUPS; g++) assert_true(abs(groups[g] - N / 9) < N / 9 / 4);
    for (int t = 0; t < VT_SYNTH_NTASKS; t++) {
        int k = 0;
        while (k < 10 && expected[t][k]) k++;
        double uniform = (double)totals[t] / k;
        for (int a = 0; a < k; a++) {
            /* position: left/right vs above/below shares depend on geometry;
             * check the two halves of each axis against each other instead. */
            if (t == VT_SYNTH_POSITION) continue;
            if (counts[t][a] < 0.75 * uniform || counts[t][a] > 1.25 * uniform)
                fail_msg("task %s answer '%s': %d of %d (uniform %.0f)", vt_synth_task_name(t),
                         expected[t][a], counts[t][a], totals[t], uniform);
        }
    }
    int *p = counts[VT_SYNTH_POSITION];
    assert_true(abs(p[0] - p[1]) < (p[0] + p[1]) / 8);
    assert_true(abs(p[2] - p[3]) < (p[2] + p[3]) / 8);
}

static const uint8_t PALETTE[7][3] = {{220, 40, 40},  {40, 170, 60},  {40, 80, 220}, {240, 210, 40},
                                      {150, 60, 190}, {245, 140, 30}, {30, 30, 30}};
static const char *const PALETTE_NAMES[7] = {"red", "green", "blue", "yellow", "purple", "orange", "black"};

static int has_colour(const vt_image *img, const char *name) {
    int c = 0;
    while (strcmp(PALETTE_NAMES[c], name)) c++;
    for (int i = 0; i < img->width * img->height; i++)
        if (!memcmp(img->rgb + 3 * i, PALETTE[c], 3)) return 1;
    return 0;
}

static void test_pixels_match_answers(void **state) {
    (void)state;
    int checked = 0;
    for (uint64_t i = 0; i < 400; i++) {
        vt_image img;
        vt_synth_item it;
        assert_int_equal(vt_synth_make(5, i, 128, &img, &it, NULL), VT_OK);
        if (it.task == VT_SYNTH_COLOR || it.task == VT_SYNTH_SMALL_COLOR) {
            assert_true(has_colour(&img, it.answer_raw));
            checked++;
        }
        if (it.task == VT_SYNTH_COUNT) {
            /* count distinct palette colours present */
            int n = 0;
            for (int c = 0; c < 7; c++) n += has_colour(&img, PALETTE_NAMES[c]);
            assert_int_equal(n, atoi(it.answer_raw));
            checked++;
        }
        vt_image_free(&img);
    }
    assert_true(checked > 100);
}

/* --max-shapes and --tasks: counts stay in 1..K (2..K for position), only
 * the listed tasks are drawn, all of them, with plain answers; the defaults
 * (NULL, zeros, every task) give the default set bit for bit; bad values are
 * errors naming the option or task. */
static void test_params(void **state) {
    (void)state;
    uint32_t mask = 0;
    vt_error e = {0};
    assert_int_equal(vt_synth_parse_tasks("count,color", &mask, &e), VT_OK);
    assert_int_equal(mask, (1u << VT_SYNTH_COUNT) | (1u << VT_SYNTH_COLOR));
    assert_int_equal(vt_synth_parse_tasks("count,colour", &mask, &e), VT_ERR_ARG);
    assert_non_null(strstr(e.msg, "'colour'"));
    assert_int_equal(vt_synth_parse_tasks("", &mask, &e), VT_ERR_ARG);
    vt_synth_params p = {.max_shapes = 2, .task_mask = (1u << VT_SYNTH_COUNT) | (1u << VT_SYNTH_POSITION)};
    int seen[VT_SYNTH_NTASKS] = {0}, counts[5] = {0};
    for (uint64_t i = 0; i < 400; i++) {
        vt_image img;
        vt_synth_item it;
        assert_int_equal(vt_synth_make_ex(2, i, 32, &p, &img, &it, NULL), VT_OK);
        vt_image_free(&img);
        assert_true(it.task == VT_SYNTH_COUNT || it.task == VT_SYNTH_POSITION);
        assert_int_equal(it.group, (uint32_t)it.task);
        assert_string_equal(it.answer, it.answer_raw);
        assert_in_range(it.n_shapes, it.task == VT_SYNTH_POSITION ? 2 : 1, 2);
        seen[it.task]++;
        if (it.task == VT_SYNTH_COUNT) counts[atoi(it.answer)]++;
    }
    assert_true(seen[VT_SYNTH_COUNT] > 150 && seen[VT_SYNTH_POSITION] > 150);
    assert_true(counts[1] > 60 && counts[2] > 60 && counts[3] + counts[4] == 0);
    vt_synth_params all = {.max_shapes = 4, .task_mask = VT_SYNTH_ALL_TASKS}, zero = {0};
    for (uint64_t i = 0; i < 40; i++) {
        vt_image a, b, c;
        vt_synth_item ia, ib, ic;
        assert_int_equal(vt_synth_make(7, i, 32, &a, &ia, NULL), VT_OK);
        assert_int_equal(vt_synth_make_ex(7, i, 32, &all, &b, &ib, NULL), VT_OK);
        assert_int_equal(vt_synth_make_ex(7, i, 32, &zero, &c, &ic, NULL), VT_OK);
        assert_memory_equal(a.rgb, b.rgb, 32 * 32 * 3);
        assert_memory_equal(a.rgb, c.rgb, 32 * 32 * 3);
        assert_memory_equal(&ia, &ib, sizeof ia);
        assert_memory_equal(&ia, &ic, sizeof ia);
        vt_image_free(&a);
        vt_image_free(&b);
        vt_image_free(&c);
    }
    vt_image img;
    vt_synth_item it;
    p = (vt_synth_params){.max_shapes = 5};
    assert_int_equal(vt_synth_make_ex(1, 0, 32, &p, &img, &it, &e), VT_ERR_ARG);
    assert_non_null(strstr(e.msg, "max_shapes"));
    p = (vt_synth_params){.max_shapes = 1};
    assert_int_equal(vt_synth_make_ex(1, 0, 32, &p, &img, &it, &e), VT_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_balanced_answers),
        cmocka_unit_test(test_pixels_match_answers),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
