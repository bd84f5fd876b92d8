/* Statistics for robustness reports: confidence intervals for a cell's
 * accuracy, paired tests between two runs on identical items, and
 * multiple-testing control across cells. */
#ifndef VT_REPORT_STATS_H
#define VT_REPORT_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct vt_interval {
    double lo, hi;
} vt_interval;

/* Wilson score interval for k successes in n trials at normal quantile z
 * (1.959964 for 95%). n = 0 gives [0, 1]. */
vt_interval vt_wilson_interval(uint64_t k, uint64_t n, double z);

/* Exact two-sided McNemar test: b = items right before and wrong now,
 * c = wrong before and right now. p = min(1, 2·P[Bin(b+c, ½) ≤ min(b,c)]);
 * 1 when b + c = 0. */
double vt_mcnemar_exact_p(uint64_t b, uint64_t c);

/* Benjamini–Hochberg adjusted p-values (q-values) for n tests, in the input
 * order: q_i = min over j with rank(p_j) ≥ rank(p_i) of p_j·n/rank(p_j), capped at 1. */
void vt_benjamini_hochberg(const double *p, size_t n, double *q);

/* Paired bootstrap of mean(now) − mean(before) over n paired scores:
 * resamples items with replacement `reps` times (seeded, deterministic).
 * Returns the two-sided p-value of "no difference" (share of resampled
 * differences on the far side of 0, doubled, capped at 1) and fills the 95%
 * percentile interval of the difference. */
double vt_paired_bootstrap(const float *before, const float *now, size_t n, int reps,
                           uint64_t seed, vt_interval *diff_ci);

/* Percentile-bootstrap 95% interval of a mean of scores in [0, 1] (for soft
 * scores, where Wilson does not apply). */
vt_interval vt_bootstrap_mean_interval(const float *scores, size_t n, int reps, uint64_t seed);

#endif
