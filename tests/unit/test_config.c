/* Strict YAML config reader: typed reads, defaults, and errors that name the
 * file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/config.h"

static vt_config *parse(const char *text) {
    vt_config *cfg = NULL;
    vt_error err = {0};
    assert_int_equal(vt_config_parse(text, strlen(text), "run.yaml", &cfg, &err), VT_OK);
    return cfg;
}

static void test_typed_reads_and_defaults(void **state) {
    (void)state;
    vt_config *cfg = parse("train:\n  steps: 120\n  lr: 3.0e-4\n  name: stage2\n  resume: yes\n"
                           "model:\n  layers: [1, 2, 3]\n");
    vt_error err = {0};
    int64_t steps = 0, missing = 7;
    double lr = 0;
    const char *name = NULL;
    bool resume = false;
    assert_int_equal(vt_config_int(cfg, "train.steps", &steps, &err), VT_OK);
    assert_int_equal(steps, 120);
    assert_int_equal(vt_config_double(cfg, "train.lr", &lr, &err), VT_OK);
    assert_true(lr > 2.99e-4 && lr < 3.01e-4);
    assert_int_equal(vt_config_string(cfg, "train.name", &name, &err), VT_OK);
    assert_string_equal(name, "stage2");
    assert_int_equal(vt_config_bool(cfg, "train.resume", &resume, &err), VT_OK);
    assert_true(resume);
    assert_int_equal(vt_config_int(cfg, "train.absent", &missing, &err), VT_OK);
    assert_int_equal(missing, 7); /* default kept */
    assert_int_equal(vt_config_len(cfg, "model.layers", &err), 3);
    int64_t second = 0;
    assert_int_equal(vt_config_int(cfg, "model.layers[1]", &second, &err), VT_OK);
    assert_int_equal(second, 2);
    assert_int_equal(vt_config_int(cfg, "model.layers[0]", &second, &err), VT_OK);
    assert_int_equal(vt_config_int(cfg, "model.layers[2]", &second, &err), VT_OK);
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_OK);
    vt_config_free(cfg);
}

static void test_unknown_key_names_line(void **state) {
    (void)state;
    vt_config *cfg = parse("train:\n  steps: 10\n  lrr: 0.1\n");
    vt_error err = {0};
    int64_t steps = 0;
    assert_int_equal(vt_config_int(cfg, "train.steps", &steps, &err), VT_OK);
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_ERR_ARG);
    assert_string_equal(err.msg, "run.yaml:3: unknown key 'train.lrr'");
    vt_config_free(cfg);
}

static void test_unknown_section(void **state) {
    (void)state;
    vt_config *cfg = parse("train:\n  steps: 10\nmodle:\n  layers: 2\n");
    vt_error err = {0};
    int64_t steps = 0;
    assert_int_equal(vt_config_int(cfg, "train.steps", &steps, &err), VT_OK);
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_ERR_ARG);
    assert_string_equal(err.msg, "run.yaml:3: unknown key 'modle'");
    vt_config_free(cfg);
}

static void test_wrong_types(void **state) {
    (void)state;
    vt_config *cfg = parse("a: abc\nb: \"12\"\nc:\n  d: 1\ne: 1.5\nf: maybe\ng: 99\n");
    vt_error err = {0};
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    assert_int_equal(vt_config_int(cfg, "a", &i, &err), VT_ERR_FORMAT);
    assert_string_equal(err.msg, "run.yaml:1: a: expected an integer, got 'abc'");
    /* A quoted number is a string, not a number. */
    assert_int_equal(vt_config_int(cfg, "b", &i, &err), VT_ERR_FORMAT);
    assert_int_equal(vt_config_string(cfg, "c", &s, &err), VT_ERR_FORMAT);
    assert_string_equal(err.msg, "run.yaml:3: c: expected a string, got a mapping");
    assert_int_equal(vt_config_int(cfg, "e", &i, &err), VT_ERR_FORMAT);
    assert_int_equal(vt_config_double(cfg, "e", &d, &err), VT_OK);
    assert_int_equal(vt_config_bool(cfg, "f", &b, &err), VT_ERR_FORMAT);
    assert_string_equal(err.msg, "run.yaml:6: f: expected true or false, got 'maybe'");
    i = 0;
    assert_int_equal(vt_config_int_range(cfg, "g", 0, 10, &i, &err), VT_ERR_RANGE);
    assert_string_equal(err.msg, "run.yaml:7: g: 99 is outside [0, 10]");
    assert_int_equal(i, 0);
    /* Indexing into a scalar is a kind error, not "absent". */
    assert_int_equal(vt_config_int(cfg, "a.x", &i, &err), VT_ERR_FORMAT);
    vt_config_free(cfg);
}

static void test_enum_lists_choices(void **state) {
    (void)state;
    vt_config *cfg = parse("recipe: stage3\n");
    vt_error err = {0};
    static const char *const names[] = {"stage1", "stage2"};
    int which = -1;
    assert_int_equal(vt_config_enum(cfg, "recipe", names, 2, &which, &err), VT_ERR_ARG);
    assert_string_equal(err.msg, "run.yaml:1: recipe: 'stage3' is not one of: stage1, stage2");
    vt_config_free(cfg);
}

static void test_syntax_and_structure_errors(void **state) {
    (void)state;
    vt_config *cfg = NULL;
    vt_error err = {0};
    const char *bad = "train:\n  steps: [1, 2\n";
    assert_int_equal(vt_config_parse(bad, strlen(bad), "bad.yaml", &cfg, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "bad.yaml:"));
    assert_non_null(strstr(err.msg, "YAML syntax error"));
    assert_null(cfg);
    const char *dup = "a: 1\nb: 2\na: 3\n";
    assert_int_equal(vt_config_parse(dup, strlen(dup), "dup.yaml", &cfg, &err), VT_ERR_FORMAT);
    assert_string_equal(err.msg, "dup.yaml:3: duplicate key 'a' (first at line 1)");
    const char *list = "- 1\n- 2\n";
    assert_int_equal(vt_config_parse(list, strlen(list), "l.yaml", &cfg, &err), VT_ERR_FORMAT);
    assert_string_equal(err.msg, "l.yaml:1: the top level must be a mapping of keys");
    const char *alias = "a: &x 1\nb: *x\n";
    assert_int_equal(vt_config_parse(alias, strlen(alias), "al.yaml", &cfg, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "aliases are not supported"));
}

static void test_empty_file_and_missing_file(void **state) {
    (void)state;
    vt_config *cfg = parse("");
    vt_error err = {0};
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_OK);
    int64_t v = 0;
    assert_int_equal(vt_config_require_int(cfg, "train.steps", &v, &err), VT_ERR_ARG);
    assert_string_equal(err.msg, "run.yaml: required key 'train.steps' is missing");
    vt_config_free(cfg);
    assert_int_equal(vt_config_load("/nonexistent/run.yaml", &cfg, &err), VT_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/run.yaml: cannot open"));
}

static void test_overrides(void **state) {
    (void)state;
    vt_config *cfg = parse("train:\n  steps: 10\n");
    vt_error err = {0};
    assert_int_equal(vt_config_set(cfg, "train.steps=25", &err), VT_OK);
    assert_int_equal(vt_config_set(cfg, "train.lr=0.5", &err), VT_OK);
    int64_t steps = 0;
    double lr = 0;
    assert_int_equal(vt_config_int(cfg, "train.steps", &steps, &err), VT_OK);
    assert_int_equal(steps, 25);
    assert_int_equal(vt_config_double(cfg, "train.lr", &lr, &err), VT_OK);
    assert_true(lr == 0.5);
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_OK);
    assert_int_equal(vt_config_set(cfg, "train.typo=1", &err), VT_OK);
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_ERR_ARG);
    assert_string_equal(err.msg, "run.yaml: unknown key 'train.typo' (from a command-line override)");
    assert_int_equal(vt_config_set(cfg, "nosuch.key=1", &err), VT_ERR_ARG);
    assert_int_equal(vt_config_set(cfg, "novalue", &err), VT_ERR_ARG);
    assert_int_equal(vt_config_set(cfg, "train=1", &err), VT_ERR_ARG);
    vt_config_free(cfg);
}

static void test_mark_used_and_keys(void **state) {
    (void)state;
    vt_config *cfg = parse("model:\n  a: 1\n  b: 2\nother: 3\n");
    vt_error err = {0};
    assert_string_equal(vt_config_key_at(cfg, "model", 1), "b");
    assert_string_equal(vt_config_key_at(cfg, "", 1), "other");
    assert_null(vt_config_key_at(cfg, "model", 2));
    vt_config_mark_used(cfg, "model");
    assert_int_equal(vt_config_check_unused(cfg, &err), VT_ERR_ARG);
    assert_string_equal(err.msg, "run.yaml:4: unknown key 'other'");
    vt_config_free(cfg);
}

static void test_section_readers(void **state) {
    (void)state;
    const char *text = "m:\n  n: 7\n  big: 99\n  f: 0.5\n  zero: 0\n  neg: -1.0\n";
    vt_config *cfg = NULL;
    vt_error err = {0};
    assert_int_equal(vt_config_parse(text, strlen(text), "run.yaml", &cfg, &err), VT_OK);
    int n = 3, absent = 9;
    float f = 2.0f, z = 1.0f;
    assert_int_equal(vt_config_section_int(cfg, "m", "n", 1, 10, &n, &err), VT_OK);
    assert_int_equal(n, 7);
    assert_int_equal(vt_config_section_int(cfg, "m", "nope", 1, 10, &absent, &err), VT_OK);
    assert_int_equal(absent, 9); /* absent: unchanged */
    assert_int_equal(vt_config_section_int(cfg, "m", "big", 1, 10, &n, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "m.big: 99 is outside [1, 10]"));
    assert_int_equal(vt_config_section_float(cfg, "m", "f", &f, true, &err), VT_OK);
    assert_true(f == 0.5f);
    assert_int_equal(vt_config_section_float(cfg, "m", "zero", &z, false, &err), VT_OK);
    assert_true(z == 0.0f);
    assert_int_equal(vt_config_section_float(cfg, "m", "zero", &z, true, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "m.zero: must be finite and > 0"));
    assert_int_equal(vt_config_section_float(cfg, "m", "neg", &z, false, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "m.neg: must be finite and >= 0, got -1"));
    vt_config_free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_reads_and_defaults), cmocka_unit_test(test_unknown_key_names_line),
        cmocka_unit_test(test_unknown_section),          cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_enum_lists_choices),       cmocka_unit_test(test_syntax_and_structure_errors),
        cmocka_unit_test(test_empty_file_and_missing_file), cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_mark_used_and_keys),
        cmocka_unit_test(test_section_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
