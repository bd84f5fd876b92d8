/* The report as one self-contained HTML page (inline CSS and SVG, no
 * scripts or external assets): a shift × severity heatmap per benchmark,
 * severity curves per family, and clean-vs-shifted bars. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "scheduler/report.h"

static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Red (0) through yellow to green (1). */
static void heat_colour(FILE *f, double v) {
    if (isnan(v)) {
        fputs("#ddd", f);
        return;
    }
    if (v < 0) v = 0;
    if (v > 1) v = 1;
    fprintf(f, "hsl(%d,70%%,%d%%)", (int)(v * 120.0), 45 + (int)(10 * v));
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

static const vt_report_cell *find(const vt_report *r, const char *bench, const char *shift, int sev) {
    for (size_t i = 0; i < r->ncells; i++)
        if (r->cells[i].severity == sev && !strcmp(r->cells[i].shift, shift) &&
            !strcmp(r->cells[i].benchmark, bench))
            return &r->cells[i];
    return NULL;
}

/* Distinct values of a string field, in report order. */
static size_t distinct(const vt_report *r, const char *bench, size_t field_offset, const char **out,
                       size_t cap, const char *family) {
    size_t n = 0;
    for (size_t i = 0; i < r->ncells; i++) {
        const vt_report_cell *c = &r->cells[i];
        if (c->severity == 0 || (bench && strcmp(c->benchmark, bench)) ||
            (family && strcmp(c->family, family)))
            continue;
        const char *v = *(const char *const *)((const char *)c + field_offset);
        bool seen = false;
        for (size_t k = 0; k < n; k++) seen |= !strcmp(out[k], v);
        if (!seen && n < cap) out[n++] = v;
    }
    return n;
}

static void heatmap(FILE *f, const vt_report *r, const char *bench, const char **shifts, size_t ns) {
    const int label = 170, cw = 64, ch = 22, top = 30;
    int w = label + 6 * cw + 10, h = top + (int)ns * ch + 10;
    fprintf(f, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", w, h, w, h);
    const char *heads[6] = {"clean", "s1", "s2", "s3", "s4", "s5"};
    for (int s = 0; s < 6; s++)
        fprintf(f, "<text x=\"%d\" y=\"20\" text-anchor=\"middle\">%s</text>\n", label + s * cw + cw / 2, heads[s]);
    const vt_report_cell *clean = find(r, bench, "clean", 0);
    for (size_t i = 0; i < ns; i++) {
        int y = top + (int)i * ch;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label - 6, y + 15);
        esc(f, shifts[i]);
        fputs("</text>\n", f);
        for (int s = 0; s < 6; s++) {
            const vt_report_cell *c = s == 0 ? clean : find(r, bench, shifts[i], s);
            double v = c ? c->accuracy : NAN;
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"", label + s * cw, y, cw - 2, ch - 2);
            heat_colour(f, v);
            fprintf(f, "\"%s><title>", c && c->regression ? " stroke=\"#000\" stroke-width=\"2\"" : "");
            esc(f, shifts[i]);
            fprintf(f, " s%d: %.1f%%</title></rect>\n", s, isnan(v) ? 0.0 : 100 * v);
            if (c)
                fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"v\">%.0f</text>\n",
                        label + s * cw + cw / 2 - 1, y + 15, 100 * v);
        }
    }
    fputs("</svg>\n", f);
}

static void severity_curves(FILE *f, const vt_report *r, const char *bench, const char *family) {
    const char *shifts[64];
    size_t ns = distinct(r, bench, offsetof(vt_report_cell, shift), shifts, 64, family);
    const int w = 360, h = 220, l = 40, b = 30, t = 10, rgt = 110;
    int pw = w - l - rgt, ph = h - t - b;
    fprintf(f, "<figure><svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", w, h, w, h);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" stroke=\"#999\"/>\n", l, t, pw, ph);
    for (int g = 0; g <= 4; g++) {
        int y = t + ph - g * ph / 4;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"v\">%d%%</text>\n", l - 4, y + 4, g * 25);
    }
    for (int s = 0; s <= 5; s++)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"v\">%d</text>\n", l + s * pw / 5,
                t + ph + 16, s);
    const vt_report_cell *clean = find(r, bench, "clean", 0);
    for (size_t i = 0; i < ns; i++) {
        const char *col = palette[i % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int s = 0; s <= 5; s++) {
            const vt_report_cell *c = s == 0 ? clean : find(r, bench, shifts[i], s);
            if (c) fprintf(f, "%d,%d ", l + s * pw / 5, t + ph - (int)lround(c->accuracy * ph));
        }
        fputs("\"/>\n", f);
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\" class=\"v\">", l + pw + 8, t + 12 + 14 * (int)i, col);
        esc(f, shifts[i]);
        fputs("</text>\n", f);
    }
    fputs("</svg><figcaption>", f);
    esc(f, family[0] ? family : "(no family)");
    fputs(": accuracy vs severity</figcaption></figure>\n", f);
}

static void clean_vs_shifted(FILE *f, const vt_report *r, const char *bench, const char **shifts, size_t ns) {
    const vt_report_cell *clean = find(r, bench, "clean", 0);
    const int label = 170, bw = 300, bh = 14, gap = 6, top = 10;
    int h = top + (int)ns * (bh + gap) + 20, w = label + bw + 60;
    fprintf(f, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", w, h, w, h);
    for (size_t i = 0; i < ns; i++) {
        double sum = 0;
        int n = 0;
        for (int s = 1; s <= 5; s++) {
            const vt_report_cell *c = find(r, bench, shifts[i], s);
            if (c) {
                sum += c->accuracy;
                n++;
            }
        }
        double mean = n ? sum / n : 0;
        int y = top + (int)i * (bh + gap);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label - 6, y + bh - 2);
        esc(f, shifts[i]);
        fprintf(f, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4a7fb5\"/>"
                   "<text x=\"%d\" y=\"%d\" class=\"v\">%.0f%%</text>\n",
                label, y, (int)lround(mean * bw), bh, label + (int)lround(mean * bw) + 4, y + bh - 2, 100 * mean);
    }
    if (clean) {
        int x = label + (int)lround(clean->accuracy * bw);
        fprintf(f, "<line x1=\"%d\" y1=\"0\" x2=\"%d\" y2=\"%d\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>"
                   "<text x=\"%d\" y=\"%d\" fill=\"#c00\" class=\"v\">clean %.0f%%</text>\n",
                x, x, h - 16, x - 20, h - 4, 100 * clean->accuracy);
    }
    fputs("</svg>\n", f);
}

vt_status vt_report_write_html(const vt_report *r, const char *path, vt_error *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return vt_fail_errno(err, VT_ERR_NOMEM, "%s: cannot render", path);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vistune robustness report</title>\n"
          "<style>body{font-family:sans-serif;margin:24px;color:#222}svg.chart text{font-size:12px;font-family:sans-serif}"
          "svg.chart text.v{font-size:11px}table{border-collapse:collapse;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}"
          "td.l{text-align:left}tr.reg td{background:#fdd}figure{display:inline-block;margin:8px}"
          ".headline{font-size:16px;margin:12px 0}</style></head><body>\n", f);
    fputs("<h1>Robustness report: ", f);
    esc(f, r->checkpoint);
    fputs("</h1>\n<p class=\"headline\">", f);
    if (r->previous_checkpoint) {
        fprintf(f, "<b>%zu significant regression%s</b> against the previous run (", r->regressions,
                r->regressions == 1 ? "" : "s");
        esc(f, r->previous_checkpoint);
        fprintf(f, "; paired test, Benjamini–Hochberg q &lt; %.2f). ", r->alpha);
    }
    if (r->baseline_checkpoint && !isnan(r->mce))
        fprintf(f, "mCE %.1f%%, relative mCE %.1f%% against the pinned baseline. ", 100 * r->mce,
                isnan(r->rel_mce) ? 0.0 : 100 * r->rel_mce);
    fputs("</p>\n", f);

    const char *benches[32];
    size_t nb = distinct(r, NULL, offsetof(vt_report_cell, benchmark), benches, 32, NULL);
    for (size_t b = 0; b < nb; b++) {
        const char *shifts[256], *families[64];
        size_t ns = distinct(r, benches[b], offsetof(vt_report_cell, shift), shifts, 256, NULL);
        size_t nf = distinct(r, benches[b], offsetof(vt_report_cell, family), families, 64, NULL);
        fputs("<h2>", f);
        esc(f, benches[b]);
        fputs("</h2>\n<h3>Accuracy (%) per shift and severity</h3>\n", f);
        heatmap(f, r, benches[b], shifts, ns);
        fputs("<h3>Severity curves per family</h3>\n", f);
        for (size_t k = 0; k < nf; k++) severity_curves(f, r, benches[b], families[k]);
        fputs("<h3>Clean vs shifted (mean over severities)</h3>\n", f);
        clean_vs_shifted(f, r, benches[b], shifts, ns);
    }
    fputs("<h2>All cells</h2>\n<table><tr><th>benchmark</th><th>shift</th><th>sev.</th><th>n</th><th>accuracy</th>"
          "<th>95% CI</th><th>rel. robustness</th><th>flip rate</th><th>Δ vs previous</th><th>q</th></tr>\n", f);
    for (size_t i = 0; i < r->ncells; i++) {
        const vt_report_cell *c = &r->cells[i];
        fprintf(f, "<tr%s><td class=\"l\">", c->regression ? " class=\"reg\"" : "");
        esc(f, c->benchmark);
        fputs("</td><td class=\"l\">", f);
        esc(f, c->shift);
        fprintf(f, "</td><td>%d</td><td>%zu</td><td>%.1f</td><td>%.1f–%.1f</td>", c->severity, c->n,
                100 * c->accuracy, 100 * c->ci.lo, 100 * c->ci.hi);
        if (isnan(c->rr)) fputs("<td>–</td><td>–</td>", f);
        else fprintf(f, "<td>%.3f</td><td>%.1f%%</td>", c->rr, 100 * c->flip_rate);
        if (isnan(c->delta)) fputs("<td>–</td><td>–</td></tr>\n", f);
        else fprintf(f, "<td>%+.1f</td><td>%.3g</td></tr>\n", 100 * c->delta, c->q_value);
    }
    fputs("</table>\n</body></html>\n", f);
    fclose(f);
    if (!text) return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory rendering", path);
    vt_status st = vt_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}
