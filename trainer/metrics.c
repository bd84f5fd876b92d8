/* Metrics sinks for the training loop: JSONL (the machine-readable record),
 * TensorBoard (for people) and the terminal. Throughput figures are computed
 * here from the raw counts the loop reports, so every sink agrees. */
#include "trainer/metrics.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "trainer/tensorboard.h"

struct vt_metrics {
    vt_metrics_config cfg;
    FILE *jsonl;
    char jsonl_path[PATH_MAX];
    vt_tb_writer *tb;
    bool tty;
    bool summarized;
    /* totals for the summary */
    uint64_t steps, last_step;
    double last_loss, seconds, stall, tokens, images;
};

double vt_peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

vt_status vt_metrics_open(const vt_metrics_config *cfg, vt_metrics **out, vt_error *err) {
    *out = NULL;
    if (cfg->log_every < 1) return vt_fail(err, VT_ERR_ARG, "metrics.log_every: must be >= 1");
    vt_status st = vt_mkdir_p(cfg->dir, err);
    if (st) return st;
    vt_metrics *m = calloc(1, sizeof *m);
    if (!m) return vt_fail(err, VT_ERR_NOMEM, "metrics: out of memory");
    m->cfg = *cfg;
    m->last_loss = NAN;
    if ((st = vt_path_join(m->jsonl_path, sizeof m->jsonl_path, cfg->dir, "metrics.jsonl", err))) goto fail;
    /* Append: a resumed run continues the same record (steps after the
     * checkpoint may appear twice; readers keep the last line per step). */
    m->jsonl = fopen(m->jsonl_path, "a");
    if (!m->jsonl) {
        st = vt_fail_errno(err, VT_ERR_IO, "%s: cannot open", m->jsonl_path);
        goto fail;
    }
    if (cfg->tensorboard) {
        char tbdir[PATH_MAX];
        if ((st = vt_path_join(tbdir, sizeof tbdir, cfg->dir, "tb", err))) goto fail;
        if ((st = vt_tb_open(tbdir, &m->tb, err))) goto fail;
    }
    m->tty = cfg->progress > 0 || (cfg->progress < 0 && isatty(STDERR_FILENO));
    *out = m;
    return VT_OK;
fail:
    vt_metrics_close(m);
    return st;
}

static void put_num(FILE *f, const char *key, double v) {
    if (isfinite(v)) {
        /* Shortest of %.15g / %.17g that reads back exactly: readable, and
         * equal curves compare equal as text. */
        char buf[40];
        snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
        fprintf(f, ",\"%s\":%s", key, buf);
    }
    else
        fprintf(f, ",\"%s\":null", key);
}

static void progress(vt_metrics *m, const vt_step_metrics *s, double tps) {
    uint64_t total = m->cfg.total_steps;
    double done = m->seconds, per = m->steps ? done / (double)m->steps : 0;
    double eta = total > s->step ? per * (double)(total - s->step) : 0;
    if (m->tty) {
        int width = 30, fill = total ? (int)(width * (double)s->step / (double)total) : 0;
        if (fill > width) fill = width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %llu/%llu loss %.4f lr %.2e %.0f tok/s eta %.0fs ", bar,
                (unsigned long long)s->step, (unsigned long long)total, s->loss, s->lr, tps, eta);
        if (s->step >= total) fputc('\n', stderr);
        fflush(stderr);
    } else if (s->step % (uint64_t)m->cfg.log_every == 0 || s->step >= total) {
        vt_info("step %llu/%llu loss %.4f lr %.3e grad_norm %.3f %.0f tok/s stall %.0f%% eta %.0fs",
                (unsigned long long)s->step, (unsigned long long)total, s->loss, s->lr, s->grad_norm, tps,
                s->step_seconds > 0 ? 100.0 * s->stall_seconds / s->step_seconds : 0.0, eta);
    }
}

vt_status vt_metrics_step(vt_metrics *m, const vt_step_metrics *s, vt_error *err) {
    double dt = s->step_seconds > 0 ? s->step_seconds : 1e-9;
    double tps = s->tokens / dt, ips = s->images / dt;
    double stall = s->step_seconds > 0 ? s->stall_seconds / s->step_seconds : 0;
    double rss = vt_peak_rss_mb();
    m->steps++;
    m->last_step = s->step;
    m->last_loss = s->loss;
    m->seconds += s->step_seconds;
    m->stall += s->stall_seconds;
    m->tokens += s->tokens;
    m->images += s->images;

    fprintf(m->jsonl, "{\"step\":%llu", (unsigned long long)s->step);
    put_num(m->jsonl, "loss", s->loss);
    put_num(m->jsonl, "lr", s->lr);
    put_num(m->jsonl, "grad_norm", s->grad_norm);
    put_num(m->jsonl, "tokens_per_s", tps);
    put_num(m->jsonl, "images_per_s", ips);
    put_num(m->jsonl, "data_stall", stall);
    put_num(m->jsonl, "step_s", s->step_seconds);
    put_num(m->jsonl, "peak_rss_mb", rss);
    if (s->device_mem_mb > 0) put_num(m->jsonl, "device_mem_mb", s->device_mem_mb);
    for (int i = 0; i < s->n_extra && i < 8; i++) put_num(m->jsonl, s->extra_names[i], s->extra[i]);
    fputs("}\n", m->jsonl);
    if (fflush(m->jsonl) != 0) return vt_fail_errno(err, VT_ERR_IO, "%s: write failed", m->jsonl_path);

    if (m->tb) {
        const char *tags[] = {"train/loss", "train/lr", "train/grad_norm", "perf/tokens_per_s",
                              "perf/images_per_s", "perf/data_stall", "mem/peak_rss_mb", "mem/device_mb"};
        float vals[] = {(float)s->loss, (float)s->lr, (float)s->grad_norm, (float)tps,
                        (float)ips, (float)stall, (float)rss, (float)s->device_mem_mb};
        int n = s->device_mem_mb > 0 ? 8 : 7;
        vt_status st = vt_tb_scalars(m->tb, (int64_t)s->step, n, tags, vals, err);
        if (st) return st;
        if (s->n_extra > 0) {
            float xv[8];
            int nx = s->n_extra < 8 ? s->n_extra : 8;
            for (int i = 0; i < nx; i++) xv[i] = (float)s->extra[i];
            if ((st = vt_tb_scalars(m->tb, (int64_t)s->step, nx, s->extra_names, xv, err))) return st;
        }
    }
    progress(m, s, tps);
    return VT_OK;
}

vt_status vt_metrics_eval(vt_metrics *m, uint64_t step, int n, const char *const *names,
                          const double *values, vt_error *err) {
    if (n < 1 || n > VT_TB_MAX_SCALARS) return vt_fail(err, VT_ERR_ARG, "metrics: %d eval values", n);
    fprintf(m->jsonl, "{\"step\":%llu,\"eval\":true", (unsigned long long)step);
    for (int i = 0; i < n; i++) put_num(m->jsonl, names[i], values[i]);
    fputs("}\n", m->jsonl);
    if (fflush(m->jsonl) != 0) return vt_fail_errno(err, VT_ERR_IO, "%s: write failed", m->jsonl_path);
    if (m->tb) {
        float vals[VT_TB_MAX_SCALARS];
        for (int i = 0; i < n; i++) vals[i] = (float)values[i];
        vt_status st = vt_tb_scalars(m->tb, (int64_t)step, n, names, vals, err);
        if (st) return st;
    }
    return VT_OK;
}

void vt_metrics_summary(vt_metrics *m) {
    if (!m || m->summarized) return;
    m->summarized = true;
    if (m->steps == 0) return;
    double dt = m->seconds > 0 ? m->seconds : 1e-9;
    vt_info("summary: %llu steps (to step %llu) in %.1fs, final loss %.4f, %.0f tokens/s, %.1f images/s, "
            "data stall %.1f%%, peak RSS %.0f MiB",
            (unsigned long long)m->steps, (unsigned long long)m->last_step, m->seconds, m->last_loss,
            m->tokens / dt, m->images / dt, 100.0 * m->stall / dt, vt_peak_rss_mb());
}

const char *vt_metrics_jsonl_path(const vt_metrics *m) { return m->jsonl_path; }
const char *vt_metrics_tb_path(const vt_metrics *m) { return m->tb ? vt_tb_path(m->tb) : NULL; }

void vt_metrics_close(vt_metrics *m) {
    if (!m) return;
    vt_metrics_summary(m);
    if (m->jsonl) {
        fflush(m->jsonl);
        fsync(fileno(m->jsonl));
        fclose(m->jsonl);
    }
    if (m->tb) {
        vt_tb_flush(m->tb, NULL);
        vt_tb_close(m->tb);
    }
    free(m);
}
