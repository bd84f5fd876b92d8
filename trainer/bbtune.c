/* Black-box tuning loop over the scoring service (trainer/bbtune.h). */
#include "trainer/bbtune.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/rng.h"

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

void vt_bbtune_share(int n, int ranks, int rank, int *lo, int *hi) {
    int base = n / ranks, extra = n % ranks;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra);
}

uint64_t vt_bbtune_retry_allowance(uint64_t slack, int ranks, int rank, uint64_t share, int retries) {
    uint64_t mine = slack / (uint64_t)ranks + ((uint64_t)rank < slack % (uint64_t)ranks);
    uint64_t cap = share * (uint64_t)(retries > 0 ? retries : 0);
    return mine < cap ? mine : cap;
}

void vt_bbtune_minibatch(uint64_t seed, uint64_t step, uint32_t n_items, int batch, uint32_t *out) {
    uint64_t spe = n_items / (uint32_t)batch, epoch = step / spe, k = step % spe;
    /* Fisher-Yates over the whole epoch; the items are few (tens to thousands). */
    uint32_t *perm = malloc((size_t)n_items * sizeof *perm);
    vt_rng r;
    vt_rng_init(&r, vt_hash4(seed, epoch, 0, 0xbb7));
    if (!perm) { /* no memory: fall back to a deterministic stride (never expected) */
        for (int i = 0; i < batch; i++) out[i] = (uint32_t)((k * (uint64_t)batch + (uint64_t)i) % n_items);
        return;
    }
    for (uint32_t i = 0; i < n_items; i++) perm[i] = i;
    for (uint32_t i = n_items - 1; i > 0; i--) {
        uint32_t j = (uint32_t)vt_rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memcpy(out, perm + k * (uint64_t)batch, (size_t)batch * sizeof *out);
    free(perm);
}

vt_status vt_bbtune_pick_ctx_ids(const int32_t *tokens, size_t n_tokens, int vocab, int image_token, int n,
                                 int32_t *out, vt_error *err) {
    uint8_t *seen = calloc((size_t)(vocab > 0 ? vocab : 1), 1);
    if (!seen) return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] >= 0 && tokens[i] < vocab) seen[tokens[i]] = 1;
    int k = 0;
    for (int id = vocab - 1; id >= 0 && k < n; id--)
        if (!seen[id] && id != image_token) out[k++] = id;
    free(seen);
    if (k < n)
        return vt_fail(err, VT_ERR_ARG, "bbtune: only %d of the vocabulary's %d ids are unused by the items, n_ctx is %d",
                       k, vocab, n);
    return VT_OK;
}

void vt_bbtune_prefix_row(const int32_t *ids, int n_ctx, int T, const int32_t *tok, const int32_t *tgt,
                          const uint8_t *mask, int32_t *otok, int32_t *otgt, uint8_t *omask, int32_t *len) {
    int Tin = T - n_ctx;
    for (int i = 0; i < n_ctx; i++) {
        otok[i] = ids[i];
        otgt[i] = i + 1 < n_ctx ? ids[i + 1] : tok[0];
        omask[i] = 0;
    }
    memcpy(otok + n_ctx, tok, (size_t)Tin * sizeof *otok);
    memcpy(otgt + n_ctx, tgt, (size_t)Tin * sizeof *otgt);
    memcpy(omask + n_ctx, mask, (size_t)Tin);
    *len += n_ctx;
}

uint64_t vt_bbtune_ledger_total(const uint64_t *base, const uint64_t *sent, int n) {
    uint64_t top = 0, sum = 0;
    for (int i = 0; i < n; i++)
        if (base[i] > top) top = base[i];
    for (int i = 0; i < n; i++)
        if (base[i] == top) sum += sent[i];
    return n ? top + sum : 0;
}
