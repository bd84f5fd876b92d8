/* The recipe "stage 2 + a list of tuning methods" (trainer/method.h). Every
 * hook runs the methods in list order; the micro-step runs the model once
 * for all of them. */
#include "trainer/method.h"

#include <stdlib.h>

typedef struct methods {
    int n;
    const vt_method *method[VT_MAX_METHODS];
    void *state[VT_MAX_METHODS];
} methods;

vt_status vt_methods_configure(const vt_method *const *list, int n, const vt_config *cfg, vt_model_config *mc,
                               void **state, vt_error *err) {
    mc->freeze_vision = true; /* as stage2 */
    mc->freeze_projector = false;
    mc->freeze_language = false;
    if (n < 1 || n > VT_MAX_METHODS) return vt_fail(err, VT_ERR_ARG, "a recipe takes 1 to %d methods", VT_MAX_METHODS);
    methods *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "recipe: no memory");
    *state = s;
    for (int i = 0; i < n; i++) {
        s->method[i] = list[i];
        s->n = i + 1; /* destroy frees a half-configured state too */
        vt_status st = list[i]->configure(cfg, &s->state[i], err);
        if (st) return st;
    }
    return VT_OK;
}

vt_status vt_methods_init(void *state, vt_model *m, uint64_t seed, vt_error *err) {
    methods *s = state;
    for (int i = 0; i < s->n; i++) {
        vt_status st = s->method[i]->init(s->state[i], m, seed, err);
        if (st) return st;
    }
    return VT_OK;
}

vt_status vt_methods_param_groups(void *state, vt_param_group *out, int *n, vt_error *err) {
    methods *s = state;
    int total = 0;
    for (int i = 0; i < s->n; i++) {
        int k = 0;
        vt_status st = s->method[i]->param_groups(s->state[i], out + total, &k, err);
        if (st) return st;
        total += k;
    }
    *n = total;
    return VT_OK;
}

vt_status vt_methods_begin_step(void *state, const vt_recipe_step *rs, vt_error *err) {
    methods *s = state;
    for (int i = 0; i < s->n; i++) {
        vt_status st = s->method[i]->begin_step(s->state[i], rs, err);
        if (st) return st;
    }
    return VT_OK;
}

vt_status vt_methods_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale, double progress,
                                double *loss_sum, vt_error *err) {
    (void)progress; /* the methods fixed their schedules for the step in begin_step */
    methods *s = state;
    for (int i = 0; i < s->n; i++) s->method[i]->prepare(s->state[i], b);
    float loss = 0;
    vt_status st = vt_model_forward(m, b, VT_FORWARD_LOSS, &loss, err);
    if (!st) {
        *loss_sum = (double)loss * (double)m->loss_count;
        bool backward = m->loss_count > 0;
        for (int i = 0; i < s->n; i++) backward |= s->method[i]->collect(s->state[i]);
        if (backward) st = vt_model_backward(m, dloss_scale, err);
    }
    for (int i = 0; i < s->n; i++) s->method[i]->finish(s->state[i]);
    return st;
}

vt_status vt_methods_end_step(void *state, const vt_recipe_step *rs, vt_recipe_scalars *out, vt_error *err) {
    methods *s = state;
    for (int i = 0; i < s->n; i++) {
        vt_status st = s->method[i]->end_step(s->state[i], rs, out, err);
        if (st) return st;
    }
    return VT_OK;
}

vt_status vt_methods_save(void *state, vt_ckpt_writer *w, vt_error *err) {
    methods *s = state;
    for (int i = 0; i < s->n; i++) {
        vt_status st = s->method[i]->save(s->state[i], w, err);
        if (st) return st;
    }
    return VT_OK;
}

vt_status vt_methods_load(void *state, const vt_ckpt *c, vt_error *err) {
    methods *s = state;
    for (int i = 0; i < s->n; i++) {
        vt_status st = s->method[i]->load(s->state[i], c, err);
        if (st) return st;
    }
    return VT_OK;
}

void vt_methods_destroy(void *state) {
    methods *s = state;
    if (!s) return;
    for (int i = 0; i < s->n; i++) s->method[i]->destroy(s->state[i]);
    free(s);
}
