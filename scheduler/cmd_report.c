/* `vistune report`: turn result stores into report.json / .md / .html and,
 * with --gate, fail (exit 4) when a cell regressed significantly. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "scheduler/report.h"

static void usage(FILE *f) {
    fputs("usage: vistune report --results DIR --out DIR [options]\n\n"
          "Builds the robustness report of one evaluation run from its result store.\n\n"
          "  --results DIR      result store of the run to report on (written by vistune sched)\n"
          "  --out DIR          where report.json, report.md and report.html go\n"
          "  --previous DIR     last run's result store: paired regression test per cell\n"
          "  --baseline DIR     pinned baseline checkpoint's result store: mCE and relative mCE\n"
          "  --checkpoint ID    which checkpoint, when the store holds several\n"
          "  --alpha Q          false-discovery rate for regressions (default 0.05)\n"
          "  --min-drop D       ignore significant drops smaller than D accuracy (default 0)\n"
          "  --gate             exit 4 when any cell regressed significantly\n"
          "  --help             this text\n\n"
          "Exit status: 0 ok, 1 failure, 2 bad usage, 4 regression gate failed.\n",
          f);
}

static int parse_fraction(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0.0 && v <= 1.0)) return -1;
    *out = v;
    return 0;
}

int vt_cmd_report(int argc, char **argv) {
    static const struct option opts[] = {
        {"results", required_argument, 0, 'r'}, {"out", required_argument, 0, 'o'},
        {"previous", required_argument, 0, 'p'}, {"baseline", required_argument, 0, 'b'},
        {"checkpoint", required_argument, 0, 'c'}, {"alpha", required_argument, 0, 'a'},
        {"min-drop", required_argument, 0, 'm'}, {"gate", no_argument, 0, 'g'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    vt_report_options o = {.alpha = 0.05, .bootstrap_reps = 2000};
    const char *out = NULL;
    int gate = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o.results = optarg; break;
        case 'o': out = optarg; break;
        case 'p': o.previous = optarg; break;
        case 'b': o.baseline = optarg; break;
        case 'c': o.checkpoint = optarg; break;
        case 'g': gate = 1; break;
        case 'a':
            if (parse_fraction(optarg, &o.alpha) || o.alpha == 0.0) {
                fprintf(stderr, "vistune report: --alpha '%s': expected a number in (0, 1]\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (parse_fraction(optarg, &o.min_drop)) {
                fprintf(stderr, "vistune report: --min-drop '%s': expected a number in [0, 1]\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "vistune report: %s needs a value (see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "vistune report: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vistune report: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!o.results || !out) {
        fprintf(stderr, "vistune report: --results and --out are required (see --help)\n");
        return 2;
    }
    vt_error err = {0};
    vt_report r;
    vt_status st = vt_report_build(&o, &r, &err);
    char json[4096], md[4096], html[4096];
    if (!st) st = vt_mkdir_p(out, &err);
    if (!st) st = vt_path_join(json, sizeof json, out, "report.json", &err);
    if (!st) st = vt_path_join(md, sizeof md, out, "report.md", &err);
    if (!st) st = vt_path_join(html, sizeof html, out, "report.html", &err);
    if (!st) st = vt_report_write_json(&r, json, &err);
    if (!st) st = vt_report_write_markdown(&r, md, &err);
    if (!st) st = vt_report_write_html(&r, html, &err);
    if (st) {
        fprintf(stderr, "vistune report: %s\n", err.msg);
        if (r.cells || r.checkpoint) vt_report_free(&r);
        return 1;
    }
    const vt_report_cell *clean = NULL;
    double worst = INFINITY;
    const vt_report_cell *worst_cell = NULL;
    for (size_t i = 0; i < r.ncells; i++) {
        if (r.cells[i].severity == 0 && !clean) clean = &r.cells[i];
        if (r.cells[i].severity > 0 && r.cells[i].accuracy < worst) {
            worst = r.cells[i].accuracy;
            worst_cell = &r.cells[i];
        }
    }
    printf("report: %s\n", html);
    if (clean) {
        printf("clean accuracy (%s): %.1f%% (n=%zu)", clean->benchmark, 100 * clean->accuracy, clean->n);
        for (size_t k = 0; k < clean->ntypes; k++)
            printf("%s %s %.0f%%", k ? "," : ";", clean->type_names[k], 100 * clean->type_accuracy[k]);
        for (size_t k = 0; k < clean->ntypes; k++)
            if (clean->type_is_yesno[k])
                printf("; %s: F1 %.1f%%, yes %.0f%%, yes on absent %.0f%%", clean->type_names[k],
                       100 * clean->type_yesno[k].f1, 100 * clean->type_yesno[k].yes_ratio,
                       100 * clean->type_yesno[k].yes_on_no);
        printf("\n");
    }
    if (worst_cell)
        printf("worst cell: %s severity %d: %.1f%%\n", worst_cell->shift, worst_cell->severity, 100 * worst);
    if (!isnan(r.mce)) printf("mCE %.1f%%, relative mCE %.1f%%\n", 100 * r.mce, 100 * r.rel_mce);
    if (r.previous_checkpoint) printf("regressions vs previous: %zu\n", r.regressions);
    int code = gate && r.regressions > 0 ? 4 : 0;
    if (code) fprintf(stderr, "vistune report: gate failed: %zu cell(s) regressed significantly\n", r.regressions);
    vt_report_free(&r);
    return code;
}
