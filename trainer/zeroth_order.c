/* CBBT zeroth-order estimator and Adam (trainer/zeroth_order.h). Directions
 * are drawn from Philox streams keyed by (seed, step, i), so a resumed run
 * draws the same directions as an uninterrupted one. */
#include "trainer/zeroth_order.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

struct vt_zo {
    size_t d;
    vt_zo_options o;
    float eps;
    uint64_t step;
    float *m, *v, *prev, *g, *u, *points; /* points: [(q+1), d] */
    float *values;
};

void vt_zo_options_default(vt_zo_options *o) {
    *o = (vt_zo_options){.q = 256, .eps = 0, .clip = 5.0f, .lr = 2e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                         .adam_eps = 1e-8f, .momentum = 0, .seed = 0};
}

vt_status vt_zo_create(vt_zo **out, size_t d, const vt_zo_options *opt, vt_error *err) {
    *out = NULL;
    if (d == 0 || opt->q < 1 || opt->q > 1 << 20 || !(opt->lr > 0) || opt->momentum < 0 || opt->momentum >= 1 ||
        opt->beta1 < 0 || opt->beta1 >= 1 || opt->beta2 < 0 || opt->beta2 >= 1)
        return vt_fail(err, VT_ERR_ARG, "zeroth-order: bad options (d %zu, q %d, lr %g, momentum %g, betas %g %g)", d,
                       opt->q, (double)opt->lr, (double)opt->momentum, (double)opt->beta1, (double)opt->beta2);
    if ((size_t)(opt->q + 1) > SIZE_MAX / sizeof(float) / d)
        return vt_fail(err, VT_ERR_RANGE, "zeroth-order: (q+1)*d = %d*%zu is too large", opt->q + 1, d);
    vt_zo *z = calloc(1, sizeof *z);
    if (!z) return vt_fail(err, VT_ERR_NOMEM, "zeroth-order: out of memory");
    z->d = d;
    z->o = *opt;
    z->eps = opt->eps > 0 ? opt->eps : fmaxf(1.0f / (float)d, 1e-3f);
    z->m = calloc(d, sizeof(float));
    z->v = calloc(d, sizeof(float));
    z->prev = calloc(d, sizeof(float));
    z->g = calloc(d, sizeof(float));
    z->u = calloc(d, sizeof(float));
    z->points = malloc((size_t)(opt->q + 1) * d * sizeof(float));
    z->values = malloc((size_t)(opt->q + 1) * sizeof(float));
    if (!z->m || !z->v || !z->prev || !z->g || !z->u || !z->points || !z->values) {
        vt_zo_free(z);
        return vt_fail(err, VT_ERR_NOMEM, "zeroth-order: out of memory for d = %zu, q = %d", d, opt->q);
    }
    *out = z;
    return VT_OK;
}

void vt_zo_free(vt_zo *z) {
    if (!z) return;
    free(z->m);
    free(z->v);
    free(z->prev);
    free(z->g);
    free(z->u);
    free(z->points);
    free(z->values);
    free(z);
}

float vt_zo_eps(const vt_zo *z) { return z->eps; }
uint64_t vt_zo_steps(const vt_zo *z) { return z->step; }
const float *vt_zo_last_gradient(const vt_zo *z) { return z->g; }

/* Direction i of the current step: a normalised Gaussian (uniform on the sphere). */
static void draw_direction(const vt_zo *z, int i, float *u) {
    vt_rng r;
    vt_rng_init(&r, vt_hash4(z->o.seed, z->step, (uint64_t)i, 0x5a0));
    double n2 = 0;
    for (size_t j = 0; j < z->d; j++) {
        u[j] = (float)vt_rng_normal(&r);
        n2 += (double)u[j] * u[j];
    }
    float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
    for (size_t j = 0; j < z->d; j++) u[j] *= inv;
}

vt_status vt_zo_estimate(vt_zo *z, const float *theta, vt_zo_objective f, void *arg, float *grad, float *f0,
                         vt_error *err) {
    size_t d = z->d;
    int q = z->o.q;
    memcpy(z->points, theta, d * sizeof(float));
    for (int i = 0; i < q; i++) {
        draw_direction(z, i, z->u);
        float *p = z->points + (size_t)(i + 1) * d;
        for (size_t j = 0; j < d; j++) p[j] = theta[j] + z->eps * z->u[j];
    }
    vt_status st = f(arg, z->points, q + 1, z->values, err);
    if (st) return st;
    for (int i = 0; i <= q; i++)
        if (!isfinite(z->values[i]))
            return vt_fail(err, VT_ERR_RANGE, "zeroth-order: objective value %d of step %llu is not finite", i,
                           (unsigned long long)z->step);
    memset(grad, 0, d * sizeof(float));
    double scale = (double)d / q;
    for (int i = 0; i < q; i++) {
        draw_direction(z, i, z->u); /* drawn again rather than stored: exact and O(d) memory */
        double c = scale * ((double)z->values[i + 1] - z->values[0]) / z->eps;
        for (size_t j = 0; j < d; j++) grad[j] += (float)(c * z->u[j]);
    }
    if (f0) *f0 = z->values[0];
    return VT_OK;
}

vt_status vt_zo_step(vt_zo *z, float *theta, vt_zo_objective f, void *arg, float *f0, vt_error *err) {
    vt_status st = vt_zo_estimate(z, theta, f, arg, z->g, f0, err);
    if (st) return st;
    vt_zo_apply(z, theta, z->g);
    return VT_OK;
}

void vt_zo_apply(vt_zo *z, float *theta, const float *grad) {
    size_t d = z->d;
    float *g = z->g;
    if (g != grad) memcpy(g, grad, d * sizeof(float));
    if (z->o.momentum > 0) {
        float a = z->o.momentum;
        for (size_t j = 0; j < d; j++) g[j] = z->step ? (1 - a) * g[j] + a * z->prev[j] : g[j];
        memcpy(z->prev, g, d * sizeof(float));
    }
    if (z->o.clip > 0) {
        double n2 = 0;
        for (size_t j = 0; j < d; j++) n2 += (double)g[j] * g[j];
        double n = sqrt(n2);
        if (n > z->o.clip) {
            float s = (float)(z->o.clip / n);
            for (size_t j = 0; j < d; j++) g[j] *= s;
        }
    }
    z->step++;
    float b1 = z->o.beta1, b2 = z->o.beta2;
    double c1 = 1 - pow(b1, (double)z->step), c2 = 1 - pow(b2, (double)z->step);
    for (size_t j = 0; j < d; j++) {
        z->m[j] = b1 * z->m[j] + (1 - b1) * g[j];
        z->v[j] = b2 * z->v[j] + (1 - b2) * g[j] * g[j];
        double mh = z->m[j] / c1, vh = z->v[j] / c2;
        theta[j] -= (float)(z->o.lr * mh / (sqrt(vh) + z->o.adam_eps));
    }
}

vt_zo_state vt_zo_get_state(vt_zo *z) { return (vt_zo_state){.step = z->step, .m = z->m, .v = z->v, .prev = z->prev}; }
void vt_zo_set_step(vt_zo *z, uint64_t step) { z->step = step; }
