/* Method parameter groups optimised with the model (trainer/model.h
 * vt_param_group, the buffers a recipe exposes through recipe.h
 * param_groups): one global clipping norm over model + groups, AdamW with
 * the group's decay mask, moments saved into and restored from the same
 * optimizer file so a resumed step is bit-identical, and clear errors for a
 * missing or resized group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ops/ctx.h"
#include "ops/optim.h"
#include "trainer/model.h"

enum { NG = 37 };

static vt_ctx *cpu(void) {
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    vt_ctx_options opt = {.backend = VT_BACKEND_CPU, .threads = 1};
    assert_int_equal(vt_ctx_create(&ctx, &opt, &err), VT_OK);
    return ctx;
}

static const char *tmpdir(void) {
    const char *t = getenv("VT_TEST_TMP");
    return t ? t : "/tmp";
}

/* A group over caller arrays; its moments start at zero. */
typedef struct grp {
    float p[NG], g[NG], m[NG], v[NG];
    uint8_t mask[NG];
    vt_param_group pg;
} grp;

static void grp_init(grp *x, const char *name) {
    memset(x, 0, sizeof *x);
    for (int i = 0; i < NG; i++) {
        x->p[i] = 0.1f * sinf(1.3f * (float)i);
        x->mask[i] = (uint8_t)(i % 3 != 0);
    }
    x->pg = (vt_param_group){.name = name, .params = x->p, .grads = x->g, .m = x->m, .v = x->v,
                             .decay_mask = x->mask, .n = NG};
}

/* Deterministic gradients for step k of the model and the group. */
static void fill_grads(vt_model *m, grp *x, int k) {
    for (size_t i = 0; i < m->num_trainable; i++) m->grads[i] = 0.01f * cosf(0.7f * (float)i + (float)k);
    for (int i = 0; i < NG; i++) x->g[i] = 0.5f * sinf(0.9f * (float)i - (float)k);
}

static vt_model *tiny(vt_ctx *ctx, bool frozen) {
    vt_model_config c;
    vt_model_config_default(&c);
    c.freeze_vision = true;
    c.freeze_projector = frozen;
    c.freeze_language = frozen;
    vt_model *m = NULL;
    vt_error err = {0};
    assert_int_equal(vt_model_create(&m, ctx, &c, 3, &err), VT_OK);
    return m;
}

static const vt_adamw_hparams HP = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f};

/* The step over model + group equals one clip + AdamW over the concatenation
 * of both (what "one optimizer over all parameters" means), and the reported
 * norm is the norm of everything. */
static void test_step_is_one_optimizer(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model *m = tiny(ctx, false);
    grp *x = malloc(sizeof *x);
    grp_init(x, "method");
    size_t nm = m->num_trainable, n = nm + NG;
    float *P = malloc(n * sizeof *P), *G = malloc(n * sizeof *G), *M = calloc(n, sizeof *M), *V = calloc(n, sizeof *V);
    uint8_t *mask = malloc(n);
    memcpy(P, m->params + m->train_offset, nm * sizeof *P);
    memcpy(P + nm, x->p, NG * sizeof *P);
    memcpy(mask, m->decay_mask, nm);
    memcpy(mask + nm, x->mask, NG);
    vt_error err = {0};
    for (int k = 1; k <= 3; k++) {
        fill_grads(m, x, k);
        memcpy(G, m->grads, nm * sizeof *G);
        memcpy(G + nm, x->g, NG * sizeof *G);
        float norm = 0, ref_norm = 0;
        /* max norm 0.5: the group's gradients alone exceed it, so clipping acts */
        assert_int_equal(vt_model_step_ex(m, &x->pg, 1, &HP, k, 0.5f, &norm, &err), VT_OK);
        assert_int_equal(vt_grad_clip(ctx, G, n, 0.5f, &ref_norm), VT_OK);
        assert_int_equal(vt_adamw_update(ctx, P, G, M, V, mask, n, &HP, k), VT_OK);
        assert_true(fabsf(norm - ref_norm) <= 1e-6f * ref_norm);
        assert_true(ref_norm > 0.5f);
        double worst = 0;
        for (size_t i = 0; i < nm; i++)
            worst = fmax(worst, fabs(m->params[m->train_offset + i] - P[i]) / fmax(1e-3, fabs(P[i])));
        for (int i = 0; i < NG; i++) worst = fmax(worst, fabs(x->p[i] - P[nm + i]) / fmax(1e-3, fabs(P[nm + i])));
        assert_true(worst < 1e-5);
    }
    /* The group really moved, and its undecayed entries saw no decay: with a
     * zero gradient from here on, only decayed entries keep shrinking. */
    float before[NG];
    memcpy(before, x->p, sizeof before);
    memset(x->g, 0, sizeof x->g);
    memset(x->m, 0, sizeof x->m);
    memset(x->v, 0, sizeof x->v);
    memset(m->grads, 0, nm * sizeof(float));
    assert_int_equal(vt_model_step_ex(m, &x->pg, 1, &HP, 4, 0.5f, NULL, &err), VT_OK);
    for (int i = 0; i < NG; i++) {
        if (x->mask[i]) assert_true(before[i] == 0.0f || fabsf(x->p[i]) < fabsf(before[i]));
        else assert_true(x->p[i] == before[i]);
    }
    free(P), free(G), free(M), free(V), free(mask);
    free(x);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
}

/* Without groups it is vt_model_step, bit for bit. */
static void test_no_groups_is_model_step(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_model *a = tiny(ctx, false), *b = tiny(ctx, false);
    grp *x = malloc(sizeof *x);
    grp_init(x, "unused");
    vt_error err = {0};
    for (int k = 1; k <= 2; k++) {
        fill_grads(a, x, k);
        fill_grads(b, x, k);
        float na = 0, nb = 0;
        assert_int_equal(vt_model_step(a, &HP, k, 0.01f, &na, &err), VT_OK);
        assert_int_equal(vt_model_step_ex(b, NULL, 0, &HP, k, 0.01f, &nb, &err), VT_OK);
        assert_true(na == nb);
    }
    assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
    free(x);
    vt_model_free(a);
    vt_model_free(b);
    vt_ctx_destroy(ctx);
}

/* Two steps straight == one step, save, fresh model + group loading the
 * parameters and the optimizer file, second step: bit-identical, moments
 * included. */
static void test_resume_restores_moments(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/param_groups_opt.safetensors", tmpdir());
    for (int frozen = 0; frozen < 2; frozen++) {
        vt_model *a = tiny(ctx, frozen), *b = tiny(ctx, frozen);
        grp *x = malloc(sizeof *x), *y = malloc(sizeof *y);
        grp_init(x, "method");
        grp_init(y, "method");
        fill_grads(a, x, 1);
        assert_int_equal(vt_model_step_ex(a, &x->pg, 1, &HP, 1, 1.0f, NULL, &err), VT_OK);
        assert_int_equal(vt_model_save_optimizer_ex(a, &x->pg, 1, path, NULL, &err), VT_OK);
        /* "resume": b gets a's parameters (the recipe's and the model's own
         * files do that in training) and the moments from the file */
        memcpy(b->params, a->params, a->num_params * sizeof(float));
        memcpy(y->p, x->p, sizeof x->p);
        assert_int_equal(vt_model_load_optimizer_ex(b, &y->pg, 1, path, &err), VT_OK);
        assert_memory_equal(y->m, x->m, sizeof x->m);
        assert_memory_equal(y->v, x->v, sizeof x->v);
        bool nonzero = false;
        for (int i = 0; i < NG; i++) nonzero |= x->m[i] != 0.0f;
        assert_true(nonzero);
        if (!frozen) assert_memory_equal(b->m, a->m, a->num_trainable * sizeof(float));
        fill_grads(a, x, 2);
        fill_grads(b, y, 2);
        assert_int_equal(vt_model_step_ex(a, &x->pg, 1, &HP, 2, 1.0f, NULL, &err), VT_OK);
        assert_int_equal(vt_model_step_ex(b, &y->pg, 1, &HP, 2, 1.0f, NULL, &err), VT_OK);
        assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
        assert_memory_equal(x->p, y->p, sizeof x->p);
        free(x), free(y);
        vt_model_free(a);
        vt_model_free(b);
    }
    vt_ctx_destroy(ctx);
}

/* A file without the group (e.g. from a plain stage2 run) or with another
 * size is refused, naming the tensor; the live moments stay untouched. */
static void test_missing_or_resized_group(void **state) {
    (void)state;
    vt_ctx *ctx = cpu();
    vt_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/param_groups_plain.safetensors", tmpdir());
    vt_model *a = tiny(ctx, false);
    grp *x = malloc(sizeof *x);
    grp_init(x, "method");
    assert_int_equal(vt_model_save_optimizer(a, path, NULL, &err), VT_OK);
    x->m[0] = 42.0f;
    assert_int_equal(vt_model_load_optimizer_ex(a, &x->pg, 1, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'exp_avg.method' is missing"));
    assert_true(x->m[0] == 42.0f);
    assert_int_equal(vt_model_save_optimizer_ex(a, &x->pg, 1, path, NULL, &err), VT_OK);
    x->pg.n = NG - 1;
    assert_int_equal(vt_model_load_optimizer_ex(a, &x->pg, 1, path, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'exp_avg.method' has 37 elements"));
    /* a frozen model without groups still has nothing to save */
    vt_model *f = tiny(ctx, true);
    assert_int_equal(vt_model_save_optimizer_ex(f, NULL, 0, path, NULL, &err), VT_ERR_STATE);
    vt_model_free(f);
    free(x);
    vt_model_free(a);
    vt_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_is_one_optimizer),
        cmocka_unit_test(test_no_groups_is_model_step),
        cmocka_unit_test(test_resume_restores_moments),
        cmocka_unit_test(test_missing_or_resized_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
