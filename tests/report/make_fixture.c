/* Writes three result stores (current, previous, baseline) with designed
 * item scores into DIR, plus DIR/items.jsonl with every raw score so the
 * checker can recompute the report without vistune's code.
 * Designed so that: accuracy falls with severity; the current run loses 30
 * items on defocus_blur severity 3 against the previous run (a regression);
 * elsewhere current and previous differ by a few balanced flips (noise);
 * a soft-scored benchmark exercises bootstrap intervals; every third item is
 * an existence (yes/no) question whose answer agrees with its score, some of
 * them neither yes nor no, for the report's POPE-style statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "scheduler/result_store.h"

typedef struct {
    const char *name, *family, *modality;
} shift_def;

static const shift_def shifts[] = {
    {"clean", "", "clean"},
    {"gaussian_noise", "noise", "visual"},
    {"defocus_blur", "blur", "visual"},
    {"char_typo", "character", "text"},
    {"noise_and_typo", "joint", "joint"},
};

static FILE *items_log;
/* The current run is also written as two part stores, one per shard, as
 * array tasks would (the report reads a directory of stores). */
static vt_result_store *parts[2];

/* Prediction and reference of item i: existence items (i % 3 == 2) have a
 * yes/no reference (half of them "no": the object is absent) in the built-in
 * set's formats, and a prediction that agrees when the score is >= 0.5; a
 * wrong one is sometimes neither yes nor no. Other types: a colour or count. */
static void answers(int i, float score, char **pred, char **ref) {
    static const char *const yes[3] = {"yes", "YES", "answer: yes"}, *const no[3] = {"no", "NO", "answer: no"};
    if (i % 3 != 2) {
        *ref = i % 3 ? "red" : "3";
        *pred = score >= 0.5f ? *ref : "blue";
        return;
    }
    int absent = (i / 3) % 2, fmt = (i / 6) % 3, right = score >= 0.5f;
    *ref = (char *)(absent ? no[fmt] : yes[fmt]);
    if (right) *pred = (char *)(absent ? "No." : "Yes, there is.");
    else if (i % 7 == 0) *pred = "a red circle";
    else *pred = (char *)(absent ? "yes" : "There is not.");
}

/* Writes one task with `n` items into store; shard 0 of 2 gets even items,
 * shard 1 odd ones, so the report has to merge shards. */
static int put_task(vt_result_store *s, const char *ckpt, const char *bench, const shift_def *sh, int sev,
                    int n, float (*score)(const char *, const char *, int, int, int), const char *run) {
    for (int shard = 0; shard < 2; shard++) {
        char id[256];
        snprintf(id, sizeof id, "%s/%s/%s/%d/%d", ckpt, bench, sh->name, sev, shard);
        Vt__EvalTask t = VT__EVAL_TASK__INIT;
        t.task_id = id;
        t.checkpoint = (char *)ckpt;
        t.benchmark = (char *)bench;
        t.shift = (char *)sh->name;
        t.family = (char *)sh->family;
        t.modality = (char *)sh->modality;
        t.severity = (uint32_t)sev;
        t.shard = (uint32_t)shard;
        t.shard_count = 2;
        Vt__ItemResult *items = calloc((size_t)n, sizeof *items);
        Vt__ItemResult **ptrs = calloc((size_t)n, sizeof *ptrs);
        size_t m = 0;
        for (int i = shard; i < n; i += 2) {
            vt__item_result__init(&items[m]);
            items[m].index = (uint64_t)i;
            items[m].score = score(run, sh->name, sev, i, !strcmp(bench, "vqa"));
            static const char *const types[3] = {"count", "color", "exist"};
            items[m].task = (char *)types[i % 3];
            answers(i, items[m].score, &items[m].prediction, &items[m].reference);
            fprintf(items_log, "{\"run\":\"%s\",\"benchmark\":\"%s\",\"shift\":\"%s\",\"family\":\"%s\","
                               "\"modality\":\"%s\",\"severity\":%d,\"index\":%d,\"score\":%.9g,\"type\":\"%s\","
                               "\"pred\":\"%s\",\"ref\":\"%s\"}\n",
                    run, bench, sh->name, sh->family, sh->modality, sev, i, (double)items[m].score, items[m].task,
                    items[m].prediction, items[m].reference);
            ptrs[m] = &items[m];
            m++;
        }
        Vt__EvalResult r = VT__EVAL_RESULT__INIT;
        r.task = &t;
        r.items = ptrs;
        r.n_items = m;
        vt_error err = {0};
        bool stored;
        if (vt_result_store_put(s, &r, &stored, &err) || !stored ||
            (!strcmp(run, "current") && (vt_result_store_put(parts[shard], &r, &stored, &err) || !stored))) {
            fprintf(stderr, "fixture: %s\n", err.msg);
            return 1;
        }
        free(items);
        free(ptrs);
    }
    return 0;
}

/* Correct with a probability that falls with severity; the same draw for the
 * same (shift, severity, item) in every run, so runs differ only where the
 * design says. */
static float score(const char *run, const char *shift, int sev, int i, int soft) {
    vt_rng r;
    vt_rng_init(&r, vt_hash4(vt_hash_bytes(shift, strlen(shift), 0), (uint64_t)sev, (uint64_t)i, 5));
    double u = vt_rng_uniform_double(&r);
    double acc = 0.85 - 0.12 * sev;
    if (!strcmp(run, "baseline")) acc -= 0.15 + 0.02 * sev; /* a weaker pinned model */
    int correct = u < acc;
    if (!strcmp(run, "current") && !strcmp(shift, "defocus_blur") && sev == 3 && i < 60 && correct &&
        (i % 2 == 0 || u < 0.5))
        correct = 0; /* the regression */
    if (!strcmp(run, "current") && !strcmp(shift, "gaussian_noise") && sev == 2 && (i == 7 || i == 8))
        correct = !correct; /* balanced noise: two flips */
    if (!soft) return (float)correct;
    return (float)(((int)(u * 1000) % 4) / 3.0); /* VQA-style 0, 1/3, 2/3, 1 */
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: report_fixture DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/items.jsonl", argv[1]);
    items_log = fopen(path, "w");
    if (!items_log) return 1;
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/current_parts/part-%d", argv[1], k);
        vt_error err = {0};
        if (vt_result_store_open(path, true, &parts[k], &err)) {
            fprintf(stderr, "fixture: %s\n", err.msg);
            return 1;
        }
    }
    const char *runs[3] = {"current", "previous", "baseline"};
    const char *ckpts[3] = {"ckpt-000000200", "ckpt-000000100", "ckpt-baseline"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", argv[1], runs[k]);
        vt_result_store *s;
        vt_error err = {0};
        if (vt_result_store_open(path, true, &s, &err)) {
            fprintf(stderr, "fixture: %s\n", err.msg);
            return 1;
        }
        for (size_t j = 0; j < sizeof shifts / sizeof shifts[0]; j++)
            for (int sev = j == 0 ? 0 : 1; sev <= (j == 0 ? 0 : 5); sev++) {
                if (put_task(s, ckpts[k], "shapes", &shifts[j], sev, 300, score, runs[k])) return 1;
                if (j <= 1 && put_task(s, ckpts[k], "vqa", &shifts[j], sev, 120, score, runs[k])) return 1;
            }
        vt_result_store_close(s);
    }
    vt_result_store_close(parts[0]);
    vt_result_store_close(parts[1]);
    fclose(items_log);
    return 0;
}
