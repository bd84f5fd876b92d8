/* Template substitution and shell quoting for the Slurm templates. Kept apart
 * from the job description so the quoting rules have one home and one test. */
#include "scheduler/slurm_template.h"

#include <stdlib.h>
#include <string.h>

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int line_of(const char *start, const char *at) {
    int line = 1;
    for (const char *c = start; c < at; c++) line += *c == '\n';
    return line;
}

vt_status vt_template_render(const char *tmpl, const char *what, const vt_template_var *vars,
                             size_t nvars, char **out, vt_error *err) {
    buf b = {0};
    const char *p = tmpl;
    *out = NULL;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            if (buf_add(&b, p, strlen(p))) goto nomem;
            break;
        }
        if (buf_add(&b, p, (size_t)(open - p))) goto nomem;
        const char *close = strstr(open + 2, "}}");
        const char *nl = strchr(open, '\n');
        if (!close || (nl && nl < close)) {
            free(b.p);
            return vt_fail(err, VT_ERR_FORMAT, "%s:%d: unterminated '{{'", what, line_of(tmpl, open));
        }
        size_t n = (size_t)(close - open - 2);
        size_t i;
        for (i = 0; i < nvars; i++)
            if (strlen(vars[i].name) == n && !memcmp(vars[i].name, open + 2, n)) break;
        if (i == nvars) {
            free(b.p);
            return vt_fail(err, VT_ERR_FORMAT, "%s:%d: unknown placeholder '{{%.*s}}'", what,
                           line_of(tmpl, open), (int)n, open + 2);
        }
        if (buf_add(&b, vars[i].value, strlen(vars[i].value))) goto nomem;
        p = close + 2;
    }
    if (!b.p && buf_add(&b, "", 0)) goto nomem;
    *out = b.p;
    return VT_OK;
nomem:
    free(b.p);
    return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory while rendering", what);
}

char *vt_shell_quote(const char *s) {
    buf b = {0};
    if (buf_add(&b, "'", 1)) return NULL;
    for (const char *c = s; *c; c++) {
        /* A single quote cannot appear inside '...': close, escape, reopen. */
        int rc = *c == '\'' ? buf_add(&b, "'\\''", 4) : buf_add(&b, c, 1);
        if (rc) {
            free(b.p);
            return NULL;
        }
    }
    if (buf_add(&b, "'", 1)) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int vt_sbatch_safe(const char *s) {
    if (!s || !*s) return 0;
    for (const char *c = s; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\'' || ch == '\\') return 0;
    }
    return 1;
}
