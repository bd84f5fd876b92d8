/* Evaluation of a checkpoint under distribution shifts (DESIGN §5).
 * The unit of work is a task (checkpoint, benchmark, shift, severity, shard):
 * the benchmark's items (a split of a store) are dealt to `shards` shards
 * round robin; a task decodes its items' prompts, applies the shift to the
 * image and the question with seed hash(item, shift, severity, catalog
 * version), generates greedy answers and scores them, keeping every item's
 * prediction for paired comparisons. Tasks are pure functions of their
 * fields, so any worker can run any task and a rerun gives the same result.
 *
 * Run-config keys (section `eval`, plus data.* for the tokenizer and chat
 * template, which must be the ones the model was trained with, and run_dir /
 * seed): store (default data.store), benchmark (default: the store's
 * directory name), split (val | test | train | all; default val), scorer
 * (exact | vqa | option | yesno; default exact), limit (items, 0 = all),
 * shifts (a list of catalog names, or "all"; the clean task is always
 * planned), severities (list, default [1, 3, 5]), shards (per cell, default
 * 1), batch_size (default 8), max_new_tokens (default 8), seq_len (default
 * data.seq_len or 128), checkpoint ("latest" = newest complete under
 * run_dir/checkpoints, or a path), results (default run_dir/results),
 * lease_seconds (scheduler, default 60), backend (cpu | cuda). */
#ifndef VT_TRAINER_EVAL_H
#define VT_TRAINER_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "common/error.h"
#include "pipeline/dataset.h"
#include "proto/eval.pb-c.h"
#include "trainer/eval_score.h"

enum { VT_EVAL_MAX_SHIFTS = 256 };

typedef struct vt_eval_config {
    const char *run_dir;
    const char *checkpoint;   /* "latest" or a checkpoint directory */
    const char *store, *benchmark, *results;
    int split;                /* vt.Split value; 0 = all */
    vt_scorer scorer;
    long limit, shards, batch_size, max_new_tokens, seq_len, lease_seconds;
    bool cuda;
    const char *shifts[VT_EVAL_MAX_SHIFTS]; /* catalog names, "clean" first */
    int nshifts;
    int severities[5], nseverities;
    vt_dataset_config data;
    uint64_t seed;
} vt_eval_config;

/* Reads the run config (see above) and marks the sections other commands own. */
vt_status vt_eval_config_read(const vt_config *cfg, vt_eval_config *out, vt_error *err);
/* What `vistune eval` and `vistune sched` share: loads the run file, applies
 * KEY=VALUE overrides, reads it, and lets the command line's checkpoint and
 * results (NULL = keep the file's) win. The strings stay owned by *cfg. */
vt_status vt_eval_config_load(const char *path, const char *const *sets, int nsets, const char *checkpoint,
                              const char *results, vt_config **cfg, vt_eval_config *out, vt_error *err);
/* The result store: eval.results, else RUN_DIR/results. */
vt_status vt_eval_results_dir(const vt_eval_config *c, char *out, size_t cap, vt_error *err);
/* Resolves "latest" into the newest complete checkpoint directory. */
vt_status vt_eval_resolve_checkpoint(const vt_eval_config *c, char *out, size_t cap, vt_error *err);

/* The tasks for one checkpoint: clean first, then shift × severity, each
 * split into c->shards tasks. Free with vt_eval_plan_free. */
typedef struct vt_eval_plan {
    Vt__EvalTask **tasks;
    size_t n;
} vt_eval_plan;
vt_status vt_eval_plan_make(const vt_eval_config *c, const char *checkpoint, vt_eval_plan *plan, vt_error *err);
void vt_eval_plan_free(vt_eval_plan *plan);

/* Runs tasks; keeps the loaded model and dataset between tasks of the same
 * checkpoint. */
typedef struct vt_evaluator vt_evaluator;
vt_status vt_evaluator_open(const vt_eval_config *c, vt_evaluator **out, vt_error *err);
void vt_evaluator_close(vt_evaluator *e);
/* alive (may be NULL) is called after every batch, e.g. to renew a lease. */
vt_status vt_evaluator_run(vt_evaluator *e, const Vt__EvalTask *task, void (*alive)(void *), void *alive_ctx,
                           Vt__EvalResult **out, vt_error *err);
void vt_eval_result_free(Vt__EvalResult *r);

/* `vistune eval RUN.yaml`: runs the plan (or one shard of it) in this process. */
int vt_cmd_eval(int argc, char **argv);

#endif
