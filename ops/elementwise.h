/* Small elementwise building blocks: residual add, scaling, sum of squares. */
#ifndef VT_OPS_ELEMENTWISE_H
#define VT_OPS_ELEMENTWISE_H

#include <stddef.h>

#include "ops/ctx.h"

/* out[n] = a[n] + b[n]; out may alias a or b. */
vt_status vt_residual_forward(vt_ctx *ctx, float *out, const float *a, const float *b,
                              size_t n);
/* da[n] += dout[n], db[n] += dout[n]; either may be NULL. */
vt_status vt_residual_backward(vt_ctx *ctx, float *da, float *db, const float *dout,
                               size_t n);

/* x[n] *= s. */
vt_status vt_scale(vt_ctx *ctx, float *x, size_t n, float s);
/* *out (host) = sum of x[n]^2, accumulated in double. */
vt_status vt_sumsq(vt_ctx *ctx, const float *x, size_t n, double *out);

#endif
