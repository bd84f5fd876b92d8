/* Tuning methods that ride on stage 2: each adds its own layer to the
 * model through a decoder hook (trainer/model.h), its own parameter group,
 * its own loss term and its own file in checkpoints. A recipe is stage 2
 * plus a list of them (trainer/method.c), so the methods combine in one run
 * without a recipe written for each combination: `vittle`, `ross` and
 * `vittle_ross` (both; Vittle after block vittle.layer, ROSS after the
 * last) are rows of trainer/recipe.c's table.
 *
 * A method's hooks mirror the recipe's (trainer/recipe.h), except that the
 * micro-step belongs to the recipe: it runs every method's prepare, ONE
 * forward and backward of the model (where each method's decoder hook adds
 * its loss and gradient), then every method's finish. */
#ifndef VT_TRAINER_METHOD_H
#define VT_TRAINER_METHOD_H

#include "trainer/recipe.h"

/* Each method names its config section, parameter group and checkpoint
 * file after itself (`vittle:`, group "vittle", vittle.safetensors). */
typedef struct vt_method {
    /* Reads the method's config section into a state it allocates (unknown
     * keys are errors). The recipe has already set stage 2's freezing. */
    vt_status (*configure)(const vt_config *cfg, void **state, vt_error *err);
    /* Creates the layer and attaches its hook to m. */
    vt_status (*init)(void *state, vt_model *m, uint64_t seed, vt_error *err);
    /* Adds its group(s) at out, sets *n (recipe.h param_groups). */
    vt_status (*param_groups)(void *state, vt_param_group *out, int *n, vt_error *err);
    /* Collective, as the recipe's: normalisers over the global batch, the step's noise keys. */
    vt_status (*begin_step)(void *state, const vt_recipe_step *s, vt_error *err);
    /* Before a micro-batch's forward: training mode, the weights known up front. */
    void (*prepare)(void *state, const vt_batch *b);
    /* After that forward succeeded: adds to the step's sums, sets the
     * weights known only now; true when the method's loss has a gradient
     * in this micro-batch (the backward then runs even with no supervised
     * answer token). */
    bool (*collect)(void *state);
    /* After the backward, or a failed forward: inference mode, so that
     * other forwards (validation) run the method's inference form. */
    void (*finish)(void *state);
    /* Appends its scalars to out (already reduced over s->comm). */
    vt_status (*end_step)(void *state, const vt_recipe_step *s, vt_recipe_scalars *out, vt_error *err);
    vt_status (*save)(void *state, vt_ckpt_writer *w, vt_error *err);
    vt_status (*load)(void *state, const vt_ckpt *c, vt_error *err);
    void (*destroy)(void *state);
} vt_method;

extern const vt_method vt_vittle_method; /* trainer/method_vittle.c */
extern const vt_method vt_ross_method;   /* trainer/method_ross.c */

enum { VT_MAX_METHODS = 4 };

/* The recipe hooks of "stage 2 + methods": configure takes the list (a
 * recipe row's configure passes its own); the rest read it from the state. */
vt_status vt_methods_configure(const vt_method *const *methods, int n, const vt_config *cfg, vt_model_config *mc,
                               void **state, vt_error *err);
vt_status vt_methods_init(void *state, vt_model *m, uint64_t seed, vt_error *err);
vt_status vt_methods_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale, double progress,
                                double *loss_sum, vt_error *err);
vt_status vt_methods_param_groups(void *state, vt_param_group *out, int *n, vt_error *err);
vt_status vt_methods_begin_step(void *state, const vt_recipe_step *s, vt_error *err);
vt_status vt_methods_end_step(void *state, const vt_recipe_step *s, vt_recipe_scalars *out, vt_error *err);
vt_status vt_methods_save(void *state, vt_ckpt_writer *w, vt_error *err);
vt_status vt_methods_load(void *state, const vt_ckpt *c, vt_error *err);
void vt_methods_destroy(void *state);

#endif
