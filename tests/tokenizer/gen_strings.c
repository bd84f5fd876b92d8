/* Deterministic generator of varied test strings for the tokenizer oracle
 * tests, one JSON string per line: English with contractions, whitespace
 * runs, numbers in several scripts, code, many writing systems, emoji
 * sequences, combining marks, special-token markup and random code points.
 * Random code points are drawn only from those assigned in the Unicode
 * version vistune's tables were built from (the reference's JavaScript
 * engine may know a newer version, where newly assigned letters differ).
 *   gen_strings SEED COUNT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "pipeline/unicode.h"

static const char *const words[] = {
    "the", "a", "photo", "of", "cat", "sitting", "on", "red", "mat", "What", "is", "in", "this", "image",
    "Describe", "picture", "detail", "dog", "running", "across", "green", "field", "I", "you", "they", "we",
    "don", "can", "won", "it", "hello", "world", "HTTP", "JSON", "GPU", "naïve", "café", "résumé", "Straße",
    "über", "fiancée", "coöperate", "ÆON", "œuvre", "İstanbul", "ǅemal", "x", "y", "z", "Q", "A", "B",
    "tokenizer", "merge", "pre-tokenization", "e.g.", "i.e.", "U.S.A.", "Mr.", "O'Neil", "rock'n'roll"};
static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE",
                                           "'Ve", "'M", "'LL", "'D", "n't", "'", "''", "'x", "'sa", "'lld"};
static const char *const punct[] = {".", ",", "!", "?", "...", "\xE2\x80\x94", "\xC2\xAB", "\xC2\xBB",
                                    "\xE2\x80\x9C", "\xE2\x80\x9D", "(", ")", "[", "]", "{", "}", "<", ">",
                                    "/", "\\", "#", "@", "$", "%", "^", "&", "*", "-", "_", "=", "+", "~",
                                    "`", "|", ";", ":", "\"", "!!", "?!", "\xE3\x80\x82", "\xEF\xBC\x8C",
                                    "\xC2\xBF", "\xE2\x80\xA6", "\xE2\x82\xAC", "\xC2\xA3", "\xC2\xA9", "\x7F"};
static const char *const spaces[] = {" ", "  ", "   ", "    ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ",
                                     "\t\t", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x83", "\xEF\xBB\xBF",
                                     "\xC2\x85", "\xE2\x80\xA8", " \t \n", "\v", "\f", "\xE2\x80\x8B",
                                     "\r", "\n\n\n", "        ", " \r\n\r\n ", "\xE1\x9A\x80"};
static const char *const numbers[] = {"3.14159", "1,000,000", "2024-05-01", "\xD9\xA3\xD9\xA4\xD9\xA5",
                                      "\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93", "\xC2\xB2\xC2\xB3",
                                      "\xE2\x85\xAB", "\xC2\xBD", "\xE2\x91\xA0", "0x1F", "1e-9", "42nd",
                                      "v2.0.1", "\xE0\xA5\xA8\xE0\xA5\xA6", "12:30", "-7", "+49"};
static const char *const code[] = {
    "for (int i = 0; i < n; i++) {\n\tx[i] += 1;\n}\n", "def f(x):\n    return x**2  # square\n",
    "{\"key\": [1, 2, 3], \"ok\": true, \"s\": \"a\\\"b\"}", "#include <stdio.h>\n", "if a != b && c >= 0x1F:",
    "SELECT * FROM t WHERE id='42';", "<div class=\"a\">text</div>", "https://example.com/path?q=1&r=2#frag",
    "  - item: value\n    nested: [a, b]\n", "x = y if z else w  # noqa: E501", "fn main() -> Result<(), E> {}",
    "$ ls -la | grep '^d' > out.txt 2>&1", "a_b_c = __init__(self, *args, **kwargs)", "/* comment */ //",
    "\t\tint  x  =  3 ;\r\n", "console.log(`${a}`);", "λx.x+1", "i++; j--; k **= 2;"};
static const char *const scripts[] = {
    "\xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1 \xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5",
    "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82, \xD0\xBC\xD0\xB8\xD1\x80",
    "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84\xD9\x85",
    "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\xD7\x95\xD7\x9C\xD7\x9D",
    "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87 \xE0\xA4\xA6\xE0\xA5\x81\xE0\xA4\xA8\xE0\xA4\xBF\xE0\xA4\xAF\xE0\xA4\xBE",
    "\xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1\xE0\xB8\xAA\xE0\xB8\x94\xE0\xB8\xB5\xE0\xB8\x8A\xE0\xB8\xB2\xE0\xB8\xA7\xE0\xB9\x82\xE0\xB8\xA5\xE0\xB8\x81",
    "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",
    "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\xE4\xB8\x96\xE7\x95\x8C",
    "\xEC\x95\x88\xEB\x85\x95\xED\x95\x98\xEC\x84\xB8\xEC\x9A\x94 \xEC\x84\xB8\xEA\xB3\x84",
    "Xin ch\xC3\xA0o th\xE1\xBA\xBF gi\xE1\xBB\x9Bi", "\xE1\x83\xA5\xE1\x83\x90\xE1\x83\xA0\xE1\x83\x97\xE1\x83\xA3\xE1\x83\x9A\xE1\x83\x98",
    "\xD5\x80\xD5\xA1\xD5\xB5\xD5\xA5\xD6\x80\xD5\xA5\xD5\xB6", "\xE1\x9A\xA0\xE1\x9B\x87\xE1\x9A\xBB",
    "\xF0\x9D\x94\x98\xF0\x9D\x94\xAB\xF0\x9D\x94\xA6\xF0\x9D\x94\xA0", "\xF0\x90\x8D\x88", "\xE1\x8E\xA0",
    "\xE0\xAE\xA4\xE0\xAE\xAE\xE0\xAE\xBF\xE0\xAE\xB4\xE0\xAF\x8D", "\xE1\x80\x99\xE1\x80\xBC\xE1\x80\x94\xE1\x80\xBA\xE1\x80\x99\xE1\x80\xAC"};
static const char *const emoji[] = {
    "\xF0\x9F\x98\x80", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7\xE2\x80\x8D\xF0\x9F\x91\xA6",
    "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7", "\xE2\x9D\xA4\xEF\xB8\x8F", "\xF0\x9F\xA4\x97", "\xE2\x9C\xA8",
    "\xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88", "\xF0\x9F\xA7\x91\xF0\x9F\x8F\xBF\xE2\x80\x8D\xF0\x9F\x92\xBB"};
static const char *const combining[] = {
    "e\xCC\x81", "a\xCC\x88", "n\xCC\x83", "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "o\xCC\xA3\xCC\x82",
    "\xE2\x84\xAB", "\xCD\x84", "\xEF\xAC\x81", "A\xCC\x8A", "\xE1\xBB\x87", "e\xCC\x82\xCC\xA3",
    "\xE0\xA4\x95\xE0\xA4\xBC", "\xEA\xB0\x80\xE1\x86\xA8", "u\xCC\x88\xCC\x81", "\xCC\x81start",
    "\xE0\xBD\x80\xE0\xBE\xB5", "\xE2\x80\x8D", "\xE2\x80\x8C"};
static const char *const markup[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>",
    "<think>", "</think>", "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>\n", "<image>",
    "<|endoftext", "|>", "<|im_start|><|im_end|>", "<tool_call>", "<|video_pad|>", "<|box_start|>"};

#define N(a) (sizeof(a) / sizeof(a[0]))

typedef struct buf { char *p; size_t n, cap; } buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static const char *pick(vt_rng *r, const char *const *a, size_t n) { return a[vt_rng_below(r, n)]; }

static void random_cp(vt_rng *r, buf *b) {
    for (;;) {
        uint32_t cp;
        uint32_t mode = (uint32_t)vt_rng_below(r, 10);
        if (mode < 2) cp = 0x20 + (uint32_t)vt_rng_below(r, 0x5F);
        else if (mode < 7) cp = 1 + (uint32_t)vt_rng_below(r, 0xFFFF);
        else cp = 1 + (uint32_t)vt_rng_below(r, 0x10FFFF);
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (!(vt_unicode_class(cp) & VT_UC_ASSIGNED)) continue;
        char u[4];
        put(b, u, (size_t)vt_utf8_encode(cp, u));
        return;
    }
}

static void fragment(vt_rng *r, buf *b, int markup_ok) {
    switch (vt_rng_below(r, markup_ok ? 11 : 10)) {
    case 0: case 1: case 2: puts_(b, pick(r, words, N(words))); break;
    case 3: puts_(b, pick(r, contractions, N(contractions))); break;
    case 4: puts_(b, pick(r, punct, N(punct))); break;
    case 5: puts_(b, pick(r, spaces, N(spaces))); break;
    case 6: {
        if (vt_rng_below(r, 2)) {
            puts_(b, pick(r, numbers, N(numbers)));
        } else {
            int n = 1 + (int)vt_rng_below(r, 12);
            for (int i = 0; i < n; i++) { char d = (char)('0' + vt_rng_below(r, 10)); put(b, &d, 1); }
        }
        break;
    }
    case 7: puts_(b, pick(r, scripts, N(scripts))); break;
    case 8: puts_(b, vt_rng_below(r, 2) ? pick(r, emoji, N(emoji)) : pick(r, combining, N(combining))); break;
    case 9: { int n = 1 + (int)vt_rng_below(r, 4); for (int i = 0; i < n; i++) random_cp(r, b); break; }
    default: puts_(b, pick(r, markup, N(markup))); break;
    }
}

static void make_string(vt_rng *r, buf *b, int markup_ok) {
    b->n = 0;
    switch (vt_rng_below(r, 10)) {
    case 0: case 1: case 2: case 3: { /* mixed fragments */
        int n = 1 + (int)vt_rng_below(r, 30);
        for (int i = 0; i < n; i++) {
            fragment(r, b, markup_ok);
            if (vt_rng_below(r, 3) == 0) puts_(b, " ");
        }
        break;
    }
    case 4: case 5: { /* random code points */
        int n = 1 + (int)vt_rng_below(r, 40);
        for (int i = 0; i < n; i++) random_cp(r, b);
        break;
    }
    case 6: { /* whitespace heavy */
        int n = 1 + (int)vt_rng_below(r, 12);
        for (int i = 0; i < n; i++) {
            puts_(b, pick(r, spaces, N(spaces)));
            if (vt_rng_below(r, 2)) puts_(b, pick(r, spaces, N(spaces)));
            puts_(b, vt_rng_below(r, 3) ? pick(r, words, N(words)) : pick(r, punct, N(punct)));
        }
        break;
    }
    case 7: { /* code with indentation */
        int n = 1 + (int)vt_rng_below(r, 4);
        for (int i = 0; i < n; i++) {
            int ind = (int)vt_rng_below(r, 9);
            for (int k = 0; k < ind; k++) puts_(b, vt_rng_below(r, 4) ? " " : "\t");
            puts_(b, pick(r, code, N(code)));
        }
        break;
    }
    case 8: { /* sentence with contractions and numbers */
        int n = 2 + (int)vt_rng_below(r, 12);
        for (int i = 0; i < n; i++) {
            if (i) puts_(b, " ");
            puts_(b, pick(r, words, N(words)));
            if (vt_rng_below(r, 3) == 0) puts_(b, pick(r, contractions, N(contractions)));
            if (vt_rng_below(r, 5) == 0) puts_(b, pick(r, numbers, N(numbers)));
        }
        puts_(b, pick(r, punct, N(punct)));
        break;
    }
    default: { /* chat markup (plain text for tokenizers without those specials) */
        static const char *const roles[] = {"system", "user", "assistant"};
        int turns = 1 + (int)vt_rng_below(r, 4);
        for (int i = 0; i < turns; i++) {
            puts_(b, "<|im_start|>");
            puts_(b, roles[i == 0 ? vt_rng_below(r, 2) : (uint64_t)(1 + i % 2)]);
            puts_(b, "\n");
            if (i <= 1 && vt_rng_below(r, 2)) puts_(b, "<|vision_start|><|image_pad|><|vision_end|>");
            int n = 1 + (int)vt_rng_below(r, 8);
            for (int k = 0; k < n; k++) fragment(r, b, 0);
            puts_(b, "<|im_end|>\n");
        }
        break;
    }
    }
}

static void print_json(const buf *b) {
    putchar('"');
    for (size_t i = 0; i < b->n; i++) {
        unsigned char c = (unsigned char)b->p[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    puts("\"");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gen_strings SEED COUNT\n");
        return 2;
    }
    vt_rng r;
    vt_rng_init(&r, strtoull(argv[1], NULL, 10));
    long count = atol(argv[2]);
    buf b = {0};
    for (long i = 0; i < count; i++) {
        make_string(&r, &b, 1);
        if (b.n == 0) puts_(&b, " ");
        size_t bad;
        if (!vt_utf8_valid(b.p, b.n, &bad)) {
            fprintf(stderr, "gen_strings: generated invalid UTF-8 (string %ld)\n", i);
            return 1;
        }
        print_json(&b);
    }
    free(b.p);
    return 0;
}
