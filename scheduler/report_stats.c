/* Statistics behind the report (see report_stats.h for definitions). */
#include "scheduler/report_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

vt_interval vt_wilson_interval(uint64_t k, uint64_t n, double z) {
    vt_interval ci = {0.0, 1.0};
    if (n == 0) return ci;
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double denom = 1.0 + z2 / nn;
    double centre = (p + z2 / (2.0 * nn)) / denom;
    double half = z * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn)) / denom;
    ci.lo = centre - half < 0.0 ? 0.0 : centre - half;
    ci.hi = centre + half > 1.0 ? 1.0 : centre + half;
    return ci;
}

/* log P[Bin(n, 1/2) = i] */
static double log_binom_half(uint64_t n, uint64_t i) {
    return lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) -
           (double)n * log(2.0);
}

double vt_mcnemar_exact_p(uint64_t b, uint64_t c) {
    uint64_t n = b + c, k = b < c ? b : c;
    if (n == 0) return 1.0;
    /* Sum the lower tail in log space, largest term last, to stay accurate. */
    double tail = 0.0;
    for (uint64_t i = 0; i <= k; i++) tail += exp(log_binom_half(n, i));
    double p = 2.0 * tail;
    return p > 1.0 ? 1.0 : p;
}

typedef struct {
    double p;
    size_t index;
} ranked;

static int by_p(const void *a, const void *b) {
    double x = ((const ranked *)a)->p, y = ((const ranked *)b)->p;
    if (x < y) return -1;
    if (x > y) return 1;
    /* Ties keep input order so the result is deterministic. */
    size_t i = ((const ranked *)a)->index, j = ((const ranked *)b)->index;
    return (i > j) - (i < j);
}

void vt_benjamini_hochberg(const double *p, size_t n, double *q) {
    if (n == 0) return;
    ranked *r = malloc(n * sizeof *r);
    if (!r) { /* no memory: the conservative answer */
        for (size_t i = 0; i < n; i++) q[i] = 1.0;
        return;
    }
    for (size_t i = 0; i < n; i++) r[i] = (ranked){p[i], i};
    qsort(r, n, sizeof *r, by_p);
    double running = 1.0;
    for (size_t k = n; k-- > 0;) {
        double v = r[k].p * (double)n / (double)(k + 1);
        if (v < running) running = v;
        q[r[k].index] = running;
    }
    free(r);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static vt_interval percentile_95(double *v, int reps) {
    qsort(v, (size_t)reps, sizeof *v, cmp_double);
    int lo = (int)floor(0.025 * (reps - 1)), hi = (int)ceil(0.975 * (reps - 1));
    return (vt_interval){v[lo], v[hi]};
}

double vt_paired_bootstrap(const float *before, const float *now, size_t n, int reps,
                           uint64_t seed, vt_interval *diff_ci) {
    if (n == 0 || reps <= 0) {
        if (diff_ci) *diff_ci = (vt_interval){0, 0};
        return 1.0;
    }
    double *diffs = malloc((size_t)reps * sizeof *diffs);
    if (!diffs) return 1.0;
    vt_rng rng;
    vt_rng_init(&rng, vt_hash4(seed, n, (uint64_t)reps, 0x6f6f7473ull));
    int below = 0, above = 0;
    for (int r = 0; r < reps; r++) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            size_t j = (size_t)vt_rng_below(&rng, n);
            sum += (double)now[j] - (double)before[j];
        }
        diffs[r] = sum / (double)n;
        below += diffs[r] <= 0.0;
        above += diffs[r] >= 0.0;
    }
    double p = 2.0 * (double)(below < above ? below : above) / reps;
    if (p > 1.0) p = 1.0;
    if (diff_ci) *diff_ci = percentile_95(diffs, reps);
    free(diffs);
    return p;
}

vt_interval vt_bootstrap_mean_interval(const float *scores, size_t n, int reps, uint64_t seed) {
    if (n == 0 || reps <= 0) return (vt_interval){0.0, 1.0};
    double *means = malloc((size_t)reps * sizeof *means);
    if (!means) return (vt_interval){0.0, 1.0};
    vt_rng rng;
    vt_rng_init(&rng, vt_hash4(seed, n, (uint64_t)reps, 0x6d65616eull));
    for (int r = 0; r < reps; r++) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) sum += scores[vt_rng_below(&rng, n)];
        means[r] = sum / (double)n;
    }
    vt_interval ci = percentile_95(means, reps);
    free(means);
    return ci;
}
