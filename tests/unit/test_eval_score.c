/* Answer scorers: normalisation rules, option-letter and yes/no extraction,
 * POPE-style F1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "trainer/eval_score.h"

static void test_normalize(void **state) {
    (void)state;
    char out[256];
    vt_answer_normalize("  The RED circle. ", out, sizeof out);
    assert_string_equal(out, "red circle");
    vt_answer_normalize("Two squares!", out, sizeof out);
    assert_string_equal(out, "2 squares");
    vt_answer_normalize("3.5 inches, left-side", out, sizeof out);
    assert_string_equal(out, "3.5 inches left side");
    vt_answer_normalize("a dog's toy", out, sizeof out);
    assert_string_equal(out, "dogs toy");
    vt_answer_normalize("Ünïcode ÄÖ", out, sizeof out); /* non-ASCII bytes kept */
    assert_string_equal(out, "Ünïcode ÄÖ");
    vt_answer_normalize("", out, sizeof out);
    assert_string_equal(out, "");
    char tiny[6];
    vt_answer_normalize("alpha beta", tiny, sizeof tiny); /* truncates at a word */
    assert_string_equal(tiny, "alpha");
}

static void test_exact_and_vqa(void **state) {
    (void)state;
    assert_true(vt_score_exact("Red.", "red") == 1.0f);
    assert_true(vt_score_exact("three", "3") == 1.0f);
    assert_true(vt_score_exact("reddish", "red") == 0.0f);
    const char *refs[10] = {"2", "2", "two", "3", "2", "2", "2", "2", "2", "2"};
    assert_true(vt_score_vqa("2", refs, 10) == 1.0f);
    assert_float_equal(vt_score_vqa("3", refs, 10), 1.0f / 3.0f, 1e-6);
    const char *two_of[4] = {"cat", "cat", "dog", "bird"};
    assert_float_equal(vt_score_vqa("cat", two_of, 4), 2.0f / 3.0f, 1e-6);
    assert_true(vt_score_vqa("fish", two_of, 4) == 0.0f);
    const char *one[1] = {"blue"};
    assert_true(vt_score_vqa("Blue", one, 1) == 1.0f);
}

static void test_option_letters(void **state) {
    (void)state;
    assert_int_equal(vt_extract_option("B"), 'B');
    assert_int_equal(vt_extract_option("(C)"), 'C');
    assert_int_equal(vt_extract_option("D. a blue square"), 'D');
    assert_int_equal(vt_extract_option("B) blue"), 'B');
    assert_int_equal(vt_extract_option("The answer is C."), 'C');
    assert_int_equal(vt_extract_option("Answer: (A)"), 'A');
    assert_int_equal(vt_extract_option("I think B"), 'B');
    assert_int_equal(vt_extract_option("A red circle"), 0);
    assert_int_equal(vt_extract_option("blue"), 0);
    assert_int_equal(vt_extract_option("BC"), 0);
    assert_true(vt_score_option("(B) blue", "B") == 1.0f);
    assert_true(vt_score_option("C", "B") == 0.0f);
    assert_true(vt_score(VT_SCORE_OPTION, "answer is D", "D") == 1.0f);
}

static void test_yes_no(void **state) {
    (void)state;
    assert_int_equal(vt_extract_yes_no("Yes, there is."), 1);
    assert_int_equal(vt_extract_yes_no("No."), 0);
    assert_int_equal(vt_extract_yes_no("There is not a circle"), 0);
    assert_int_equal(vt_extract_yes_no("a red circle"), -1);
    assert_true(vt_score_yes_no("yes", "Yes") == 1.0f);
    assert_true(vt_score_yes_no("maybe", "no") == 0.0f);
    /* POPE-style aggregate: 4 yes refs, 4 no refs. */
    const char *preds[8] = {"yes", "yes", "yes", "no", "yes", "no", "no", "hmm"};
    const char *refs[8] = {"yes", "yes", "yes", "yes", "no", "no", "no", "no"};
    vt_yesno_stats st = vt_yes_no_stats(preds, refs, 8);
    /* tp 3, fp 1, fn 1 -> precision .75, recall .75; correct 3+2 = 5 of 8 */
    assert_float_equal(st.precision, 0.75, 1e-12);
    assert_float_equal(st.recall, 0.75, 1e-12);
    assert_float_equal(st.f1, 0.75, 1e-12);
    assert_float_equal(st.accuracy, 5.0 / 8.0, 1e-12);
    assert_float_equal(st.yes_ratio, 4.0 / 8.0, 1e-12);
    /* 1 "yes" among the 4 no references ("hmm" is neither) */
    assert_float_equal(st.yes_on_no, 1.0 / 4.0, 1e-12);
    /* A reference that is neither yes nor no is not an absent object. */
    const char *p2[3] = {"yes", "yes", "no"}, *r2[3] = {"no", "maybe", "no"};
    st = vt_yes_no_stats(p2, r2, 3);
    assert_float_equal(st.yes_on_no, 1.0 / 2.0, 1e-12);
    st = vt_yes_no_stats(p2, p2, 1); /* no "no" references at all */
    assert_float_equal(st.yes_on_no, 0.0, 1e-12);
}

static void test_parse(void **state) {
    (void)state;
    assert_int_equal(vt_scorer_parse("vqa"), VT_SCORE_VQA);
    assert_int_equal(vt_scorer_parse("yesno"), VT_SCORE_YESNO);
    assert_int_equal(vt_scorer_parse("bleu"), -1);
    assert_string_equal(vt_scorer_name(VT_SCORE_OPTION), "option");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize), cmocka_unit_test(test_exact_and_vqa),
        cmocka_unit_test(test_option_letters), cmocka_unit_test(test_yes_no),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
