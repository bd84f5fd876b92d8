/* Instruction-text perturbations (research/shifts.md 2.1, 5: T1-T14): character
 * noise in nlpaug's style, EDA word operations with WordNet synonyms,
 * punctuation, case, homoglyph/whitespace noise and distractor sentences.
 * Unlike EDA the text is not lowercased or stripped: answer-critical tokens
 * -- option labels ("A.", "(B)", "C)"), standalone capitals, numbers, quoted
 * strings and <tags> like <image> -- are marked protected and never touched,
 * moved or deleted. Only ASCII letter words outside protected spans change. */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/shift_internal.h"

typedef struct tword {
    size_t start, len; /* span in the source */
    char *cur;         /* current text (malloc'd) */
    char *before;      /* text inserted before the word (malloc'd or NULL) */
    int deleted;
    size_t seg;        /* segment: words not separated by a protected token or newline */
} tword;

typedef struct tdoc {
    const char *src;
    size_t n;
    uint8_t *prot;
    tword *w;
    size_t nw;
} tdoc;

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_alnum(char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Marks the protected bytes of s (see the file comment). */
static void mark_protected(const char *s, size_t n, uint8_t *prot) {
    memset(prot, 0, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) prot[i] = 1; /* non-ASCII is never edited */
        if (c == '<') {             /* <image>, <ref>, </s>: short, no whitespace */
            size_t j = i + 1;
            while (j < n && j < i + 40 && s[j] != '>' && !is_space(s[j]) && s[j] != '<') j++;
            if (j < n && s[j] == '>' && j > i + 1) {
                memset(prot + i, 1, j - i + 1);
                i = j;
                continue;
            }
        }
        if (c == '"') {
            const char *e = memchr(s + i + 1, '"', n - i - 1);
            if (e) {
                memset(prot + i, 1, (size_t)(e - s) - i + 1);
                i = (size_t)(e - s);
                continue;
            }
        }
        if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0x9C || (unsigned char)s[i + 2] == 0x98)) { /* curly quotes */
            unsigned char close = (unsigned char)s[i + 2] + 1;
            for (size_t j = i + 3; j + 2 < n; j++)
                if ((unsigned char)s[j] == 0xE2 && (unsigned char)s[j + 1] == 0x80 && (unsigned char)s[j + 2] == close) {
                    memset(prot + i, 1, j + 3 - i);
                    i = j + 2;
                    break;
                }
            continue;
        }
        if (c == '\'' && (i == 0 || !is_alnum(s[i - 1]))) { /* 'quoted', not an apostrophe */
            for (size_t j = i + 1; j < n; j++)
                if (s[j] == '\'' && (j + 1 == n || !is_alnum(s[j + 1])) && j > i + 1) {
                    memset(prot + i, 1, j - i + 1);
                    i = j;
                    break;
                }
            continue;
        }
    }
    /* alphanumeric runs holding a digit (3, 2.5, 1,000, 3rd, 10%) */
    for (size_t i = 0; i < n;) {
        if (!is_alnum(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        int digit = 0;
        while (j < n && (is_alnum(s[j]) || s[j] == '%' ||
                         ((s[j] == '.' || s[j] == ',') && j + 1 < n && isdigit((unsigned char)s[j + 1]) && j > i &&
                          isdigit((unsigned char)s[j - 1])))) {
            if (isdigit((unsigned char)s[j])) digit = 1;
            j++;
        }
        if (digit) memset(prot + i, 1, j - i);
        i = j;
    }
    /* option labels and standalone capitals: A. B) C: (D) [E] and "A" in "A, B or C" */
    for (size_t i = 0; i < n; i++) {
        if (!is_alpha(s[i]) || (i > 0 && is_alnum(s[i - 1])) || (i + 1 < n && is_alnum(s[i + 1]))) continue;
        int upper = s[i] >= 'A' && s[i] <= 'Z';
        int open = i > 0 && (s[i - 1] == '(' || s[i - 1] == '[');
        char nx = i + 1 < n ? s[i + 1] : 0;
        if (open && (nx == ')' || nx == ']')) {
            memset(prot + i - 1, 1, 3);
        } else if (upper) {
            prot[i] = 1;
            if (nx == '.' || nx == ')' || nx == ':') prot[i + 1] = 1;
            if (open) prot[i - 1] = 1;
        }
    }
}

static void doc_free(tdoc *d) {
    for (size_t i = 0; i < d->nw; i++) free(d->w[i].cur), free(d->w[i].before);
    free(d->w), free(d->prot);
    memset(d, 0, sizeof *d);
}

static vt_status doc_parse(const char *s, tdoc *d, vt_error *err) {
    memset(d, 0, sizeof *d);
    d->src = s;
    d->n = strlen(s);
    if (d->n > VT_SHIFT_MAX_TEXT)
        return vt_fail(err, VT_ERR_RANGE, "text of %zu bytes exceeds the %d byte limit", d->n, VT_SHIFT_MAX_TEXT);
    d->prot = malloc(d->n + 1);
    d->w = malloc(sizeof(tword) * (d->n / 2 + 1));
    if (!d->prot || !d->w) {
        doc_free(d);
        return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    }
    mark_protected(s, d->n, d->prot);
    for (size_t i = 0; i < d->n;) {
        if (!is_alpha(s[i]) || d->prot[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < d->n && !d->prot[j] &&
               (is_alpha(s[j]) || (s[j] == '\'' && j + 1 < d->n && is_alpha(s[j + 1]) && !d->prot[j + 1])))
            j++;
        tword *w = &d->w[d->nw];
        w->start = i, w->len = j - i, w->before = NULL, w->deleted = 0, w->seg = 0;
        if (d->nw > 0) { /* a protected token or line break between two words starts a new segment */
            const tword *p = &d->w[d->nw - 1];
            w->seg = p->seg;
            for (size_t k = p->start + p->len; k < i; k++)
                if (d->prot[k] || s[k] == '\n') {
                    w->seg = p->seg + 1;
                    break;
                }
        }
        w->cur = malloc(j - i + 1);
        if (!w->cur) {
            doc_free(d);
            return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
        }
        memcpy(w->cur, s + i, j - i);
        w->cur[j - i] = 0;
        d->nw++;
        i = j;
    }
    return VT_OK;
}

/* Renders the edited document. A deleted word also takes one adjacent space. */
static vt_status doc_render(const tdoc *d, char **out, vt_error *err) {
    size_t cap = d->n + 1;
    for (size_t k = 0; k < d->nw; k++) cap += strlen(d->w[k].cur) + (d->w[k].before ? strlen(d->w[k].before) : 0);
    char *o = malloc(cap);
    if (!o) return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    size_t len = 0, k = 0;
    for (size_t i = 0; i < d->n;) {
        if (k < d->nw && d->w[k].start == i) {
            const tword *w = &d->w[k++];
            if (w->before) memcpy(o + len, w->before, strlen(w->before)), len += strlen(w->before);
            i += w->len;
            if (w->deleted) {
                if (i < d->n && d->src[i] == ' ' && (len == 0 || o[len - 1] == ' ' || o[len - 1] == '\n')) i++;
                else if (len > 0 && o[len - 1] == ' ') len--;
            } else {
                size_t l = strlen(w->cur);
                memcpy(o + len, w->cur, l), len += l;
            }
            continue;
        }
        o[len++] = d->src[i++];
    }
    o[len] = 0;
    *out = o;
    return VT_OK;
}

/* k distinct picks from idx[0..n) (partial Fisher-Yates, in place). */
static size_t pick(vt_rng *rng, size_t *idx, size_t n, size_t k) {
    if (k > n) k = n;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)vt_rng_below(rng, n - i), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    return k;
}

static size_t count_for(double rate, size_t n) {
    size_t k = (size_t)ceil(rate * (double)n - 1e-9);
    return k < 1 ? 1 : k;
}

static const double WORD_RATE[5] = {.05, .10, .15, .20, .25};

/* ---- character level (nlpaug defaults: aug_char_p .3, 1..10 chars, words of >= 4 chars) ---- */

typedef int (*char_op)(tword *w, vt_rng *rng); /* returns 0 when it changed the word */

static const char *const KEYBOARD[26] = {
    "qwsz", "vghn", "xdfv", "serfcx", "wrsdf", "drtgvc", "ftyhbv", "gyujnb", "uojkl", "huikmn", "jiolm", "kop", "njk",
    "bhjm", "ipkl", "ol", "was", "etdfg", "awedxz", "ryfgh", "yihjk", "cfgb", "qesad", "zsdc", "tughj", "asx"};
/* Glyph confusions of OCR engines (letters only: digits are protected input and stay legal output). */
static const char *ocr_map(char c) {
    switch (c) {
    case 'o': return "0";
    case 'O': return "0D";
    case 'l': return "1I";
    case 'I': return "1l";
    case 'i': return "1l";
    case 's': return "5";
    case 'S': return "58";
    case 'B': return "8";
    case 'b': return "6";
    case 'g': return "9q";
    case 'q': return "g";
    case 'z': return "2";
    case 'Z': return "2";
    case 'e': return "c";
    case 'c': return "e";
    case 'a': return "o";
    case 'A': return "4";
    case 't': return "7";
    case 'T': return "7";
    case 'm': return "n";
    case 'n': return "m";
    case 'h': return "b";
    case 'u': return "v";
    case 'v': return "u";
    case 'p': return "q";
    case 'G': return "6";
    default: return NULL;
    }
}

static size_t chars_to_change(size_t len) {
    size_t k = (size_t)(0.3 * (double)len);
    return k < 1 ? 1 : k > 10 ? 10 : k;
}

static char keep_case(char like, char c) {
    return (like >= 'A' && like <= 'Z') ? (char)toupper((unsigned char)c) : (char)tolower((unsigned char)c);
}

static int op_keyboard(tword *w, vt_rng *rng) {
    size_t len = strlen(w->cur), k = chars_to_change(len), pos[64], np = 0, done = 0;
    for (size_t i = 0; i < len && np < 64; i++) pos[np++] = i;
    k = pick(rng, pos, np, k);
    for (size_t i = 0; i < k; i++) {
        char c = w->cur[pos[i]];
        if (!is_alpha(c)) continue;
        const char *nb = KEYBOARD[tolower((unsigned char)c) - 'a'];
        w->cur[pos[i]] = keep_case(c, nb[vt_rng_below(rng, strlen(nb))]);
        done++;
    }
    return done ? 0 : -1;
}

static int op_ocr(tword *w, vt_rng *rng) {
    size_t len = strlen(w->cur), pos[64], np = 0;
    for (size_t i = 0; i < len && np < 64; i++)
        if (ocr_map(w->cur[i])) pos[np++] = i;
    if (!np) return -1;
    size_t k = pick(rng, pos, np, chars_to_change(len));
    for (size_t i = 0; i < k; i++) {
        const char *m = ocr_map(w->cur[pos[i]]);
        w->cur[pos[i]] = m[vt_rng_below(rng, strlen(m))];
    }
    return 0;
}

static int op_insert(tword *w, vt_rng *rng) {
    size_t len = strlen(w->cur), k = chars_to_change(len);
    char *n = realloc(w->cur, len + k + 1);
    if (!n) return -1;
    w->cur = n;
    for (size_t i = 0; i < k; i++, len++) {
        size_t at = (size_t)vt_rng_below(rng, len + 1);
        memmove(n + at + 1, n + at, len - at + 1);
        n[at] = (char)('a' + vt_rng_below(rng, 26));
    }
    return 0;
}

static int op_substitute(tword *w, vt_rng *rng) {
    size_t len = strlen(w->cur), pos[64], np = 0;
    for (size_t i = 0; i < len && np < 64; i++)
        if (is_alpha(w->cur[i])) pos[np++] = i;
    size_t k = pick(rng, pos, np, chars_to_change(len));
    for (size_t i = 0; i < k; i++) {
        char c = w->cur[pos[i]], r;
        do r = (char)('a' + vt_rng_below(rng, 26));
        while (r == tolower((unsigned char)c));
        w->cur[pos[i]] = keep_case(c, r);
    }
    return k ? 0 : -1;
}

static int op_swap(tword *w, vt_rng *rng) {
    size_t len = strlen(w->cur), k = chars_to_change(len), done = 0;
    for (size_t t = 0; t < k; t++) {
        size_t pos[64], np = 0; /* adjacent pairs that differ, so a swap is never a no-op */
        for (size_t i = 0; i + 1 < len && np < 64; i++)
            if (w->cur[i] != w->cur[i + 1]) pos[np++] = i;
        if (!np) break;
        size_t i = pos[vt_rng_below(rng, np)];
        char c = w->cur[i];
        w->cur[i] = w->cur[i + 1], w->cur[i + 1] = c;
        done++;
    }
    return done ? 0 : -1;
}

static int op_delete(tword *w, vt_rng *rng) {
    size_t len = strlen(w->cur), k = chars_to_change(len);
    if (k >= len) k = len - 1; /* keep a word a word */
    for (size_t i = 0; i < k; i++, len--) {
        size_t at = (size_t)vt_rng_below(rng, len);
        memmove(w->cur + at, w->cur + at + 1, len - at);
    }
    return k ? 0 : -1;
}

static vt_status char_shift(const char *in, int severity, vt_rng *rng, char_op op, char **out, vt_error *err) {
    tdoc d;
    vt_status st = doc_parse(in, &d, err);
    if (st != VT_OK) return st;
    size_t *idx = malloc(sizeof(size_t) * (d.nw + 1)), ne = 0;
    if (!idx) {
        doc_free(&d);
        return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    }
    for (size_t i = 0; i < d.nw; i++)
        if (d.w[i].len >= 4) idx[ne++] = i;
    if (ne == 0) /* short texts: any word of two letters or more */
        for (size_t i = 0; i < d.nw; i++)
            if (d.w[i].len >= 2) idx[ne++] = i;
    size_t want = d.nw ? count_for(WORD_RATE[severity - 1], d.nw) : 0, done = 0;
    pick(rng, idx, ne, ne); /* random order; take the first `want` that change */
    for (size_t i = 0; i < ne && done < want; i++)
        if (op(&d.w[idx[i]], rng) == 0) done++;
    free(idx);
    st = doc_render(&d, out, err);
    doc_free(&d);
    return st;
}

VT_SHIFT_TEXT_KERNEL(keyboard) { (void)env; return char_shift(in, severity, rng, op_keyboard, out, err); }
VT_SHIFT_TEXT_KERNEL(ocr) { (void)env; return char_shift(in, severity, rng, op_ocr, out, err); }
VT_SHIFT_TEXT_KERNEL(char_insert) { (void)env; return char_shift(in, severity, rng, op_insert, out, err); }
VT_SHIFT_TEXT_KERNEL(char_substitute) { (void)env; return char_shift(in, severity, rng, op_substitute, out, err); }
VT_SHIFT_TEXT_KERNEL(char_swap) { (void)env; return char_shift(in, severity, rng, op_swap, out, err); }
VT_SHIFT_TEXT_KERNEL(char_delete) { (void)env; return char_shift(in, severity, rng, op_delete, out, err); }

/* ---- word level (EDA: n = max(1, ceil(alpha * words))) ---- */

/* EDA's stop words are never replaced by synonyms. */
static const char *const STOP_WORDS[] = {
    "i", "me", "my", "myself", "we", "our", "ours", "you", "your", "yours", "he", "him", "his", "she", "her", "it",
    "its", "they", "them", "their", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is",
    "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a",
    "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with",
    "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from",
    "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there",
    "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such",
    "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just",
    "don", "should", "now", "", NULL};

static int is_stop(const char *w) {
    char low[64];
    size_t n = strlen(w);
    if (n >= sizeof low) return 0;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)w[i]);
    for (int i = 0; STOP_WORDS[i]; i++)
        if (!strcmp(low, STOP_WORDS[i])) return 1;
    return 0;
}

/* Synonym with the original's capitalisation (Title or UPPER). */
static char *cased_synonym(const char *orig, const char *syn) {
    char *s = strdup(syn);
    if (!s) return NULL;
    size_t n = strlen(orig);
    int all_upper = n > 1;
    for (size_t i = 0; i < n; i++)
        if (!(orig[i] >= 'A' && orig[i] <= 'Z')) all_upper = 0;
    if (all_upper)
        for (char *c = s; *c; c++) *c = (char)toupper((unsigned char)*c);
    else if (orig[0] >= 'A' && orig[0] <= 'Z')
        s[0] = (char)toupper((unsigned char)s[0]);
    return s;
}

static vt_status append_before(tword *w, const char *text, vt_error *err) {
    size_t a = w->before ? strlen(w->before) : 0, b = strlen(text);
    char *n = realloc(w->before, a + b + 1);
    if (!n) return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    memcpy(n + a, text, b + 1);
    w->before = n;
    return VT_OK;
}

static vt_status synonym_shift(const char *in, int severity, vt_rng *rng, vt_shift_env *env, int insert,
                               char **out, vt_error *err) {
    const vt_wordnet *wn;
    vt_status st = vt_shift_env_wordnet(env, &wn, err);
    if (st != VT_OK) return st;
    tdoc d;
    if ((st = doc_parse(in, &d, err)) != VT_OK) return st;
    size_t *idx = malloc(sizeof(size_t) * (d.nw + 1)), ne = 0;
    char ***syn = calloc(d.nw + 1, sizeof(char **));
    size_t *nsyn = calloc(d.nw + 1, sizeof(size_t));
    if (!idx || !syn || !nsyn) {
        st = vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
        goto done;
    }
    for (size_t i = 0; i < d.nw && st == VT_OK; i++) {
        if (is_stop(d.w[i].cur)) continue;
        st = vt_wordnet_synonyms(wn, d.w[i].cur, &syn[i], &nsyn[i], err);
        if (st == VT_OK && nsyn[i]) idx[ne++] = i;
    }
    if (st != VT_OK) goto done;
    size_t want = d.nw ? count_for(WORD_RATE[severity - 1], d.nw) : 0;
    if (!insert) {
        size_t k = pick(rng, idx, ne, want);
        for (size_t i = 0; i < k; i++) {
            tword *w = &d.w[idx[i]];
            char *c = cased_synonym(w->cur, syn[idx[i]][vt_rng_below(rng, nsyn[idx[i]])]);
            if (!c) {
                st = vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
                goto done;
            }
            free(w->cur);
            w->cur = c;
        }
    } else if (ne > 0) {
        for (size_t i = 0; i < want && st == VT_OK; i++) {
            size_t src = idx[vt_rng_below(rng, ne)];
            const char *s = syn[src][vt_rng_below(rng, nsyn[src])];
            size_t at = (size_t)vt_rng_below(rng, d.nw);
            char buf[160];
            snprintf(buf, sizeof buf, "%s ", s);
            if (at == 0 && d.w[0].cur[0] >= 'A' && d.w[0].cur[0] <= 'Z') buf[0] = (char)toupper((unsigned char)buf[0]);
            st = append_before(&d.w[at], buf, err);
        }
    }
    if (st == VT_OK) st = doc_render(&d, out, err);
done:
    if (syn)
        for (size_t i = 0; i < d.nw; i++) vt_wordnet_list_free(syn[i]);
    free(syn), free(nsyn), free(idx);
    doc_free(&d);
    return st;
}

VT_SHIFT_TEXT_KERNEL(synonym_replace) { return synonym_shift(in, severity, rng, env, 0, out, err); }
VT_SHIFT_TEXT_KERNEL(synonym_insert) { return synonym_shift(in, severity, rng, env, 1, out, err); }

VT_SHIFT_TEXT_KERNEL(word_swap) {
    (void)env;
    tdoc d;
    vt_status st = doc_parse(in, &d, err);
    if (st != VT_OK) return st;
    size_t want = d.nw ? count_for(WORD_RATE[severity - 1], d.nw) : 0;
    for (size_t t = 0, tries = 0; t < want && d.nw >= 2 && tries < 100 * want; tries++) {
        size_t a = (size_t)vt_rng_below(rng, d.nw), b = (size_t)vt_rng_below(rng, d.nw);
        /* within a segment, so option texts never trade places across labels
         * ("A. red B. blue" keeps its answer key); a swap must change the text */
        if (a == b || d.w[a].seg != d.w[b].seg || !strcmp(d.w[a].cur, d.w[b].cur)) continue;
        char *c = d.w[a].cur;
        d.w[a].cur = d.w[b].cur, d.w[b].cur = c;
        t++;
    }
    st = doc_render(&d, out, err);
    doc_free(&d);
    return st;
}

/* EDA random deletion, except that no segment loses its last word: an
 * option ("A. red B. blue") always keeps its text. left[seg] counts the
 * words still standing in each segment. */
static void delete_word(tdoc *d, size_t *left, size_t i, size_t *del) {
    if (d->w[i].deleted || left[d->w[i].seg] <= 1) return;
    d->w[i].deleted = 1;
    left[d->w[i].seg]--;
    (*del)++;
}

VT_SHIFT_TEXT_KERNEL(word_delete) {
    (void)env;
    tdoc d;
    vt_status st = doc_parse(in, &d, err);
    if (st != VT_OK) return st;
    size_t *left = calloc(d.nw + 1, sizeof(size_t)), del = 0;
    if (!left) {
        doc_free(&d);
        return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    }
    for (size_t i = 0; i < d.nw; i++) left[d.w[i].seg]++;
    for (size_t i = 0; i < d.nw; i++)
        if (vt_rng_uniform_double(rng) < WORD_RATE[severity - 1]) delete_word(&d, left, i, &del);
    for (size_t t = 0; del == 0 && d.nw > 0 && t < 8 * d.nw; t++) /* EDA keeps at least one change */
        delete_word(&d, left, (size_t)vt_rng_below(rng, d.nw), &del);
    free(left);
    st = doc_render(&d, out, err);
    doc_free(&d);
    return st;
}

/* Qiu et al.'s insert-punctuation: one of . , ! ? ; : before k ~ U{1..floor(r*N)+1} words. */
VT_SHIFT_TEXT_KERNEL(insert_punctuation) {
    (void)env;
    static const char PUNCT[] = ".,!?;:";
    tdoc d;
    vt_status st = doc_parse(in, &d, err);
    if (st != VT_OK) return st;
    if (d.nw > 0) {
        size_t kmax = (size_t)floor(WORD_RATE[severity - 1] * (double)d.nw) + 1;
        size_t k = 1 + (size_t)vt_rng_below(rng, kmax);
        for (size_t i = 0; i < k && st == VT_OK; i++) {
            char buf[3] = {PUNCT[vt_rng_below(rng, 6)], ' ', 0};
            st = append_before(&d.w[vt_rng_below(rng, d.nw)], buf, err);
        }
    }
    if (st == VT_OK) st = doc_render(&d, out, err);
    doc_free(&d);
    return st;
}

/* ---- format ---- */

VT_SHIFT_TEXT_KERNEL(case_change) {
    (void)env;
    static const double frac[5] = {.2, .4, .6, .8, 1.0};
    tdoc d;
    vt_status st = doc_parse(in, &d, err);
    if (st != VT_OK) return st;
    size_t *idx = malloc(sizeof(size_t) * (d.nw + 1));
    if (!idx) {
        doc_free(&d);
        return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    }
    for (size_t i = 0; i < d.nw; i++) idx[i] = i;
    size_t k = pick(rng, idx, d.nw, d.nw ? count_for(frac[severity - 1], d.nw) : 0);
    for (size_t i = 0; i < k; i++) {
        char *w = d.w[idx[i]].cur, *orig = strdup(w);
        if (!orig) break;
        for (int tries = 0; tries < 8 && !strcmp(w, orig); tries++) {
            uint64_t mode = vt_rng_below(rng, 3);
            for (char *c = w; *c; c++)
                *c = mode == 0   ? (char)toupper((unsigned char)*c)
                     : mode == 1 ? (char)tolower((unsigned char)*c)
                                 : (vt_rng_below(rng, 2) ? (char)toupper((unsigned char)*c) : (char)tolower((unsigned char)*c));
        }
        free(orig);
    }
    free(idx);
    st = doc_render(&d, out, err);
    doc_free(&d);
    return st;
}

/* Latin letters and the Cyrillic letters that render the same (UTF-8). */
static const char *homoglyph(char c) {
    switch (c) {
    case 'a': return "\xD0\xB0";
    case 'c': return "\xD1\x81";
    case 'e': return "\xD0\xB5";
    case 'i': return "\xD1\x96";
    case 'o': return "\xD0\xBE";
    case 'p': return "\xD1\x80";
    case 's': return "\xD1\x95";
    case 'x': return "\xD1\x85";
    case 'y': return "\xD1\x83";
    case 'A': return "\xD0\x90";
    case 'B': return "\xD0\x92";
    case 'C': return "\xD0\xA1";
    case 'E': return "\xD0\x95";
    case 'H': return "\xD0\x9D";
    case 'K': return "\xD0\x9A";
    case 'M': return "\xD0\x9C";
    case 'O': return "\xD0\x9E";
    case 'P': return "\xD0\xA0";
    case 'T': return "\xD0\xA2";
    case 'X': return "\xD0\xA5";
    default: return NULL;
    }
}

/* A fraction of the editable characters: spaces become double spaces or
 * newlines, letters become Cyrillic homoglyphs. */
VT_SHIFT_TEXT_KERNEL(whitespace_homoglyph) {
    (void)env;
    static const double frac[5] = {.02, .05, .10, .15, .20};
    size_t n = strlen(in);
    if (n > VT_SHIFT_MAX_TEXT)
        return vt_fail(err, VT_ERR_RANGE, "text of %zu bytes exceeds the %d byte limit", n, VT_SHIFT_MAX_TEXT);
    uint8_t *prot = malloc(n + 1), *hit = calloc(n + 1, 1);
    size_t *idx = malloc(sizeof(size_t) * (n + 1)), ne = 0, editable = 0;
    char *o = malloc(2 * n + 1);
    if (!prot || !hit || !idx || !o) {
        free(prot), free(hit), free(idx), free(o);
        return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    }
    mark_protected(in, n, prot);
    for (size_t i = 0; i < n; i++) {
        if (prot[i]) continue;
        if (in[i] == ' ' || is_alpha(in[i])) editable++;
        if (in[i] == ' ' || homoglyph(in[i])) idx[ne++] = i;
    }
    size_t k = pick(rng, idx, ne, editable ? count_for(frac[severity - 1], editable) : 0);
    for (size_t i = 0; i < k; i++) hit[idx[i]] = 1;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hit[i]) {
            o[len++] = in[i];
        } else if (in[i] == ' ') {
            if (vt_rng_below(rng, 2)) o[len++] = ' ', o[len++] = ' ';
            else o[len++] = '\n';
        } else {
            const char *g = homoglyph(in[i]);
            o[len++] = g[0], o[len++] = g[1];
        }
    }
    o[len] = 0;
    free(prot), free(hit), free(idx);
    *out = o;
    return VT_OK;
}

/* ---- sentence: irrelevant sentences (TextFlint AppendIrr), placed before the
 * instruction (after leading <tags>/whitespace) so the output-format
 * sentence that usually ends a prompt stays last. No digits, quotes or lone
 * capitals, so they add no protected tokens. ---- */
static const char *const DISTRACTORS[] = {
    "The weather was pleasant that afternoon.",
    "Many people enjoy long walks in the park.",
    "Coffee tastes better when it is freshly brewed.",
    "The library closes early on public holidays.",
    "Some birds migrate south before the winter.",
    "Good sleep helps concentration.",
    "The museum recently opened a new wing.",
    "Trains are often faster than buses in the city.",
    "Fresh bread was sold out by noon.",
    "The river looked calm after the storm.",
    "Music can change the mood of a room.",
    "The old bridge was repainted last spring.",
};
enum { NDISTRACTORS = sizeof DISTRACTORS / sizeof DISTRACTORS[0] };

VT_SHIFT_TEXT_KERNEL(distractor) {
    (void)env;
    size_t n = strlen(in);
    if (n > VT_SHIFT_MAX_TEXT)
        return vt_fail(err, VT_ERR_RANGE, "text of %zu bytes exceeds the %d byte limit", n, VT_SHIFT_MAX_TEXT);
    size_t at = 0;
    for (;;) { /* skip leading whitespace and <tags> */
        while (at < n && is_space(in[at])) at++;
        if (at < n && in[at] == '<') {
            const char *e = strchr(in + at, '>');
            if (e && (size_t)(e - in) - at < 40) {
                at = (size_t)(e - in) + 1;
                continue;
            }
        }
        break;
    }
    size_t idx[NDISTRACTORS], cap = n + 1;
    for (size_t i = 0; i < NDISTRACTORS; i++) idx[i] = i, cap += strlen(DISTRACTORS[i]) + 1;
    size_t k = pick(rng, idx, NDISTRACTORS, (size_t)severity);
    char *o = malloc(cap);
    if (!o) return vt_fail(err, VT_ERR_NOMEM, "text shift: out of memory");
    memcpy(o, in, at);
    size_t len = at;
    for (size_t i = 0; i < k; i++) {
        size_t l = strlen(DISTRACTORS[idx[i]]);
        memcpy(o + len, DISTRACTORS[idx[i]], l), len += l;
        o[len++] = ' ';
    }
    memcpy(o + len, in + at, n - at + 1);
    *out = o;
    return VT_OK;
}
