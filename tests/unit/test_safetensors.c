/* safetensors: write/read round trip, F16/BF16 import against hand-computed
 * values, and one test per malformed-file rule (each error must name the
 * file and the offending tensor or offset). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "trainer/safetensors.h"

static const char *scratch(void) {
    const char *t = getenv("VT_TEST_TMP");
    return t ? t : "/tmp";
}

static void test_round_trip(void **state) {
    (void)state;
    float a[6] = {1.5f, -2.25f, 3e-8f, 0.f, -0.f, 1e30f};
    int32_t b[3] = {7, -1, 123456};
    uint16_t c[2] = {0x3c00, 0xc000}; /* F16 1.0, -2.0 */
    vt_error err = {0};
    vt_st_writer *w = vt_st_writer_new();
    assert_non_null(w);
    int64_t sa[2] = {2, 3}, sb[1] = {3}, sc[2] = {1, 2};
    assert_int_equal(vt_st_writer_add(w, "x.weight", VT_ST_F32, 2, sa, a, &err), VT_OK);
    assert_int_equal(vt_st_writer_add(w, "ids \"q\"", VT_ST_I32, 1, sb, b, &err), VT_OK);
    assert_int_equal(vt_st_writer_add(w, "h", VT_ST_F16, 2, sc, c, &err), VT_OK);
    assert_int_equal(vt_st_writer_add(w, "empty", VT_ST_F32, 1, (int64_t[]){0}, NULL, &err), VT_OK);
    assert_int_equal(vt_st_writer_add(w, "x.weight", VT_ST_F32, 2, sa, a, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_int_equal(vt_st_writer_meta(w, "format", "pt", &err), VT_OK);
    assert_int_equal(vt_st_writer_meta(w, "note", "a\nb", &err), VT_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", scratch());
    assert_int_equal(vt_st_writer_write(w, path, &err), VT_OK);
    vt_st_writer_free(w);

    vt_st_file *f = NULL;
    assert_int_equal(vt_st_open(path, &f, &err), VT_OK);
    assert_int_equal(vt_st_count(f), 4);
    assert_string_equal(vt_st_metadata(f, "format"), "pt");
    assert_string_equal(vt_st_metadata(f, "note"), "a\nb");
    assert_null(vt_st_metadata(f, "absent"));
    const vt_st_tensor *t = vt_st_find(f, "x.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    float got[6];
    assert_int_equal(vt_st_read_f32(f, t, got, 6, &err), VT_OK);
    assert_memory_equal(got, a, sizeof a);
    assert_int_equal(vt_st_read_f32(f, t, got, 5, &err), VT_ERR_ARG);
    t = vt_st_find(f, "ids \"q\"");
    assert_non_null(t);
    assert_int_equal(t->dtype, VT_ST_I32);
    assert_memory_equal(t->data, b, sizeof b);
    assert_int_equal(vt_st_read_f32(f, t, got, 3, &err), VT_ERR_FORMAT);
    t = vt_st_find(f, "h");
    assert_int_equal(vt_st_read_f32(f, t, got, 2, &err), VT_OK);
    assert_true(got[0] == 1.0f && got[1] == -2.0f);
    assert_int_equal(vt_st_find(f, "empty")->numel, 0);
    vt_st_close(f);
    /* No temporary left behind. */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
}

/* Builds a file from a header string and n data bytes. */
static size_t build(unsigned char *out, const char *header, size_t ndata) {
    uint64_t n = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(n >> (8 * i));
    memcpy(out + 8, header, n);
    for (size_t i = 0; i < ndata; i++) out[8 + n + i] = (unsigned char)i;
    return 8 + n + ndata;
}

static void test_half_formats(void **state) {
    (void)state;
    unsigned char buf[512];
    /* F16: 1.0, -0.5, smallest subnormal 2^-24, 65504 (max), inf;
     * BF16: 1.0, -3.0, 2^-133 (subnormal in f32). */
    const char *h = "{\"a\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[10,16]}}";
    size_t len = build(buf, h, 16);
    uint16_t f16[5] = {0x3c00, 0xb800, 0x0001, 0x7bff, 0x7c00}, bf[3] = {0x3f80, 0xc040, 0x0001};
    unsigned char *d = buf + 8 + strlen(h);
    for (int i = 0; i < 5; i++) d[2 * i] = f16[i] & 0xff, d[2 * i + 1] = f16[i] >> 8;
    for (int i = 0; i < 3; i++) d[10 + 2 * i] = bf[i] & 0xff, d[10 + 2 * i + 1] = bf[i] >> 8;
    vt_st_file *f = NULL;
    vt_error err = {0};
    assert_int_equal(vt_st_parse(buf, len, "mem", &f, &err), VT_OK);
    float v[5];
    assert_int_equal(vt_st_read_f32(f, vt_st_find(f, "a"), v, 5, &err), VT_OK);
    assert_true(v[0] == 1.0f && v[1] == -0.5f && v[2] == 0x1p-24f && v[3] == 65504.0f);
    assert_true(v[4] > 3e38f);
    assert_int_equal(vt_st_read_f32(f, vt_st_find(f, "b"), v, 3, &err), VT_OK);
    assert_true(v[0] == 1.0f && v[1] == -3.0f && v[2] == 0x1p-133f);
    vt_st_close(f);
}

/* Each malformed header must fail with VT_ERR_FORMAT and a message holding `want`. */
static void expect_bad(const char *header, size_t ndata, const char *want) {
    unsigned char buf[1024];
    size_t len = build(buf, header, ndata);
    vt_st_file *f = NULL;
    vt_error err = {0};
    vt_status st = vt_st_parse(buf, len, "bad.safetensors", &f, &err);
    if (st != VT_ERR_FORMAT || !strstr(err.msg, want) || !strstr(err.msg, "bad.safetensors"))
        fail_msg("header %s: status %d, message '%s' (wanted '%s')", header, st, err.msg, want);
    assert_null(f);
}

static void test_bad_inputs(void **state) {
    (void)state;
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "'a'");      /* out of range */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12"); /* size */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlaps");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "cover 4");
    expect_bad("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unsupported dtype 'Q4'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end 0 < begin 4");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown field 'x'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor name 'a'");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k'");
    expect_bad("{\"a\":[1,2]}", 0, "'a'");
    expect_bad("[1,2]", 0, "offset 8");
    expect_bad("{\"a\":", 0, "invalid near byte");
    expect_bad("{}xx", 0, "trailing bytes");
    /* Header length field itself: too large for the file, and absurd. */
    unsigned char buf[16] = {0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0, '{', '}'};
    vt_st_file *f = NULL;
    vt_error err = {0};
    assert_int_equal(vt_st_parse(buf, 10, "len.safetensors", &f, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "header length"));
    buf[0] = 50;
    buf[1] = buf[2] = 0;
    assert_int_equal(vt_st_parse(buf, 10, "len.safetensors", &f, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "past the end"));
    assert_int_equal(vt_st_parse(buf, 5, "len.safetensors", &f, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "too short"));
    /* Files that are not there or not regular. */
    assert_int_equal(vt_st_open("/nonexistent/x.safetensors", &f, &err), VT_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.safetensors"));
    assert_int_equal(vt_st_open(scratch(), &f, &err), VT_ERR_IO);
}

static void test_padding_and_empty(void **state) {
    (void)state;
    unsigned char buf[64];
    vt_st_file *f = NULL;
    vt_error err = {0};
    size_t len = build(buf, "{}      ", 0); /* space padding as writers emit */
    assert_int_equal(vt_st_parse(buf, len, "pad", &f, &err), VT_OK);
    assert_int_equal(vt_st_count(f), 0);
    vt_st_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_half_formats),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_padding_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
