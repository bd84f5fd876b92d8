/* Learning-rate schedule: linear warmup from peak/warmup to peak over
 * `warmup_steps`, then cosine decay from peak to `floor` at `total_steps`
 * (held at floor afterwards). A pure function of the optimizer step, so a
 * resumed run needs nothing but the step. */
#ifndef VT_TRAINER_LR_SCHEDULE_H
#define VT_TRAINER_LR_SCHEDULE_H

#include <stdint.h>

#include "common/error.h"

typedef struct vt_lr_schedule {
    double peak;           /* > 0 */
    double floor;          /* 0 <= floor <= peak; LLaVA uses 0 */
    uint64_t warmup_steps; /* may be 0; LLaVA uses ceil(0.03 * total) */
    uint64_t total_steps;  /* > warmup_steps */
} vt_lr_schedule;

/* Checks the invariants above; the error names the offending value. */
vt_status vt_lr_schedule_check(const vt_lr_schedule *s, vt_error *err);

/* Learning rate for optimizer step `step` (0-based: the first update uses
 * step 0, which gets peak/warmup_steps when warming up). */
double vt_lr_at(const vt_lr_schedule *s, uint64_t step);

#endif
