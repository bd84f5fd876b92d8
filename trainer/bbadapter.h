/* The output adapter of black-box tuning (CBBT's CBBTadapter, CraFT's
 * prediction refinement; research/methods.md §4): a residual MLP on the
 * frozen model's next-token logits at the answer positions,
 *
 *     z' = z + W2 · relu(W1 · z + b1) + b2,        z = the service's logits (vocab V)
 *
 * with W2 and b2 zero at the start (so it starts as the identity) and W1 ~
 * N(0, 1/V) from the seed. It sits outside the black box, so it is trained
 * locally with true gradients on the tuning items' logits:
 *
 *     loss = CE(softmax(z'), answer) + λ · KL(softmax(z) ‖ softmax(z'))
 *
 * averaged over answer positions. The KL is taken in the direction
 * KL(service ‖ adapted) (CraFT's: torch kl_div(log_softmax(z'), softmax(z))):
 * the forward, mass-covering direction penalises the adapter for taking
 * probability away from anything the frozen model finds likely, and its
 * gradient in z' is simply λ (p' − p), a soft-label cross-entropy toward the
 * service's distribution.
 *
 * Everything is double precision and single-threaded, minibatches of answer
 * positions come from a Philox permutation keyed by (seed, epoch)
 * (vt_bbtune_minibatch), so the result depends only on the data, the seed and
 * the step: a restored state (parameters, Adam moments, step) continues
 * bit-identically. */
#ifndef VT_TRAINER_BBADAPTER_H
#define VT_TRAINER_BBADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_bbadapter_opts {
    double lr;        /* Adam learning rate */
    double kl_weight; /* λ */
    double beta1, beta2;
    int batch;        /* answer positions per step (clamped to the data) */
} vt_bbadapter_opts;

typedef struct vt_bbadapter {
    int V, H;
    size_t n;         /* parameters: w1[H*V], b1[H], w2[V*H], b2[V] in p, in that order */
    double *p, *m, *v;
    uint64_t step;    /* Adam steps taken */
    uint64_t seed;    /* minibatch key */
} vt_bbadapter;

/* W1 ~ N(0, 1/V) from seed, b1 = W2 = b2 = 0, Adam moments zero. */
vt_status vt_bbadapter_create(vt_bbadapter **out, int V, int H, uint64_t seed, vt_error *err);
void vt_bbadapter_free(vt_bbadapter *a);

/* z' for one row (V floats in, V doubles out; h: H doubles of scratch). */
void vt_bbadapter_apply(const vt_bbadapter *a, const float *z, double *out, double *h);

/* Mean loss over rows idx[0..n) of x ([rows, V]) with answers y; when grad
 * is non-NULL it gets the gradient (a->n doubles, overwritten). */
double vt_bbadapter_loss_grad(const vt_bbadapter *a, const float *x, const int32_t *y, const uint32_t *idx, size_t n,
                              double kl_weight, double *grad);

/* Runs Adam steps until a->step == until (none if already there) on the
 * rows of x: each step one seed-keyed minibatch of o->batch positions. */
vt_status vt_bbadapter_train(vt_bbadapter *a, const float *x, const int32_t *y, uint32_t rows,
                             const vt_bbadapter_opts *o, uint64_t until, vt_error *err);

/* Over rows x[0..n) of V logits: summed cross-entropy of the answers and how
 * many rows' argmax is the answer, under the adapter (a != NULL, a->V == V)
 * or the raw logits (a == NULL). */
void vt_bbadapter_eval(const vt_bbadapter *a, int V, const float *x, const int32_t *y, size_t n, double *ce_sum,
                       size_t *correct);

#endif
