/* Loader for Hugging Face tokenizer.json files with a BPE model: byte-level
 * vocabularies (GPT-2, Qwen, Llama-3 style) and SentencePiece-style ones
 * (Metaspace "▁", <0xNN> byte fallback, Llama-2 style normalizers). Regex
 * split patterns are recognised by their exact text and run by the hand
 * implementations in tokenizer_split.c; anything else is refused with the
 * JSON key named, never silently approximated. eos/bos/pad come from a
 * tokenizer_config.json next to the file when there is one. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "pipeline/tokenizer_internal.h"
#include "pipeline/unicode.h"

enum { MAX_JSON = 512u << 20 };

static const char PAT_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char PAT_QWEN_HEAD[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}";
static const char PAT_QWEN_TAIL[] = "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct hf_ctx {
    const char *path;
    vt_tokenizer *t;
    vt_error *err;
} hf_ctx;

static const char *type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

static bool json_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static vt_status unsupported(hf_ctx *c, const char *where, const char *what) {
    return vt_fail(c->err, VT_ERR_FORMAT, "%s: %s: unsupported %s", c->path, where, what);
}

static vt_status set_split_pattern(hf_ctx *c, const char *re) {
    size_t hl = strlen(PAT_QWEN_HEAD);
    if (strcmp(re, PAT_GPT2) == 0) {
        c->t->split = VT_SPLIT_GPT2;
        return VT_OK;
    }
    if (strncmp(re, PAT_QWEN_HEAD, hl) == 0) {
        const char *rest = re + hl;
        int digits = 1;
        if (strncmp(rest, "{1,3}", 5) == 0) {
            digits = 3;
            rest += 5;
        }
        if (strcmp(rest, PAT_QWEN_TAIL) == 0) {
            c->t->split = VT_SPLIT_QWEN;
            c->t->max_digits = digits;
            return VT_OK;
        }
    }
    return vt_fail(c->err, VT_ERR_FORMAT, "%s: pre_tokenizer: unsupported Split regex \"%s\"", c->path, re);
}

static vt_status pre_tokenizer(hf_ctx *c, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return VT_OK;
    const char *ty = type_of(p);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            vt_status st = pre_tokenizer(c, e);
            if (st) return st;
        }
        return VT_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        c->t->byte_level = true;
        c->t->add_prefix_space = json_bool(p, "add_prefix_space", false);
        if (json_bool(p, "use_regex", true)) {
            if (c->t->split != VT_SPLIT_NONE) return unsupported(c, "pre_tokenizer", "ByteLevel regex after a Split");
            c->t->split = VT_SPLIT_GPT2;
        }
        return VT_OK;
    }
    if (strcmp(ty, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = json_str(pat, "Regex");
        const char *beh = json_str(p, "behavior");
        if (!re) return unsupported(c, "pre_tokenizer.Split.pattern", "pattern (only Regex)");
        if (!beh || strcmp(beh, "Isolated") != 0 || json_bool(p, "invert", false))
            return unsupported(c, "pre_tokenizer.Split", "behavior (only Isolated, invert false)");
        if (c->t->split != VT_SPLIT_NONE) return unsupported(c, "pre_tokenizer", "second split pattern");
        return set_split_pattern(c, re);
    }
    if (strcmp(ty, "Metaspace") == 0) {
        const char *rep = json_str(p, "replacement");
        if (rep && strcmp(rep, "\xE2\x96\x81") != 0) return unsupported(c, "pre_tokenizer.Metaspace", "replacement");
        c->t->metaspace = true;
        c->t->metaspace_split = json_bool(p, "split", true);
        const char *scheme = json_str(p, "prepend_scheme");
        if (scheme) {
            if (strcmp(scheme, "always") == 0) c->t->metaspace_prepend = 2;
            else if (strcmp(scheme, "first") == 0) c->t->metaspace_prepend = 1;
            else if (strcmp(scheme, "never") == 0) c->t->metaspace_prepend = 0;
            else return unsupported(c, "pre_tokenizer.Metaspace.prepend_scheme", scheme);
        } else {
            c->t->metaspace_prepend = json_bool(p, "add_prefix_space", true) ? 2 : 0;
        }
        return VT_OK;
    }
    return unsupported(c, "pre_tokenizer", ty[0] ? ty : "(no type)");
}

static vt_status add_norm(hf_ctx *c, int kind, const char *a, const char *b) {
    vt_tokenizer *t = c->t;
    vt_norm_op *ops = realloc(t->norm, (t->n_norm + 1) * sizeof *ops);
    if (!ops) return vt_fail(c->err, VT_ERR_NOMEM, "out of memory");
    t->norm = ops;
    vt_norm_op *op = &t->norm[t->n_norm++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    if (a) { op->a = strdup(a); op->alen = strlen(a); }
    if (b) { op->b = strdup(b); op->blen = strlen(b); }
    if ((a && !op->a) || (b && !op->b)) return vt_fail(c->err, VT_ERR_NOMEM, "out of memory");
    return VT_OK;
}

static vt_status normalizer(hf_ctx *c, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return VT_OK;
    const char *ty = type_of(n);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            vt_status st = normalizer(c, e);
            if (st) return st;
        }
        return VT_OK;
    }
    if (strcmp(ty, "NFC") == 0) return add_norm(c, VT_NORM_NFC, NULL, NULL);
    if (strcmp(ty, "Prepend") == 0) {
        const char *p = json_str(n, "prepend");
        if (!p) return unsupported(c, "normalizer.Prepend", "prepend value");
        return add_norm(c, VT_NORM_PREPEND, p, NULL);
    }
    if (strcmp(ty, "Replace") == 0) {
        const char *from = json_str(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String");
        const char *to = json_str(n, "content");
        if (!from || !to) return unsupported(c, "normalizer.Replace", "pattern (only String)");
        return add_norm(c, VT_NORM_REPLACE, from, to);
    }
    return unsupported(c, "normalizer", ty[0] ? ty : "(no type)");
}

/* Decoders only change how ids become text: Metaspace / Replace("▁", " ")
 * turn "▁" into spaces, ByteFallback decodes <0xNN>, Strip drops leading
 * spaces, ByteLevel is implied by byte-level storage. */
static vt_status decoder(hf_ctx *c, const cJSON *d, bool *space_from_meta) {
    if (!d || cJSON_IsNull(d)) return VT_OK;
    const char *ty = type_of(d);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders")) {
            vt_status st = decoder(c, e, space_from_meta);
            if (st) return st;
        }
        return VT_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0 || strcmp(ty, "ByteFallback") == 0 || strcmp(ty, "Fuse") == 0) return VT_OK;
    if (strcmp(ty, "Replace") == 0) {
        const char *from = json_str(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        const char *to = json_str(d, "content");
        if (!from || !to || strcmp(from, "\xE2\x96\x81") != 0 || strcmp(to, " ") != 0)
            return unsupported(c, "decoder.Replace", "replacement (only \"\xE2\x96\x81\" -> \" \")");
        *space_from_meta = true;
        return VT_OK;
    }
    if (strcmp(ty, "Strip") == 0) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        const char *content = json_str(d, "content");
        if (!content || strcmp(content, " ") != 0 || (cJSON_IsNumber(stop) && stop->valueint != 0))
            return unsupported(c, "decoder.Strip", "form (only leading spaces)");
        c->t->decode_strip = cJSON_IsNumber(start) ? start->valueint : 0;
        return VT_OK;
    }
    if (strcmp(ty, "Metaspace") == 0) {
        *space_from_meta = true;
        const char *scheme = json_str(d, "prepend_scheme");
        bool prefix = scheme ? strcmp(scheme, "never") != 0 : json_bool(d, "add_prefix_space", true);
        if (prefix) c->t->decode_strip = 1;
        return VT_OK;
    }
    return unsupported(c, "decoder", ty[0] ? ty : "(no type)");
}

static bool byte_token(const char *s, unsigned *b) {
    /* "<0xNN>" with two upper-case hex digits */
    if (strlen(s) != 6 || strncmp(s, "<0x", 3) != 0 || s[5] != '>') return false;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return false;
    }
    *b = v;
    return true;
}

static vt_status load_vocab(hf_ctx *c, const cJSON *vocab, bool space_from_meta) {
    vt_tokenizer *t = c->t;
    if (!cJSON_IsObject(vocab)) return vt_fail(c->err, VT_ERR_FORMAT, "%s: model.vocab: expected an object", c->path);
    size_t cap = 256;
    char *buf = malloc(cap);
    if (!buf) return vt_fail(c->err, VT_ERR_NOMEM, "out of memory");
    vt_status st = VT_OK;
    for (const cJSON *e = vocab->child; e && !st; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8) {
            st = vt_fail(c->err, VT_ERR_FORMAT, "%s: model.vocab['%s']: id is not a non-negative integer", c->path,
                         e->string);
            break;
        }
        int32_t id = (int32_t)e->valuedouble;
        size_t len = strlen(e->string);
        if (len + 1 > cap) {
            cap = len + 1;
            char *nb = realloc(buf, cap);
            if (!nb) { st = vt_fail(c->err, VT_ERR_NOMEM, "out of memory"); break; }
            buf = nb;
        }
        if (t->byte_level) {
            long n = vt_tok_unmap_bytelevel(e->string, len, buf);
            if (n < 0) {
                st = vt_fail(c->err, VT_ERR_FORMAT, "%s: model.vocab['%s']: not a byte-level token", c->path,
                             e->string);
                break;
            }
            st = vt_tok_set(t, id, buf, (size_t)n, c->err);
            continue;
        }
        if ((st = vt_tok_set(t, id, e->string, len, c->err))) break;
        unsigned b;
        if (t->byte_fallback && byte_token(e->string, &b)) {
            char ch = (char)b;
            t->byte_id[b] = id;
            st = vt_tok_set_decoded(t, id, &ch, 1, c->err);
        } else if (space_from_meta && strstr(e->string, "\xE2\x96\x81")) {
            /* Decoded form: "▁" -> " " (never longer than the spelling). */
            size_t w = 0;
            for (size_t i = 0; i < len;) {
                if (i + 3 <= len && memcmp(e->string + i, "\xE2\x96\x81", 3) == 0) { buf[w++] = ' '; i += 3; }
                else buf[w++] = e->string[i++];
            }
            st = vt_tok_set_decoded(t, id, buf, w, c->err);
        }
    }
    free(buf);
    return st;
}

static vt_status load_merges(hf_ctx *c, const cJSON *merges) {
    vt_tokenizer *t = c->t;
    if (!cJSON_IsArray(merges)) return vt_fail(c->err, VT_ERR_FORMAT, "%s: model.merges: expected an array", c->path);
    char *lb = NULL, *rb = NULL, *mb = NULL;
    size_t cap = 0;
    vt_status st = VT_OK;
    int32_t rank = 0;
    for (const cJSON *e = merges->child; e && !st; e = e->next, rank++) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(e)) { /* "left right" */
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = vt_fail(c->err, VT_ERR_FORMAT, "%s: model.merges[%d]: expected \"left right\"", c->path, rank);
                break;
            }
            l = e->valuestring; ll = (size_t)(sp - l);
            r = sp + 1; rl = strlen(r);
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) && cJSON_IsString(e->child->next)) {
            l = e->child->valuestring; ll = strlen(l);
            r = e->child->next->valuestring; rl = strlen(r);
        } else {
            st = vt_fail(c->err, VT_ERR_FORMAT, "%s: model.merges[%d]: expected a string or a pair", c->path, rank);
            break;
        }
        if (ll + rl + 1 > cap) {
            cap = (ll + rl + 1) * 2;
            free(lb); free(rb); free(mb);
            lb = malloc(cap); rb = malloc(cap); mb = malloc(cap);
            if (!lb || !rb || !mb) { st = vt_fail(c->err, VT_ERR_NOMEM, "out of memory"); break; }
        }
        long a, b;
        if (t->byte_level) {
            a = vt_tok_unmap_bytelevel(l, ll, lb);
            b = vt_tok_unmap_bytelevel(r, rl, rb);
        } else {
            memcpy(lb, l, ll); a = (long)ll;
            memcpy(rb, r, rl); b = (long)rl;
        }
        if (a < 0 || b < 0) {
            st = vt_fail(c->err, VT_ERR_FORMAT, "%s: model.merges[%d]: not byte-level tokens", c->path, rank);
            break;
        }
        memcpy(mb, lb, (size_t)a);
        memcpy(mb + a, rb, (size_t)b);
        int32_t li = vt_tok_lookup(t, lb, (size_t)a), ri = vt_tok_lookup(t, rb, (size_t)b);
        int32_t mi = vt_tok_lookup(t, mb, (size_t)(a + b));
        if (li < 0 || ri < 0 || mi < 0) {
            st = vt_fail(c->err, VT_ERR_FORMAT, "%s: model.merges[%d]: '%.*s %.*s' uses a token not in model.vocab",
                         c->path, rank, (int)ll, l, (int)rl, r);
            break;
        }
        st = vt_tok_add_merge(t, li, ri, rank, mi, c->err);
    }
    free(lb); free(rb); free(mb);
    return st;
}

static vt_status added_tokens(hf_ctx *c, const cJSON *list) {
    if (!list || cJSON_IsNull(list)) return VT_OK;
    if (!cJSON_IsArray(list)) return vt_fail(c->err, VT_ERR_FORMAT, "%s: added_tokens: expected an array", c->path);
    int k = 0;
    for (const cJSON *e = list->child; e; e = e->next, k++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = json_str(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || !content)
            return vt_fail(c->err, VT_ERR_FORMAT, "%s: added_tokens[%d]: needs 'id' and 'content'", c->path, k);
        vt_status st = vt_tok_add_added(c->t, content, strlen(content), (int32_t)id->valuedouble,
                                        json_bool(e, "special", false), json_bool(e, "lstrip", false),
                                        json_bool(e, "rstrip", false), json_bool(e, "single_word", false), c->err);
        if (st) {
            vt_error_prefix(c->err, "%s: added_tokens[%d]: ", c->path, k);
            return st;
        }
    }
    return VT_OK;
}

/* eos/bos/pad from tokenizer_config.json next to the file (optional). */
static void read_config_roles(hf_ctx *c) {
    char dir[4096], path[4096];
    vt_dirname(c->path, dir, sizeof dir);
    if (vt_path_join(path, sizeof path, dir, "tokenizer_config.json", NULL) || !vt_path_exists(path)) return;
    char *js = NULL;
    size_t len;
    if (vt_read_file(path, MAX_JSON, &js, &len, NULL)) return;
    cJSON *root = cJSON_ParseWithLength(js, len);
    free(js);
    if (!root) return;
    static const char *const keys[3] = {"eos_token", "bos_token", "pad_token"};
    int32_t *dst[3] = {&c->t->eos, &c->t->bos, &c->t->pad};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        const char *s = cJSON_IsString(v) ? v->valuestring : json_str(v, "content");
        if (s) *dst[i] = vt_tok_lookup(c->t, s, strlen(s));
    }
    cJSON_Delete(root);
}

vt_status vt_tokenizer_load_hf(const char *tokenizer_json, vt_tokenizer **out, vt_error *err) {
    *out = NULL;
    char *js = NULL;
    size_t len;
    vt_status st = vt_read_file(tokenizer_json, MAX_JSON, &js, &len, err);
    if (st) return st;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(js, len, &end, 0);
    hf_ctx c = {tokenizer_json, NULL, err};
    if (!root || !cJSON_IsObject(root)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: not a JSON object (parse error near byte %ld)", tokenizer_json,
                     end ? (long)(end - js) : -1L);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: missing 'model' object", tokenizer_json);
        goto done;
    }
    if (strcmp(type_of(model), "BPE") != 0 && !(type_of(model)[0] == 0 && cJSON_GetObjectItemCaseSensitive(model, "merges"))) {
        st = vt_fail(err, VT_ERR_FORMAT, "%s: model.type: unsupported '%s' (only BPE)", tokenizer_json, type_of(model));
        goto done;
    }
    c.t = vt_tok_alloc("hf-sentencepiece");
    if (!c.t) { st = vt_fail(err, VT_ERR_NOMEM, "out of memory"); goto done; }
    const char *cs = json_str(model, "continuing_subword_prefix"), *ew = json_str(model, "end_of_word_suffix");
    if ((cs && cs[0]) || (ew && ew[0])) {
        st = unsupported(&c, "model", "continuing_subword_prefix / end_of_word_suffix");
        goto done;
    }
    c.t->byte_fallback = json_bool(model, "byte_fallback", false);
    c.t->fuse_unk = json_bool(model, "fuse_unk", false);
    c.t->ignore_merges = json_bool(model, "ignore_merges", false);
    if ((st = normalizer(&c, cJSON_GetObjectItemCaseSensitive(root, "normalizer")))) goto done;
    if ((st = pre_tokenizer(&c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")))) goto done;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (strcmp(type_of(dec), "ByteLevel") == 0) c.t->byte_level = true;
    bool space_from_meta = false;
    if ((st = decoder(&c, dec, &space_from_meta))) goto done;
    if (c.t->byte_level) {
        c.t->kind = "hf-bytelevel";
        if (c.t->metaspace) { st = unsupported(&c, "pre_tokenizer", "mix of ByteLevel and Metaspace"); goto done; }
    }
    if ((st = load_vocab(&c, cJSON_GetObjectItemCaseSensitive(model, "vocab"), space_from_meta))) goto done;
    if ((st = vt_tok_index(c.t, err))) goto done;
    if ((st = load_merges(&c, cJSON_GetObjectItemCaseSensitive(model, "merges")))) goto done;
    if ((st = added_tokens(&c, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")))) goto done;
    if ((st = vt_tok_index(c.t, err))) goto done;
    const char *unk = json_str(model, "unk_token");
    if (unk) {
        c.t->unk_id = vt_tok_lookup(c.t, unk, strlen(unk));
        if (c.t->unk_id < 0) { st = vt_fail(err, VT_ERR_FORMAT, "%s: model.unk_token '%s' is not in the vocabulary", tokenizer_json, unk); goto done; }
    }
    read_config_roles(&c);
    if ((st = vt_tok_finish(c.t, err))) {
        vt_error_prefix(err, "%s: ", tokenizer_json);
        goto done;
    }
    *out = c.t;
    c.t = NULL;
done:
    vt_tokenizer_free(c.t);
    cJSON_Delete(root);
    free(js);
    return st;
}
