/* The `vittle` recipe (a row of trainer/recipe.c's table): stage 2 + the
 * Vittle bottleneck after decoder block vittle.layer, its parameters one
 * group "vittle" (recipe.h param_groups), written as vittle.safetensors
 * beside the Hugging Face checkpoint. Semantics: docs/methods.md. */
#ifndef VT_TRAINER_RECIPE_VITTLE_H
#define VT_TRAINER_RECIPE_VITTLE_H

#include "trainer/recipe.h"

vt_status vt_vittle_recipe_configure(const vt_config *cfg, vt_model_config *mc, void **state,
                                     vt_error *err);
vt_status vt_vittle_recipe_init(void *state, vt_model *m, uint64_t seed, vt_error *err);
vt_status vt_vittle_recipe_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale,
                                      double progress, double *loss_sum, vt_error *err);
vt_status vt_vittle_recipe_param_groups(void *state, vt_param_group *out, int *n, vt_error *err);
vt_status vt_vittle_recipe_begin_step(void *state, const vt_recipe_step *s, vt_error *err);
vt_status vt_vittle_recipe_end_step(void *state, const vt_recipe_step *s, vt_recipe_scalars *out,
                                    vt_error *err);
vt_status vt_vittle_recipe_save(void *state, vt_ckpt_writer *w, vt_error *err);
vt_status vt_vittle_recipe_load(void *state, const vt_ckpt *c, vt_error *err);
void vt_vittle_recipe_destroy(void *state);

#endif
