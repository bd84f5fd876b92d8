/* The elementwise part of a variational information bottleneck (Vittle,
 * research/methods.md §1), on either backend. Per row, from the heads'
 * output o = [mu | log sigma^2]: clamp the log-variance, z = mu + sigma eps
 * in training or mu at inference, write h' = (1 - alpha) x + alpha z into
 * the row's place in h, and the KL of N(mu, sigma^2) against a diagonal
 * Gaussian prior. The heads themselves are ordinary vt_linear ops. */
#ifndef VT_OPS_VIB_H
#define VT_OPS_VIB_H

#include <stdint.h>

#include "ops/ctx.h"

typedef struct vt_vib_rows {
    int n, width;           /* rows, D */
    const int32_t *rows;    /* [n] the row's index in h (forward) / dh (backward) */
    const uint8_t *counted; /* [n] 1 = the row counts in the KL */
    const float *x;         /* [n, D] the layer's input rows */
    float *o;               /* [n, 2D] mu | log-variance; forward clamps the latter in place */
    const float *eps;       /* [n, D] training noise; NULL = inference (z = mu) */
    const float *prior_mu, *prior_logvar; /* [D] each, the log-variance already clamped */
    float alpha, logvar_clamp;
    /* 1 = the textbook KL; 0.5 = the reference code's half-weight log-variance term */
    double logvar_weight;
} vt_vib_rows;

/* Writes h[rows[i], :] and kl_rows[i] = the row's KL summed over the D
 * dimensions (0 for rows not counted), in double. All pointers in ctx
 * memory. */
vt_status vt_vib_forward(vt_ctx *ctx, const vt_vib_rows *r, float *h, double *kl_rows);
/* Backward of vt_vib_forward for the loss dh . h' + kl_coef * sum(KL of
 * counted rows): WRITES d_o [n, 2D] (mu, then log-variance straight through
 * the clamp) and d_x [n, D] (the direct 1 - alpha path), and ADDS the
 * prior's gradients into gprior_mu / gprior_logvar [D] (both NULL for a
 * fixed prior). dh rows are read at rows[i]. */
vt_status vt_vib_backward(vt_ctx *ctx, const vt_vib_rows *r, const float *dh, double kl_coef, float *d_o,
                          float *d_x, float *gprior_mu, float *gprior_logvar);

#endif
