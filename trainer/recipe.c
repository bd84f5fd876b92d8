/* The recipe table. New methods add a row here (and their hooks in their own
 * file); the loop never special-cases a recipe by name. */
#include "trainer/recipe.h"

#include <stdio.h>
#include <string.h>

#include "trainer/autoencoder.h"
#include "trainer/icl.h"
#include "trainer/method.h"

vt_status vt_recipe_default_micro_step(vt_model *m, const vt_batch *b, float dloss_scale,
                                       double *loss_sum, vt_error *err) {
    float loss;
    vt_status st = vt_model_forward(m, b, VT_FORWARD_LOSS, &loss, err);
    if (st) return st;
    *loss_sum = (double)loss * (double)m->loss_count;
    if (m->loss_count == 0) return VT_OK; /* nothing supervised in this micro-batch */
    return vt_model_backward(m, dloss_scale, err);
}

/* Stage 1 (feature alignment): only the projector learns. */
static vt_status stage1_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    (void)cfg, (void)state, (void)err;
    mc->freeze_vision = true;
    mc->freeze_projector = false;
    mc->freeze_language = true;
    return VT_OK;
}

/* Stage 2 (visual instruction tuning): projector and decoder learn. */
static vt_status stage2_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    (void)cfg, (void)state, (void)err;
    mc->freeze_vision = true;
    mc->freeze_projector = false;
    mc->freeze_language = false;
    return VT_OK;
}

/* Stage 2 + tuning methods (trainer/method.h): a configure per list. */
static vt_status vittle_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    static const vt_method *const list[] = {&vt_vittle_method};
    return vt_methods_configure(list, 1, cfg, mc, state, err);
}

static vt_status ross_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    static const vt_method *const list[] = {&vt_ross_method};
    return vt_methods_configure(list, 1, cfg, mc, state, err);
}

/* Vittle first: after the same block (a 1- or 2-block decoder) ROSS then
 * reconstructs from the bottleneck's output, the state the LM head sees. */
static vt_status vittle_ross_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    static const vt_method *const list[] = {&vt_vittle_method, &vt_ross_method};
    return vt_methods_configure(list, 2, cfg, mc, state, err);
}

#define METHODS_ROW(recipe_name, configure_fn)                                                                   \
    {.name = recipe_name, .chat_template = "vicuna_v1", .cuda = true, .configure = configure_fn,               \
     .init = vt_methods_init, .micro_step = vt_methods_micro_step, .param_groups = vt_methods_param_groups,     \
     .begin_step = vt_methods_begin_step, .end_step = vt_methods_end_step, .save = vt_methods_save,             \
     .load = vt_methods_load, .destroy = vt_methods_destroy}

static const vt_recipe recipes[] = {
    {.name = "stage1", .chat_template = "plain", .cuda = true, .configure = stage1_configure},
    {.name = "stage2", .chat_template = "vicuna_v1", .cuda = true, .configure = stage2_configure},
    /* stage 2 + ROSS's denoiser (trainer/ross.h), + Vittle's bottleneck (trainer/vittle.h), + both */
    METHODS_ROW("ross", ross_configure),
    METHODS_ROW("vittle", vittle_configure),
    METHODS_ROW("vittle_ross", vittle_ross_configure),
    /* The per-patch KL-autoencoder (trainer/autoencoder.h): ROSS's latent teacher; the LLaVA model is frozen. */
    {.name = "autoencoder", .chat_template = "plain", .configure = vt_ae_recipe_configure,
     .init = vt_ae_recipe_init, .micro_step = vt_ae_recipe_micro_step,
     .param_groups = vt_ae_recipe_param_groups, .begin_step = vt_ae_recipe_begin_step,
     .end_step = vt_ae_recipe_end_step, .save = vt_ae_recipe_save, .load = vt_ae_recipe_load,
     .destroy = vt_ae_recipe_destroy},
    /* MMICT in-context tuning (trainer/icl.h): the M-Hub + <eoc> in front of the frozen model
     * (icl.mode: vanilla = raw projected demonstrations + text, projector + <eoc> trained). */
    {.name = "icl", .chat_template = "vicuna_v1", .configure = vt_icl_recipe_configure,
     .data = vt_icl_recipe_data, .init = vt_icl_recipe_init, .micro_step = vt_icl_recipe_micro_step,
     .param_groups = vt_icl_recipe_param_groups, .save = vt_icl_recipe_save, .load = vt_icl_recipe_load,
     .validate = vt_icl_recipe_validate, .destroy = vt_icl_recipe_destroy},
};

const vt_recipe *vt_recipe_find(const char *name) {
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++)
        if (!strcmp(recipes[i].name, name)) return &recipes[i];
    return NULL;
}

const char *vt_recipe_names(void) { return "stage1, stage2, ross, vittle, vittle_ross, autoencoder, icl"; }

const char *vt_recipe_cuda_names(void) {
    static char names[128];
    if (!names[0])
        for (size_t i = 0, n = 0; i < sizeof recipes / sizeof recipes[0]; i++)
            if (recipes[i].cuda)
                n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", recipes[i].name);
    return names;
}
