/* Recipes: what a training run optimises. A recipe is a row in a table of
 * hooks that the generic loop (trainer/train.h) calls at fixed points, so
 * later methods (vittle, ross, mmict, ...) add a row instead of forking the
 * loop. Built in: "stage1" (projector only, `plain` template) and "stage2"
 * (projector + decoder, vision frozen, `vicuna_v1` template).
 *
 * Every hook may be NULL (= the default behaviour written next to it).
 * Hooks run on every trainer rank with identical inputs and must be
 * deterministic functions of them (plus RNG state they save), or exact
 * resume breaks. */
#ifndef VT_TRAINER_RECIPE_H
#define VT_TRAINER_RECIPE_H

#include "common/config.h"
#include "common/error.h"
#include "pipeline/batch.h"
#include "trainer/checkpoint.h"
#include "trainer/model.h"

typedef struct vt_recipe {
    const char *name;
    const char *chat_template; /* template the data pipeline formats conversations with */
    /* Before the model is built: set freezing and method sizes on mc, read
     * the recipe's own config section (e.g. "vittle.*"; unknown keys there
     * are errors via vt_config_check_unused) into a state it allocates.
     * Default: nothing. Runs BEFORE the `model:` section is read, so explicit
     * model.freeze.* keys still win. */
    vt_status (*configure)(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err);
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
    /* Checkpoint: write extra files into the checkpoint being built / read
     * them back after the model's weights are restored. Default: nothing. */
    vt_status (*save)(void *state, vt_ckpt_writer *w, vt_error *err);
    vt_status (*load)(void *state, const vt_ckpt *c, vt_error *err);
    void (*destroy)(void *state);
} vt_recipe;

/* NULL when unknown. */
const vt_recipe *vt_recipe_find(const char *name);
/* Names for error messages: "stage1, stage2". */
const char *vt_recipe_names(void);

/* The default micro_step, for recipes that wrap it. */
vt_status vt_recipe_default_micro_step(vt_model *m, const vt_batch *b, float dloss_scale,
                                       double *loss_sum, vt_error *err);

#endif
