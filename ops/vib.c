/* The bottleneck's reparameterise-mix-KL step and its backward on the CPU
 * (the arithmetic the CUDA kernels in ops/cuda/vib.cu repeat). */
#include "ops/vib.h"

#include <math.h>
#include <stdbool.h>

#include "ops/ctx_internal.h"

static vt_status check(vt_ctx *ctx, const char *op, const vt_vib_rows *r) {
    VT_OPS_PTR(ctx, op, r);
    VT_OPS_REQUIRE(ctx, op, r->n >= 0 && r->width > 0, "n=%d width=%d", r->n, r->width);
    if (r->n == 0) return VT_OK;
    VT_OPS_PTR(ctx, op, r->rows);
    VT_OPS_PTR(ctx, op, r->counted);
    VT_OPS_PTR(ctx, op, r->x);
    VT_OPS_PTR(ctx, op, r->o);
    VT_OPS_PTR(ctx, op, r->prior_mu);
    VT_OPS_PTR(ctx, op, r->prior_logvar);
    return VT_OK;
}

/* exp(-prior log-variance) once per dimension, not per element. */
static double *inverse_prior_variance(vt_ctx *ctx, const vt_vib_rows *r) {
    double *ip = vt_ops_scratch(ctx, (size_t)r->width * sizeof(double));
    if (ip)
        for (int d = 0; d < r->width; d++) ip[d] = exp(-(double)r->prior_logvar[d]);
    return ip;
}

vt_status vt_vib_forward(vt_ctx *ctx, const vt_vib_rows *r, float *h, double *kl_rows) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_vib_forward";
    vt_status st = check(ctx, op, r);
    if (st || r->n == 0) return st;
    VT_OPS_PTR(ctx, op, h);
    VT_OPS_PTR(ctx, op, kl_rows);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_vib_forward(ctx, r, h, kl_rows);
#endif
    double *ip = inverse_prior_variance(ctx, r);
    if (!ip) return ctx->err.code;
    int D = r->width;
    float c = r->logvar_clamp, a = r->alpha;
    for (int i = 0; i < r->n; i++) {
        float *mu = r->o + (size_t)i * 2 * D, *lv = mu + D;
        const float *x = r->x + (size_t)i * D, *e = r->eps ? r->eps + (size_t)i * D : NULL;
        float *out = h + (size_t)r->rows[i] * D;
        double sum = 0.0;
        for (int d = 0; d < D; d++) {
            lv[d] = fminf(fmaxf(lv[d], -c), c);
            float s = expf(0.5f * lv[d]);
            float z = e ? mu[d] + s * e[d] : mu[d];
            out[d] = (1.0f - a) * x[d] + a * z;
            if (r->counted[i]) {
                double dm = (double)mu[d] - r->prior_mu[d];
                sum += 0.5 * (r->logvar_weight * ((double)r->prior_logvar[d] - lv[d]) +
                              ((double)s * s + dm * dm) * ip[d] - 1.0);
            }
        }
        kl_rows[i] = sum;
    }
    return VT_OK;
}

vt_status vt_vib_backward(vt_ctx *ctx, const vt_vib_rows *r, const float *dh, double kl_coef, float *d_o,
                          float *d_x, float *gprior_mu, float *gprior_logvar) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_vib_backward";
    vt_status st = check(ctx, op, r);
    if (st || r->n == 0) return st;
    VT_OPS_PTR(ctx, op, dh);
    VT_OPS_PTR(ctx, op, d_o);
    VT_OPS_PTR(ctx, op, d_x);
    VT_OPS_REQUIRE(ctx, op, !gprior_mu == !gprior_logvar, "give both prior gradients or neither");
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA)
        return vt_cuda_vib_backward(ctx, r, dh, kl_coef, d_o, d_x, gprior_mu, gprior_logvar);
#endif
    double *ip = inverse_prior_variance(ctx, r);
    if (!ip) return ctx->err.code;
    int D = r->width;
    float a = r->alpha;
    double lw = r->logvar_weight;
    for (int i = 0; i < r->n; i++) {
        const float *mu = r->o + (size_t)i * 2 * D, *lv = mu + D;
        const float *e = r->eps ? r->eps + (size_t)i * D : NULL, *G = dh + (size_t)r->rows[i] * D;
        float *dmu = d_o + (size_t)i * 2 * D, *dlv = dmu + D, *dx = d_x + (size_t)i * D;
        bool kl = r->counted[i] && kl_coef != 0.0;
        for (int d = 0; d < D; d++) {
            float s = expf(0.5f * lv[d]);
            dx[d] = (1.0f - a) * G[d];
            double gm = a * G[d];
            double gl = e ? a * G[d] * e[d] * 0.5 * s : 0.0;
            if (kl) {
                double dm = (double)mu[d] - r->prior_mu[d], s2 = (double)s * s;
                gm += kl_coef * dm * ip[d];
                gl += kl_coef * 0.5 * (s2 * ip[d] - lw);
                if (gprior_mu) {
                    gprior_mu[d] -= (float)(kl_coef * dm * ip[d]);
                    gprior_logvar[d] += (float)(kl_coef * 0.5 * (lw - (s2 + dm * dm) * ip[d]));
                }
            }
            dmu[d] = (float)gm;
            dlv[d] = (float)gl;
        }
    }
    return VT_OK;
}
