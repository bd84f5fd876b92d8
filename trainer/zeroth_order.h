/* CBBT's zeroth-order gradient estimator and optimiser (DESIGN.md §4,
 * research/methods.md §4): for parameters theta in R^d, q directions u_i
 * uniform on the unit sphere (normalised Gaussians), step
 * eps = max(1/d, 1e-3), one-sided differences against one clean evaluation:
 *     g = (d/q) * sum_i (f(theta + eps*u_i) - f(theta)) / eps * u_i
 * (the d/q factor makes g an unbiased estimate of the smoothed gradient,
 * since E[u u^T] = I/d; CBBT's own scale differs by a constant that Adam
 * absorbs), optional momentum over past estimates
 * (g <- (1-a)*g + a*g_prev), global-norm clipping, then an Adam step.
 * One step costs exactly q + 1 evaluations, asked for in ONE objective call
 * so a black-box service can score them as one batch of context sets. */
#ifndef VT_TRAINER_ZEROTH_ORDER_H
#define VT_TRAINER_ZEROTH_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_zo_options {
    int q;            /* directions per step (CBBT: 256) */
    float eps;        /* difference step; <= 0 = max(1/d, 1e-3) */
    float clip;       /* max global norm of the estimate; <= 0 = none (CBBT: 5) */
    float lr;         /* Adam learning rate (CBBT: 2e-3) */
    float beta1, beta2, adam_eps;
    float momentum;   /* a in [0, 1): weight of the previous estimate; 0 = off */
    uint64_t seed;    /* directions of step t come from (seed, t, i) */
} vt_zo_options;

/* q 256, eps auto, clip 5, lr 2e-3, Adam (0.9, 0.999, 1e-8), no momentum, seed 0. */
void vt_zo_options_default(vt_zo_options *o);

/* Evaluates npoints points (row-major [npoints, d]) into values[npoints]. */
typedef vt_status (*vt_zo_objective)(void *arg, const float *points, int npoints, float *values, vt_error *err);

typedef struct vt_zo vt_zo;

vt_status vt_zo_create(vt_zo **out, size_t d, const vt_zo_options *opt, vt_error *err);
void vt_zo_free(vt_zo *z);
/* The difference step in use. */
float vt_zo_eps(const vt_zo *z);
/* Estimates the gradient at theta (grad gets d floats, *f0 the clean value,
 * may be NULL) with the directions of the current step; no update, no
 * momentum, no clipping. Costs q + 1 evaluations. */
vt_status vt_zo_estimate(vt_zo *z, const float *theta, vt_zo_objective f, void *arg, float *grad, float *f0,
                         vt_error *err);
/* One optimisation step on theta in place: estimate, momentum, clip, Adam.
 * *f0 (may be NULL) gets f(theta) before the update. */
vt_status vt_zo_step(vt_zo *z, float *theta, vt_zo_objective f, void *arg, float *f0, vt_error *err);
/* The update half of vt_zo_step with a gradient from elsewhere (white-box
 * prompt tuning's true gradient, trainer/whitebox.h): momentum, clipping,
 * Adam, step counter; grad (d floats) is not changed. vt_zo_step is
 * vt_zo_estimate followed by this, so both share one optimiser and one
 * checkpoint state. */
void vt_zo_apply(vt_zo *z, float *theta, const float *grad);
/* The estimate the last step applied (after momentum and clipping), d floats. */
const float *vt_zo_last_gradient(const vt_zo *z);
/* Steps taken so far (the next step's index). */
uint64_t vt_zo_steps(const vt_zo *z);

/* State for checkpoints: the step counter and three d-float buffers (Adam
 * m, v, previous estimate). Restoring them and the options continues a run
 * exactly. */
typedef struct vt_zo_state {
    uint64_t step;
    float *m, *v, *prev; /* borrowed from the optimiser */
} vt_zo_state;
vt_zo_state vt_zo_get_state(vt_zo *z);
void vt_zo_set_step(vt_zo *z, uint64_t step);

#endif
