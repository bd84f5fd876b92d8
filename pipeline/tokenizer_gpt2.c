/* Loader for OpenAI GPT-2's own files: encoder.json (token -> id, tokens
 * spelled through the bytes_to_unicode mapping) and vocab.bpe ("#version"
 * line, then one "left right" merge per line, best first). Tokens are stored
 * as raw bytes, so BPE and decode work on bytes directly. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "pipeline/tokenizer_internal.h"
#include "pipeline/unicode.h"

enum { MAX_VOCAB_FILE = 256u << 20 };

long vt_tok_unmap_bytelevel(const char *s, size_t n, char *out) {
    static int inv[512];
    static int ready;
    if (!ready) { /* benign race: every thread writes the same values */
        for (int i = 0; i < 512; i++) inv[i] = -1;
        for (int b = 0; b < 256; b++) inv[vt_tok_byte_to_cp((unsigned char)b)] = b;
        ready = 1;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, w = 0;
    while (i < n) {
        uint32_t cp;
        int k = vt_utf8_decode(u + i, n - i, &cp);
        if (k == 0 || cp >= 512 || inv[cp] < 0) return -1;
        out[w++] = (char)inv[cp];
        i += (size_t)k;
    }
    return (long)w;
}

vt_status vt_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe, vt_tokenizer **out,
                                 vt_error *err) {
    *out = NULL;
    char *js = NULL, *bpe = NULL;
    size_t js_len, bpe_len;
    cJSON *root = NULL;
    vt_tokenizer *t = NULL;
    char *buf = NULL;
    vt_status st = vt_read_file(encoder_json, MAX_VOCAB_FILE, &js, &js_len, err);
    if (st) goto done;
    if ((st = vt_read_file(vocab_bpe, MAX_VOCAB_FILE, &bpe, &bpe_len, err))) goto done;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(js, js_len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: not a JSON object (error near byte %ld)", encoder_json,
                     end ? (long)(end - js) : -1L);
        goto done;
    }
    t = vt_tok_alloc("gpt2");
    if (!t) { st = vt_fail(err, VT_ERR_NOMEM, "out of memory"); goto done; }
    t->byte_level = true;
    t->split = VT_SPLIT_GPT2;
    buf = malloc(js_len + 1);
    if (!buf) { st = vt_fail(err, VT_ERR_NOMEM, "out of memory"); goto done; }
    int32_t eot = -1;
    for (cJSON *e = root->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: key '%s': id is not a non-negative integer", encoder_json,
                         e->string);
            goto done;
        }
        int32_t id = (int32_t)e->valuedouble;
        size_t klen = strlen(e->string);
        if (strcmp(e->string, "<|endoftext|>") == 0) {
            eot = id;
            continue;
        }
        long n = vt_tok_unmap_bytelevel(e->string, klen, buf);
        if (n < 0) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: key '%s' (id %d) is not a byte-level token", encoder_json,
                         e->string, id);
            goto done;
        }
        if ((st = vt_tok_set(t, id, buf, (size_t)n, err))) goto done;
    }
    if (eot >= 0) {
        /* The only special token; matched in text only with VT_TOK_ALLOW_SPECIAL. */
        if ((st = vt_tok_add_added(t, "<|endoftext|>", 13, eot, true, false, false, false, err))) goto done;
        t->eos = t->pad = eot;
    }
    if ((st = vt_tok_index(t, err))) goto done;
    /* vocab.bpe: line 1 may be "#version: ..."; then "left right". */
    size_t pos = 0, line = 0;
    int32_t rank = 0;
    char *lb = malloc(bpe_len + 1), *rb = malloc(bpe_len + 1), *mb = malloc(bpe_len + 1);
    if (!lb || !rb || !mb) {
        free(lb); free(rb); free(mb);
        st = vt_fail(err, VT_ERR_NOMEM, "out of memory");
        goto done;
    }
    while (pos < bpe_len && !st) {
        size_t eol = pos;
        while (eol < bpe_len && bpe[eol] != '\n') eol++;
        line++;
        size_t len = eol - pos;
        if (len && bpe[pos + len - 1] == '\r') len--;
        const char *l = bpe + pos;
        pos = eol + 1;
        if (len == 0 || (line == 1 && l[0] == '#')) continue;
        const char *sp = memchr(l, ' ', len);
        if (!sp || sp == l || sp == l + len - 1 || memchr(sp + 1, ' ', (size_t)(l + len - sp - 1))) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s:%zu: expected 'left right'", vocab_bpe, line);
            break;
        }
        long a = vt_tok_unmap_bytelevel(l, (size_t)(sp - l), lb);
        long b = vt_tok_unmap_bytelevel(sp + 1, (size_t)(l + len - sp - 1), rb);
        if (a < 0 || b < 0) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s:%zu: not byte-level tokens", vocab_bpe, line);
            break;
        }
        memcpy(mb, lb, (size_t)a);
        memcpy(mb + a, rb, (size_t)b);
        int32_t li = vt_tok_lookup(t, lb, (size_t)a), ri = vt_tok_lookup(t, rb, (size_t)b);
        int32_t mi = vt_tok_lookup(t, mb, (size_t)(a + b));
        if (li < 0 || ri < 0 || mi < 0) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s:%zu: merge '%.*s' uses a token missing from %s", vocab_bpe, line,
                         (int)len, l, encoder_json);
            break;
        }
        st = vt_tok_add_merge(t, li, ri, rank++, mi, err);
    }
    free(lb); free(rb); free(mb);
    if (st) goto done;
    if ((st = vt_tok_finish(t, err))) goto done;
    *out = t;
    t = NULL;
done:
    if (st && err && !strstr(err->msg, encoder_json) && !strstr(err->msg, vocab_bpe))
        vt_error_prefix(err, "%s: ", encoder_json);
    vt_tokenizer_free(t);
    cJSON_Delete(root);
    free(js);
    free(bpe);
    free(buf);
    return st;
}
