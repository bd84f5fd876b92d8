/* Report renderers for machines (JSON) and people reading text (Markdown). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "scheduler/report.h"

/* NaN has no JSON spelling: write null. */
static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

static vt_status write_text(const char *path, char *text, vt_error *err) {
    if (!text) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory rendering", path);
    vt_status st = vt_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

vt_status vt_report_write_json(const vt_report *r, const char *path, vt_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "checkpoint", r->checkpoint);
    if (r->previous_checkpoint) cJSON_AddStringToObject(root, "previous_checkpoint", r->previous_checkpoint);
    if (r->baseline_checkpoint) cJSON_AddStringToObject(root, "baseline_checkpoint", r->baseline_checkpoint);
    add_num(root, "alpha", r->alpha);
    cJSON_AddNumberToObject(root, "regressions", (double)r->regressions);
    cJSON_AddBoolToObject(root, "gate_failed", r->regressions > 0);
    cJSON *cells = cJSON_AddArrayToObject(root, "cells");
    for (size_t i = 0; i < r->ncells; i++) {
        const vt_report_cell *c = &r->cells[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "benchmark", c->benchmark);
        cJSON_AddStringToObject(o, "shift", c->shift);
        cJSON_AddStringToObject(o, "family", c->family);
        cJSON_AddStringToObject(o, "modality", c->modality);
        cJSON_AddNumberToObject(o, "severity", c->severity);
        cJSON_AddNumberToObject(o, "n", (double)c->n);
        add_num(o, "accuracy", c->accuracy);
        add_num(o, "ci_low", c->ci.lo);
        add_num(o, "ci_high", c->ci.hi);
        cJSON_AddStringToObject(o, "ci_method", c->binary ? "wilson" : "bootstrap");
        add_num(o, "relative_robustness", c->rr);
        add_num(o, "flip_rate", c->flip_rate);
        cJSON_AddNumberToObject(o, "paired_n", (double)c->paired_n);
        add_num(o, "delta", c->delta);
        add_num(o, "p_value", c->p_value);
        add_num(o, "q_value", c->q_value);
        cJSON_AddBoolToObject(o, "regression", c->regression);
        cJSON *types = cJSON_AddObjectToObject(o, "by_type");
        for (size_t k = 0; k < c->ntypes; k++) {
            cJSON *t = cJSON_AddObjectToObject(types, c->type_names[k]);
            cJSON_AddNumberToObject(t, "n", (double)c->type_n[k]);
            add_num(t, "accuracy", c->type_accuracy[k]);
            if (!c->type_is_yesno[k]) continue;
            const vt_yesno_stats *y = &c->type_yesno[k];
            cJSON *yn = cJSON_AddObjectToObject(t, "yesno");
            add_num(yn, "precision", y->precision);
            add_num(yn, "recall", y->recall);
            add_num(yn, "f1", y->f1);
            add_num(yn, "accuracy", y->accuracy);
            add_num(yn, "yes_ratio", y->yes_ratio);
            add_num(yn, "yes_on_absent", y->yes_on_no);
        }
        cJSON_AddItemToArray(cells, o);
    }
    if (r->baseline_checkpoint) {
        cJSON *ce = cJSON_AddObjectToObject(root, "corruption_error");
        add_num(ce, "mce", r->mce);
        add_num(ce, "relative_mce", r->rel_mce);
        cJSON *by = cJSON_AddObjectToObject(ce, "by_modality");
        for (int k = 0; k < 3; k++) {
            cJSON *m = cJSON_AddObjectToObject(by, vt_report_modalities[k]);
            add_num(m, "mce", r->mce_by_modality[k]);
            add_num(m, "relative_mce", r->rel_mce_by_modality[k]);
        }
        cJSON *shifts = cJSON_AddArrayToObject(ce, "shifts");
        cJSON *dropped = cJSON_AddArrayToObject(ce, "dropped_from_relative");
        for (size_t i = 0; i < r->nce; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "benchmark", r->ce[i].benchmark);
            cJSON_AddStringToObject(o, "shift", r->ce[i].shift);
            cJSON_AddStringToObject(o, "modality", r->ce[i].modality);
            add_num(o, "ce", r->ce[i].ce);
            add_num(o, "relative_ce", r->ce[i].rel_ce);
            cJSON_AddItemToArray(shifts, o);
            if (r->ce[i].dropped) cJSON_AddItemToArray(dropped, cJSON_CreateString(r->ce[i].shift));
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return write_text(path, text, err);
}

static void pct(FILE *f, double v) {
    if (isnan(v)) fputs("–", f);
    else fprintf(f, "%.1f%%", 100.0 * v);
}

vt_status vt_report_write_markdown(const vt_report *r, const char *path, vt_error *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return vt_fail_errno(err, VT_ERR_NOMEM, "%s: cannot render", path);
    fprintf(f, "# Robustness report: %s\n\n", r->checkpoint);
    if (r->previous_checkpoint)
        fprintf(f, "Compared with the previous run (%s): **%zu significant regression%s** "
                   "(paired test, Benjamini–Hochberg at q < %.2f).\n\n",
                r->previous_checkpoint, r->regressions, r->regressions == 1 ? "" : "s", r->alpha);
    if (r->baseline_checkpoint) {
        fprintf(f, "Against the pinned baseline (%s): mCE ", r->baseline_checkpoint);
        pct(f, r->mce);
        fputs(", relative mCE ", f);
        pct(f, r->rel_mce);
        fputs(" (visual / text / joint mCE: ", f);
        for (int k = 0; k < 3; k++) {
            pct(f, r->mce_by_modality[k]);
            fputs(k < 2 ? " / " : ")\n\n", f);
        }
    }
    for (size_t i = 0; i < r->ncells; i++) {
        const vt_report_cell *c = &r->cells[i];
        if (c->severity != 0 || c->ntypes == 0) continue;
        fprintf(f, "Clean accuracy on %s by question type:\n\n| type | n | accuracy |\n|---|---|---|\n", c->benchmark);
        for (size_t k = 0; k < c->ntypes; k++) {
            fprintf(f, "| %s | %zu | ", c->type_names[k][0] ? c->type_names[k] : "(none)", c->type_n[k]);
            pct(f, c->type_accuracy[k]);
            fputs(" |\n", f);
        }
        fputs("\n", f);
        for (size_t k = 0; k < c->ntypes; k++) {
            if (!c->type_is_yesno[k]) continue;
            const vt_yesno_stats *y = &c->type_yesno[k];
            fprintf(f, "Yes/no answers of `%s` (POPE-style): F1 ", c->type_names[k]);
            pct(f, y->f1);
            fputs(", precision ", f);
            pct(f, y->precision);
            fputs(", recall ", f);
            pct(f, y->recall);
            fputs(", \"yes\" share ", f);
            pct(f, y->yes_ratio);
            fputs(", \"yes\" on absent objects ", f);
            pct(f, y->yes_on_no);
            fputs("\n\n", f);
        }
    }
    fputs("| benchmark | shift | family | severity | n | accuracy | 95% CI | rel. robustness | flip rate "
          "| Δ vs previous | q | |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < r->ncells; i++) {
        const vt_report_cell *c = &r->cells[i];
        fprintf(f, "| %s | %s | %s | %d | %zu | ", c->benchmark, c->shift, c->family[0] ? c->family : "–",
                c->severity, c->n);
        pct(f, c->accuracy);
        fputs(" | ", f);
        pct(f, c->ci.lo);
        fputs("–", f);
        pct(f, c->ci.hi);
        fputs(" | ", f);
        if (isnan(c->rr)) fputs("–", f);
        else fprintf(f, "%.3f", c->rr);
        fputs(" | ", f);
        pct(f, c->flip_rate);
        fputs(" | ", f);
        if (isnan(c->delta)) fputs("–", f);
        else fprintf(f, "%+.1f pt", 100.0 * c->delta);
        fputs(" | ", f);
        if (isnan(c->q_value)) fputs("–", f);
        else fprintf(f, "%.3g", c->q_value);
        fprintf(f, " | %s |\n", c->regression ? "**regression**" : "");
    }
    fclose(f);
    return write_text(path, text, err);
}
