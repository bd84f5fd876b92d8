/* Warmup + cosine learning-rate schedule (the LLaVA / HF "cosine" scheduler
 * with a floor). Kept in double so every rank computes the same value. */
#include "trainer/lr_schedule.h"

#include <math.h>

vt_status vt_lr_schedule_check(const vt_lr_schedule *s, vt_error *err) {
    if (!(s->peak > 0) || !isfinite(s->peak))
        return vt_fail(err, VT_ERR_ARG, "train.lr: must be a positive number (got %g)", s->peak);
    if (!(s->floor >= 0) || s->floor > s->peak)
        return vt_fail(err, VT_ERR_ARG, "train.min_lr: must be in [0, train.lr=%g] (got %g)", s->peak,
                       s->floor);
    if (s->total_steps == 0)
        return vt_fail(err, VT_ERR_ARG, "train.steps: must be > 0");
    if (s->warmup_steps >= s->total_steps && s->total_steps > 1)
        return vt_fail(err, VT_ERR_ARG, "train.warmup_steps: %llu must be < train.steps (%llu)",
                       (unsigned long long)s->warmup_steps, (unsigned long long)s->total_steps);
    return VT_OK;
}

double vt_lr_at(const vt_lr_schedule *s, uint64_t step) {
    if (step < s->warmup_steps) return s->peak * (double)(step + 1) / (double)s->warmup_steps;
    uint64_t span = s->total_steps > s->warmup_steps ? s->total_steps - s->warmup_steps : 1;
    double progress = (double)(step - s->warmup_steps) / (double)span;
    if (progress > 1.0) progress = 1.0;
    return s->floor + 0.5 * (s->peak - s->floor) * (1.0 + cos(M_PI * progress));
}
