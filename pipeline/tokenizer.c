/* Tokenizer core: the vocabulary tables, added-token matching, the encode
 * path (added tokens -> normalizer -> pre-tokenizer -> BPE per word), decode,
 * the built-in byte-level tokenizer and vt_tokenizer_open. Loaders for the
 * file formats live in tokenizer_gpt2.c and tokenizer_hf.c. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "pipeline/tokenizer_internal.h"
#include "pipeline/unicode.h"

void vt_tokens_free(vt_tokens *t) {
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

vt_status vt_tokens_push(vt_tokens *t, int32_t id, vt_error *err) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *ids = realloc(t->ids, cap * sizeof *ids);
        if (!ids) return vt_fail(err, VT_ERR_NOMEM, "out of memory for %zu token ids", cap);
        t->ids = ids;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return VT_OK;
}

/* ---- GPT-2 byte <-> code point mapping ------------------------------- */

static bool printable_byte(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t vt_tok_byte_to_cp(unsigned char b) {
    if (printable_byte(b)) return b;
    /* Non-printable bytes take 256, 257, ... in increasing byte order. */
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!printable_byte(x)) n++;
    return 256 + n;
}

int vt_tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    uint32_t n = 256;
    for (unsigned x = 0; x < 256; x++)
        if (!printable_byte(x) && n++ == cp) return (int)x;
    return -1;
}

/* ---- tables ---------------------------------------------------------- */

vt_tokenizer *vt_tok_alloc(const char *kind) {
    vt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->unk_id = t->eos = t->bos = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    pthread_mutex_init(&t->cache_mu, NULL);
    return t;
}

void vt_tokenizer_free(vt_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->dec[i] != t->tok[i]) free(t->dec[i]);
        free(t->tok[i]);
    }
    free(t->tok);
    free(t->tok_len);
    free(t->dec);
    free(t->dec_len);
    free(t->special);
    free(t->vocab.slots);
    free(t->merges.slots);
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    vt_word_cache_free(t->cache);
    pthread_mutex_destroy(&t->cache_mu);
    free(t);
}

static vt_status grow_vocab(vt_tokenizer *t, int32_t id, vt_error *err) {
    if (id < 0) return vt_fail(err, VT_ERR_RANGE, "negative token id %d", id);
    if ((size_t)id < t->cap_vocab) {
        if (id >= t->n_vocab) t->n_vocab = id + 1;
        return VT_OK;
    }
    size_t cap = t->cap_vocab ? t->cap_vocab : 1024;
    while (cap <= (size_t)id) cap *= 2;
#define GROW(field)                                                             \
    do {                                                                        \
        void *p = realloc(t->field, cap * sizeof *t->field);                    \
        if (!p) return vt_fail(err, VT_ERR_NOMEM, "out of memory for vocab");   \
        t->field = p;                                                           \
        memset(t->field + t->cap_vocab, 0, (cap - t->cap_vocab) * sizeof *t->field); \
    } while (0)
    GROW(tok);
    GROW(tok_len);
    GROW(dec);
    GROW(dec_len);
    GROW(special);
#undef GROW
    t->cap_vocab = cap;
    t->n_vocab = id + 1;
    return VT_OK;
}

vt_status vt_tok_set(vt_tokenizer *t, int32_t id, const char *s, size_t len, vt_error *err) {
    vt_status st = grow_vocab(t, id, err);
    if (st) return st;
    char *copy = malloc(len + 1);
    if (!copy) return vt_fail(err, VT_ERR_NOMEM, "out of memory for vocab");
    memcpy(copy, s, len);
    copy[len] = 0;
    if (t->dec[id] != t->tok[id]) free(t->dec[id]);
    free(t->tok[id]);
    t->tok[id] = t->dec[id] = copy;
    t->tok_len[id] = t->dec_len[id] = (uint32_t)len;
    return VT_OK;
}

vt_status vt_tok_set_decoded(vt_tokenizer *t, int32_t id, const char *s, size_t len, vt_error *err) {
    if (id < 0 || id >= t->n_vocab || !t->tok[id]) return vt_fail(err, VT_ERR_RANGE, "token id %d not set", id);
    char *copy = malloc(len + 1);
    if (!copy) return vt_fail(err, VT_ERR_NOMEM, "out of memory for vocab");
    memcpy(copy, s, len);
    copy[len] = 0;
    if (t->dec[id] != t->tok[id]) free(t->dec[id]);
    t->dec[id] = copy;
    t->dec_len[id] = (uint32_t)len;
    return VT_OK;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

vt_status vt_tok_index(vt_tokenizer *t, vt_error *err) {
    size_t cap = 1024;
    while (cap < (size_t)t->n_vocab * 2 + 16) cap *= 2;
    free(t->vocab.slots);
    t->vocab.slots = calloc(cap, sizeof *t->vocab.slots);
    if (!t->vocab.slots) return vt_fail(err, VT_ERR_NOMEM, "out of memory for vocab index");
    t->vocab.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->tok[id]) continue;
        size_t h = hash_bytes(t->tok[id], t->tok_len[id]) & t->vocab.mask;
        for (;;) {
            uint32_t s = t->vocab.slots[h];
            if (s == 0) {
                t->vocab.slots[h] = (uint32_t)id + 1;
                break;
            }
            /* A spelling seen twice keeps its first (lowest) id. */
            if (t->tok_len[s - 1] == t->tok_len[id] && memcmp(t->tok[s - 1], t->tok[id], t->tok_len[id]) == 0)
                break;
            h = (h + 1) & t->vocab.mask;
        }
    }
    return VT_OK;
}

int32_t vt_tok_lookup(const vt_tokenizer *t, const char *s, size_t len) {
    if (!t->vocab.slots) return -1;
    size_t h = hash_bytes(s, len) & t->vocab.mask;
    for (;;) {
        uint32_t v = t->vocab.slots[h];
        if (v == 0) return -1;
        if (t->tok_len[v - 1] == len && memcmp(t->tok[v - 1], s, len) == 0) return (int32_t)v - 1;
        h = (h + 1) & t->vocab.mask;
    }
}

static size_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

vt_status vt_tok_add_merge(vt_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged,
                           vt_error *err) {
    vt_pairmap *m = &t->merges;
    if ((m->count + 1) * 2 > m->mask + 1 || !m->slots) {
        size_t cap = m->slots ? (m->mask + 1) * 2 : 4096;
        vt_pair_entry *slots = calloc(cap, sizeof *slots);
        if (!slots) return vt_fail(err, VT_ERR_NOMEM, "out of memory for merges");
        for (size_t i = 0; m->slots && i <= m->mask; i++) {
            if (!m->slots[i].key) continue;
            size_t h = pair_hash(m->slots[i].key) & (cap - 1);
            while (slots[h].key) h = (h + 1) & (cap - 1);
            slots[h] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->mask = cap - 1;
    }
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t h = pair_hash(key) & m->mask;
    while (m->slots[h].key) {
        if (m->slots[h].key == key) return VT_OK; /* first (best) rank wins */
        h = (h + 1) & m->mask;
    }
    m->slots[h] = (vt_pair_entry){key, rank, merged};
    m->count++;
    return VT_OK;
}

vt_status vt_tok_add_added(vt_tokenizer *t, const char *content, size_t len, int32_t id, bool special,
                           bool lstrip, bool rstrip, bool single_word, vt_error *err) {
    if (len == 0) return vt_fail(err, VT_ERR_FORMAT, "added token %d has empty content", id);
    size_t bad;
    if (!vt_utf8_valid(content, len, &bad))
        return vt_fail(err, VT_ERR_FORMAT, "added token %d is not UTF-8 (byte %zu)", id, bad);
    vt_status st = vt_tok_set(t, id, content, len, err);
    if (st) return st;
    t->special[id] = special;
    vt_added_token *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a) return vt_fail(err, VT_ERR_NOMEM, "out of memory for added tokens");
    t->added = a;
    char *c = malloc(len + 1);
    if (!c) return vt_fail(err, VT_ERR_NOMEM, "out of memory for added tokens");
    memcpy(c, content, len);
    c[len] = 0;
    t->added[t->n_added++] = (vt_added_token){c, len, id, special, lstrip, rstrip, single_word};
    t->added_first[(unsigned char)content[0]] = 1;
    return VT_OK;
}

static int32_t first_of(const vt_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = vt_tok_lookup(t, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

void vt_tok_default_roles(vt_tokenizer *t) {
    static const char *const eos[] = {"</s>", "<|endoftext|>", "<|end_of_text|>", "<|im_end|>", "<eos>", NULL};
    static const char *const bos[] = {"<s>", "<|begin_of_text|>", "<bos>", NULL};
    static const char *const pad[] = {"<pad>", "<|pad|>", "<|finetune_right_pad_id|>", NULL};
    if (t->eos < 0) t->eos = first_of(t, eos);
    if (t->bos < 0) t->bos = first_of(t, bos);
    if (t->pad < 0) t->pad = first_of(t, pad);
    if (t->pad < 0) t->pad = t->eos;
}

vt_status vt_tok_finish(vt_tokenizer *t, vt_error *err) {
    vt_status st = vt_tok_index(t, err);
    if (st) return st;
    if (t->byte_level) {
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_id[b] = vt_tok_lookup(t, &c, 1);
            if (t->byte_id[b] < 0)
                return vt_fail(err, VT_ERR_FORMAT, "byte-level vocabulary has no token for byte 0x%02X", b);
        }
    }
    vt_tok_default_roles(t);
    t->cache = vt_word_cache_new();
    if (!t->cache) return vt_fail(err, VT_ERR_NOMEM, "out of memory for the word cache");
    return VT_OK;
}

/* ---- encode ---------------------------------------------------------- */

typedef struct seg_ctx {
    vt_tokenizer *t;
    const char *buf;
    vt_tokens *out;
} seg_ctx;

static vt_status emit_word(void *ctx, size_t off, size_t len, vt_error *err) {
    seg_ctx *c = ctx;
    return vt_tok_bpe_word(c->t, c->buf + off, len, c->out, err);
}

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static bool sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

/* Replaces every occurrence of a in s[0..n) with b into out (fresh). */
static bool replace_all(sbuf *out, const char *s, size_t n, const char *a, size_t alen, const char *b, size_t blen) {
    out->n = 0;
    if (!sb_put(out, "", 0)) return false;
    size_t i = 0;
    while (i < n) {
        if (alen && i + alen <= n && memcmp(s + i, a, alen) == 0) {
            if (!sb_put(out, b, blen)) return false;
            i += alen;
        } else {
            if (!sb_put(out, s + i, 1)) return false;
            i++;
        }
    }
    return true;
}

static const char METASPACE[] = "\xE2\x96\x81"; /* U+2581 ▁ */

/* first: the segment starts the text; prefix_ok: prefixes may be added. */
static vt_status encode_segment(vt_tokenizer *t, const char *s, size_t n, bool first, bool prefix_ok,
                                vt_tokens *out, vt_error *err) {
    if (n == 0) return VT_OK;
    sbuf a = {0}, b = {0};
    vt_status st = VT_OK;
    if (!sb_put(&a, s, n)) goto oom;
    for (size_t k = 0; k < t->n_norm; k++) {
        const vt_norm_op *op = &t->norm[k];
        if (op->kind == VT_NORM_NFC) {
            char *nfc;
            size_t nn;
            st = vt_unicode_nfc(a.p, a.n, &nfc, &nn, err);
            if (st) goto done;
            free(a.p);
            a.p = nfc;
            a.n = nn;
            a.cap = nn + 1;
        } else if (op->kind == VT_NORM_PREPEND) {
            if (a.n == 0 || !prefix_ok) continue;
            b.n = 0;
            if (!sb_put(&b, op->a, op->alen) || !sb_put(&b, a.p, a.n)) goto oom;
            sbuf tmp = a; a = b; b = tmp;
        } else {
            if (!replace_all(&b, a.p, a.n, op->a, op->alen, op->b, op->blen)) goto oom;
            sbuf tmp = a; a = b; b = tmp;
        }
    }
    if (t->add_prefix_space && prefix_ok && a.n && a.p[0] != ' ') {
        b.n = 0;
        if (!sb_put(&b, " ", 1) || !sb_put(&b, a.p, a.n)) goto oom;
        sbuf tmp = a; a = b; b = tmp;
    }
    if (t->metaspace) {
        if (!replace_all(&b, a.p, a.n, " ", 1, METASPACE, 3)) goto oom;
        sbuf tmp = a; a = b; b = tmp;
        bool prepend = prefix_ok && (t->metaspace_prepend == 2 || (t->metaspace_prepend == 1 && first));
        if (prepend && !(a.n >= 3 && memcmp(a.p, METASPACE, 3) == 0)) {
            b.n = 0;
            if (!sb_put(&b, METASPACE, 3) || !sb_put(&b, a.p, a.n)) goto oom;
            tmp = a; a = b; b = tmp;
        }
        if (t->metaspace_split) {
            /* Words start at each "▁" (HF's MergedWithNext split). */
            size_t start = 0;
            for (size_t i = 1; i + 3 <= a.n; i++) {
                if (memcmp(a.p + i, METASPACE, 3) == 0) {
                    st = vt_tok_bpe_word(t, a.p + start, i - start, out, err);
                    if (st) goto done;
                    start = i;
                }
            }
            st = vt_tok_bpe_word(t, a.p + start, a.n - start, out, err);
            goto done;
        }
    }
    if (a.n == 0) goto done;
    if (t->split == VT_SPLIT_NONE) {
        st = vt_tok_bpe_word(t, a.p, a.n, out, err);
    } else {
        seg_ctx ctx = {t, a.p, out};
        st = vt_tok_split(t, a.p, a.n, emit_word, &ctx, err);
    }
    goto done;
oom:
    st = vt_fail(err, VT_ERR_NOMEM, "out of memory while encoding");
done:
    free(a.p);
    free(b.p);
    return st;
}

static bool is_word_char(const char *s, size_t n, size_t at, bool before) {
    /* The character just before (or at) byte `at`. */
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    if (before) {
        if (at == 0) return false;
        size_t i = at - 1;
        while (i > 0 && (u[i] & 0xC0) == 0x80) i--;
        if (!vt_utf8_decode(u + i, n - i, &cp)) return false;
    } else {
        if (at >= n || !vt_utf8_decode(u + at, n - at, &cp)) return false;
    }
    return (vt_unicode_class(cp) & (VT_UC_LETTER | VT_UC_NUMBER)) != 0 || cp == '_';
}

/* Longest added token matching at s+i that the flags allow, or NULL. */
static const vt_added_token *match_added(const vt_tokenizer *t, const char *s, size_t n, size_t i, unsigned flags) {
    const vt_added_token *best = NULL;
    for (size_t k = 0; k < t->n_added; k++) {
        const vt_added_token *a = &t->added[k];
        if (a->special && !(flags & VT_TOK_ALLOW_SPECIAL)) continue;
        if (a->len > n - i || (best && a->len <= best->len)) continue;
        if (memcmp(s + i, a->content, a->len) != 0) continue;
        if (a->single_word && (is_word_char(s, n, i, true) || is_word_char(s, n, i + a->len, false))) continue;
        best = a;
    }
    return best;
}

static bool ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

vt_status vt_tokenizer_encode(vt_tokenizer *t, const char *text, size_t len, unsigned flags, vt_tokens *out,
                              vt_error *err) {
    size_t bad;
    if (!vt_utf8_valid(text, len, &bad))
        return vt_fail(err, VT_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", bad);
    size_t n0 = out->n;
    size_t seg = 0, i = 0;
    bool cont = (flags & VT_TOK_CONTINUATION) != 0;
    vt_status st = VT_OK;
    while (i < len) {
        const vt_added_token *a = t->added_first[(unsigned char)text[i]] ? match_added(t, text, len, i, flags) : NULL;
        if (!a) {
            i++;
            continue;
        }
        size_t end = i;
        if (a->lstrip)
            while (end > seg && ascii_space(text[end - 1])) end--;
        if ((st = encode_segment(t, text + seg, end - seg, seg == 0, seg != 0 || !cont, out, err))) goto fail;
        if ((st = vt_tokens_push(out, a->id, err))) goto fail;
        i += a->len;
        if (a->rstrip)
            while (i < len && ascii_space(text[i])) i++;
        seg = i;
    }
    if ((st = encode_segment(t, text + seg, len - seg, seg == 0, seg != 0 || !cont, out, err))) goto fail;
    return VT_OK;
fail:
    out->n = n0;
    return st;
}

vt_status vt_tokenizer_decode(const vt_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **text,
                              size_t *len, vt_error *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->tok[ids[i]])
            return vt_fail(err, VT_ERR_RANGE, "token id %d at position %zu is not in the vocabulary (size %d)",
                           ids[i], i, t->n_vocab);
        total += t->dec_len[ids[i]];
    }
    char *s = malloc(total + 1);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "out of memory decoding %zu tokens", n);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if ((flags & VT_TOK_SKIP_SPECIAL) && t->special[id]) continue;
        memcpy(s + w, t->dec[id], t->dec_len[id]);
        w += t->dec_len[id];
    }
    size_t skip = 0;
    while (skip < (size_t)t->decode_strip && skip < w && s[skip] == ' ') skip++;
    memmove(s, s + skip, w - skip);
    w -= skip;
    s[w] = 0;
    *text = s;
    *len = w;
    return VT_OK;
}

vt_status vt_tokenizer_normalize(const vt_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len,
                                 vt_error *err) {
    bool nfc = false;
    for (size_t k = 0; k < t->n_norm; k++) nfc |= t->norm[k].kind == VT_NORM_NFC;
    if (nfc) return vt_unicode_nfc(text, len, out, out_len, err);
    size_t bad;
    if (!vt_utf8_valid(text, len, &bad))
        return vt_fail(err, VT_ERR_FORMAT, "text is not valid UTF-8 at byte offset %zu", bad);
    *out = malloc(len + 1);
    if (!*out) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    memcpy(*out, text, len);
    (*out)[len] = 0;
    *out_len = len;
    return VT_OK;
}

/* ---- queries ---------------------------------------------------------- */

int32_t vt_tokenizer_vocab_size(const vt_tokenizer *t) { return t->n_vocab; }

int32_t vt_tokenizer_token_id(const vt_tokenizer *t, const char *token) {
    return vt_tok_lookup(t, token, strlen(token));
}

const char *vt_tokenizer_token_bytes(const vt_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || !t->tok[id]) return NULL;
    *len = t->dec_len[id];
    return t->dec[id];
}

bool vt_tokenizer_is_special(const vt_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->special[id];
}

int32_t vt_tokenizer_eos_id(const vt_tokenizer *t) { return t->eos; }
int32_t vt_tokenizer_bos_id(const vt_tokenizer *t) { return t->bos; }
int32_t vt_tokenizer_pad_id(const vt_tokenizer *t) { return t->pad; }
const char *vt_tokenizer_kind(const vt_tokenizer *t) { return t->kind; }

vt_status vt_tokenizer_add_special(vt_tokenizer *t, const char *content, int32_t *id, vt_error *err) {
    size_t len = strlen(content);
    int32_t existing = vt_tok_lookup(t, content, len);
    if (existing >= 0) {
        *id = existing;
        return VT_OK;
    }
    int32_t nid = t->n_vocab;
    vt_status st = vt_tok_add_added(t, content, len, nid, true, false, false, false, err);
    if (st) return st;
    if ((st = vt_tok_index(t, err))) return st;
    *id = nid;
    return VT_OK;
}

/* ---- built-in byte-level tokenizer ----------------------------------- */

vt_status vt_tokenizer_new_bytes(vt_tokenizer **out, vt_error *err) {
    static const char *const specials[VT_BYTES_VOCAB - 256] = {
        "<|endoftext|>", "<|pad|>", "<|image|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>"};
    *out = NULL;
    vt_tokenizer *t = vt_tok_alloc("bytes");
    if (!t) return vt_fail(err, VT_ERR_NOMEM, "out of memory for tokenizer");
    vt_status st = VT_OK;
    for (int b = 0; b < 256 && !st; b++) {
        char c = (char)b;
        st = vt_tok_set(t, b, &c, 1, err);
    }
    for (int k = 0; k < VT_BYTES_VOCAB - 256 && !st; k++)
        st = vt_tok_add_added(t, specials[k], strlen(specials[k]), 256 + k, true, false, false, false, err);
    t->byte_level = true;
    t->eos = VT_BYTES_EOS;
    t->bos = VT_BYTES_BOS;
    t->pad = VT_BYTES_PAD;
    if (!st) st = vt_tok_finish(t, err);
    if (st) {
        vt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return VT_OK;
}

vt_status vt_tokenizer_open(const char *spec, vt_tokenizer **out, vt_error *err) {
    *out = NULL;
    if (strcmp(spec, "builtin:bytes") == 0 || strcmp(spec, "bytes") == 0) return vt_tokenizer_new_bytes(out, err);
    if (!vt_is_dir(spec)) return vt_tokenizer_load_hf(spec, out, err);
    char a[4096], b[4096];
    vt_status st = vt_path_join(a, sizeof a, spec, "tokenizer.json", err);
    if (st) return st;
    if (vt_path_exists(a)) return vt_tokenizer_load_hf(a, out, err);
    if ((st = vt_path_join(a, sizeof a, spec, "encoder.json", err))) return st;
    if ((st = vt_path_join(b, sizeof b, spec, "vocab.bpe", err))) return st;
    if (vt_path_exists(a) && vt_path_exists(b)) return vt_tokenizer_load_gpt2(a, b, out, err);
    return vt_fail(err, VT_ERR_IO, "%s: no tokenizer.json or encoder.json + vocab.bpe in this directory", spec);
}
