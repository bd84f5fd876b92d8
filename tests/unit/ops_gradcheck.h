/* Finite-difference gradient checking for ops tests (header-only, included by
 * tests/unit/test_ops_*.c). The scalar probed is L = sum(out * R) for a fixed
 * random R, so the analytic gradient is the op's backward with dout = R. Float32
 * forward passes, central differences over the actually representable step,
 * L accumulated in double. */
#ifndef VT_TESTS_OPS_GRADCHECK_H
#define VT_TESTS_OPS_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/ops.h"

/* Gradients are pre-filled with this before backward and it is subtracted
 * after, so a backward that overwrites instead of accumulating fails. */
#define GC_PREFILL 0.25f

typedef struct gc_tensor {
    const char *name;
    float *x;          /* the input being perturbed */
    const float *grad; /* analytic gradient (after gc_unprefill) */
    size_t n;
} gc_tensor;

typedef double (*gc_loss_fn)(void *state);

static inline void gc_fill(vt_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)vt_rng_normal(r);
}

static inline float *gc_alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}

static inline void gc_prefill(float *g, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = GC_PREFILL;
}
static inline void gc_unprefill(float *g, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] -= GC_PREFILL;
}

static inline double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Check every element (or an even stride of at most 256 of them) of each
 * tensor: |num - ana| <= atol + rtol * max(|num|, |ana|). Returns the number
 * of mismatches and prints the worst error per tensor. */
static inline int gc_check(const char *op, const gc_tensor *ts, int nt, gc_loss_fn f, void *st,
                           double h, double rtol, double atol) {
    int bad = 0;
    for (int t = 0; t < nt; t++) {
        const gc_tensor *T = &ts[t];
        size_t stride = T->n > 256 ? T->n / 256 : 1;
        double worst = 0.0, worst_ratio = 0.0;
        for (size_t i = 0; i < T->n; i += stride) {
            float save = T->x[i];
            float xp = (float)(save + h), xm = (float)(save - h);
            T->x[i] = xp;
            double lp = f(st);
            T->x[i] = xm;
            double lm = f(st);
            T->x[i] = save;
            double num = (lp - lm) / ((double)xp - (double)xm);
            double ana = T->grad[i];
            double err = fabs(num - ana);
            double lim = atol + rtol * fmax(fabs(num), fabs(ana));
            if (err > worst) worst = err;
            if (err / lim > worst_ratio) worst_ratio = err / lim;
            if (err > lim) {
                if (bad < 5)
                    fprintf(stderr, "%s: d%s[%zu]: numeric %.6g analytic %.6g (err %.3g > %.3g)\n",
                            op, T->name, i, num, ana, err, lim);
                bad++;
            }
        }
        fprintf(stderr, "%s: d%s max abs err %.3g (%.2f of tolerance)\n", op, T->name, worst,
                worst_ratio);
    }
    return bad;
}

#endif
