/* Training metrics, rank 0 only: one JSON object per optimizer step in
 * DIR/metrics.jsonl, the same scalars in TensorBoard event files under
 * DIR/tb/, a progress bar when stderr is a terminal (plain periodic lines
 * otherwise) and a short summary at the end.
 *
 * JSONL keys (per step): step, loss, lr, grad_norm, tokens_per_s, images_per_s,
 * data_stall (fraction of the step's wall time spent waiting for batches),
 * step_s, peak_rss_mb, and device_mem_mb when a device reports it, then any
 * recipe values by their names (e.g. "vittle/kl_v").
 * Validation lines carry "eval": true plus caller-named values. Non-finite
 * numbers are written as null (JSON has no NaN). */
#ifndef VT_TRAINER_METRICS_H
#define VT_TRAINER_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_metrics vt_metrics;

typedef struct vt_metrics_config {
    const char *dir;      /* created if needed */
    bool tensorboard;     /* also write DIR/tb/events.out.tfevents.* */
    int log_every;        /* plain-line / progress refresh period in steps (>= 1) */
    uint64_t total_steps; /* for the progress bar and ETA */
    uint64_t first_step;  /* step the run starts (or resumes) at */
    int progress;         /* -1 auto (isatty(stderr)), 0 never, 1 always */
} vt_metrics_config;

typedef struct vt_step_metrics {
    uint64_t step;          /* optimizer steps completed after this update */
    double loss;
    double lr;
    double grad_norm;       /* before clipping */
    double tokens;          /* supervised + context tokens processed this step, all ranks */
    double images;          /* images this step, all ranks */
    double step_seconds;    /* wall time of the step */
    double stall_seconds;   /* part of it spent waiting for data */
    double device_mem_mb;   /* peak device memory, <= 0 when not applicable */
    int n_extra;            /* named values a recipe adds (JSONL key = TensorBoard tag = name) */
    const char *extra_names[8];
    double extra[8];
} vt_step_metrics;

vt_status vt_metrics_open(const vt_metrics_config *cfg, vt_metrics **out, vt_error *err);
/* Writes the summary (if not yet) and closes; NULL is fine. */
void vt_metrics_close(vt_metrics *m);

vt_status vt_metrics_step(vt_metrics *m, const vt_step_metrics *s, vt_error *err);
/* A validation result: n named values at `step` ("eval/loss",
 * "eval/acc/color", ...), as one JSONL line and TensorBoard scalars. */
vt_status vt_metrics_eval(vt_metrics *m, uint64_t step, int n, const char *const *names,
                          const double *values, vt_error *err);
/* One line: steps, final loss, mean throughput, stall fraction, peak RSS. */
void vt_metrics_summary(vt_metrics *m);
/* Paths for the end-of-run message. */
const char *vt_metrics_jsonl_path(const vt_metrics *m);
const char *vt_metrics_tb_path(const vt_metrics *m); /* NULL without TensorBoard */

/* Peak resident set size of this process in MiB (getrusage). */
double vt_peak_rss_mb(void);

#endif
