/* Building the report model from result stores (see report.h). */
#include "scheduler/report.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "scheduler/result_store.h"

const char *const vt_report_modalities[3] = {"visual", "text", "joint"};

/* One (checkpoint, benchmark, shift, severity) cell of a run while loading:
 * item scores keyed by sample index, merged over shards. */
typedef struct {
    uint64_t index;
    float score;
    char *type; /* question type of the item */
    char *prediction, *reference; /* for the yes/no statistics */
} item;

typedef struct {
    char *checkpoint, *benchmark, *shift, *family, *modality;
    int severity;
    item *items;
    size_t n, cap;
} run_cell;

typedef struct {
    run_cell *cells;
    size_t n, cap;
    const char *path;
} run;

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void run_free(run *r) {
    for (size_t i = 0; i < r->n; i++) {
        run_cell *c = &r->cells[i];
        free(c->checkpoint);
        free(c->benchmark);
        free(c->shift);
        free(c->family);
        free(c->modality);
        for (size_t k = 0; k < c->n; k++) {
            free(c->items[k].type);
            free(c->items[k].prediction);
            free(c->items[k].reference);
        }
        free(c->items);
    }
    free(r->cells);
    memset(r, 0, sizeof *r);
}

static run_cell *find_cell(run *r, const char *ckpt, const char *bench, const char *shift, int sev) {
    for (size_t i = 0; i < r->n; i++) {
        run_cell *c = &r->cells[i];
        if (c->severity == sev && !strcmp(c->shift, shift) && !strcmp(c->benchmark, bench) &&
            (!ckpt || !strcmp(c->checkpoint, ckpt)))
            return c;
    }
    return NULL;
}

static vt_status add_result(const Vt__EvalResult *res, void *ctx, vt_error *err) {
    run *r = ctx;
    const Vt__EvalTask *t = res->task;
    int sev = (int)t->severity;
    const char *shift = t->shift && t->shift[0] ? t->shift : "clean";
    run_cell *c = find_cell(r, t->checkpoint, t->benchmark, shift, sev);
    if (!c) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 64;
            run_cell *cells = realloc(r->cells, cap * sizeof *cells);
            if (!cells) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", r->path);
            r->cells = cells;
            r->cap = cap;
        }
        c = &r->cells[r->n++];
        memset(c, 0, sizeof *c);
        c->checkpoint = dup_or_empty(t->checkpoint);
        c->benchmark = dup_or_empty(t->benchmark);
        c->shift = dup_or_empty(shift);
        c->family = dup_or_empty(t->family);
        c->modality = dup_or_empty(sev == 0 ? "clean" : t->modality);
        c->severity = sev;
        if (!c->checkpoint || !c->benchmark || !c->shift || !c->family || !c->modality)
            return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", r->path);
    }
    for (size_t i = 0; i < res->n_items; i++) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 256;
            item *items = realloc(c->items, cap * sizeof *items);
            if (!items) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", r->path);
            c->items = items;
            c->cap = cap;
        }
        float s = res->items[i]->score;
        if (!(s >= 0.0f && s <= 1.0f))
            return vt_fail(err, VT_ERR_FORMAT, "%s: task '%s' item %llu: score %g is outside [0, 1]",
                           r->path, t->task_id, (unsigned long long)res->items[i]->index, (double)s);
        const Vt__ItemResult *it = res->items[i];
        item x = {it->index, s, strdup(it->task ? it->task : ""), strdup(it->prediction ? it->prediction : ""),
                  strdup(it->reference ? it->reference : "")};
        if (!x.type || !x.prediction || !x.reference) {
            free(x.type);
            free(x.prediction);
            free(x.reference);
            return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", r->path);
        }
        c->items[c->n++] = x;
    }
    return VT_OK;
}

static int by_index(const void *a, const void *b) {
    uint64_t x = ((const item *)a)->index, y = ((const item *)b)->index;
    return (x > y) - (x < y);
}

static vt_status load_store(const char *path, run *r, vt_error *err) {
    vt_result_store *s;
    vt_status st = vt_result_store_open(path, false, &s, err);
    if (st) return st;
    st = vt_result_store_each(s, add_result, r, err);
    vt_result_store_close(s);
    return st;
}

/* A results path is one store, or a directory of stores (one per array task
 * or node: LMDB must not be shared over a network file system). */
static vt_status load_parts(const char *path, run *r, vt_error *err) {
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/data.mdb", path);
    if (vt_path_exists(probe) || !vt_is_dir(path)) return load_store(path, r, err);
    DIR *d = opendir(path);
    if (!d) return vt_fail_errno(err, VT_ERR_IO, "%s: cannot list", path);
    char **names = NULL;
    size_t n = 0;
    vt_status st = VT_OK;
    for (struct dirent *e; !st && (e = readdir(d));) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s/data.mdb", path, e->d_name);
        if (e->d_name[0] == '.' || !vt_path_exists(sub)) continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        if (!grown || !(grown[n] = strdup(e->d_name))) st = vt_fail(err, VT_ERR_NOMEM, "out of memory");
        else names = grown, n++;
    }
    closedir(d);
    /* Sorted, so loading order (and any error) does not depend on readdir. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; !st && i < n; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, names[i]);
        st = load_store(sub, r, err);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!st && n == 0) st = vt_fail(err, VT_ERR_IO, "%s: no result store here", path);
    return st;
}

/* Loads every result of a store; sorts items and rejects duplicates (two
 * shards claiming the same item means the plan was broken). */
static vt_status load_run(const char *path, run *r, vt_error *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    vt_status st = load_parts(path, r, err);
    for (size_t i = 0; !st && i < r->n; i++) {
        run_cell *c = &r->cells[i];
        qsort(c->items, c->n, sizeof *c->items, by_index);
        for (size_t k = 1; k < c->n; k++)
            if (c->items[k].index == c->items[k - 1].index) {
                st = vt_fail(err, VT_ERR_FORMAT,
                             "%s: item %llu appears twice in %s/%s/severity %d (overlapping shards)",
                             path, (unsigned long long)c->items[k].index, c->benchmark, c->shift,
                             c->severity);
                break;
            }
    }
    if (!st && r->n == 0) st = vt_fail(err, VT_ERR_FORMAT, "%s: the result store is empty", path);
    if (st) run_free(r);
    return st;
}

/* The checkpoint a run reports on: the requested one, or the only one. */
static vt_status pick_checkpoint(const run *r, const char *want, const char **out, vt_error *err) {
    const char *only = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const char *c = r->cells[i].checkpoint;
        if (want && !strcmp(c, want)) {
            *out = c;
            return VT_OK;
        }
        if (!want && only && strcmp(only, c))
            return vt_fail(err, VT_ERR_ARG,
                           "%s: holds results of several checkpoints ('%s', '%s', ...): choose one "
                           "with --checkpoint",
                           r->path, only, c);
        only = c;
    }
    if (want) return vt_fail(err, VT_ERR_ARG, "%s: no results for checkpoint '%s'", r->path, want);
    *out = only;
    return VT_OK;
}

static double mean_score(const run_cell *c) {
    double sum = 0;
    for (size_t i = 0; i < c->n; i++) sum += c->items[i].score;
    return c->n ? sum / (double)c->n : NAN;
}

static bool all_binary(const run_cell *c) {
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].score != 0.0f && c->items[i].score != 1.0f) return false;
    return true;
}

/* Walks the items two cells share (both sorted by index). */
typedef struct {
    float *a, *b;
    size_t n;
} paired;

static vt_status pair_items(const run_cell *x, const run_cell *y, paired *p, vt_error *err) {
    size_t cap = x->n < y->n ? x->n : y->n;
    p->a = malloc((cap ? cap : 1) * sizeof *p->a);
    p->b = malloc((cap ? cap : 1) * sizeof *p->b);
    p->n = 0;
    if (!p->a || !p->b) {
        free(p->a);
        free(p->b);
        return vt_fail(err, VT_ERR_NOMEM, "out of memory pairing items");
    }
    for (size_t i = 0, j = 0; i < x->n && j < y->n;) {
        if (x->items[i].index < y->items[j].index) i++;
        else if (x->items[i].index > y->items[j].index) j++;
        else {
            p->a[p->n] = x->items[i++].score;
            p->b[p->n++] = y->items[j++].score;
        }
    }
    return VT_OK;
}

static void paired_free(paired *p) {
    free(p->a);
    free(p->b);
}

static int modality_index(const char *m) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(m, vt_report_modalities[i])) return i;
    return -1;
}

static int cell_order(const void *a, const void *b) {
    const vt_report_cell *x = a, *y = b;
    int c = strcmp(x->benchmark, y->benchmark);
    if (c) return c;
    if ((x->severity == 0) != (y->severity == 0)) return x->severity == 0 ? -1 : 1;
    int mx = modality_index(x->modality), my = modality_index(y->modality);
    if (mx != my) return mx - my;
    if ((c = strcmp(x->family, y->family))) return c;
    if ((c = strcmp(x->shift, y->shift))) return c;
    return x->severity - y->severity;
}

/* Paired comparison of a cell against the same cell of the previous run. */
static vt_status compare_previous(const vt_report_options *o, const run_cell *now,
                                  const run_cell *before, vt_report_cell *out, vt_error *err) {
    paired p;
    vt_status st = pair_items(before, now, &p, err);
    if (st) return st;
    out->paired_n = p.n;
    double sum = 0;
    for (size_t i = 0; i < p.n; i++) sum += (double)p.b[i] - (double)p.a[i];
    out->delta = p.n ? sum / (double)p.n : NAN;
    if (out->binary && all_binary(before)) {
        uint64_t right_to_wrong = 0, wrong_to_right = 0;
        for (size_t i = 0; i < p.n; i++) {
            right_to_wrong += p.a[i] == 1.0f && p.b[i] == 0.0f;
            wrong_to_right += p.a[i] == 0.0f && p.b[i] == 1.0f;
        }
        out->p_value = vt_mcnemar_exact_p(right_to_wrong, wrong_to_right);
    } else {
        out->p_value = vt_paired_bootstrap(p.a, p.b, p.n, o->bootstrap_reps, 17, NULL);
    }
    paired_free(&p);
    return VT_OK;
}

/* POPE-style statistics for each type whose references are all yes or no
 * (an existence question type); other types get none. */
static vt_status yes_no_by_type(const run_cell *c, vt_report_cell *rc, vt_error *err) {
    size_t nt = rc->ntypes ? rc->ntypes : 1;
    rc->type_is_yesno = calloc(nt, sizeof *rc->type_is_yesno);
    rc->type_yesno = calloc(nt, sizeof *rc->type_yesno);
    const char **preds = malloc((c->n ? c->n : 1) * sizeof *preds);
    const char **refs = malloc((c->n ? c->n : 1) * sizeof *refs);
    if (!rc->type_is_yesno || !rc->type_yesno || !preds || !refs) {
        free(preds);
        free(refs);
        return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < rc->ntypes; j++) {
        size_t m = 0;
        bool yesno = true;
        for (size_t k = 0; k < c->n && yesno; k++) {
            if (strcmp(c->items[k].type, rc->type_names[j])) continue;
            yesno = vt_extract_yes_no(c->items[k].reference) >= 0;
            preds[m] = c->items[k].prediction;
            refs[m++] = c->items[k].reference;
        }
        rc->type_is_yesno[j] = yesno && m > 0;
        if (rc->type_is_yesno[j]) rc->type_yesno[j] = vt_yes_no_stats(preds, refs, m);
    }
    free(preds);
    free(refs);
    return VT_OK;
}

/* Mean score per question type, types in name order. */
static vt_status by_type(const run_cell *c, vt_report_cell *rc, vt_error *err) {
    for (size_t k = 0; k < c->n; k++) {
        const char *t = c->items[k].type;
        size_t j = 0;
        while (j < rc->ntypes && strcmp(rc->type_names[j], t)) j++;
        if (j == rc->ntypes) {
            char **names = realloc(rc->type_names, (j + 1) * sizeof *names);
            size_t *n = names ? realloc(rc->type_n, (j + 1) * sizeof *n) : NULL;
            double *acc = n ? realloc(rc->type_accuracy, (j + 1) * sizeof *acc) : NULL;
            if (names) rc->type_names = names;
            if (n) rc->type_n = n;
            if (acc) rc->type_accuracy = acc;
            if (!names || !n || !acc || !(names[j] = strdup(t))) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
            n[j] = 0;
            acc[j] = 0;
            rc->ntypes++;
        }
        rc->type_n[j]++;
        rc->type_accuracy[j] += c->items[k].score;
    }
    for (size_t j = 0; j < rc->ntypes; j++) rc->type_accuracy[j] /= (double)rc->type_n[j];
    for (size_t a = 1; a < rc->ntypes; a++) /* insertion sort by name: few types */
        for (size_t b = a; b > 0 && strcmp(rc->type_names[b - 1], rc->type_names[b]) > 0; b--) {
            char *tn = rc->type_names[b];
            rc->type_names[b] = rc->type_names[b - 1];
            rc->type_names[b - 1] = tn;
            size_t tc = rc->type_n[b];
            rc->type_n[b] = rc->type_n[b - 1];
            rc->type_n[b - 1] = tc;
            double ta = rc->type_accuracy[b];
            rc->type_accuracy[b] = rc->type_accuracy[b - 1];
            rc->type_accuracy[b - 1] = ta;
        }
    return yes_no_by_type(c, rc, err);
}

static vt_status build_cells(const vt_report_options *o, const run *cur, const char *ckpt,
                             const run *prev, const char *prev_ckpt, vt_report *r, vt_error *err) {
    vt_status st_types;
    for (size_t i = 0; i < cur->n; i++) {
        const run_cell *c = &cur->cells[i];
        if (strcmp(c->checkpoint, ckpt)) continue;
        vt_report_cell *rc = &r->cells[r->ncells++];
        memset(rc, 0, sizeof *rc);
        rc->benchmark = strdup(c->benchmark);
        rc->shift = strdup(c->shift);
        rc->family = strdup(c->family);
        rc->modality = strdup(c->modality);
        if (!rc->benchmark || !rc->shift || !rc->family || !rc->modality)
            return vt_fail(err, VT_ERR_NOMEM, "out of memory");
        rc->severity = c->severity;
        rc->n = c->n;
        rc->accuracy = mean_score(c);
        rc->binary = all_binary(c);
        if (rc->binary) {
            uint64_t k = 0;
            for (size_t j = 0; j < c->n; j++) k += c->items[j].score == 1.0f;
            rc->ci = vt_wilson_interval(k, c->n, 1.959963984540054);
        } else {
            float *s = malloc((c->n ? c->n : 1) * sizeof *s);
            if (!s) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
            for (size_t j = 0; j < c->n; j++) s[j] = c->items[j].score;
            rc->ci = vt_bootstrap_mean_interval(s, c->n, o->bootstrap_reps, 29);
            free(s);
        }
        st_types = by_type(c, rc, err);
        if (st_types) return st_types;
        rc->rr = rc->flip_rate = NAN;
        const run_cell *clean = find_cell((run *)cur, ckpt, c->benchmark, "clean", 0);
        if (c->severity > 0 && clean) {
            rc->rr = rc->accuracy / mean_score(clean);
            paired p;
            vt_status st = pair_items(clean, c, &p, err);
            if (st) return st;
            size_t flips = 0;
            for (size_t j = 0; j < p.n; j++) flips += (p.a[j] >= 0.5f) != (p.b[j] >= 0.5f);
            rc->flip_rate = p.n ? (double)flips / (double)p.n : NAN;
            paired_free(&p);
        }
        rc->delta = rc->p_value = rc->q_value = NAN;
        const run_cell *before =
            prev ? find_cell((run *)prev, prev_ckpt, c->benchmark, c->shift, c->severity) : NULL;
        if (before) {
            vt_status st = compare_previous(o, c, before, rc, err);
            if (st) return st;
        }
    }
    qsort(r->cells, r->ncells, sizeof *r->cells, cell_order);
    /* Benjamini–Hochberg over the cells that have a paired test. */
    double *p = malloc((r->ncells ? r->ncells : 1) * sizeof *p), *q = malloc((r->ncells ? r->ncells : 1) * sizeof *q);
    size_t *which = malloc((r->ncells ? r->ncells : 1) * sizeof *which);
    if (!p || !q || !which) {
        free(p);
        free(q);
        free(which);
        return vt_fail(err, VT_ERR_NOMEM, "out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < r->ncells; i++)
        if (!isnan(r->cells[i].p_value)) {
            p[m] = r->cells[i].p_value;
            which[m++] = i;
        }
    vt_benjamini_hochberg(p, m, q);
    for (size_t k = 0; k < m; k++) {
        vt_report_cell *c = &r->cells[which[k]];
        c->q_value = q[k];
        c->regression = c->delta < -o->min_drop && c->delta < 0 && q[k] < o->alpha;
        r->regressions += c->regression;
    }
    free(p);
    free(q);
    free(which);
    return VT_OK;
}

/* CE_c = Σ_s E_model,s / Σ_s E_base,s and relative CE_c = Σ_s (E_model,s −
 * E_model,clean) / Σ_s (E_base,s − E_base,clean), with E = 1 − accuracy;
 * a shift whose baseline degradation is ≤ 1e-9 gets no relative CE. */
static vt_status build_ce(const run *cur, const char *ckpt, const run *base, const char *base_ckpt,
                          vt_report *r, vt_error *err) {
    double sum_ce[4] = {0}, sum_rel[4] = {0};
    size_t n_ce[4] = {0}, n_rel[4] = {0};
    for (size_t i = 0; i < r->ncells; i++) {
        const vt_report_cell *c = &r->cells[i];
        if (c->severity == 0) continue;
        bool seen = false; /* one CE per (benchmark, shift) */
        for (size_t k = 0; k < r->nce; k++)
            seen |= !strcmp(r->ce[k].benchmark, c->benchmark) && !strcmp(r->ce[k].shift, c->shift);
        if (seen) continue;
        const run_cell *mc = find_cell((run *)cur, ckpt, c->benchmark, "clean", 0);
        const run_cell *bc = find_cell((run *)base, base_ckpt, c->benchmark, "clean", 0);
        double em = 0, eb = 0, dm = 0, db = 0;
        int sevs = 0;
        for (int s = 1; s <= 5; s++) {
            const run_cell *ms = find_cell((run *)cur, ckpt, c->benchmark, c->shift, s);
            const run_cell *bs = find_cell((run *)base, base_ckpt, c->benchmark, c->shift, s);
            if (!ms || !bs) continue;
            sevs++;
            em += 1.0 - mean_score(ms);
            eb += 1.0 - mean_score(bs);
            if (mc && bc) {
                dm += (1.0 - mean_score(ms)) - (1.0 - mean_score(mc));
                db += (1.0 - mean_score(bs)) - (1.0 - mean_score(bc));
            }
        }
        if (!sevs) continue;
        vt_report_ce *ce = &r->ce[r->nce++];
        ce->benchmark = strdup(c->benchmark);
        ce->shift = strdup(c->shift);
        ce->modality = strdup(c->modality);
        if (!ce->benchmark || !ce->shift || !ce->modality) return vt_fail(err, VT_ERR_NOMEM, "out of memory");
        ce->ce = eb > 1e-12 ? em / eb : NAN;
        ce->dropped = !(mc && bc) || db <= 1e-9;
        ce->rel_ce = ce->dropped ? NAN : dm / db;
        int mi = modality_index(c->modality);
        for (int slot = 0; slot < 2; slot++) {
            int k = slot == 0 ? 3 : mi; /* 3 = overall */
            if (k < 0) continue;
            if (!isnan(ce->ce)) {
                sum_ce[k] += ce->ce;
                n_ce[k]++;
            }
            if (!isnan(ce->rel_ce)) {
                sum_rel[k] += ce->rel_ce;
                n_rel[k]++;
            }
        }
    }
    r->mce = n_ce[3] ? sum_ce[3] / (double)n_ce[3] : NAN;
    r->rel_mce = n_rel[3] ? sum_rel[3] / (double)n_rel[3] : NAN;
    for (int k = 0; k < 3; k++) {
        r->mce_by_modality[k] = n_ce[k] ? sum_ce[k] / (double)n_ce[k] : NAN;
        r->rel_mce_by_modality[k] = n_rel[k] ? sum_rel[k] / (double)n_rel[k] : NAN;
    }
    return VT_OK;
}

vt_status vt_report_build(const vt_report_options *o, vt_report *r, vt_error *err) {
    memset(r, 0, sizeof *r);
    r->alpha = o->alpha;
    r->mce = r->rel_mce = NAN;
    for (int k = 0; k < 3; k++) r->mce_by_modality[k] = r->rel_mce_by_modality[k] = NAN;
    run cur = {0}, prev = {0}, base = {0};
    const char *ckpt = NULL, *prev_ckpt = NULL, *base_ckpt = NULL;
    vt_status st = load_run(o->results, &cur, err);
    if (!st) st = pick_checkpoint(&cur, o->checkpoint, &ckpt, err);
    if (!st && o->previous && !(st = load_run(o->previous, &prev, err)))
        st = pick_checkpoint(&prev, NULL, &prev_ckpt, err);
    if (!st && o->baseline && !(st = load_run(o->baseline, &base, err)))
        st = pick_checkpoint(&base, NULL, &base_ckpt, err);
    if (!st) {
        r->checkpoint = strdup(ckpt);
        r->previous_checkpoint = prev_ckpt ? strdup(prev_ckpt) : NULL;
        r->baseline_checkpoint = base_ckpt ? strdup(base_ckpt) : NULL;
        r->cells = calloc(cur.n ? cur.n : 1, sizeof *r->cells);
        r->ce = calloc(cur.n ? cur.n : 1, sizeof *r->ce);
        if (!r->checkpoint || !r->cells || !r->ce) st = vt_fail(err, VT_ERR_NOMEM, "out of memory");
    }
    if (!st) st = build_cells(o, &cur, ckpt, o->previous ? &prev : NULL, prev_ckpt, r, err);
    if (!st && o->baseline) st = build_ce(&cur, ckpt, &base, base_ckpt, r, err);
    run_free(&cur);
    run_free(&prev);
    run_free(&base);
    if (st) vt_report_free(r);
    return st;
}

void vt_report_free(vt_report *r) {
    for (size_t i = 0; i < r->ncells; i++) {
        for (size_t j = 0; j < r->cells[i].ntypes; j++) free(r->cells[i].type_names[j]);
        free(r->cells[i].type_names);
        free(r->cells[i].type_n);
        free(r->cells[i].type_accuracy);
        free(r->cells[i].type_is_yesno);
        free(r->cells[i].type_yesno);
        free(r->cells[i].benchmark);
        free(r->cells[i].shift);
        free(r->cells[i].family);
        free(r->cells[i].modality);
    }
    for (size_t i = 0; i < r->nce; i++) {
        free(r->ce[i].benchmark);
        free(r->ce[i].shift);
        free(r->ce[i].modality);
    }
    free(r->cells);
    free(r->ce);
    free(r->checkpoint);
    free(r->previous_checkpoint);
    free(r->baseline_checkpoint);
    memset(r, 0, sizeof *r);
}
