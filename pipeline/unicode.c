/* UTF-8 coding, character classes and NFC over the generated Unicode tables.
 * NFC follows UAX #15: full canonical decomposition, canonical ordering, then
 * canonical composition, with Hangul handled arithmetically. */
#include "pipeline/unicode.h"

#include <stdlib.h>
#include <string.h>

#include "pipeline/unicode_tables.h"

const char *vt_unicode_db_version(void) { return vt_unicode_version; }

int vt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < (size_t)len) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int vt_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool vt_utf8_valid(const char *s, size_t n, size_t *bad_offset) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        uint32_t cp;
        int k = vt_utf8_decode(u + i, n - i, &cp);
        if (k == 0) {
            if (bad_offset) *bad_offset = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

static unsigned range_lookup(const vt_ucd_range *r, unsigned count, uint32_t cp) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return r[mid].value;
    }
    return 0;
}

unsigned vt_unicode_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return VT_UC_LETTER | VT_UC_ASSIGNED;
        if (cp >= '0' && cp <= '9') return VT_UC_NUMBER | VT_UC_ASSIGNED;
        return VT_UC_ASSIGNED;
    }
    return range_lookup(vt_ucd_class_ranges, vt_ucd_class_count, cp);
}

bool vt_unicode_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x00A0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000: case 0xFEFF:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

unsigned vt_unicode_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    return range_lookup(vt_ucd_ccc_ranges, vt_ucd_ccc_count, cp);
}

/* Hangul syllable arithmetic (Unicode §3.12). */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT,
       S_COUNT = L_COUNT * N_COUNT };

typedef struct cpbuf { uint32_t *v; size_t n, cap; } cpbuf;

static bool cp_push(cpbuf *b, uint32_t cp) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return false;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = cp;
    return true;
}

static const vt_ucd_decomp *find_decomp(uint32_t cp) {
    size_t lo = 0, hi = vt_ucd_decomp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < vt_ucd_decomps[mid].cp) hi = mid;
        else if (cp > vt_ucd_decomps[mid].cp) lo = mid + 1;
        else return &vt_ucd_decomps[mid];
    }
    return NULL;
}

static bool decompose(cpbuf *b, uint32_t cp) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        if (!cp_push(b, L_BASE + s / N_COUNT) || !cp_push(b, V_BASE + (s % N_COUNT) / T_COUNT)) return false;
        if (s % T_COUNT && !cp_push(b, T_BASE + s % T_COUNT)) return false;
        return true;
    }
    const vt_ucd_decomp *d = cp >= 0xC0 ? find_decomp(cp) : NULL;
    if (!d) return cp_push(b, cp);
    if (!decompose(b, d->first)) return false;
    return d->second ? decompose(b, d->second) : true;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = vt_ucd_composition_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const vt_ucd_compose *c = &vt_ucd_compositions[mid];
        if (a < c->first || (a == c->first && b < c->second)) hi = mid;
        else if (a > c->first || b > c->second) lo = mid + 1;
        else return c->composite;
    }
    return 0;
}

vt_status vt_unicode_nfc(const char *s, size_t n, char **out, size_t *out_len, vt_error *err) {
    *out = NULL;
    *out_len = 0;
    size_t bad;
    if (!vt_utf8_valid(s, n, &bad))
        return vt_fail(err, VT_ERR_FORMAT, "invalid UTF-8 at byte offset %zu", bad);
    /* Code points below U+0300 are NFC on their own and never combine
     * backwards, so text made only of them is already normalised. */
    bool simple = true;
    for (size_t i = 0; i < n && simple; i++)
        if ((unsigned char)s[i] >= 0xCC) simple = false;
    if (simple) {
        char *copy = malloc(n + 1);
        if (!copy) return vt_fail(err, VT_ERR_NOMEM, "out of memory in NFC");
        memcpy(copy, s, n);
        copy[n] = 0;
        *out = copy;
        *out_len = n;
        return VT_OK;
    }
    cpbuf b = {0};
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = vt_utf8_decode(u + i, n - i, &cp);
        i += (size_t)k;
        if (!decompose(&b, cp)) goto oom;
    }
    /* Canonical ordering: stable sort of each run of non-starters by ccc. */
    for (size_t i = 1; i < b.n; i++) {
        unsigned c = vt_unicode_ccc(b.v[i]);
        if (c == 0) continue;
        size_t j = i;
        while (j > 0) {
            unsigned p = vt_unicode_ccc(b.v[j - 1]);
            if (p == 0 || p <= c) break;
            uint32_t t = b.v[j];
            b.v[j] = b.v[j - 1];
            b.v[j - 1] = t;
            j--;
        }
    }
    /* Canonical composition. */
    size_t w = 0;
    long starter = -1;
    unsigned last_cc = 0;
    for (size_t i = 0; i < b.n; i++) {
        uint32_t c = b.v[i];
        unsigned cc = vt_unicode_ccc(c);
        if (starter >= 0) {
            bool adjacent = (size_t)starter == w - 1;
            if ((adjacent && last_cc == 0) || (!adjacent && last_cc != 0 && last_cc < cc)) {
                uint32_t comp = compose(b.v[starter], c);
                if (comp) {
                    b.v[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) {
            starter = (long)w;
            last_cc = 0;
        } else {
            last_cc = cc;
        }
        b.v[w++] = c;
    }
    char *res = malloc(w * 4 + 1);
    if (!res) goto oom;
    size_t len = 0;
    for (size_t i = 0; i < w; i++) len += (size_t)vt_utf8_encode(b.v[i], res + len);
    res[len] = 0;
    free(b.v);
    *out = res;
    *out_len = len;
    return VT_OK;
oom:
    free(b.v);
    return vt_fail(err, VT_ERR_NOMEM, "out of memory in NFC");
}
