/* Black-box tuning loop over the scoring service (trainer/bbtune.h). */
#include "trainer/bbtune.h"

#include <stdlib.h>
#include <time.h>

#include "common/log.h"

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

vt_status vt_bbtune_objective(void *arg, const float *points, int npoints, float *values, vt_error *err) {
    vt_bbtune *t = arg;
    vt_serve_query q = t->batch;
    q.n_sets = npoints;
    q.ctx = points;
    int B = q.batch;
    float *loss = malloc((size_t)npoints * B * sizeof(float));
    uint32_t *count = malloc((size_t)B * sizeof(uint32_t));
    if (!loss || !count) {
        free(loss);
        free(count);
        return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    }
    vt_status st = VT_OK;
    for (int attempt = 0;; attempt++) {
        if (t->budget && t->used + (uint64_t)npoints > t->budget) {
            st = vt_fail(err, VT_ERR_RANGE, "bbtune: query budget: %llu of %llu used, %d more needed",
                         (unsigned long long)t->used, (unsigned long long)t->budget, npoints);
            break;
        }
        t->used += (uint64_t)npoints; /* counted when sent: the service may score it even if the reply is lost */
        st = vt_serve_client_score(t->client, &q, loss, count, err);
        if (st != VT_ERR_NET || attempt >= t->retries) break;
        vt_warn("bbtune: %s; reconnecting (attempt %d of %d)", err->msg, attempt + 1, t->retries);
        sleep_ms(t->retry_wait_ms);
        t->reconnects++;
        if ((st = vt_serve_client_reconnect(t->client, err))) break;
    }
    if (!st) {
        double total = 0;
        for (int b = 0; b < B; b++) total += count[b];
        if (total == 0) st = vt_fail(err, VT_ERR_ARG, "bbtune: the batch has no counted (answer) positions");
        for (int p = 0; p < npoints && !st; p++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += (double)loss[(size_t)p * B + b] * count[b];
            values[p] = (float)(s / total);
        }
    }
    free(loss);
    free(count);
    return st;
}

vt_status vt_bbtune_zo(vt_bbtune *t, vt_zo *z, float *ctx, int max_steps, int *steps, float *loss, vt_error *err) {
    *steps = 0;
    /* A step asks for all its q+1 queries in one objective call, so the
     * budget check there refuses a whole step before anything is sent. */
    for (int i = 0; i < max_steps; i++) {
        uint64_t before = t->used;
        vt_error e2 = {0};
        vt_status st = vt_zo_step(z, ctx, vt_bbtune_objective, t, loss, &e2);
        if (st == VT_ERR_RANGE && t->used == before && t->budget) break; /* budget reached: not an error */
        if (st) {
            *err = e2;
            return st;
        }
        (*steps)++;
    }
    return VT_OK;
}
