/* `vistune eval RUN.yaml`: evaluates a checkpoint in this process, task by
 * task into the result store (a Slurm array task runs one shard of the plan
 * and writes its own part store). Finished tasks are skipped, so a rerun
 * resumes. For many workers with leases use `vistune sched`. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fs.h"
#include "common/log.h"
#include "scheduler/result_store.h"
#include "trainer/eval.h"

static void usage(FILE *f) {
    fputs("usage: vistune eval RUN.yaml [options]\n\n"
          "Evaluates a checkpoint on the run's benchmark under the configured shifts\n"
          "(eval: section; see docs/evaluation.md) and stores one result per task.\n\n"
          "  --checkpoint latest|DIR   what to evaluate (default eval.checkpoint, \"latest\")\n"
          "  --results DIR             result store (default eval.results or RUN_DIR/results)\n"
          "  --shard I --num-shards N  run only tasks i with i mod N = I, into DIR/part-I\n"
          "  --set KEY=VALUE           override a run-config value (repeatable)\n"
          "  --help                    this text\n",
          f);
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int vt_cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {{"checkpoint", required_argument, 0, 'c'}, {"results", required_argument, 0, 'r'},
                                         {"shard", required_argument, 0, 's'},      {"num-shards", required_argument, 0, 'n'},
                                         {"set", required_argument, 0, 'S'},        {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *checkpoint = NULL, *results = NULL, *sets[64];
    long shard = 0, nshards = 1;
    int nsets = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': checkpoint = optarg; break;
        case 'r': results = optarg; break;
        case 's':
        case 'n':
            if (parse_long(optarg, c == 's' ? 0 : 1, 1 << 20, c == 's' ? &shard : &nshards)) {
                fprintf(stderr, "vistune eval: %s '%s': expected a %s integer\n", c == 's' ? "--shard" : "--num-shards",
                        optarg, c == 's' ? "non-negative" : "positive");
                return 2;
            }
            break;
        case 'S':
            if (nsets == 64) {
                fprintf(stderr, "vistune eval: at most 64 --set options\n");
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        case ':': fprintf(stderr, "vistune eval: %s needs a value (see --help)\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "vistune eval: unknown option '%s' (see --help)\n", argv[optind - 1]); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "vistune eval: expected one run config (see --help)\n");
        return 2;
    }
    if (shard >= nshards) {
        fprintf(stderr, "vistune eval: --shard %ld is not below --num-shards %ld\n", shard, nshards);
        return 2;
    }
    vt_error err = {0};
    vt_config *cfg = NULL;
    vt_eval_config ec;
    vt_eval_plan plan = {0};
    vt_evaluator *ev = NULL;
    vt_result_store *store = NULL;
    char ckpt[PATH_MAX], dir[PATH_MAX];
    char base[PATH_MAX];
    vt_status st = vt_eval_config_load(argv[optind], sets, nsets, checkpoint, results, &cfg, &ec, &err);
    if (!st) st = vt_eval_resolve_checkpoint(&ec, ckpt, sizeof ckpt, &err);
    if (!st) st = vt_eval_results_dir(&ec, base, sizeof base, &err);
    if (!st && nshards > 1) { /* an array task writes its own part store */
        char part[64];
        snprintf(part, sizeof part, "part-%ld", shard);
        st = vt_path_join(dir, sizeof dir, base, part, &err);
    } else if (!st) {
        snprintf(dir, sizeof dir, "%s", base);
    }
    if (!st) st = vt_eval_plan_make(&ec, ckpt, &plan, &err);
    if (!st) st = vt_result_store_open(dir, true, &store, &err);
    if (!st) st = vt_evaluator_open(&ec, &ev, &err);
    size_t ran = 0, skipped = 0, items = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; !st && i < plan.n; i++) {
        if ((long)(i % (size_t)nshards) != shard) continue;
        bool has = false;
        if ((st = vt_result_store_has(store, plan.tasks[i]->task_id, &has, &err))) break;
        if (has) {
            skipped++;
            continue;
        }
        Vt__EvalResult *r = NULL;
        bool stored;
        st = vt_evaluator_run(ev, plan.tasks[i], NULL, NULL, &r, &err);
        if (!st) st = vt_result_store_put(store, r, &stored, &err);
        if (!st) {
            ran++;
            items += r->n_items;
            double acc = 0;
            for (size_t k = 0; k < r->n_items; k++) acc += r->items[k]->score;
            vt_info("eval: %s: %zu items, accuracy %.1f%%", plan.tasks[i]->task_id, r->n_items,
                    r->n_items ? 100.0 * acc / (double)r->n_items : 0.0);
        }
        vt_eval_result_free(r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    int code = 0;
    if (st) {
        fprintf(stderr, "vistune eval: %s\n", err.msg);
        code = st == VT_ERR_ARG ? 2 : 1;
    } else {
        printf("eval: %zu tasks run, %zu already done; %zu items in %.1f s (%.1f items/s); results in %s\n", ran,
               skipped, items, secs, secs > 0 ? (double)items / secs : 0.0, dir);
    }
    vt_evaluator_close(ev);
    vt_result_store_close(store);
    vt_eval_plan_free(&plan);
    vt_config_free(cfg);
    return code;
}
