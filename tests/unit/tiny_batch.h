/* What the Vittle/ROSS unit tests share: the small real-shaped batch
 * (default model config: 32 px images, 16 image tokens, id 287): B = 2,
 * T = 24; sequence 0 = text 0..2, its image tokens 3..18, answer targets
 * from 19; sequence 1 = text only, length 22; pixels amp * sin(0.37 i). A
 * 1-thread CPU ctx, and the finite-difference check of one gradient entry.
 * Include after cmocka.h. */
#ifndef VT_TESTS_UNIT_TINY_BATCH_H
#define VT_TESTS_UNIT_TINY_BATCH_H

#include <math.h>
#include <string.h>

#include "ops/ctx.h"
#include "pipeline/batch.h"

enum { B = 2, T = 24, NIMG = 16 };

typedef struct tbatch {
    vt_batch b;
    float pixels[B * 3 * 32 * 32];
    int32_t tokens[B * T], targets[B * T], lengths[B];
    uint8_t mask[B * T];
} tbatch;

static inline void make_batch(tbatch *t, float pixel_amp) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < B * 3 * 32 * 32; i++) t->pixels[i] = pixel_amp * sinf(0.37f * (float)i);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            int32_t id = (int32_t)((b * 31 + i * 7) % 256);
            if (b == 0 && i >= 3 && i < 3 + NIMG) id = 287;
            t->tokens[b * T + i] = id;
            t->targets[b * T + i] = (int32_t)((i * 13 + b) % 288);
            t->mask[b * T + i] = (uint8_t)(i >= 19);
        }
    t->lengths[0] = 24;
    t->lengths[1] = 22;
    t->b.shape = (vt_batch_shape){.batch = B, .channels = 3, .height = 32, .width = 32, .seq_len = T};
    t->b.pixels = t->pixels;
    t->b.tokens = t->tokens;
    t->b.targets = t->targets;
    t->b.loss_mask = t->mask;
    t->b.lengths = t->lengths;
}

static inline vt_ctx *cpu(void) {
    vt_ctx *ctx = NULL;
    vt_error err = {0};
    vt_ctx_options opt = {.backend = VT_BACKEND_CPU, .threads = 1};
    assert_int_equal(vt_ctx_create(&ctx, &opt, &err), VT_OK);
    return ctx;
}

/* The central difference (step 1e-2) of objective(arg) in *p agrees with
 * the analytic gradient g within 1e-2 relative (+ 1e-4). */
static inline void check_fd(double (*objective)(const void *arg), const void *arg, float *p, float g,
                            const char *what) {
    float h = 1e-2f, saved = *p;
    *p = saved + h;
    double up = objective(arg);
    *p = saved - h;
    double dn = objective(arg);
    *p = saved;
    double fd = (up - dn) / (2.0 * h);
    print_message("%s: analytic %.6g finite-difference %.6g\n", what, (double)g, fd);
    assert_true(fabs(fd - g) <= 1e-2 * fabs(g) + 1e-4);
}

/* The largest-gradient entry of a tensor (the most informative to check). */
static inline size_t argmax_abs(const float *g, size_t n) {
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (fabsf(g[i]) > fabsf(g[k])) k = i;
    return k;
}

#endif
