/* Output adapter for black-box tuning (trainer/bbadapter.h). */
#include "trainer/bbadapter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "trainer/bbtune.h"

vt_status vt_bbadapter_create(vt_bbadapter **out, int V, int H, uint64_t seed, vt_error *err) {
    *out = NULL;
    if (V < 2 || H < 1) return vt_fail(err, VT_ERR_ARG, "bbtune adapter: vocab %d / hidden %d out of range", V, H);
    vt_bbadapter *a = calloc(1, sizeof *a);
    if (!a) return vt_fail(err, VT_ERR_NOMEM, "bbtune adapter: out of memory");
    a->V = V;
    a->H = H;
    a->seed = seed;
    a->n = (size_t)H * V + (size_t)H + (size_t)V * H + (size_t)V;
    a->p = calloc(a->n, sizeof *a->p);
    a->m = calloc(a->n, sizeof *a->m);
    a->v = calloc(a->n, sizeof *a->v);
    if (!a->p || !a->m || !a->v) {
        size_t n = a->n;
        vt_bbadapter_free(a);
        return vt_fail(err, VT_ERR_NOMEM, "bbtune adapter: out of memory for %zu parameters", n);
    }
    vt_rng g;
    vt_rng_init(&g, vt_hash4(seed, 0xada7, 0, 0));
    double sd = 1.0 / sqrt((double)V);
    for (size_t i = 0; i < (size_t)H * V; i++) a->p[i] = sd * vt_rng_normal(&g);
    *out = a;
    return VT_OK;
}

void vt_bbadapter_free(vt_bbadapter *a) {
    if (!a) return;
    free(a->p);
    free(a->m);
    free(a->v);
    free(a);
}

void vt_bbadapter_apply(const vt_bbadapter *a, const float *z, double *out, double *h) {
    int V = a->V, H = a->H;
    const double *w1 = a->p, *b1 = w1 + (size_t)H * V, *w2 = b1 + H, *b2 = w2 + (size_t)V * H;
    for (int j = 0; j < H; j++) {
        double s = b1[j];
        const double *w = w1 + (size_t)j * V;
        for (int v = 0; v < V; v++) s += w[v] * z[v];
        h[j] = s > 0 ? s : 0;
    }
    for (int v = 0; v < V; v++) {
        double s = (double)z[v] + b2[v];
        const double *w = w2 + (size_t)v * H;
        for (int j = 0; j < H; j++) s += w[j] * h[j];
        out[v] = s;
    }
}

/* log-softmax of z (n values) into lp; returns nothing. */
static void log_softmax(const double *z, int n, double *lp) {
    double mx = z[0], s = 0;
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < n; i++) s += exp(z[i] - mx);
    double lz = mx + log(s);
    for (int i = 0; i < n; i++) lp[i] = z[i] - lz;
}

double vt_bbadapter_loss_grad(const vt_bbadapter *a, const float *x, const int32_t *y, const uint32_t *idx, size_t n,
                              double kl_weight, double *grad) {
    int V = a->V, H = a->H;
    double *buf = malloc(((size_t)4 * V + (size_t)H) * sizeof *buf);
    if (!buf) return NAN;
    double *za = buf, *lpa = za + V, *lps = lpa + V, *dz = lps + V, *h = dz + V;
    const double *w2 = a->p + (size_t)H * V + H;
    double *g1 = grad, *gb1 = grad ? g1 + (size_t)H * V : NULL, *g2 = grad ? gb1 + H : NULL,
           *gb2 = grad ? g2 + (size_t)V * H : NULL;
    if (grad) memset(grad, 0, a->n * sizeof *grad);
    double total = 0, inv = n ? 1.0 / (double)n : 0;
    for (size_t k = 0; k < n; k++) {
        const float *z = x + (size_t)idx[k] * V;
        int32_t t = y[idx[k]];
        vt_bbadapter_apply(a, z, za, h);
        log_softmax(za, V, lpa);
        for (int v = 0; v < V; v++) dz[v] = z[v];
        log_softmax(dz, V, lps);
        double kl = 0;
        for (int v = 0; v < V; v++) kl += exp(lps[v]) * (lps[v] - lpa[v]);
        total += -lpa[t] + kl_weight * kl;
        if (!grad) continue;
        /* d/dz' of CE + λ KL(p ‖ p') = (p' − onehot) + λ (p' − p), per position, / n */
        for (int v = 0; v < V; v++) dz[v] = ((1 + kl_weight) * exp(lpa[v]) - kl_weight * exp(lps[v])) * inv;
        dz[t] -= inv;
        for (int v = 0; v < V; v++) {
            gb2[v] += dz[v];
            double *g = g2 + (size_t)v * H;
            for (int j = 0; j < H; j++) g[j] += dz[v] * h[j];
        }
        for (int j = 0; j < H; j++) {
            double s = 0;
            if (h[j] > 0)
                for (int v = 0; v < V; v++) s += w2[(size_t)v * H + j] * dz[v];
            gb1[j] += s;
            if (s != 0) {
                double *g = g1 + (size_t)j * V;
                for (int v = 0; v < V; v++) g[v] += s * z[v];
            }
        }
    }
    free(buf);
    return total * inv;
}

vt_status vt_bbadapter_train(vt_bbadapter *a, const float *x, const int32_t *y, uint32_t rows,
                             const vt_bbadapter_opts *o, uint64_t until, vt_error *err) {
    if (a->step >= until) return VT_OK;
    if (rows == 0) return vt_fail(err, VT_ERR_ARG, "bbtune adapter: no answer positions to train on");
    int batch = o->batch < 1 ? 1 : o->batch;
    if ((uint32_t)batch > rows) batch = (int)rows;
    double *g = malloc(a->n * sizeof *g);
    uint32_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!g || !idx) {
        free(g);
        free(idx);
        return vt_fail(err, VT_ERR_NOMEM, "bbtune adapter: out of memory");
    }
    vt_status st = VT_OK;
    for (; a->step < until; a->step++) {
        vt_bbtune_minibatch(a->seed, a->step, rows, batch, idx);
        double l = vt_bbadapter_loss_grad(a, x, y, idx, (size_t)batch, o->kl_weight, g);
        if (!isfinite(l)) {
            st = vt_fail(err, VT_ERR_RANGE, "bbtune adapter: loss %g at step %llu", l, (unsigned long long)a->step);
            break;
        }
        double t = (double)(a->step + 1);
        double c1 = 1 - pow(o->beta1, t), c2 = 1 - pow(o->beta2, t);
        for (size_t i = 0; i < a->n; i++) {
            a->m[i] = o->beta1 * a->m[i] + (1 - o->beta1) * g[i];
            a->v[i] = o->beta2 * a->v[i] + (1 - o->beta2) * g[i] * g[i];
            a->p[i] -= o->lr * (a->m[i] / c1) / (sqrt(a->v[i] / c2) + 1e-8);
        }
    }
    free(g);
    free(idx);
    return st;
}

void vt_bbadapter_eval(const vt_bbadapter *a, int V, const float *x, const int32_t *y, size_t n, double *ce_sum,
                       size_t *correct) {
    *ce_sum = 0;
    *correct = 0;
    if (n == 0) return;
    int H = a ? a->H : 0;
    double *z = malloc(((size_t)2 * V + (size_t)H) * sizeof *z);
    if (!z) {
        *ce_sum = NAN;
        return;
    }
    double *lp = z + V, *h = lp + V;
    for (size_t k = 0; k < n; k++) {
        const float *row = x + k * (size_t)V;
        if (a) vt_bbadapter_apply(a, row, z, h);
        else
            for (int v = 0; v < V; v++) z[v] = row[v];
        log_softmax(z, V, lp);
        int best = 0;
        for (int v = 1; v < V; v++) best = z[v] > z[best] ? v : best;
        *ce_sum += -lp[y[k]];
        *correct += best == y[k];
    }
    free(z);
}
