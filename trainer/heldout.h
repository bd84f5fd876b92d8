/* Held-out data during training: which store samples train and which
 * validate (from each sample's split), and one validation pass over the
 * held-out items (loss on the answer tokens, greedy answers scored by exact
 * match, overall, per question type and per task group). Used by `vistune train`. */
#ifndef VT_TRAINER_HELDOUT_H
#define VT_TRAINER_HELDOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pipeline/batch.h"
#include "pipeline/dataset.h"
#include "trainer/model.h"

/* The store's samples by split, each list in index order. When any sample
 * has a split (has_splits), train = the SPLIT_TRAIN samples, val = the
 * SPLIT_VAL ones and test = the SPLIT_TEST ones (training uses train, its
 * validation val, evaluation whichever split it is asked for); a store
 * without splits trains on everything and has no val or test items.
 * Deterministic: every rank builds the same lists. */
typedef struct vt_heldout_split {
    uint64_t *train, *val, *test;
    size_t n_train, n_val, n_test;
    bool has_splits;
} vt_heldout_split;

vt_status vt_heldout_split_build(vt_dataset *d, vt_heldout_split *out, vt_error *err);
void vt_heldout_split_free(vt_heldout_split *s);

/* One question type's tally. */
typedef struct vt_val_type {
    char *task;
    size_t n;
    double correct; /* sum of exact-match scores */
} vt_val_type;

typedef struct vt_val_result {
    double loss;         /* mean CE over the answer tokens of all items (NAN when none) */
    int64_t loss_tokens; /* supervised tokens counted */
    size_t n_items;
    double accuracy;     /* mean exact-match score */
    vt_val_type *types;  /* sorted by task name */
    size_t n_types;
    vt_val_type *groups; /* per task group (sample.group_id as decimal text), sorted by id */
    size_t n_groups;
} vt_val_result;
void vt_val_result_free(vt_val_result *r);
/* Adds one scored item (score in [0, 1]) to its task's and its group's tally
 * and to the totals (n_items; accuracy holds the running SUM until
 * vt_val_result_finish). For validations outside vt_validate (recipe hooks). */
vt_status vt_val_result_add(vt_val_result *r, const char *task, uint32_t group, double score, vt_error *err);
/* Turns the running sums into means: loss = loss_sum / loss_tokens, accuracy
 * = sum / n_items (NAN when there are none). */
void vt_val_result_finish(vt_val_result *r, double loss_sum);

/* Evaluates m on items[0..n): training rows through the dataset's batch
 * source for the loss, then prompt rows (vt_dataset_fill_prompts) decoded
 * with vt_generate_greedy (at most max_new tokens, stopping at the
 * tokenizer's EOS or the template's end of turn) and scored with
 * vt_score(VT_SCORE_EXACT). batch is scratch with the model's shape (its
 * shape.batch rows per forward); it is left with that shape. Touches no
 * training state: no gradients, no RNG, no sampler. d should be a handle of
 * its own (no augmentation) so a loader thread on the training handle is
 * not disturbed. */
vt_status vt_validate(vt_model *m, vt_dataset *d, const uint64_t *items, size_t n, vt_batch *batch, int max_new,
                      vt_val_result *out, vt_error *err);

#endif
