/* WordNet 3.0 database reader (wndb(5) format) for the synonym shifts:
 * index lines are "lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt
 * offset...", data lines start at their byte offset with "offset lex_filenum
 * ss_type w_cnt(hex) word lex_id(hex) ...". Files are parsed here, not through
 * libwordnet, to keep the dependency to Debian's data package. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "pipeline/wordnet.h"

enum { NPOS = 4, WN_MAX_FILE = 64 << 20, WN_MAX_WORD = 128 };
static const char *const POS_NAMES[NPOS] = {"noun", "verb", "adj", "adv"};

typedef struct pos_db {
    char *index, *data;
    size_t index_len, data_len;
    char **lines; /* start of each lemma line in index (sorted by lemma) */
    size_t nlines;
} pos_db;

struct vt_wordnet {
    pos_db pos[NPOS];
};

static vt_status load_pos(const char *dir, int p, pos_db *db, vt_error *err) {
    char path[4096], name[32];
    snprintf(name, sizeof name, "index.%s", POS_NAMES[p]);
    vt_status st = vt_path_join(path, sizeof path, dir, name, err);
    if (st != VT_OK) return st;
    if (!vt_path_exists(path))
        return vt_fail(err, VT_ERR_IO, "%s: not found (install Debian's wordnet-base or set VT_WORDNET_DIR)", path);
    if ((st = vt_read_file(path, WN_MAX_FILE, &db->index, &db->index_len, err)) != VT_OK) return st;
    snprintf(name, sizeof name, "data.%s", POS_NAMES[p]);
    if ((st = vt_path_join(path, sizeof path, dir, name, err)) != VT_OK) return st;
    if ((st = vt_read_file(path, WN_MAX_FILE, &db->data, &db->data_len, err)) != VT_OK) return st;
    size_t cap = 0, line = 0;
    for (char *s = db->index; s < db->index + db->index_len;) {
        char *nl = memchr(s, '\n', (size_t)(db->index + db->index_len - s));
        line++;
        if (*s != ' ' && *s != '\n') { /* lines starting with two spaces are the licence */
            if (!memchr(s, ' ', nl ? (size_t)(nl - s) : strlen(s)))
                return vt_fail(err, VT_ERR_FORMAT, "%s/index.%s: line %zu: no fields", dir, POS_NAMES[p], line);
            if (db->nlines == cap) {
                cap = cap ? cap * 2 : 4096;
                char **nl2 = realloc(db->lines, cap * sizeof *nl2);
                if (!nl2) return vt_fail(err, VT_ERR_NOMEM, "wordnet: out of memory");
                db->lines = nl2;
            }
            db->lines[db->nlines++] = s;
        }
        if (!nl) break;
        s = nl + 1;
    }
    if (db->nlines == 0) return vt_fail(err, VT_ERR_FORMAT, "%s/index.%s: no lemmas", dir, POS_NAMES[p]);
    return VT_OK;
}

vt_status vt_wordnet_open(const char *dir, vt_wordnet **out, vt_error *err) {
    *out = NULL;
    vt_wordnet *wn = calloc(1, sizeof *wn);
    if (!wn) return vt_fail(err, VT_ERR_NOMEM, "wordnet: out of memory");
    for (int p = 0; p < NPOS; p++) {
        vt_status st = load_pos(dir, p, &wn->pos[p], err);
        if (st != VT_OK) {
            vt_wordnet_close(wn);
            return st;
        }
    }
    *out = wn;
    return VT_OK;
}

void vt_wordnet_close(vt_wordnet *wn) {
    if (!wn) return;
    for (int p = 0; p < NPOS; p++) free(wn->pos[p].index), free(wn->pos[p].data), free(wn->pos[p].lines);
    free(wn);
}

size_t vt_wordnet_lemma_count(const vt_wordnet *wn) {
    size_t n = 0;
    for (int p = 0; p < NPOS; p++) n += wn->pos[p].nlines;
    return n;
}

/* Compares key with the lemma that starts an index line (up to its space). */
static int cmp_lemma(const char *key, const char *line) {
    size_t i = 0;
    for (; key[i] && line[i] != ' '; i++)
        if (key[i] != line[i]) return (unsigned char)key[i] - (unsigned char)line[i];
    if (!key[i] && line[i] == ' ') return 0;
    return key[i] ? 1 : -1;
}

static const char *find_line(const pos_db *db, const char *lemma) {
    size_t lo = 0, hi = db->nlines;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_lemma(lemma, db->lines[mid]);
        if (c == 0) return db->lines[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static int list_add(strlist *l, const char *s, size_t len) {
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i]) == len && !memcmp(l->v[i], s, len)) return 0;
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v, l->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = 0;
    l->v[l->n++] = c;
    l->v[l->n] = NULL;
    return 0;
}

/* Skips n space-separated fields. */
static const char *skip_fields(const char *s, int n) {
    for (int i = 0; i < n && s; i++) {
        s = strchr(s, ' ');
        if (s) s++;
    }
    return s;
}

static vt_status synset_words(const pos_db *db, int p, unsigned long off, const char *lemma, strlist *l,
                              vt_error *err) {
    if (off >= db->data_len) return vt_fail(err, VT_ERR_FORMAT, "wordnet data.%s: offset %lu past end", POS_NAMES[p], off);
    const char *s = db->data + off;
    char *end;
    if (strtoul(s, &end, 10) != off)
        return vt_fail(err, VT_ERR_FORMAT, "wordnet data.%s: byte %lu: synset offset mismatch", POS_NAMES[p], off);
    s = skip_fields(s, 3); /* offset lex_filenum ss_type */
    if (!s) return vt_fail(err, VT_ERR_FORMAT, "wordnet data.%s: byte %lu: truncated", POS_NAMES[p], off);
    unsigned long wcnt = strtoul(s, &end, 16);
    s = end;
    for (unsigned long i = 0; i < wcnt; i++) {
        while (*s == ' ') s++;
        const char *w = s;
        while (*s && *s != ' ' && *s != '\n') s++;
        size_t len = (size_t)(s - w);
        const char *paren = memchr(w, '(', len); /* adjective markers: large(a), galore(ip) */
        if (paren) len = (size_t)(paren - w);
        s = skip_fields(s + (*s == ' '), 1); /* lex_id */
        if (!s) return vt_fail(err, VT_ERR_FORMAT, "wordnet data.%s: byte %lu: truncated word list", POS_NAMES[p], off);
        s--;
        char buf[WN_MAX_WORD];
        if (len == 0 || len >= sizeof buf) continue;
        int ok = 1;
        for (size_t k = 0; k < len; k++) {
            char c = w[k];
            if (c == '_') c = ' ';
            else if (!(islower((unsigned char)c) || c == '-' || c == '\'')) ok = 0;
            buf[k] = c;
        }
        buf[len] = 0;
        if (!ok || !strcmp(buf, lemma)) continue;
        if (list_add(l, buf, len) != 0) return vt_fail(err, VT_ERR_NOMEM, "wordnet: out of memory");
    }
    return VT_OK;
}

static vt_status lemma_synonyms(const vt_wordnet *wn, int p, const char *lemma, const char *orig, strlist *l,
                                int *found, vt_error *err) {
    const char *line = find_line(&wn->pos[p], lemma);
    if (!line) return VT_OK;
    *found = 1;
    const char *s = skip_fields(line, 2); /* lemma pos */
    char *end;
    unsigned long nsyn = s ? strtoul(s, &end, 10) : 0;
    s = skip_fields(s, 1);
    unsigned long nptr = s ? strtoul(s, &end, 10) : 0;
    s = skip_fields(s, 1 + (int)nptr + 2); /* p_cnt, pointers, sense_cnt, tagsense_cnt */
    for (unsigned long i = 0; i < nsyn && s; i++) {
        unsigned long off = strtoul(s, &end, 10);
        if (end == s) return vt_fail(err, VT_ERR_FORMAT, "wordnet index.%s: '%s': bad synset offset", POS_NAMES[p], lemma);
        vt_status st = synset_words(&wn->pos[p], p, off, orig, l, err);
        if (st != VT_OK) return st;
        s = skip_fields(s, 1);
    }
    return VT_OK;
}

/* Morphy-style detachment rules (wn(7) morph), tried when the word itself is not a lemma. */
static const char *const SUFFIX_RULES[NPOS][8][2] = {
    {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
    {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
    {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}, {NULL, NULL}},
    {{NULL, NULL}},
};

vt_status vt_wordnet_synonyms(const vt_wordnet *wn, const char *word, char ***list, size_t *n, vt_error *err) {
    *list = NULL, *n = 0;
    char key[WN_MAX_WORD];
    size_t len = strlen(word);
    if (len == 0 || len >= sizeof key) return VT_OK;
    for (size_t i = 0; i <= len; i++) key[i] = word[i] == ' ' ? '_' : (char)tolower((unsigned char)word[i]);
    strlist l = {0};
    vt_status st = VT_OK;
    char orig[WN_MAX_WORD];
    for (size_t i = 0; i <= len; i++) orig[i] = (char)tolower((unsigned char)word[i]);
    for (int p = 0; p < NPOS && st == VT_OK; p++) {
        int found = 0;
        st = lemma_synonyms(wn, p, key, orig, &l, &found, err);
        for (int r = 0; r < 8 && !found && st == VT_OK && SUFFIX_RULES[p][r][0]; r++) {
            const char *suf = SUFFIX_RULES[p][r][0], *rep = SUFFIX_RULES[p][r][1];
            size_t sl = strlen(suf), rl = strlen(rep);
            if (len <= sl || strcmp(key + len - sl, suf) != 0 || len - sl + rl >= sizeof key) continue;
            char base[WN_MAX_WORD];
            memcpy(base, key, len - sl);
            memcpy(base + len - sl, rep, rl + 1);
            st = lemma_synonyms(wn, p, base, orig, &l, &found, err);
            /* the base form itself is not a synonym of the inflected word */
            for (size_t i = 0; i < l.n; i++) {
                char b2[WN_MAX_WORD];
                snprintf(b2, sizeof b2, "%s", base);
                for (char *c = b2; *c; c++) if (*c == '_') *c = ' ';
                if (!strcmp(l.v[i], b2)) {
                    free(l.v[i]);
                    memmove(l.v + i, l.v + i + 1, (l.n - i) * sizeof *l.v);
                    l.n--, i--;
                }
            }
        }
    }
    if (st != VT_OK) {
        vt_wordnet_list_free(l.v);
        return st;
    }
    *list = l.v, *n = l.n;
    return VT_OK;
}

void vt_wordnet_list_free(char **list) {
    if (!list) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}
