/* The `icl` recipe: MMICT multimodal in-context tuning (docs/methods.md,
 * "MMICT"). The whole LLaVA model is frozen; trained are the M-Hub
 * (trainer/mhub.h, group "mhub") and one end-of-chunk embedding row ⟨eoc⟩
 * (group "icl.eoc", [hidden]). For each query row of a micro-batch, k
 * demonstrations of the same task group are drawn with
 * vt_mmict_select_demos (uniform, seed = hash(run seed, the query's dataset
 * index), or the most similar images) among the train split and read
 * through the recipe's own dataset handle. The decoder then reads, through the input override (model.h):
 *   [VT(d1)] <eoc> ... [VT(dk)] <eoc> [query row with its image span
 *   replaced by TV(query), the Q query outputs of the hub]
 * VT(d) = the hub's text-position outputs of demonstration d (its image as
 * vision input, its non-image tokens after the image span — question and
 * answer — as text); TV(query) = the hub's
 * query-position outputs with the query's image and its prompt (non-image
 * tokens after the image up to the first supervised one) as text. The
 * answer is supervised as in stage 2. k = 0: the plain hub-prompt baseline.
 * A demonstration's text is its LAST max_text non-image tokens (the answer,
 * which carries a rule group's format, is at the end); a query's the first.
 * icl.mode: vanilla is the "vanilla ICT" baseline in the same code: no hub;
 * each demonstration is its N projected image tokens (the model's projector
 * applied by the recipe, override rows) then its text tokens (plain ids),
 * then <eoc>; the query row is the plain training row. Trained: the
 * projector and <eoc> (decoder and tower frozen).
 * Validation (hook validate, rank 0): held-out items get k demonstrations
 * from the train split by the same rule and seed as training; answer loss
 * and greedy answers (vt_generate_greedy through the override), exact match
 * per task and per group.
 * Keys (section `icl:`, strict): mode (mmict | vanilla), k (2), selection (random | similar: by cosine
 * of the mean image feature, over an index of the train split built at the
 * first step), and the hub's (vt_mhub_config_read). mhub.safetensors + icl.safetensors (the ⟨eoc⟩ row)
 * are in every checkpoint (rank 0) and restored on resume. */
#ifndef VT_TRAINER_ICL_H
#define VT_TRAINER_ICL_H

#include "trainer/recipe.h"

vt_status vt_icl_recipe_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err);
vt_status vt_icl_recipe_data(void *state, const vt_dataset_config *dcfg, const uint64_t *train, size_t n_train,
                             vt_error *err);
vt_status vt_icl_recipe_init(void *state, vt_model *m, uint64_t seed, vt_error *err);
vt_status vt_icl_recipe_param_groups(void *state, vt_param_group *out, int *n, vt_error *err);
vt_status vt_icl_recipe_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale, double progress,
                                   double *loss_sum, vt_error *err);
vt_status vt_icl_recipe_save(void *state, vt_ckpt_writer *w, vt_error *err);
vt_status vt_icl_recipe_load(void *state, const vt_ckpt *c, vt_error *err);
vt_status vt_icl_recipe_validate(void *state, vt_model *m, vt_dataset *d, const uint64_t *items, size_t n,
                                 vt_batch *batch, int max_new, vt_val_result *out, vt_error *err);
void vt_icl_recipe_destroy(void *state);

#endif
