/* CMA-ES after N. Hansen, "The CMA Evolution Strategy: A Tutorial" (2016),
 * with the default strategy parameters; the covariance is decomposed by
 * cyclic Jacobi (n is small: an intrinsic dimension of tens). */
#include "trainer/cmaes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

struct vt_cmaes {
    int n, lambda, mu;
    double bound, sigma, mueff, cc, cs, c1, cmu, damps, chin;
    double *w, *mean, *pc, *ps, *C, *B, *Dg, *z, *y, *pop, *tmp;
    int *order;
    long gen, eigen_gen;
    vt_rng rng;
};

const double *vt_cmaes_mean(const vt_cmaes *es) { return es->mean; }
double vt_cmaes_sigma(const vt_cmaes *es) { return es->sigma; }
long vt_cmaes_generation(const vt_cmaes *es) { return es->gen; }
int vt_cmaes_lambda(const vt_cmaes *es) { return es->lambda; }

void vt_cmaes_free(vt_cmaes *es) {
    if (!es) return;
    free(es->w);
    free(es->mean);
    free(es->pc);
    free(es->ps);
    free(es->C);
    free(es->B);
    free(es->Dg);
    free(es->z);
    free(es->y);
    free(es->pop);
    free(es->tmp);
    free(es->order);
    free(es);
}

vt_status vt_cmaes_create(vt_cmaes **out, int n, const double *x0, const vt_cmaes_options *opt, vt_error *err) {
    *out = NULL;
    if (n < 1 || n > 2048 || !(opt->sigma0 > 0))
        return vt_fail(err, VT_ERR_ARG, "cmaes: need 1 <= n <= 2048 and sigma0 > 0 (n %d, sigma0 %g)", n, opt->sigma0);
    vt_cmaes *es = calloc(1, sizeof *es);
    if (!es) return vt_fail(err, VT_ERR_NOMEM, "cmaes: out of memory");
    es->n = n;
    es->lambda = opt->lambda > 0 ? opt->lambda : 4 + (int)floor(3 * log(n));
    if (es->lambda < 2) es->lambda = 2;
    es->mu = es->lambda / 2;
    es->bound = opt->bound;
    es->sigma = opt->sigma0;
    size_t nn = (size_t)n * n, ln = (size_t)es->lambda * n;
    es->w = calloc((size_t)es->mu, sizeof(double));
    es->mean = calloc((size_t)n, sizeof(double));
    es->pc = calloc((size_t)n, sizeof(double));
    es->ps = calloc((size_t)n, sizeof(double));
    es->C = calloc(nn, sizeof(double));
    es->B = calloc(nn, sizeof(double));
    es->Dg = calloc((size_t)n, sizeof(double));
    es->z = calloc(ln, sizeof(double));
    es->y = calloc(ln, sizeof(double));
    es->pop = calloc(ln, sizeof(double));
    es->tmp = calloc(nn + (size_t)n, sizeof(double));
    es->order = calloc((size_t)es->lambda, sizeof(int));
    if (!es->w || !es->mean || !es->pc || !es->ps || !es->C || !es->B || !es->Dg || !es->z || !es->y || !es->pop ||
        !es->tmp || !es->order) {
        vt_cmaes_free(es);
        return vt_fail(err, VT_ERR_NOMEM, "cmaes: out of memory for n = %d", n);
    }
    double sw = 0, sw2 = 0;
    for (int i = 0; i < es->mu; i++) {
        es->w[i] = log(es->mu + 0.5) - log(i + 1.0);
        sw += es->w[i];
    }
    for (int i = 0; i < es->mu; i++) {
        es->w[i] /= sw;
        sw2 += es->w[i] * es->w[i];
    }
    es->mueff = 1.0 / sw2;
    double N = n, me = es->mueff;
    es->cc = (4 + me / N) / (N + 4 + 2 * me / N);
    es->cs = (me + 2) / (N + me + 5);
    es->c1 = 2 / ((N + 1.3) * (N + 1.3) + me);
    es->cmu = fmin(1 - es->c1, 2 * (me - 2 + 1 / me) / ((N + 2) * (N + 2) + me));
    es->damps = 1 + 2 * fmax(0, sqrt((me - 1) / (N + 1)) - 1) + es->cs;
    es->chin = sqrt(N) * (1 - 1 / (4 * N) + 1 / (21 * N * N));
    for (int i = 0; i < n; i++) {
        es->mean[i] = x0 ? x0[i] : 0;
        es->C[(size_t)i * n + i] = es->B[(size_t)i * n + i] = es->Dg[i] = 1;
    }
    vt_rng_init(&es->rng, vt_hash4(opt->seed, 0xc3a, 0, 0));
    *out = es;
    return VT_OK;
}

/* C = B diag(D^2) B^T by cyclic Jacobi rotations on a copy of C. */
static void eigen(vt_cmaes *es) {
    int n = es->n;
    double *A = es->tmp, *V = es->B;
    memcpy(A, es->C, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) V[(size_t)i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += A[(size_t)p * n + q] * A[(size_t)p * n + q];
        if (off < 1e-30) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[(size_t)p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (A[(size_t)q * n + q] - A[(size_t)p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* A = J^T A J */
                    double akp = A[(size_t)k * n + p], akq = A[(size_t)k * n + q];
                    A[(size_t)k * n + p] = c * akp - s * akq;
                    A[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = A[(size_t)p * n + k], aqk = A[(size_t)q * n + k];
                    A[(size_t)p * n + k] = c * apk - s * aqk;
                    A[(size_t)q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = V[(size_t)k * n + p], vkq = V[(size_t)k * n + q];
                    V[(size_t)k * n + p] = c * vkp - s * vkq;
                    V[(size_t)k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) es->Dg[i] = sqrt(fmax(A[(size_t)i * n + i], 1e-20));
}

void vt_cmaes_ask(vt_cmaes *es, double *pop) {
    int n = es->n;
    for (int k = 0; k < es->lambda; k++) {
        double *z = es->z + (size_t)k * n, *y = es->y + (size_t)k * n, *x = es->pop + (size_t)k * n;
        for (int i = 0; i < n; i++) z[i] = vt_rng_normal(&es->rng);
        for (int i = 0; i < n; i++) { /* y = B D z */
            double a = 0;
            for (int j = 0; j < n; j++) a += es->B[(size_t)i * n + j] * es->Dg[j] * z[j];
            y[i] = a;
        }
        for (int i = 0; i < n; i++) {
            x[i] = es->mean[i] + es->sigma * y[i];
            if (es->bound > 0 && fabs(x[i]) > es->bound) {
                /* clip and keep y consistent with the point actually scored */
                x[i] = x[i] > 0 ? es->bound : -es->bound;
                y[i] = (x[i] - es->mean[i]) / es->sigma;
            }
        }
    }
    memcpy(pop, es->pop, (size_t)es->lambda * n * sizeof(double));
}

vt_status vt_cmaes_tell(vt_cmaes *es, const double *fitness, vt_error *err) {
    int n = es->n;
    for (int k = 0; k < es->lambda; k++) {
        if (!isfinite(fitness[k])) return vt_fail(err, VT_ERR_RANGE, "cmaes: fitness of member %d is not finite", k);
        int j = k; /* stable insertion sort: lambda is tens */
        while (j > 0 && fitness[es->order[j - 1]] > fitness[k]) {
            es->order[j] = es->order[j - 1];
            j--;
        }
        es->order[j] = k;
    }
    double *yw = es->tmp + (size_t)n * n;
    for (int i = 0; i < n; i++) {
        double a = 0;
        for (int k = 0; k < es->mu; k++) a += es->w[k] * es->y[(size_t)es->order[k] * n + i];
        yw[i] = a;
        es->mean[i] += es->sigma * a;
    }
    /* C^{-1/2} yw = B D^{-1} B^T yw */
    double *t = es->tmp; /* n scratch values (tmp is rebuilt by the next eigen) */
    for (int j = 0; j < n; j++) {
        double a = 0;
        for (int i = 0; i < n; i++) a += es->B[(size_t)i * n + j] * yw[i];
        t[j] = a / es->Dg[j];
    }
    double psn = 0, cs = es->cs;
    for (int i = 0; i < n; i++) {
        double a = 0;
        for (int j = 0; j < n; j++) a += es->B[(size_t)i * n + j] * t[j];
        es->ps[i] = (1 - cs) * es->ps[i] + sqrt(cs * (2 - cs) * es->mueff) * a;
        psn += es->ps[i] * es->ps[i];
    }
    psn = sqrt(psn);
    es->gen++;
    double hs = psn / sqrt(1 - pow(1 - cs, 2.0 * es->gen)) / es->chin < 1.4 + 2.0 / (n + 1);
    double cc = es->cc, c1 = es->c1, cmu = es->cmu;
    for (int i = 0; i < n; i++) es->pc[i] = (1 - cc) * es->pc[i] + hs * sqrt(cc * (2 - cc) * es->mueff) * yw[i];
    double dh = (1 - hs) * cc * (2 - cc);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double r = 0;
            for (int k = 0; k < es->mu; k++) {
                const double *y = es->y + (size_t)es->order[k] * n;
                r += es->w[k] * y[i] * y[j];
            }
            double c = (1 - c1 - cmu) * es->C[(size_t)i * n + j] + c1 * (es->pc[i] * es->pc[j] + dh * es->C[(size_t)i * n + j]) +
                       cmu * r;
            es->C[(size_t)i * n + j] = es->C[(size_t)j * n + i] = c;
        }
    es->sigma *= exp(cs / es->damps * (psn / es->chin - 1));
    eigen(es);
    return VT_OK;
}

void vt_subspace_map(uint64_t seed, size_t D, int n, const float *x0, const double *z, float *x) {
    for (size_t j = 0; j < D; j++) {
        vt_rng r;
        vt_rng_init(&r, vt_hash4(seed, j, 0x5b5, 0));
        double a = x0 ? x0[j] : 0;
        for (int k = 0; k < n; k++) a += vt_rng_normal(&r) * z[k];
        x[j] = (float)a;
    }
}

vt_cmaes_state vt_cmaes_get_state(vt_cmaes *es) {
    return (vt_cmaes_state){.gen = es->gen, .sigma = es->sigma, .rng = es->rng, .mean = es->mean, .pc = es->pc,
                            .ps = es->ps, .C = es->C, .B = es->B, .D = es->Dg};
}

void vt_cmaes_set_state(vt_cmaes *es, long gen, double sigma, const vt_rng *rng) {
    es->gen = gen;
    es->sigma = sigma;
    es->rng = *rng;
}
