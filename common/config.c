/* YAML -> a small node tree with line numbers, then typed path look-ups that
 * record which keys were read (see config.h for the contract). */
#include "common/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/fs.h"

typedef enum { NODE_SCALAR, NODE_MAP, NODE_SEQ } node_kind;

typedef struct node {
    node_kind kind;
    int line;            /* where the value starts */
    int ref_line;        /* where to point a reader: the key's line for map values */
    bool used;
    bool quoted;         /* scalar was quoted: never a number/bool */
    char *value;         /* scalar text */
    char **keys;         /* map keys */
    int *key_lines;
    struct node **items; /* map values or sequence items */
    int count, cap;
} node;

struct vt_config {
    char *name;
    char *text;
    size_t text_len;
    node *root;
};

static void node_free(node *n) {
    if (!n) return;
    for (int i = 0; i < n->count; i++) {
        if (n->keys) free(n->keys[i]);
        node_free(n->items[i]);
    }
    free(n->keys);
    free(n->key_lines);
    free(n->items);
    free(n->value);
    free(n);
}

static node *node_new(node_kind kind, int line) {
    node *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = n->ref_line = line;
    }
    return n;
}

static bool node_push(node *parent, char *key, int key_line, node *child) {
    if (parent->count == parent->cap) {
        int cap = parent->cap ? parent->cap * 2 : 8;
        node **items = realloc(parent->items, (size_t)cap * sizeof *items);
        if (!items) return false;
        parent->items = items;
        if (parent->kind == NODE_MAP) {
            char **keys = realloc(parent->keys, (size_t)cap * sizeof *keys);
            if (!keys) return false;
            parent->keys = keys;
            int *lines = realloc(parent->key_lines, (size_t)cap * sizeof *lines);
            if (!lines) return false;
            parent->key_lines = lines;
        }
        parent->cap = cap;
    }
    if (parent->kind == NODE_MAP) {
        parent->keys[parent->count] = key;
        parent->key_lines[parent->count] = key_line;
    }
    child->ref_line = parent->kind == NODE_MAP ? key_line : child->line;
    parent->items[parent->count++] = child;
    return true;
}

/* Recursive-descent over libyaml events. */
typedef struct {
    yaml_parser_t parser;
    const char *name;
    vt_error *err;
} reader;

static vt_status next_event(reader *r, yaml_event_t *ev) {
    if (!yaml_parser_parse(&r->parser, ev))
        return vt_fail(r->err, VT_ERR_FORMAT, "%s:%zu:%zu: YAML syntax error: %s", r->name,
                       r->parser.problem_mark.line + 1, r->parser.problem_mark.column + 1,
                       r->parser.problem ? r->parser.problem : "unknown");
    return VT_OK;
}

static vt_status parse_node(reader *r, yaml_event_t *ev, node **out);

static vt_status parse_children(reader *r, node *n, yaml_event_type_t end) {
    for (;;) {
        yaml_event_t ev;
        vt_status st = next_event(r, &ev);
        if (st) return st;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            return VT_OK;
        }
        char *key = NULL;
        int key_line = (int)ev.start_mark.line + 1;
        if (n->kind == NODE_MAP) {
            if (ev.type != YAML_SCALAR_EVENT) {
                yaml_event_delete(&ev);
                return vt_fail(r->err, VT_ERR_FORMAT, "%s:%d: mapping keys must be plain scalars",
                               r->name, key_line);
            }
            key = strdup((const char *)ev.data.scalar.value);
            yaml_event_delete(&ev);
            for (int i = 0; i < n->count; i++)
                if (strcmp(n->keys[i], key) == 0) {
                    vt_fail(r->err, VT_ERR_FORMAT, "%s:%d: duplicate key '%s' (first at line %d)",
                            r->name, key_line, key, n->key_lines[i]);
                    free(key);
                    return VT_ERR_FORMAT;
                }
            if ((st = next_event(r, &ev))) {
                free(key);
                return st;
            }
        }
        node *child = NULL;
        st = parse_node(r, &ev, &child);
        if (st || !node_push(n, key, key_line, child)) {
            free(key);
            node_free(child);
            return st ? st : vt_fail(r->err, VT_ERR_NOMEM, "%s: out of memory", r->name);
        }
    }
}

/* Consumes ev (already fetched) and the events of its subtree. */
static vt_status parse_node(reader *r, yaml_event_t *ev, node **out) {
    int line = (int)ev->start_mark.line + 1;
    vt_status st = VT_OK;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        node *n = node_new(NODE_SCALAR, line);
        if (!n) return vt_fail(r->err, VT_ERR_NOMEM, "%s: out of memory", r->name);
        n->value = strdup((const char *)ev->data.scalar.value);
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        *out = n;
        break;
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        node *n = node_new(map ? NODE_MAP : NODE_SEQ, line);
        if (!n) return vt_fail(r->err, VT_ERR_NOMEM, "%s: out of memory", r->name);
        st = parse_children(r, n, map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT);
        if (st) node_free(n);
        else *out = n;
        break;
    }
    case YAML_ALIAS_EVENT:
        st = vt_fail(r->err, VT_ERR_FORMAT, "%s:%d: YAML aliases are not supported in run configs",
                     r->name, line);
        break;
    default:
        st = vt_fail(r->err, VT_ERR_FORMAT, "%s:%d: unexpected YAML event", r->name, line);
    }
    yaml_event_delete(ev);
    return st;
}

vt_status vt_config_parse(const char *text, size_t len, const char *name, vt_config **out,
                          vt_error *err) {
    *out = NULL;
    vt_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", name);
    cfg->name = strdup(name);
    cfg->text = malloc(len + 1);
    if (!cfg->name || !cfg->text) {
        vt_config_free(cfg);
        return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", name);
    }
    memcpy(cfg->text, text, len);
    cfg->text[len] = '\0';
    cfg->text_len = len;

    reader r = {.name = name, .err = err};
    yaml_parser_initialize(&r.parser);
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)cfg->text, len);
    vt_status st = VT_OK;
    yaml_event_t ev;
    bool done = false;
    while (!done && !(st = next_event(&r, &ev))) {
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
            yaml_event_delete(&ev);
            break;
        case YAML_DOCUMENT_END_EVENT:
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            done = true;
            break;
        default:
            if (cfg->root) {
                yaml_event_delete(&ev);
                st = vt_fail(err, VT_ERR_FORMAT, "%s: more than one YAML document", name);
                done = true;
                break;
            }
            st = parse_node(&r, &ev, &cfg->root);
            if (st) done = true;
        }
    }
    yaml_parser_delete(&r.parser);
    if (!st && cfg->root && cfg->root->kind != NODE_MAP)
        st = vt_fail(err, VT_ERR_FORMAT, "%s:%d: the top level must be a mapping of keys", name,
                     cfg->root->line);
    if (!st && !cfg->root) cfg->root = node_new(NODE_MAP, 1); /* empty file: no settings */
    if (st) {
        vt_config_free(cfg);
        return st;
    }
    *out = cfg;
    return VT_OK;
}

vt_status vt_config_load(const char *path, vt_config **out, vt_error *err) {
    char *text = NULL;
    size_t len = 0;
    vt_status st = vt_read_file(path, 16u << 20, &text, &len, err);
    if (st) return st;
    st = vt_config_parse(text, len, path, out, err);
    free(text);
    return st;
}

void vt_config_free(vt_config *cfg) {
    if (!cfg) return;
    node_free(cfg->root);
    free(cfg->name);
    free(cfg->text);
    free(cfg);
}

const char *vt_config_name(const vt_config *cfg) { return cfg->name; }
const char *vt_config_text(const vt_config *cfg, size_t *len) {
    if (len) *len = cfg->text_len;
    return cfg->text;
}

/* Walks "a.b[2].c". Returns NULL when any part is absent; *bad is set when a
 * step hits the wrong kind of node (e.g. indexing a scalar). */
static node *lookup(const vt_config *cfg, const char *path, int *parent_line, bool *bad) {
    node *n = cfg->root;
    const char *p = path;
    *bad = false;
    *parent_line = n ? n->ref_line : 0;
    while (n && *p) {
        if (*p == '[') {
            char *end;
            long idx = strtol(p + 1, &end, 10);
            if (*end != ']' || n->kind != NODE_SEQ) {
                *bad = true;
                return NULL;
            }
            *parent_line = n->ref_line;
            n = (idx >= 0 && idx < n->count) ? n->items[idx] : NULL;
            p = end + 1;
        } else {
            if (*p == '.') p++;
            size_t k = strcspn(p, ".[");
            if (n->kind != NODE_MAP) {
                *bad = true;
                return NULL;
            }
            *parent_line = n->ref_line;
            node *found = NULL;
            for (int i = 0; i < n->count; i++)
                if (strlen(n->keys[i]) == k && strncmp(n->keys[i], p, k) == 0) {
                    found = n->items[i];
                    /* Reading anything below a key means the key was recognised. */
                    found->used = true;
                    break;
                }
            n = found;
            p += k;
        }
    }
    return n;
}

static void mark_tree(node *n) {
    if (!n) return;
    n->used = true;
    for (int i = 0; i < n->count; i++) mark_tree(n->items[i]);
}

bool vt_config_has(const vt_config *cfg, const char *path) {
    int pl;
    bool bad;
    return lookup(cfg, path, &pl, &bad) != NULL;
}

/* Fetches a scalar, or NULL if absent; fills err and sets *st on a kind error. */
static node *scalar(const vt_config *cfg, const char *path, const char *want, vt_status *st,
                    vt_error *err) {
    int pl;
    bool bad;
    node *n = lookup(cfg, path, &pl, &bad);
    *st = VT_OK;
    if (bad) {
        *st = vt_fail(err, VT_ERR_FORMAT, "%s:%d: %s: a parent of this key is not a %s",
                      cfg->name, pl, path, strchr(path, '[') ? "list or mapping" : "mapping");
        return NULL;
    }
    if (n && n->kind != NODE_SCALAR) {
        *st = vt_fail(err, VT_ERR_FORMAT, "%s:%d: %s: expected %s, got a %s", cfg->name, n->ref_line,
                      path, want, n->kind == NODE_MAP ? "mapping" : "list");
        return NULL;
    }
    if (n) n->used = true;
    return n;
}

static vt_status type_error(const vt_config *cfg, const node *n, const char *path, const char *want,
                            vt_error *err) {
    return vt_fail(err, VT_ERR_FORMAT, "%s:%d: %s: expected %s, got '%s'", cfg->name, n->ref_line, path,
                   want, n->value);
}

vt_status vt_config_int(const vt_config *cfg, const char *path, int64_t *out, vt_error *err) {
    vt_status st;
    node *n = scalar(cfg, path, "an integer", &st, err);
    if (!n) return st;
    char *end;
    errno = 0;
    long long v = strtoll(n->value, &end, 0);
    if (n->quoted || end == n->value || *end || errno == ERANGE)
        return type_error(cfg, n, path, "an integer", err);
    *out = v;
    return VT_OK;
}

vt_status vt_config_section_int(const vt_config *cfg, const char *prefix, const char *key, int lo, int hi, int *v,
                                vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    int64_t x = *v;
    vt_status st = vt_config_int_range(cfg, path, lo, hi, &x, err);
    if (!st) *v = (int)x;
    return st;
}

vt_status vt_config_section_float(const vt_config *cfg, const char *prefix, const char *key, float *v,
                                  bool positive, vt_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    double x = *v;
    vt_status st = vt_config_double(cfg, path, &x, err);
    if (st) return st;
    if (!isfinite(x) || x < 0 || (positive && x == 0))
        return vt_fail(err, VT_ERR_ARG, "%s: must be finite and %s 0, got %g", path, positive ? ">" : ">=", x);
    *v = (float)x;
    return VT_OK;
}

vt_status vt_config_int_range(const vt_config *cfg, const char *path, int64_t lo, int64_t hi,
                              int64_t *out, vt_error *err) {
    int64_t v = *out;
    vt_status st = vt_config_int(cfg, path, &v, err);
    if (st) return st;
    if (v < lo || v > hi) {
        int pl;
        bool bad;
        node *n = lookup(cfg, path, &pl, &bad);
        return vt_fail(err, VT_ERR_RANGE, "%s:%d: %s: %lld is outside [%lld, %lld]", cfg->name,
                       n ? n->ref_line : pl, path, (long long)v, (long long)lo, (long long)hi);
    }
    *out = v;
    return VT_OK;
}

vt_status vt_config_double(const vt_config *cfg, const char *path, double *out, vt_error *err) {
    vt_status st;
    node *n = scalar(cfg, path, "a number", &st, err);
    if (!n) return st;
    char *end;
    errno = 0;
    double v = strtod(n->value, &end);
    if (n->quoted || end == n->value || *end || errno == ERANGE || !isfinite(v))
        return type_error(cfg, n, path, "a finite number", err);
    *out = v;
    return VT_OK;
}

vt_status vt_config_bool(const vt_config *cfg, const char *path, bool *out, vt_error *err) {
    vt_status st;
    node *n = scalar(cfg, path, "true or false", &st, err);
    if (!n) return st;
    if (!n->quoted && (!strcasecmp(n->value, "true") || !strcasecmp(n->value, "yes") ||
                       !strcasecmp(n->value, "on")))
        *out = true;
    else if (!n->quoted && (!strcasecmp(n->value, "false") || !strcasecmp(n->value, "no") ||
                            !strcasecmp(n->value, "off")))
        *out = false;
    else
        return type_error(cfg, n, path, "true or false", err);
    return VT_OK;
}

vt_status vt_config_string(const vt_config *cfg, const char *path, const char **out, vt_error *err) {
    vt_status st;
    node *n = scalar(cfg, path, "a string", &st, err);
    if (!n) return st;
    *out = n->value;
    return VT_OK;
}

vt_status vt_config_enum(const vt_config *cfg, const char *path, const char *const *names, int n,
                         int *out, vt_error *err) {
    const char *s = NULL;
    vt_status st = vt_config_string(cfg, path, &s, err);
    if (st || !s) return st;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return VT_OK;
        }
    char choices[512] = "";
    for (int i = 0; i < n; i++) {
        size_t used = strlen(choices);
        snprintf(choices + used, sizeof choices - used, "%s%s", i ? ", " : "", names[i]);
    }
    int pl;
    bool bad;
    node *nd = lookup(cfg, path, &pl, &bad);
    return vt_fail(err, VT_ERR_ARG, "%s:%d: %s: '%s' is not one of: %s", cfg->name,
                   nd ? nd->ref_line : pl, path, s, choices);
}

static vt_status missing(const vt_config *cfg, const char *path, vt_error *err) {
    return vt_fail(err, VT_ERR_ARG, "%s: required key '%s' is missing", cfg->name, path);
}

vt_status vt_config_require_int(const vt_config *cfg, const char *path, int64_t *out, vt_error *err) {
    if (!vt_config_has(cfg, path)) return missing(cfg, path, err);
    return vt_config_int(cfg, path, out, err);
}

vt_status vt_config_require_string(const vt_config *cfg, const char *path, const char **out,
                                   vt_error *err) {
    if (!vt_config_has(cfg, path)) return missing(cfg, path, err);
    return vt_config_string(cfg, path, out, err);
}

int vt_config_len(const vt_config *cfg, const char *path, vt_error *err) {
    int pl;
    bool bad;
    node *n = lookup(cfg, path, &pl, &bad);
    if (bad || (n && n->kind == NODE_SCALAR)) {
        vt_fail(err, VT_ERR_FORMAT, "%s:%d: %s: expected a list or mapping", cfg->name,
                n ? n->ref_line : pl, path);
        return -2;
    }
    if (!n) return -1;
    n->used = true;
    return n->count;
}

const char *vt_config_key_at(const vt_config *cfg, const char *path, int i) {
    int pl;
    bool bad;
    node *n = *path ? lookup(cfg, path, &pl, &bad) : cfg->root;
    if (!n || n->kind != NODE_MAP || i < 0 || i >= n->count) return NULL;
    return n->keys[i];
}

void vt_config_mark_used(const vt_config *cfg, const char *path) {
    int pl;
    bool bad;
    mark_tree(lookup(cfg, path, &pl, &bad));
}

static bool find_unused(const node *n, char *path, size_t cap, int *line) {
    for (int i = 0; i < n->count; i++) {
        size_t len = strlen(path);
        if (n->kind == NODE_MAP)
            snprintf(path + len, cap - len, "%s%s", len ? "." : "", n->keys[i]);
        else
            snprintf(path + len, cap - len, "[%d]", i);
        const node *c = n->items[i];
        if (!c->used) {
            *line = n->kind == NODE_MAP ? n->key_lines[i] : c->line;
            return true;
        }
        if (c->kind != NODE_SCALAR && find_unused(c, path, cap, line)) return true;
        path[len] = '\0';
    }
    return false;
}

vt_status vt_config_check_unused(const vt_config *cfg, vt_error *err) {
    char path[512] = "";
    int line = 0;
    if (!find_unused(cfg->root, path, sizeof path, &line)) return VT_OK;
    if (line == 0) /* added by vt_config_set */
        return vt_fail(err, VT_ERR_ARG, "%s: unknown key '%s' (from a command-line override)",
                       cfg->name, path);
    return vt_fail(err, VT_ERR_ARG, "%s:%d: unknown key '%s'", cfg->name, line, path);
}

vt_status vt_config_set(vt_config *cfg, const char *assignment, vt_error *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return vt_fail(err, VT_ERR_ARG, "override '%s': expected KEY=VALUE", assignment);
    char path[512];
    size_t plen = (size_t)(eq - assignment);
    if (plen >= sizeof path) return vt_fail(err, VT_ERR_ARG, "override '%s': key too long", assignment);
    memcpy(path, assignment, plen);
    path[plen] = '\0';
    int pl;
    bool bad;
    node *n = lookup(cfg, path, &pl, &bad);
    if (n) {
        if (n->kind != NODE_SCALAR)
            return vt_fail(err, VT_ERR_ARG, "override '%s': %s is not a single value", assignment,
                           path);
        char *v = strdup(eq + 1);
        if (!v) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
        free(n->value);
        n->value = v;
        n->quoted = false;
        n->used = false; /* an override must still be read by someone */
        return VT_OK;
    }
    /* New key: its parent mapping must exist (or be the root). */
    char *dot = strrchr(path, '.');
    node *parent = cfg->root;
    const char *key = path;
    if (dot) {
        *dot = '\0';
        parent = lookup(cfg, path, &pl, &bad);
        key = dot + 1;
    }
    if (!parent || parent->kind != NODE_MAP)
        return vt_fail(err, VT_ERR_ARG, "override '%s': no mapping '%s' to put it in", assignment,
                       dot ? path : "(top level)");
    node *leaf = node_new(NODE_SCALAR, 0);
    char *k = strdup(key);
    if (!leaf || !k || !(leaf->value = strdup(eq + 1)) || !node_push(parent, k, 0, leaf)) {
        free(k);
        node_free(leaf);
        return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    }
    return VT_OK;
}
