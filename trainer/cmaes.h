/* CraFT's derivative-free optimiser (DESIGN.md §4, research/methods.md §4):
 * (mu/mu_w, lambda)-CMA-ES (Hansen's tutorial defaults: weights, cumulation,
 * rank-one + rank-mu covariance update, step-size control) over a small
 * intrinsic vector z in R^n, with optional box bounds (samples are clipped,
 * CraFT uses +-5), and the random subspace map x = x0 + A z that turns z into
 * a context of D floats (A [D, n] ~ N(0, 1), drawn from the seed, never stored).
 * Ask/tell: ask fills a population, the caller scores it (e.g. as one batch
 * of context sets on the scoring service), tell updates the distribution. */
#ifndef VT_TRAINER_CMAES_H
#define VT_TRAINER_CMAES_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/rng.h"

typedef struct vt_cmaes_options {
    int lambda;      /* population; <= 0 = 4 + floor(3 ln n) (CraFT: 40) */
    double sigma0;   /* initial step size (CraFT: 0.02... for z of scale 1 use ~0.5) */
    double bound;    /* |z_i| <= bound for samples; <= 0 = none (CraFT: 5) */
    uint64_t seed;
} vt_cmaes_options;

typedef struct vt_cmaes vt_cmaes;

/* x0: n starting values (NULL = zeros). */
vt_status vt_cmaes_create(vt_cmaes **out, int n, const double *x0, const vt_cmaes_options *opt, vt_error *err);
void vt_cmaes_free(vt_cmaes *es);
int vt_cmaes_lambda(const vt_cmaes *es);
/* Samples the next population into pop [lambda, n]. */
void vt_cmaes_ask(vt_cmaes *es, double *pop);
/* Fitness (lower is better) of the population from the last ask. Non-finite
 * values are VT_ERR_RANGE naming the member. */
vt_status vt_cmaes_tell(vt_cmaes *es, const double *fitness, vt_error *err);
/* Current mean (n values) and step size. */
const double *vt_cmaes_mean(const vt_cmaes *es);
double vt_cmaes_sigma(const vt_cmaes *es);
/* Generations told so far. */
long vt_cmaes_generation(const vt_cmaes *es);

/* State for checkpoints: the generation, step size and sampler position,
 * plus the buffers (borrowed from the optimiser: copy into them to restore):
 * mean, pc, ps (n each), C and B (n*n), D (n). Restoring every buffer and
 * then vt_cmaes_set_state's scalars continues a run exactly. */
typedef struct vt_cmaes_state {
    long gen;
    double sigma;
    vt_rng rng;
    double *mean, *pc, *ps, *C, *B, *D;
} vt_cmaes_state;
vt_cmaes_state vt_cmaes_get_state(vt_cmaes *es);
void vt_cmaes_set_state(vt_cmaes *es, long gen, double sigma, const vt_rng *rng);

/* x = x0 + A z for the random Gaussian A [D, n] of `seed` (x0 NULL = zeros).
 * Element (j, k) of A is normal(hash(seed, j)) stream position k, so any
 * caller with the same seed gets the same map. */
void vt_subspace_map(uint64_t seed, size_t D, int n, const float *x0, const double *z, float *x);

#endif
