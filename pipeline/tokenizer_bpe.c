/* Byte-pair encoding of one pre-tokenised word, plus the per-word cache.
 * Merges are applied lowest rank first, ties broken by position (a binary
 * heap over adjacent pairs of a linked symbol list: O(n log n) per word),
 * which yields the same result as GPT-2's "merge every occurrence of the
 * best bigram" loop. The cache maps recent words to their ids; it is cleared
 * when full so memory stays bounded. */
#include <stdlib.h>
#include <string.h>

#include "pipeline/tokenizer_internal.h"
#include "pipeline/unicode.h"

enum { CACHE_SLOTS = 1 << 16, CACHE_MAX_WORD = 128 };

typedef struct cache_entry {
    uint64_t hash;
    uint32_t key_len, n_ids;
    /* followed by n_ids int32 ids then key_len bytes */
} cache_entry;

struct vt_word_cache {
    cache_entry **slots;
    size_t count;
};

vt_word_cache *vt_word_cache_new(void) {
    vt_word_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

static void cache_clear(vt_word_cache *c) {
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(c->slots[i]);
        c->slots[i] = NULL;
    }
    c->count = 0;
}

void vt_word_cache_free(vt_word_cache *c) {
    if (!c) return;
    cache_clear(c);
    free(c->slots);
    free(c);
}

static uint64_t word_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
    return h ^ (h >> 31);
}

static const char *entry_key(const cache_entry *e) { return (const char *)(e + 1) + e->n_ids * sizeof(int32_t); }
static const int32_t *entry_ids(const cache_entry *e) { return (const int32_t *)(e + 1); }

/* Appends cached ids and returns true on a hit. Caller holds the mutex. */
static bool cache_get(vt_word_cache *c, uint64_t h, const char *w, size_t n, vt_tokens *out, vt_error *err,
                      vt_status *st) {
    size_t s = h & (CACHE_SLOTS - 1);
    for (;;) {
        cache_entry *e = c->slots[s];
        if (!e) return false;
        if (e->hash == h && e->key_len == n && memcmp(entry_key(e), w, n) == 0) {
            const int32_t *ids = entry_ids(e);
            for (uint32_t k = 0; k < e->n_ids && !*st; k++) *st = vt_tokens_push(out, ids[k], err);
            return true;
        }
        s = (s + 1) & (CACHE_SLOTS - 1);
    }
}

static void cache_put(vt_word_cache *c, uint64_t h, const char *w, size_t n, const int32_t *ids, size_t n_ids) {
    if (c->count >= CACHE_SLOTS / 2) cache_clear(c);
    cache_entry *e = malloc(sizeof *e + n_ids * sizeof(int32_t) + n);
    if (!e) return; /* the cache is an optimisation: skip on failure */
    e->hash = h;
    e->key_len = (uint32_t)n;
    e->n_ids = (uint32_t)n_ids;
    memcpy((int32_t *)(e + 1), ids, n_ids * sizeof(int32_t));
    memcpy((char *)entry_key(e), w, n);
    size_t s = h & (CACHE_SLOTS - 1);
    while (c->slots[s]) s = (s + 1) & (CACHE_SLOTS - 1);
    c->slots[s] = e;
    c->count++;
}

static const vt_pair_entry *find_pair(const vt_pairmap *m, int32_t a, int32_t b) {
    if (!m->slots) return NULL;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t k = key;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    size_t h = (size_t)k & m->mask;
    while (m->slots[h].key) {
        if (m->slots[h].key == key) return &m->slots[h];
        h = (h + 1) & m->mask;
    }
    return NULL;
}

typedef struct sym { int32_t id, prev, next; } sym;
typedef struct cand { int32_t rank, pos, left, right; } cand;

static bool cand_less(const cand *a, const cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(cand *h, size_t *n, cand c) {
    size_t i = (*n)++;
    h[i] = c;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&h[i], &h[p])) break;
        cand t = h[i]; h[i] = h[p]; h[p] = t;
        i = p;
    }
}

static cand heap_pop(cand *h, size_t *n) {
    cand top = h[0];
    h[0] = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && cand_less(&h[l], &h[m])) m = l;
        if (r < *n && cand_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        cand t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
    return top;
}

static void push_pair(const vt_tokenizer *t, const sym *s, int32_t pos, cand *heap, size_t *nh) {
    if (pos < 0 || s[pos].next < 0) return;
    const vt_pair_entry *p = find_pair(&t->merges, s[pos].id, s[s[pos].next].id);
    if (p) heap_push(heap, nh, (cand){p->rank, pos, s[pos].id, s[s[pos].next].id});
}

/* Initial symbols of a word: bytes (byte-level) or characters with
 * <0xNN> byte fallback / unk (SentencePiece-style). */
static vt_status initial_symbols(const vt_tokenizer *t, const char *w, size_t n, sym *s, int32_t *ns, vt_error *err) {
    int32_t k = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) s[k++].id = t->byte_id[(unsigned char)w[i]];
    } else {
        const unsigned char *u = (const unsigned char *)w;
        size_t i = 0;
        while (i < n) {
            uint32_t cp;
            int len = vt_utf8_decode(u + i, n - i, &cp);
            if (len == 0) return vt_fail(err, VT_ERR_FORMAT, "invalid UTF-8 in word at byte %zu", i);
            int32_t id = vt_tok_lookup(t, w + i, (size_t)len);
            if (id >= 0) {
                s[k++].id = id;
            } else {
                bool have_bytes = t->byte_fallback;
                for (int b = 0; b < len && have_bytes; b++)
                    if (t->byte_id[u[i + b]] < 0) have_bytes = false;
                if (have_bytes) {
                    for (int b = 0; b < len; b++) s[k++].id = t->byte_id[u[i + b]];
                } else if (t->unk_id >= 0) {
                    if (!(t->fuse_unk && k > 0 && s[k - 1].id == t->unk_id)) s[k++].id = t->unk_id;
                } /* no unk token: HF drops the character */
            }
            i += (size_t)len;
        }
    }
    for (int32_t i = 0; i < k; i++) {
        s[i].prev = i - 1;
        s[i].next = i + 1 < k ? i + 1 : -1;
    }
    *ns = k;
    return VT_OK;
}

vt_status vt_tok_bpe_word(vt_tokenizer *t, const char *w, size_t n, vt_tokens *out, vt_error *err) {
    if (n == 0) return VT_OK;
    vt_status st = VT_OK;
    if (t->byte_level && t->merges.count == 0) {
        for (size_t i = 0; i < n && !st; i++) st = vt_tokens_push(out, t->byte_id[(unsigned char)w[i]], err);
        return st;
    }
    if (t->ignore_merges) {
        int32_t id = vt_tok_lookup(t, w, n);
        if (id >= 0) return vt_tokens_push(out, id, err);
    }
    bool cacheable = n <= CACHE_MAX_WORD && t->cache;
    uint64_t h = 0;
    if (cacheable) {
        h = word_hash(w, n);
        pthread_mutex_lock(&t->cache_mu);
        bool hit = cache_get(t->cache, h, w, n, out, err, &st);
        pthread_mutex_unlock(&t->cache_mu);
        if (hit) return st;
    }
    /* A character may expand to 4 fallback bytes: at most n symbols anyway. */
    sym *s = malloc(n * sizeof *s);
    cand *heap = malloc((3 * n + 1) * sizeof *heap); /* n initial + 2 per merge */
    if (!s || !heap) {
        free(s);
        free(heap);
        return vt_fail(err, VT_ERR_NOMEM, "out of memory in BPE");
    }
    int32_t ns = 0;
    st = initial_symbols(t, w, n, s, &ns, err);
    size_t nh = 0;
    for (int32_t i = 0; !st && i < ns; i++) push_pair(t, s, i, heap, &nh);
    while (!st && nh > 0) {
        cand c = heap_pop(heap, &nh);
        sym *a = &s[c.pos];
        if (a->id != c.left || a->next < 0 || s[a->next].id != c.right) continue; /* stale */
        const vt_pair_entry *p = find_pair(&t->merges, c.left, c.right);
        int32_t b = a->next;
        a->id = p->merged;
        a->next = s[b].next;
        if (a->next >= 0) s[a->next].prev = c.pos;
        s[b].id = -1; /* dead */
        push_pair(t, s, a->prev, heap, &nh);
        push_pair(t, s, c.pos, heap, &nh);
    }
    size_t start = out->n;
    for (int32_t i = ns > 0 ? 0 : -1; !st && i >= 0; i = s[i].next) st = vt_tokens_push(out, s[i].id, err);
    if (!st && cacheable) {
        pthread_mutex_lock(&t->cache_mu);
        cache_put(t->cache, h, w, n, out->ids + start, out->n - start);
        pthread_mutex_unlock(&t->cache_mu);
    }
    free(s);
    free(heap);
    return st;
}
