/* Helpers for the tests that run a layer on the CUDA backend and on the CPU
 * backend with identical inputs (header-only, included by
 * tests/unit/test_*_cuda.c). */
#ifndef VT_TESTS_BACKEND_COMPARE_H
#define VT_TESTS_BACKEND_COMPARE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"

/* ||a - b|| / ||a|| (the absolute norm when a is all zeros), in double. */
static inline double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)a[i] * a[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* x[n] = scale * N(0, 1) from the Philox stream keyed by key. */
static inline void fill_normal(float *x, size_t n, uint64_t key, float scale) {
    vt_rng r;
    vt_rng_init(&r, key);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)vt_rng_normal(&r);
}

#endif
