/* Pre-tokenisation split patterns, written out by hand instead of run through
 * a regex engine. Each function follows the leftmost-alternative,
 * backtracking semantics of the original regular expression (as ECMAScript
 * evaluates it with the u flag): at every position the alternatives are
 * tried in order and the first that matches gives the next word. */
#include <stdlib.h>

#include "pipeline/tokenizer_internal.h"
#include "pipeline/unicode.h"

enum { C_L = 1, C_N = 2, C_S = 4, C_O = 8 };

typedef struct cps {
    uint32_t *cp;
    uint8_t *cls;
    size_t *off; /* byte offset of each code point; off[n] = byte length */
    size_t n;
} cps;

static vt_status decode_cps(const char *s, size_t n, cps *c, vt_error *err) {
    c->cp = malloc((n + 1) * sizeof *c->cp);
    c->cls = malloc(n + 1);
    c->off = malloc((n + 1) * sizeof *c->off);
    c->n = 0;
    if (!c->cp || !c->cls || !c->off) return vt_fail(err, VT_ERR_NOMEM, "out of memory splitting text");
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = vt_utf8_decode(u + i, n - i, &cp);
        if (k == 0) return vt_fail(err, VT_ERR_FORMAT, "invalid UTF-8 at byte offset %zu", i);
        unsigned f = vt_unicode_class(cp);
        uint8_t cls = (f & VT_UC_LETTER) ? C_L : (f & VT_UC_NUMBER) ? C_N : vt_unicode_is_space(cp) ? C_S : C_O;
        c->cp[c->n] = cp;
        c->cls[c->n] = cls;
        c->off[c->n] = i;
        c->n++;
        i += (size_t)k;
    }
    c->off[c->n] = n;
    return VT_OK;
}

static size_t run(const cps *c, size_t i, uint8_t cls) {
    while (i < c->n && (c->cls[i] & cls)) i++;
    return i;
}

static bool lower_is(uint32_t cp, char ch, bool fold) {
    return cp == (uint32_t)ch || (fold && cp == (uint32_t)(ch - 'a' + 'A'));
}

/* 's|'t|'re|'ve|'m|'ll|'d (ASCII case folded when fold): end index or 0. */
static size_t contraction(const cps *c, size_t i, bool fold) {
    if (c->cp[i] != '\'' || i + 1 >= c->n) return 0;
    uint32_t a = c->cp[i + 1];
    if (lower_is(a, 's', fold) || lower_is(a, 't', fold)) return i + 2;
    if (i + 2 < c->n) {
        uint32_t b = c->cp[i + 2];
        if ((lower_is(a, 'r', fold) || lower_is(a, 'v', fold)) && lower_is(b, 'e', fold)) return i + 3;
    }
    if (lower_is(a, 'm', fold)) return i + 2;
    if (i + 2 < c->n && lower_is(a, 'l', fold) && lower_is(c->cp[i + 2], 'l', fold)) return i + 3;
    if (lower_is(a, 'd', fold)) return i + 2;
    return 0;
}

/* \s+(?!\S)|\s+ at a whitespace position. */
static size_t space_words(const cps *c, size_t i) {
    size_t e = run(c, i, C_S);
    if (e == c->n || e - i == 1) return e;
    return e - 1; /* leave the last space to join the next word */
}

static size_t next_gpt2(const cps *c, size_t i) {
    size_t e;
    if ((e = contraction(c, i, false))) return e;
    size_t j = (c->cp[i] == ' ' && i + 1 < c->n) ? i + 1 : i;
    /* ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the optional space is taken
     * when the class follows it, else the run must start at i itself. */
    static const uint8_t classes[3] = {C_L, C_N, C_O};
    for (int k = 0; k < 3; k++) {
        if (j != i && (c->cls[j] & classes[k])) return run(c, j, classes[k]);
        if (c->cls[i] & classes[k]) return run(c, i, classes[k]);
    }
    return space_words(c, i);
}

static bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

static size_t next_qwen(const cps *c, size_t i, int max_digits) {
    size_t e;
    if ((e = contraction(c, i, true))) return e;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!(c->cls[i] & (C_L | C_N)) && !is_crlf(c->cp[i]) && i + 1 < c->n && (c->cls[i + 1] & C_L))
        return run(c, i + 1, C_L);
    if (c->cls[i] & C_L) return run(c, i, C_L);
    /* \p{N}{1,max_digits} */
    if (c->cls[i] & C_N) {
        e = i;
        while (e < c->n && (c->cls[e] & C_N) && e - i < (size_t)max_digits) e++;
        return e;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t j = SIZE_MAX;
    if (c->cp[i] == ' ' && i + 1 < c->n && (c->cls[i + 1] & C_O)) j = i + 1;
    else if (c->cls[i] & C_O) j = i;
    if (j != SIZE_MAX) {
        e = run(c, j, C_O);
        while (e < c->n && is_crlf(c->cp[e])) e++;
        return e;
    }
    /* \s*[\r\n]+ : the whitespace run up to and including its last \r or \n. */
    size_t r = run(c, i, C_S);
    for (size_t k = r; k > i; k--)
        if (is_crlf(c->cp[k - 1])) return k;
    return space_words(c, i);
}

vt_status vt_tok_split(const vt_tokenizer *t, const char *s, size_t n, vt_word_fn emit, void *ctx, vt_error *err) {
    cps c = {0};
    vt_status st = decode_cps(s, n, &c, err);
    size_t i = 0;
    while (!st && i < c.n) {
        size_t e = t->split == VT_SPLIT_GPT2 ? next_gpt2(&c, i) : next_qwen(&c, i, t->max_digits);
        if (e <= i) e = i + 1; /* cannot happen: every class is matched by some rule */
        st = emit(ctx, c.off[i], c.off[e] - c.off[i], err);
        i = e;
    }
    free(c.cp);
    free(c.cls);
    free(c.off);
    return st;
}
