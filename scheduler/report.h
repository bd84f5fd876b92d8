/* The robustness report: reads the results of a run (and optionally the
 * previous night's run and a pinned baseline) and computes, per cell
 * (benchmark, shift, severity): accuracy with a 95% interval, relative
 * robustness and flip rate against the clean cell, a paired regression test
 * against the previous run (BH-adjusted across cells), and mCE / relative mCE
 * against the baseline. Renders JSON, Markdown and a self-contained HTML page. */
#ifndef VT_REPORT_H
#define VT_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "scheduler/report_stats.h"
#include "trainer/eval_score.h"

typedef struct vt_report_options {
    const char *results;    /* result store of the run reported on */
    const char *previous;   /* optional: last night's store (paired regression test) */
    const char *baseline;   /* optional: pinned baseline checkpoint's store (mCE) */
    const char *checkpoint; /* optional: which checkpoint when a store holds several */
    double alpha;           /* false-discovery rate of the gate (default 0.05) */
    double min_drop;        /* a regression must also lose at least this much accuracy (default 0) */
    int bootstrap_reps;     /* for soft scores (default 2000) */
} vt_report_options;

typedef struct vt_report_cell {
    char *benchmark, *shift, *family, *modality;
    int severity;           /* 0 = clean */
    size_t n;
    double accuracy;        /* mean score */
    vt_interval ci;
    bool binary;            /* every score is 0 or 1 */
    double rr;              /* accuracy / clean accuracy (NaN for clean cells or no clean) */
    double flip_rate;       /* share of paired items whose correctness differs from clean */
    /* Against the previous run (NaN / false when there is none): */
    size_t paired_n;
    double delta, p_value, q_value;
    bool regression;
    /* Accuracy per question type (the items' `task`), in name order. */
    size_t ntypes;
    char **type_names;
    size_t *type_n;
    double *type_accuracy;
    /* Per type: true when every reference of the type reads as yes or no
     * (vt_extract_yes_no), and then the POPE-style statistics of its answers
     * (F1, share of "yes", "yes" on items whose reference is no). */
    bool *type_is_yesno;
    vt_yesno_stats *type_yesno;
} vt_report_cell;

typedef struct vt_report_ce {
    char *benchmark, *shift, *modality;
    double ce, rel_ce;      /* rel_ce NaN when dropped */
    bool dropped;           /* baseline degradation too small for relative CE */
} vt_report_ce;

typedef struct vt_report {
    char *checkpoint;
    char *previous_checkpoint, *baseline_checkpoint;
    vt_report_cell *cells;  /* sorted: benchmark, clean first, modality, shift, severity */
    size_t ncells;
    vt_report_ce *ce;       /* one per (benchmark, shift) when a baseline is given */
    size_t nce;
    double mce, rel_mce;    /* overall; NaN without a baseline */
    double mce_by_modality[3], rel_mce_by_modality[3]; /* visual, text, joint */
    size_t regressions;
    double alpha;
} vt_report;

vt_status vt_report_build(const vt_report_options *o, vt_report *out, vt_error *err);
void vt_report_free(vt_report *r);

/* Renderers write whole files atomically into dir: report.json, report.md, report.html. */
vt_status vt_report_write_json(const vt_report *r, const char *path, vt_error *err);
vt_status vt_report_write_markdown(const vt_report *r, const char *path, vt_error *err);
vt_status vt_report_write_html(const vt_report *r, const char *path, vt_error *err);

extern const char *const vt_report_modalities[3];

/* `vistune report`: exit 0, 1 on failure, 2 on usage, 4 when --gate finds a regression. */
int vt_cmd_report(int argc, char **argv);

#endif
