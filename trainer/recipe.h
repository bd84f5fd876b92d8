/* Recipes: what a training run optimises. A recipe is a row in a table of
 * hooks that the generic loop (trainer/train.h) calls at fixed points, so
 * later methods (vittle, ross, mmict, ...) add a row instead of forking the
 * loop. Built in: "stage1" (projector only, `plain` template), "stage2"
 * (projector + decoder, vision frozen, `vicuna_v1` template), "ross",
 * "vittle" and "vittle_ross" (stage2 + the ROSS denoiser, the Vittle
 * bottleneck or both: trainer/method.h), "autoencoder" (ROSS's latent
 * teacher) and "icl" (MMICT, trainer/icl.h).
 *
 * Every hook may be NULL (= the default behaviour written next to it).
 * Hooks run on every trainer rank with identical inputs and must be
 * deterministic functions of them (plus RNG state they save), or exact
 * resume breaks. */
#ifndef VT_TRAINER_RECIPE_H
#define VT_TRAINER_RECIPE_H

#include <stdbool.h>

#include "common/config.h"
#include "common/error.h"
#include "pipeline/batch.h"
#include "pipeline/dataset.h"
#include "trainer/checkpoint.h"
#include "trainer/heldout.h"
#include "trainer/model.h"

enum { VT_RECIPE_MAX_GROUPS = 8, VT_RECIPE_MAX_SCALARS = 8 };

/* Where the loop is in the current optimizer step (begin_step / end_step). */
typedef struct vt_recipe_step {
    uint64_t step;          /* 0-based index of the optimizer step being computed */
    uint64_t total_steps;
    double progress;        /* step / total_steps, as given to micro_step */
    uint64_t seed;          /* the run's seed */
    MPI_Comm comm;          /* the trainers; begin_step and end_step are collective over it */
    int rank, ranks;
    const vt_batch *batches; /* this rank's micro-batches of the step, in order */
    uint32_t micro_count;
    int64_t global_loss_tokens; /* supervised tokens of the whole global batch (1/dloss_scale) */
} vt_recipe_step;

/* Named per-step values the recipe reports (rank 0 writes them with the
 * step's metrics: JSONL key and TensorBoard tag = name). Values must already
 * be global (reduced over the trainers). */
typedef struct vt_recipe_scalars {
    int n;
    const char *names[VT_RECIPE_MAX_SCALARS]; /* static strings */
    double values[VT_RECIPE_MAX_SCALARS];
} vt_recipe_scalars;

typedef struct vt_recipe {
    const char *name;
    const char *chat_template; /* template the data pipeline formats conversations with */
    /* The recipe's own layers run on a CUDA ctx too (train.backend: cuda);
     * false = CPU only, and a cuda run is refused in one line. */
    bool cuda;
    /* Before the model is built: set freezing and method sizes on mc, read
     * the recipe's own config section (e.g. "vittle.*"; unknown keys there
     * are errors via vt_config_check_unused) into a state it allocates.
     * Default: nothing. Runs BEFORE the `model:` section is read, so explicit
     * model.freeze.* keys still win. */
    vt_status (*configure)(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err);
    /* Trainers only, with data.source store, after configure and before
     * init: the dataset config as the loop opened it (image size, image
     * tokens, seq_len, seed set; strings owned by the run config) and the
     * train split (dataset indices, ascending; valid until destroy). A recipe
     * that reads samples itself (icl's demonstrations) opens its OWN handle
     * from dcfg (the loop's may be in use by the stream). Not called with
     * the synthetic source. Default: nothing. */
    vt_status (*data)(void *state, const vt_dataset_config *dcfg, const uint64_t *train, size_t n_train,
                      vt_error *err);
    /* After the model exists (and before a resume loads weights): allocate
     * method parameters, attach to the model. Default: nothing. */
    vt_status (*init)(void *state, vt_model *m, uint64_t seed, vt_error *err);
    /* One micro-batch: forward with loss, backward adding into the gradients
     * with dloss_scale (1 / masked tokens of the whole global step), and the
     * SUM of per-token losses in *loss_sum (for the step's reported loss).
     * `progress` is global_step / total_steps (for schedules such as
     * Vittle's alpha). Default: vt_model_forward(LOSS) + vt_model_backward. */
    vt_status (*micro_step)(void *state, vt_model *m, const vt_batch *b, float dloss_scale,
                            double progress, double *loss_sum, vt_error *err);
    /* Extra trainable parameters (a method's own layers, outside the Hugging
     * Face model). Called once after init; fills up to VT_RECIPE_MAX_GROUPS
     * groups' name, params, grads, n and decay_mask (m and v are left NULL:
     * the loop owns the moments) and sets *n. The buffers must stay valid
     * until destroy. The loop then treats them like the model's trainable
     * suffix: zeroes the gradients before every step, sums them over the
     * trainers (after the micro-steps, scale 1: micro_step must produce the
     * gradient of the global-batch objective's share, as the model's), clips
     * with one global norm over model + groups, steps AdamW (weight decay
     * where decay_mask says) and saves/restores the moments in the
     * checkpoint's optimizer.safetensors as "exp_avg.<name>" /
     * "exp_avg_sq.<name>". The values themselves are the recipe's to save
     * (save/load hooks). Default: none. */
    vt_status (*param_groups)(void *state, vt_param_group *out, int *n, vt_error *err);
    /* Collective, once per optimizer step on every trainer: before the first
     * micro_step (e.g. count rows of the global batch for a normaliser, fix
     * the step's RNG keys) and after the last one (before the gradient sum),
     * where it may report scalars (already reduced over s->comm). Default:
     * nothing. */
    /* The model's gradients must be complete when the last micro_step's
     * vt_model_backward returns (add method gradients inside it, through
     * the decoder hook): the loop starts reducing them block by block during
     * that backward (model.h grads_ready), so end_step must not touch them. */
    vt_status (*begin_step)(void *state, const vt_recipe_step *s, vt_error *err);
    vt_status (*end_step)(void *state, const vt_recipe_step *s, vt_recipe_scalars *out, vt_error *err);
    /* Checkpoint: write extra files into the checkpoint being built / read
     * them back after the model's weights are restored. save runs on every
     * trainer rank: replicated state is written by rank 0 only
     * (vt_ckpt_writer_rank). Default: nothing. */
    vt_status (*save)(void *state, vt_ckpt_writer *w, vt_error *err);
    vt_status (*load)(void *state, const vt_ckpt *c, vt_error *err);
    /* Held-out validation (train.val_every), rank 0 only, instead of
     * vt_validate for recipes whose model reads more than the plain rows
     * (icl: demonstrations through the hub). Same contract as vt_validate
     * (trainer/heldout.h): d is the loop's validation handle, items the val
     * split's first train.val_items, batch scratch of the micro-batch shape;
     * fill out (vt_val_result_add per item, then vt_val_result_finish).
     * Must not change training state (parameters, gradients, RNG). Default:
     * vt_validate on the plain model. */
    vt_status (*validate)(void *state, vt_model *m, vt_dataset *d, const uint64_t *items, size_t n, vt_batch *batch,
                          int max_new, vt_val_result *out, vt_error *err);
    void (*destroy)(void *state);
} vt_recipe;

/* NULL when unknown. */
const vt_recipe *vt_recipe_find(const char *name);
/* Names for error messages: "stage1, stage2, ross, ...". */
const char *vt_recipe_names(void);
/* The recipes with `cuda` set, for messages: "stage1, stage2, vittle". */
const char *vt_recipe_cuda_names(void);

/* The default micro_step, for recipes that wrap it. */
vt_status vt_recipe_default_micro_step(vt_model *m, const vt_batch *b, float dloss_scale,
                                       double *loss_sum, vt_error *err);

#endif
