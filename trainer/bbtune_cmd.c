/* `vistune bbtune RUN.yaml`: black-box tuning of context vectors through a
 * running `vistune serve` (DESIGN.md §4, docs/blackbox.md). Every rank holds
 * the same items, context and optimiser state; a round of work (the q+1
 * evaluations of a ZO step, a CMA-ES population, an evaluation pass) is cut
 * into contiguous shares, each rank scores its share on the service, and the
 * values are gathered so every rank takes the identical update. Directions,
 * minibatches and populations come from counter-based RNG keyed by the seed
 * and the step, never by the rank, so the result does not depend on the rank
 * count. The query budget is global: a round is only started when the budget
 * can pay for it plus what is reserved for the final evaluation, and retries
 * are paid from the slack dealt out per rank. */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/leak_check.h"
#include "common/log.h"
#include "common/rng.h"
#include "pipeline/dataset.h"
#include "proto/sample.pb-c.h"
#include "trainer/bbadapter.h"
#include "trainer/bbtune.h"
#include "trainer/checkpoint.h"
#include "trainer/cmaes.h"
#include "trainer/heldout.h"
#include "trainer/safetensors.h"
#include "trainer/run_args.h"
#include "trainer/signals.h"
#include "trainer/whitebox.h"
#include "trainer/zeroth_order.h"

enum { METHOD_CBBT = 0, METHOD_CRAFT = 1, METHOD_WHITEBOX = 2, MAX_CTX = 64, MAX_GROUPS = 64, MAX_COSQ = 16 };
static const char *const METHODS[] = {"cbbt", "craft", "whitebox"};
static const char *const SPLITS[] = {"all", "train", "val", "test"};

typedef struct bb_config {
    const char *run_dir;
    int64_t seed;
    const char *endpoint, *endpoint_file, *server_key, *client_key;
    int64_t timeout_ms, retries, retry_wait_ms;
    int method;
    int64_t n_ctx;
    int32_t ctx_ids[MAX_CTX];
    int n_ctx_ids; /* given in the config; 0 = pick unused ids */
    double init_std;
    int64_t budget, steps, batch, items, eval_items, seq_len;
    int split;
    int64_t ckpt_every, keep_last, log_every;
    int64_t q;
    double lr, clip, eps, momentum, beta1, beta2;
    int64_t craft_dim, craft_pop;
    double craft_sigma, craft_bound;
    bool ad_enabled;
    int64_t ad_hidden, ad_steps, ad_batch;
    double ad_lr, ad_kl;
    bool logits;               /* evaluations fetch the answer logits (accuracy, exact match) */
    uint32_t groups[MAX_GROUPS];
    int n_groups;              /* 0 = items of every group */
    const char *wb_checkpoint; /* whitebox: the model, run in-process */
    int64_t wb_threads;
    int64_t cos_q[MAX_COSQ];
    int n_cos_q;               /* whitebox: ZO-vs-true-gradient cosines for these q */
    int64_t cos_seeds;
    vt_dataset_config data;
} bb_config;

/* One unit of work: the mean answer loss of `point` on rows items[0..n). */
typedef struct unit {
    const float *point;
    const uint32_t *items;
    int n;
} unit;

typedef struct bb {
    bb_config c;
    vt_config *cfg;
    const char *cfg_text;
    size_t cfg_len;
    MPI_Comm comm;
    int rank, ranks;
    vt_serve_client *client;
    vt_whitebox *wb; /* method whitebox: the local model instead of the service */
    vt_serve_stats ss;
    int hidden, T, S, B;
    size_t D;
    /* rows: n_train tuning items, then n_eval held-out items */
    uint32_t n_train, n_eval;
    int32_t *tok, *tgt, *len;
    uint8_t *mask;
    float *pix; /* NULL for text-only rows */
    uint32_t *cnt;
    int32_t ctx_ids[MAX_CTX];
    /* request scratch */
    int32_t *q_tok, *q_tgt, *q_len;
    uint8_t *q_mask;
    float *q_pix, *q_pts, *q_loss;
    uint32_t *q_cnt;
    /* state */
    float *ctx, *ctx0;
    vt_zo *zo;
    vt_cmaes *es;
    double *pop, *fit;
    float *pts;
    uint32_t *mb, *eval_train, *eval_held;
    unit *units;
    uint64_t step, used, eval_cost, step_cost;
    double loss0, eval0; /* before tuning (NAN when not measured) */
    int reconnects;
    int budget_hit; /* the last round failed for want of budget (same on every rank) */
    bool resumed;
    char root[PATH_MAX], ckpt_root[PATH_MAX], ledger_dir[PATH_MAX];
    uint64_t ledger_base;
    FILE *log;
    /* output adapter (bbtune.adapter): the answer positions' logits of every
     * row, gathered by the evaluations that ask for them */
    vt_bbadapter *ad;
    int V;
    int want_logits;        /* the current round asks for logits (evaluations only) */
    size_t *lg_off;         /* [rows + 1] first answer position of each row */
    float *lg;              /* [positions, V] */
    int32_t *lg_y;          /* [positions] the answers */
    float *q_lg;            /* one request's logits */
    size_t q_lg_cap;
    double acc0, eval_acc0; /* answer-token accuracy of the starting context (NAN when not measured) */
    double em0, eval_em0;   /* whole-answer exact match of the starting context (NAN when not measured) */
    float *wb_grad;         /* whitebox: the true gradient, D floats */
} bb;

/* ---------------- config ---------------- */

static vt_status read_config(const vt_config *c, bb_config *b, vt_error *err) {
    memset(b, 0, sizeof *b);
    b->run_dir = "runs/default";
    b->seed = 1;
    b->timeout_ms = 30000;
    b->retries = 5;
    b->retry_wait_ms = 500;
    b->n_ctx = 4;
    b->budget = 8000;
    b->steps = 1000;
    b->batch = 0; /* min(8, service max_batch, items) */
    b->items = 64;
    b->split = 1;
    b->seq_len = 128;
    b->ckpt_every = 20;
    b->keep_last = 2;
    b->log_every = 10;
    b->q = 32;
    b->lr = 2e-3;
    b->clip = 5;
    b->beta1 = 0.9;
    b->beta2 = 0.999;
    b->craft_dim = 16;
    b->craft_sigma = 0.1;
    b->craft_bound = 5;
    b->ad_hidden = 64;
    b->ad_steps = 300;
    b->ad_batch = 32;
    b->ad_lr = 1e-3;
    b->ad_kl = 1e-3;
    b->wb_threads = 1;
    b->cos_seeds = 3;
    vt_dataset_config_default(&b->data);
    vt_status st;
#define TRY(x)                          \
    do {                                \
        if ((st = (x)) != VT_OK) return st; \
    } while (0)
    TRY(vt_config_string(c, "run_dir", &b->run_dir, err));
    TRY(vt_config_int(c, "seed", &b->seed, err));
    TRY(vt_dataset_config_read(c, &b->data, err));
    TRY(vt_config_int_range(c, "data.seq_len", 2, 1 << 20, &b->seq_len, err));
    if (!vt_config_has(c, "bbtune"))
        return vt_fail(err, VT_ERR_ARG, "%s: no bbtune section (docs/blackbox.md lists its keys)", vt_config_name(c));
    TRY(vt_config_int(c, "bbtune.seed", &b->seed, err));
    TRY(vt_config_string(c, "bbtune.endpoint", &b->endpoint, err));
    TRY(vt_config_string(c, "bbtune.endpoint_file", &b->endpoint_file, err));
    TRY(vt_config_string(c, "bbtune.server_key", &b->server_key, err));
    TRY(vt_config_string(c, "bbtune.client_key", &b->client_key, err));
    TRY(vt_config_int_range(c, "bbtune.timeout_ms", 1, 3600000, &b->timeout_ms, err));
    TRY(vt_config_int_range(c, "bbtune.retries", 0, 1000, &b->retries, err));
    TRY(vt_config_int_range(c, "bbtune.retry_wait_ms", 0, 600000, &b->retry_wait_ms, err));
    TRY(vt_config_enum(c, "bbtune.method", METHODS, 3, &b->method, err));
    TRY(vt_config_int_range(c, "bbtune.n_ctx", 1, MAX_CTX, &b->n_ctx, err));
    int nid = vt_config_len(c, "bbtune.ctx_token_ids", err);
    if (nid == -2) return err->code;
    if (nid >= 0) {
        if (nid != b->n_ctx)
            return vt_fail(err, VT_ERR_ARG, "%s: bbtune.ctx_token_ids has %d ids, n_ctx is %lld", vt_config_name(c), nid,
                           (long long)b->n_ctx);
        for (int i = 0; i < nid; i++) {
            char path[64];
            int64_t v = 0;
            snprintf(path, sizeof path, "bbtune.ctx_token_ids[%d]", i);
            TRY(vt_config_int_range(c, path, 0, INT32_MAX, &v, err));
            b->ctx_ids[i] = (int32_t)v;
        }
        b->n_ctx_ids = nid;
    }
    TRY(vt_config_double(c, "bbtune.init_std", &b->init_std, err));
    TRY(vt_config_int_range(c, "bbtune.budget", 0, INT64_C(1) << 50, &b->budget, err));
    TRY(vt_config_int_range(c, "bbtune.steps", 0, INT64_C(1) << 40, &b->steps, err));
    TRY(vt_config_int_range(c, "bbtune.batch", 0, 1 << 16, &b->batch, err));
    TRY(vt_config_int_range(c, "bbtune.items", 0, UINT32_MAX, &b->items, err));
    TRY(vt_config_int_range(c, "bbtune.eval_items", 0, UINT32_MAX, &b->eval_items, err));
    TRY(vt_config_enum(c, "bbtune.split", SPLITS, 4, &b->split, err));
    TRY(vt_config_int_range(c, "bbtune.seq_len", 2, 1 << 20, &b->seq_len, err));
    TRY(vt_config_int_range(c, "bbtune.checkpoint_every", 1, INT64_C(1) << 40, &b->ckpt_every, err));
    TRY(vt_config_int_range(c, "bbtune.keep_last", 1, 1 << 20, &b->keep_last, err));
    TRY(vt_config_int_range(c, "bbtune.log_every", 1, 1 << 30, &b->log_every, err));
    TRY(vt_config_int_range(c, "bbtune.zo.q", 1, 1 << 20, &b->q, err));
    TRY(vt_config_double(c, "bbtune.zo.lr", &b->lr, err));
    TRY(vt_config_double(c, "bbtune.zo.clip", &b->clip, err));
    TRY(vt_config_double(c, "bbtune.zo.eps", &b->eps, err));
    TRY(vt_config_double(c, "bbtune.zo.momentum", &b->momentum, err));
    TRY(vt_config_double(c, "bbtune.zo.beta1", &b->beta1, err));
    TRY(vt_config_double(c, "bbtune.zo.beta2", &b->beta2, err));
    TRY(vt_config_int_range(c, "bbtune.craft.dim", 1, 2048, &b->craft_dim, err));
    TRY(vt_config_int_range(c, "bbtune.craft.population", 0, 1 << 16, &b->craft_pop, err));
    TRY(vt_config_double(c, "bbtune.craft.sigma", &b->craft_sigma, err));
    TRY(vt_config_double(c, "bbtune.craft.bound", &b->craft_bound, err));
    TRY(vt_config_bool(c, "bbtune.adapter.enabled", &b->ad_enabled, err));
    TRY(vt_config_int_range(c, "bbtune.adapter.hidden", 1, 1 << 16, &b->ad_hidden, err));
    TRY(vt_config_int_range(c, "bbtune.adapter.steps", 0, INT64_C(1) << 40, &b->ad_steps, err));
    TRY(vt_config_int_range(c, "bbtune.adapter.batch", 1, 1 << 24, &b->ad_batch, err));
    TRY(vt_config_double(c, "bbtune.adapter.lr", &b->ad_lr, err));
    TRY(vt_config_double(c, "bbtune.adapter.kl_weight", &b->ad_kl, err));
    b->logits = b->ad_enabled;
    TRY(vt_config_bool(c, "bbtune.logits", &b->logits, err));
    int ng = vt_config_len(c, "bbtune.groups", err);
    if (ng == -2) { /* a scalar: one group (so that --set bbtune.groups=8 works) */
        int64_t v = 0;
        *err = (vt_error){0};
        TRY(vt_config_int_range(c, "bbtune.groups", 0, UINT32_MAX, &v, err));
        b->groups[0] = (uint32_t)v;
        b->n_groups = 1;
    }
    if (ng > MAX_GROUPS)
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.groups: at most %d groups", vt_config_name(c), MAX_GROUPS);
    for (int i = 0; i < ng; i++) {
        char path[64];
        int64_t v = 0;
        snprintf(path, sizeof path, "bbtune.groups[%d]", i);
        TRY(vt_config_int_range(c, path, 0, UINT32_MAX, &v, err));
        b->groups[i] = (uint32_t)v;
    }
    if (ng >= 0) b->n_groups = ng;
    TRY(vt_config_string(c, "bbtune.whitebox.checkpoint", &b->wb_checkpoint, err));
    TRY(vt_config_int_range(c, "bbtune.whitebox.threads", 0, 1024, &b->wb_threads, err));
    TRY(vt_config_int_range(c, "bbtune.whitebox.cosine_seeds", 1, 1000, &b->cos_seeds, err));
    int nq = vt_config_len(c, "bbtune.whitebox.cosine_q", err);
    if (nq == -2) return err->code;
    if (nq > MAX_COSQ)
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.whitebox.cosine_q: at most %d values", vt_config_name(c), MAX_COSQ);
    for (int i = 0; i < nq; i++) {
        char path[64];
        snprintf(path, sizeof path, "bbtune.whitebox.cosine_q[%d]", i);
        TRY(vt_config_int_range(c, path, 1, 1 << 16, &b->cos_q[i], err));
    }
    b->n_cos_q = nq > 0 ? nq : 0;
#undef TRY
    const char *name = vt_config_name(c);
    if (b->method == METHOD_WHITEBOX) {
        if (!b->wb_checkpoint || b->endpoint || b->endpoint_file)
            return vt_fail(err, VT_ERR_ARG,
                           "%s: bbtune.method whitebox runs the model itself: give bbtune.whitebox.checkpoint, "
                           "and no endpoint",
                           name);
    } else if (!b->endpoint == !b->endpoint_file) {
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune: give exactly one of endpoint and endpoint_file", name);
    } else if (b->wb_checkpoint || b->n_cos_q) {
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.whitebox.* keys need bbtune.method whitebox", name);
    }
    if (b->client_key && !b->server_key)
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.client_key needs bbtune.server_key", name);
    if (!(b->lr > 0) || !(b->momentum >= 0 && b->momentum < 1) || !(b->beta1 >= 0 && b->beta1 < 1) ||
        !(b->beta2 >= 0 && b->beta2 < 1) || !(b->eps >= 0) || !(b->clip >= 0))
        return vt_fail(err, VT_ERR_ARG,
                       "%s: bbtune.zo: need lr > 0, momentum/beta1/beta2 in [0, 1), eps >= 0 and clip >= 0", name);
    if (!(b->craft_sigma > 0) || !(b->craft_bound >= 0))
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.craft: need sigma > 0 and bound >= 0", name);
    if (!(b->ad_lr > 0) || !isfinite(b->ad_lr) || !(b->ad_kl >= 0) || !isfinite(b->ad_kl))
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.adapter: need lr > 0 and kl_weight >= 0", name);
    if (!(b->init_std >= 0) || !isfinite(b->init_std))
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.init_std must be >= 0", name);
    if (b->seq_len <= b->n_ctx + 1)
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.seq_len %lld leaves no room after %lld context tokens", name,
                       (long long)b->seq_len, (long long)b->n_ctx);
    /* One run file serves every command: their sections are checked by them. */
    static const char *const others[] = {"data", "train", "checkpoint", "metrics", "model", "recipe", "slurm",
                                         "eval", "vittle", "ross", "icl", "autoencoder", NULL};
    for (int i = 0; others[i]; i++) vt_config_mark_used(c, others[i]);
    return vt_config_check_unused(c, err);
}

/* ---------------- helpers ---------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* All ranks agree on a status: the worst code wins; a rank that was fine
 * gets a message saying another failed. */
static vt_status agree(bb *r, vt_status st, vt_error *err) {
    int local = (int)st, global = 0;
    MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, r->comm);
    if (global && !st) vt_fail(err, (vt_status)global, "bbtune: another rank failed (its message is above)");
    return (vt_status)global;
}

/* Before every request: this rank's ledger entry (see vt_bbtune_ledger_total). */
static vt_status ledger_write(bb *r, uint64_t sent, vt_error *err) {
    char path[PATH_MAX + 32], line[96];
    snprintf(path, sizeof path, "%s/rank-%d", r->ledger_dir, r->rank);
    int n = snprintf(line, sizeof line, "base %" PRIu64 " sent %" PRIu64 "\n", r->ledger_base, sent);
    return vt_write_file_atomic(path, line, (size_t)n, err);
}

/* Rank 0: what the ledger files say was sent (0 when there are none). */
static vt_status ledger_read(bb *r, uint64_t *total, vt_error *err) {
    *total = 0;
    DIR *d = opendir(r->ledger_dir);
    if (!d) return VT_OK;
    uint64_t base[1024], sent[1024];
    int n = 0;
    vt_status st = VT_OK;
    for (struct dirent *e; (e = readdir(d)) && n < 1024 && !st;) {
        if (strncmp(e->d_name, "rank-", 5)) continue;
        char path[PATH_MAX + 300], *text;
        size_t len;
        snprintf(path, sizeof path, "%s/%s", r->ledger_dir, e->d_name);
        if ((st = vt_read_file(path, 4096, &text, &len, err))) break;
        unsigned long long b, s;
        if (sscanf(text, "base %llu sent %llu", &b, &s) != 2)
            st = vt_fail(err, VT_ERR_FORMAT, "%s: not a bbtune ledger line", path);
        base[n] = b, sent[n] = s, n++;
        free(text);
    }
    closedir(d);
    if (!st) *total = vt_bbtune_ledger_total(base, sent, n);
    return st;
}

/* Gathers rows into the request scratch and scores k points on them, with
 * retries; *sent counts every query sent, and a send that would pass
 * `allow` is refused instead. values get count-weighted mean losses. */
/* The request rows of items[0..n) in the scratch, as one query of k sets
 * at `points` (k * D floats). */
static vt_serve_query gather_rows(bb *r, const uint32_t *items, int n, const float *points, int k) {
    int T = r->T;
    size_t pix = (size_t)3 * r->S * r->S;
    for (int b = 0; b < n; b++) {
        uint32_t i = items[b];
        memcpy(r->q_tok + (size_t)b * T, r->tok + (size_t)i * T, (size_t)T * sizeof(int32_t));
        memcpy(r->q_tgt + (size_t)b * T, r->tgt + (size_t)i * T, (size_t)T * sizeof(int32_t));
        memcpy(r->q_mask + (size_t)b * T, r->mask + (size_t)i * T, (size_t)T);
        r->q_len[b] = r->len[i];
        if (r->pix) memcpy(r->q_pix + b * pix, r->pix + i * pix, pix * sizeof(float));
    }
    return (vt_serve_query){.n_ctx = (int)r->c.n_ctx, .ctx_token_ids = r->ctx_ids, .n_sets = k, .ctx = points,
                            .batch = n, .seq_len = T, .tokens = r->q_tok, .targets = r->q_tgt, .loss_mask = r->q_mask,
                            .lengths = r->q_len, .pixels = r->pix ? r->q_pix : NULL, .image_size = r->S,
                            .hidden = r->hidden};
}

static vt_status score_group(bb *r, const unit *u, int k, uint64_t allow, uint64_t *sent, float *values,
                             vt_error *err) {
    int n = u->n;
    for (int p = 0; p < k; p++) memcpy(r->q_pts + (size_t)p * r->D, u[p].point, r->D * sizeof(float));
    vt_serve_query q = gather_rows(r, u->items, n, r->q_pts, k);
    vt_status st;
    for (int attempt = 0;; attempt++) {
        if (*sent + (uint64_t)k > allow)
            return vt_fail(err, VT_ERR_RANGE,
                           "bbtune: query budget: retries used this rank's share (%" PRIu64 " of %" PRIu64 " sent)",
                           *sent, allow);
        if ((st = ledger_write(r, *sent + (uint64_t)k, err))) return st;
        *sent += (uint64_t)k; /* counted when sent: the service may score it even if the reply is lost */
        size_t got = 0;
        if (r->wb) { /* white-box: the same scores from the local model; nothing to retry */
            st = vt_whitebox_score(r->wb, &q, r->q_loss, r->q_cnt, r->want_logits ? r->q_lg : NULL, err);
            break;
        }
        if (r->want_logits)
            st = vt_serve_client_score_logits(r->client, &q, r->q_loss, r->q_cnt, r->q_lg, r->q_lg_cap, &got, err);
        else
            st = vt_serve_client_score(r->client, &q, r->q_loss, r->q_cnt, err);
        if (st != VT_ERR_NET || attempt >= r->c.retries) break;
        vt_warn("bbtune: %s; reconnecting (attempt %d of %lld)", err->msg, attempt + 1, (long long)r->c.retries);
        sleep_ms(r->c.retry_wait_ms);
        r->reconnects++;
        if ((st = vt_serve_client_reconnect(r->client, err))) return st;
    }
    if (st) return st;
    if (r->want_logits) { /* one set (an evaluation): each item's answer rows to its place */
        size_t at = 0, V = (size_t)r->V;
        for (int b = 0; b < n; b++) {
            uint32_t i = u->items[b];
            if (r->q_cnt[b] != r->cnt[i] || k != 1)
                return vt_fail(err, VT_ERR_FORMAT, "bbtune: the service counted %u answer positions for item %u, we %u",
                               r->q_cnt[b], i, r->cnt[i]);
            memcpy(r->lg + r->lg_off[i] * V, r->q_lg + at * V, (size_t)r->cnt[i] * V * sizeof(float));
            at += r->cnt[i];
        }
    }
    double total = 0;
    for (int b = 0; b < n; b++) total += r->q_cnt[b];
    if (total == 0) return vt_fail(err, VT_ERR_ARG, "bbtune: a batch has no answer tokens to score");
    for (int p = 0; p < k; p++) {
        double s = 0;
        for (int b = 0; b < n; b++) s += (double)r->q_loss[(size_t)p * n + b] * r->q_cnt[b];
        values[p] = (float)(s / total);
    }
    return VT_OK;
}

/* One round: n units, split over the ranks, gathered into values on every
 * rank. `reserve` queries must stay unspent for later rounds. Collective. */
static vt_status score_units(bb *r, const unit *u, int n, uint64_t reserve, float *values, vt_error *err) {
    uint64_t budget = (uint64_t)r->c.budget;
    r->budget_hit = 0;
    if (budget && r->used + (uint64_t)n + reserve > budget) {
        r->budget_hit = 1;
        return vt_fail(err, VT_ERR_RANGE, "bbtune: query budget: %" PRIu64 " of %" PRIu64 " used, %d more needed",
                       r->used, budget, n);
    }
    uint64_t slack = budget ? budget - r->used - reserve - (uint64_t)n : UINT64_MAX / 2;
    int lo, hi;
    vt_bbtune_share(n, r->ranks, r->rank, &lo, &hi);
    uint64_t allow = (uint64_t)(hi - lo) +
                     vt_bbtune_retry_allowance(slack, r->ranks, r->rank, (uint64_t)(hi - lo), (int)r->c.retries);
    uint64_t sent = 0;
    r->ledger_base = r->used;
    vt_status st = VT_OK;
    for (int a = lo; a < hi && !st;) {
        int b = a + 1;
        while (b < hi && b - a < r->ss.max_sets && u[b].items == u[a].items && u[b].n == u[a].n) b++;
        st = score_group(r, u + a, b - a, allow, &sent, values + a, err);
        a = b;
    }
    uint64_t total = 0;
    int hit = st == VT_ERR_RANGE && strstr(err->msg, "query budget: retries") != NULL;
    MPI_Allreduce(&sent, &total, 1, MPI_UINT64_T, MPI_SUM, r->comm);
    MPI_Allreduce(&hit, &r->budget_hit, 1, MPI_INT, MPI_MAX, r->comm);
    r->used += total;
    if ((st = agree(r, st, err))) return st;
    int *counts = malloc((size_t)r->ranks * 2 * sizeof(int));
    if (!counts) return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    for (int k = 0; k < r->ranks; k++) vt_bbtune_share(n, r->ranks, k, &counts[r->ranks + k], &counts[k]);
    for (int k = 0; k < r->ranks; k++) counts[k] -= counts[r->ranks + k];
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, values, counts, counts + r->ranks, MPI_FLOAT, r->comm);
    free(counts);
    return VT_OK;
}

/* Mean answer loss of ctx over rows items[0..n) (count-weighted, summed in
 * a fixed order). Collective. */
static vt_status eval_rows(bb *r, const float *ctx, const uint32_t *items, uint32_t n, uint64_t reserve, double *out,
                           vt_error *err) {
    *out = NAN;
    if (n == 0) return VT_OK;
    int nu = (int)((n + (uint32_t)r->B - 1) / (uint32_t)r->B);
    float *v = malloc((size_t)nu * sizeof *v);
    if (!v) return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    for (int i = 0; i < nu; i++) {
        uint32_t at = (uint32_t)i * (uint32_t)r->B;
        r->units[i] = (unit){.point = ctx, .items = items + at, .n = (int)(n - at < (uint32_t)r->B ? n - at : (uint32_t)r->B)};
    }
    vt_status st = score_units(r, r->units, nu, reserve, v, err);
    if (!st && r->want_logits) { /* every rank gets every row's logits: the ranks' shares are contiguous rows */
        int *cd = malloc((size_t)r->ranks * 2 * sizeof *cd);
        if (!cd) st = vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
        for (int k = 0; k < r->ranks && !st; k++) {
            int lo, hi;
            vt_bbtune_share(nu, r->ranks, k, &lo, &hi);
            size_t a = r->lg_off[items[0]], b = a;
            if (lo < hi) {
                a = r->lg_off[r->units[lo].items[0]];
                b = r->lg_off[r->units[hi - 1].items[0] + (uint32_t)r->units[hi - 1].n];
            }
            if (b * (size_t)r->V > INT_MAX) st = vt_fail(err, VT_ERR_RANGE, "bbtune: too many logits to gather");
            cd[k] = (int)((b - a) * (size_t)r->V);
            cd[r->ranks + k] = (int)(a * (size_t)r->V);
        }
        if (!st) MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r->lg, cd, cd + r->ranks, MPI_FLOAT, r->comm);
        free(cd);
    }
    if (!st) {
        double s = 0, c = 0;
        for (int i = 0; i < nu; i++) {
            double w = 0;
            for (int b = 0; b < r->units[i].n; b++) w += r->cnt[r->units[i].items[b]];
            s += (double)v[i] * w;
            c += w;
        }
        *out = s / c;
    }
    free(v);
    return st;
}

static vt_status eval_all(bb *r, const float *ctx, uint64_t reserve, double *train, double *held, vt_error *err) {
    uint64_t held_cost = (r->n_eval + (uint32_t)r->B - 1) / (uint32_t)r->B;
    vt_status st = eval_rows(r, ctx, r->eval_train, r->n_train, reserve + held_cost, train, err);
    if (!st) st = eval_rows(r, ctx, r->eval_held, r->n_eval, reserve, held, err);
    return st;
}

/* ---------------- objectives ---------------- */

/* ZO: npoints candidate contexts on the step's minibatch. */
static vt_status zo_objective(void *arg, const float *points, int npoints, float *values, vt_error *err) {
    bb *r = arg;
    for (int i = 0; i < npoints; i++) r->units[i] = (unit){.point = points + (size_t)i * r->D, .items = r->mb, .n = r->B};
    return score_units(r, r->units, npoints, r->eval_cost, values, err);
}

static uint64_t subspace_seed(const bb *r) { return vt_hash4((uint64_t)r->c.seed, 0xc4af7, 0, 0); }

/* ---------------- checkpoints ---------------- */

static const char *method_tag(const bb *r) {
    static const char *const tags[] = {"bbtune-cbbt", "bbtune-craft", "bbtune-whitebox"};
    return tags[r->c.method];
}

static vt_status save_checkpoint(bb *r, char *path_out, vt_error *err) {
    vt_ckpt_writer *w;
    vt_status st = vt_ckpt_begin(r->ckpt_root, r->step, r->comm, &w, err);
    if (st) return st;
    if (r->rank == 0) {
        vt_st_writer *sw = vt_st_writer_new();
        int64_t nc = r->c.n_ctx, h = r->hidden, d = (int64_t)r->D;
        int64_t sh_ctx[2] = {nc, h}, sh_ids[1] = {nc}, sh_d[1] = {d};
        char buf[64], path[PATH_MAX];
        int64_t rng[7];
        vt_cmaes_state es = {0};
        if (!sw) st = vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
        if (!st) st = vt_st_writer_add(sw, "ctx", VT_ST_F32, 2, sh_ctx, r->ctx, err);
        if (!st) st = vt_st_writer_add(sw, "ctx0", VT_ST_F32, 2, sh_ctx, r->ctx0, err);
        if (!st) st = vt_st_writer_add(sw, "ctx_token_ids", VT_ST_I32, 1, sh_ids, r->ctx_ids, err);
        if (!st && r->zo) {
            vt_zo_state zs = vt_zo_get_state(r->zo);
            if (!st) st = vt_st_writer_add(sw, "zo.m", VT_ST_F32, 1, sh_d, zs.m, err);
            if (!st) st = vt_st_writer_add(sw, "zo.v", VT_ST_F32, 1, sh_d, zs.v, err);
            if (!st) st = vt_st_writer_add(sw, "zo.prev", VT_ST_F32, 1, sh_d, zs.prev, err);
        }
        if (!st && r->es) {
            es = vt_cmaes_get_state(r->es);
            int64_t n = r->c.craft_dim, sh_n[1] = {n}, sh_nn[2] = {n, n}, sh_r[1] = {7};
            rng[0] = (int64_t)es.rng.key, rng[1] = (int64_t)es.rng.counter, rng[2] = es.rng.used;
            for (int i = 0; i < 4; i++) rng[3 + i] = es.rng.block[i];
            if (!st) st = vt_st_writer_add(sw, "es.mean", VT_ST_F64, 1, sh_n, es.mean, err);
            if (!st) st = vt_st_writer_add(sw, "es.pc", VT_ST_F64, 1, sh_n, es.pc, err);
            if (!st) st = vt_st_writer_add(sw, "es.ps", VT_ST_F64, 1, sh_n, es.ps, err);
            if (!st) st = vt_st_writer_add(sw, "es.C", VT_ST_F64, 2, sh_nn, es.C, err);
            if (!st) st = vt_st_writer_add(sw, "es.B", VT_ST_F64, 2, sh_nn, es.B, err);
            if (!st) st = vt_st_writer_add(sw, "es.D", VT_ST_F64, 1, sh_n, es.D, err);
            if (!st) st = vt_st_writer_add(sw, "es.rng", VT_ST_I64, 1, sh_r, rng, err);
            snprintf(buf, sizeof buf, "%ld", es.gen);
            if (!st) st = vt_st_writer_meta(sw, "es_gen", buf, err);
            snprintf(buf, sizeof buf, "%.17g", es.sigma);
            if (!st) st = vt_st_writer_meta(sw, "es_sigma", buf, err);
        }
        if (!st && r->ad) {
            int64_t sh_a[1] = {(int64_t)r->ad->n};
            if (!st) st = vt_st_writer_add(sw, "adapter.params", VT_ST_F64, 1, sh_a, r->ad->p, err);
            if (!st) st = vt_st_writer_add(sw, "adapter.m", VT_ST_F64, 1, sh_a, r->ad->m, err);
            if (!st) st = vt_st_writer_add(sw, "adapter.v", VT_ST_F64, 1, sh_a, r->ad->v, err);
            snprintf(buf, sizeof buf, "%" PRIu64, r->ad->step);
            if (!st) st = vt_st_writer_meta(sw, "adapter_step", buf, err);
            snprintf(buf, sizeof buf, "%d", r->ad->H);
            if (!st) st = vt_st_writer_meta(sw, "adapter_hidden", buf, err);
        }
        snprintf(buf, sizeof buf, "%.17g", r->acc0);
        if (!st) st = vt_st_writer_meta(sw, "acc_initial", buf, err);
        snprintf(buf, sizeof buf, "%.17g", r->eval_acc0);
        if (!st) st = vt_st_writer_meta(sw, "eval_acc_initial", buf, err);
        snprintf(buf, sizeof buf, "%.17g", r->em0);
        if (!st) st = vt_st_writer_meta(sw, "em_initial", buf, err);
        snprintf(buf, sizeof buf, "%.17g", r->eval_em0);
        if (!st) st = vt_st_writer_meta(sw, "eval_em_initial", buf, err);
        if (!st) st = vt_st_writer_meta(sw, "method", METHODS[r->c.method], err);
        snprintf(buf, sizeof buf, "%" PRIu64, r->used);
        if (!st) st = vt_st_writer_meta(sw, "queries_used", buf, err);
        snprintf(buf, sizeof buf, "%.17g", r->loss0);
        if (!st) st = vt_st_writer_meta(sw, "loss_initial", buf, err);
        snprintf(buf, sizeof buf, "%.17g", r->eval0);
        if (!st) st = vt_st_writer_meta(sw, "eval_loss_initial", buf, err);
        if (!st) st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "bbtune.safetensors", err);
        if (!st) st = vt_st_writer_write(sw, path, err);
        vt_st_writer_free(sw);
    }
    if (agree(r, st, err)) {
        vt_ckpt_abort(w);
        return err->code ? err->code : VT_ERR_IO;
    }
    vt_ckpt_info info = {.recipe = method_tag(r), .step = r->step, .global_batch = (uint64_t)r->B,
                         .seed = (uint64_t)r->c.seed, .samples_seen = r->used, .trainer_count = (uint32_t)r->ranks,
                         .config_yaml = r->cfg_text, .config_len = r->cfg_len};
    st = vt_ckpt_commit(w, &info, path_out, err);
    if (!st && r->rank == 0) st = vt_ckpt_prune(r->ckpt_root, (int)r->c.keep_last, 0, err);
    return agree(r, st, err);
}

static vt_status read_tensor(const vt_st_file *f, const char *name, vt_st_dtype dt, size_t count, void *dst,
                             vt_error *err) {
    const vt_st_tensor *t = vt_st_find(f, name);
    if (!t || t->dtype != dt || (size_t)t->numel != count)
        return vt_fail(err, VT_ERR_FORMAT, "%s: tensor %s missing or not %s[%zu] (the run's shape)", vt_st_path(f),
                       name, vt_st_dtype_name(dt), count);
    memcpy(dst, t->data, count * vt_st_dtype_size(dt));
    return VT_OK;
}

static vt_status meta_number(const vt_st_file *f, const char *key, double *out, vt_error *err) {
    const char *v = vt_st_metadata(f, key);
    char *end;
    if (!v || (*out = strtod(v, &end), *end != 0 || end == v))
        return vt_fail(err, VT_ERR_FORMAT, "%s: metadata %s missing or not a number", vt_st_path(f), key);
    return VT_OK;
}

static vt_status load_checkpoint(bb *r, const char *path, vt_error *err) {
    vt_ckpt *c = NULL;
    vt_st_file *f = NULL;
    char file[PATH_MAX];
    vt_status st = vt_ckpt_open(path, &c, err);
    if (st) return st;
    const vt_ckpt_info *in = vt_ckpt_get_info(c);
    if (strcmp(in->recipe, method_tag(r)) || in->seed != (uint64_t)r->c.seed) {
        st = vt_fail(err, VT_ERR_STATE, "%s: checkpoint of %s with seed %" PRIu64 ", the run config says %s with seed %lld",
                     path, in->recipe, in->seed, method_tag(r), (long long)r->c.seed);
        goto done;
    }
    if ((st = vt_ckpt_file(c, "bbtune.safetensors", file, sizeof file, err))) goto done;
    if ((st = vt_st_open(file, &f, err))) goto done;
    int32_t ids[MAX_CTX];
    if ((st = read_tensor(f, "ctx", VT_ST_F32, r->D, r->ctx, err))) goto done;
    if ((st = read_tensor(f, "ctx0", VT_ST_F32, r->D, r->ctx0, err))) goto done;
    if ((st = read_tensor(f, "ctx_token_ids", VT_ST_I32, (size_t)r->c.n_ctx, ids, err))) goto done;
    if (memcmp(ids, r->ctx_ids, (size_t)r->c.n_ctx * sizeof *ids)) {
        st = vt_fail(err, VT_ERR_STATE, "%s: the checkpoint's context token ids differ from this run's (items changed?)",
                     path);
        goto done;
    }
    if (r->zo) {
        vt_zo_state zs = vt_zo_get_state(r->zo);
        if ((st = read_tensor(f, "zo.m", VT_ST_F32, r->D, zs.m, err))) goto done;
        if ((st = read_tensor(f, "zo.v", VT_ST_F32, r->D, zs.v, err))) goto done;
        if ((st = read_tensor(f, "zo.prev", VT_ST_F32, r->D, zs.prev, err))) goto done;
        vt_zo_set_step(r->zo, in->step);
    }
    if (r->es) {
        vt_cmaes_state es = vt_cmaes_get_state(r->es);
        size_t n = (size_t)r->c.craft_dim;
        int64_t rng[7];
        double gen, sigma;
        if ((st = read_tensor(f, "es.mean", VT_ST_F64, n, es.mean, err))) goto done;
        if ((st = read_tensor(f, "es.pc", VT_ST_F64, n, es.pc, err))) goto done;
        if ((st = read_tensor(f, "es.ps", VT_ST_F64, n, es.ps, err))) goto done;
        if ((st = read_tensor(f, "es.C", VT_ST_F64, n * n, es.C, err))) goto done;
        if ((st = read_tensor(f, "es.B", VT_ST_F64, n * n, es.B, err))) goto done;
        if ((st = read_tensor(f, "es.D", VT_ST_F64, n, es.D, err))) goto done;
        if ((st = read_tensor(f, "es.rng", VT_ST_I64, 7, rng, err))) goto done;
        if ((st = meta_number(f, "es_gen", &gen, err)) || (st = meta_number(f, "es_sigma", &sigma, err))) goto done;
        vt_rng g = {.key = (uint64_t)rng[0], .counter = (uint64_t)rng[1], .used = (uint32_t)rng[2]};
        for (int i = 0; i < 4; i++) g.block[i] = (uint32_t)rng[3 + i];
        vt_cmaes_set_state(r->es, (long)gen, sigma, &g);
    }
    double used;
    if ((st = meta_number(f, "queries_used", &used, err))) goto done;
    if ((st = meta_number(f, "loss_initial", &r->loss0, err))) goto done;
    if ((st = meta_number(f, "eval_loss_initial", &r->eval0, err))) goto done;
    r->used = (uint64_t)used;
    r->step = in->step;
    if (vt_st_metadata(f, "acc_initial")) { /* absent in checkpoints of runs without logits */
        if ((st = meta_number(f, "acc_initial", &r->acc0, err))) goto done;
        if ((st = meta_number(f, "eval_acc_initial", &r->eval_acc0, err))) goto done;
    }
    if (vt_st_metadata(f, "em_initial")) { /* absent in checkpoints written before exact match */
        if ((st = meta_number(f, "em_initial", &r->em0, err))) goto done;
        if ((st = meta_number(f, "eval_em_initial", &r->eval_em0, err))) goto done;
    }
    if (r->ad && vt_st_find(f, "adapter.params")) { /* else: a checkpoint without the adapter, which starts fresh */
        double h, astep;
        if ((st = meta_number(f, "adapter_hidden", &h, err)) || (st = meta_number(f, "adapter_step", &astep, err)))
            goto done;
        if ((int)h != r->ad->H) {
            st = vt_fail(err, VT_ERR_STATE, "%s: the checkpoint's adapter has hidden %d, the run config says %d", path,
                         (int)h, r->ad->H);
            goto done;
        }
        if ((st = read_tensor(f, "adapter.params", VT_ST_F64, r->ad->n, r->ad->p, err))) goto done;
        if ((st = read_tensor(f, "adapter.m", VT_ST_F64, r->ad->n, r->ad->m, err))) goto done;
        if ((st = read_tensor(f, "adapter.v", VT_ST_F64, r->ad->n, r->ad->v, err))) goto done;
        r->ad->step = (uint64_t)astep;
    }
done:
    vt_st_close(f);
    vt_ckpt_close(c);
    return st;
}

/* ---------------- setup ---------------- */

static vt_status connect_service(bb *r, vt_error *err) {
    if (r->c.method == METHOD_WHITEBOX) { /* the model in-process, described as a service would be */
        int mb = (int)(r->c.batch ? r->c.batch : 8);
        vt_status st = vt_whitebox_open(&r->wb, r->c.wb_checkpoint, (int)r->c.wb_threads, mb, (int)r->c.seq_len, err);
        if (st && st != VT_ERR_ARG) vt_error_prefix(err, "bbtune.whitebox.checkpoint %s", r->c.wb_checkpoint);
        if (st) return st;
        vt_whitebox_stats(r->wb, &r->ss);
        return VT_OK;
    }
    char ep[512];
    const char *endpoint = r->c.endpoint;
    if (r->c.endpoint_file) {
        char *text;
        size_t len;
        vt_status st = vt_read_file(r->c.endpoint_file, 4096, &text, &len, err);
        if (st) return st;
        size_t n = strcspn(text, "\r\n");
        if (n == 0 || n >= sizeof ep) {
            free(text);
            return vt_fail(err, VT_ERR_FORMAT, "%s: expected an endpoint on the first line", r->c.endpoint_file);
        }
        memcpy(ep, text, n);
        ep[n] = 0;
        free(text);
        endpoint = ep;
    }
    vt_serve_client_options o = {.endpoint = endpoint, .timeout_ms = (int)r->c.timeout_ms,
                                 .server_public_key_file = r->c.server_key, .client_secret_key_file = r->c.client_key};
    vt_status st = vt_serve_client_open(&r->client, &o, err);
    for (int attempt = 0; !st; attempt++) {
        st = vt_serve_client_stats(r->client, &r->ss, err);
        if (st != VT_ERR_NET || attempt >= r->c.retries) break;
        vt_warn("bbtune: %s; reconnecting (attempt %d of %lld)", err->msg, attempt + 1, (long long)r->c.retries);
        sleep_ms(r->c.retry_wait_ms);
        st = vt_serve_client_reconnect(r->client, err);
    }
    return st;
}

/* Reads the items' rows through the dataset and prefixes the context. */
static vt_status load_rows(bb *r, vt_error *err) {
    const bb_config *c = &r->c;
    const char *name = vt_config_name(r->cfg);
    vt_dataset_config dc = c->data;
    dc.image_size = r->ss.image_size;
    dc.n_image_tokens = r->ss.image_tokens;
    dc.seq_len = r->T - (int)c->n_ctx;
    dc.seed = (uint64_t)c->seed;
    dc.jitter = 0;
    if (!dc.store || !dc.store[0]) return vt_fail(err, VT_ERR_ARG, "%s: data.store: required for bbtune", name);
    vt_dataset *d = NULL;
    vt_heldout_split sp = {0};
    vt_batch bt = {0};
    uint64_t *picked = NULL, *picked_val = NULL; /* bbtune.groups: the items taken */
    vt_status st = vt_dataset_open(&dc, &d, err);
    if (st) return st;
    if (vt_dataset_vocab_size(d) > r->ss.vocab || vt_dataset_template(d)->image_token != r->ss.image_token_index) {
        st = vt_fail(err, VT_ERR_ARG,
                     "%s: the tokenizer+template need vocab >= %d and image token %d; the service's model has vocab %d, "
                     "image token %d",
                     name, vt_dataset_vocab_size(d), vt_dataset_template(d)->image_token, r->ss.vocab,
                     r->ss.image_token_index);
        goto done;
    }
    if ((st = vt_heldout_split_build(d, &sp, err))) goto done;
    uint64_t n_all = vt_dataset_count(d);
    const uint64_t *pool = c->split == 1 ? sp.train : c->split == 2 ? sp.val : c->split == 3 ? sp.test : NULL;
    size_t n_pool = c->split == 0 ? n_all : c->split == 1 ? sp.n_train : c->split == 2 ? sp.n_val : sp.n_test;
    /* bbtune.groups: only items of those groups, in store order */
    if (c->n_groups) {
        size_t want = c->items ? (size_t)c->items : n_pool, nv = 0, np = 0;
        picked = malloc((want ? want : 1) * sizeof *picked);
        picked_val = malloc(((size_t)c->eval_items ? (size_t)c->eval_items : 1) * sizeof *picked_val);
        if (!picked || !picked_val) {
            st = vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
            goto done;
        }
        for (int pass = 0; pass < 2 && !st; pass++) {
            const uint64_t *from = pass ? sp.val : pool;
            size_t n_from = pass ? sp.n_val : n_pool, cap = pass ? (size_t)c->eval_items : want, *got = pass ? &nv : &np;
            uint64_t *to = pass ? picked_val : picked;
            for (size_t k = 0; k < n_from && *got < cap && !st; k++) {
                uint64_t idx = from ? from[k] : k;
                uint32_t g = 0;
                if ((st = vt_dataset_group(d, idx, &g, err))) break;
                for (int j = 0; j < c->n_groups; j++)
                    if (g == c->groups[j]) {
                        to[(*got)++] = idx;
                        break;
                    }
            }
        }
        if (st) goto done;
        pool = picked;
        n_pool = np;
        r->n_train = (uint32_t)np;
        r->n_eval = (uint32_t)nv;
    } else {
        r->n_train = (uint32_t)(c->items && (size_t)c->items < n_pool ? (size_t)c->items : n_pool);
        r->n_eval = (uint32_t)((size_t)c->eval_items < sp.n_val ? (size_t)c->eval_items : sp.n_val);
    }
    if (r->n_train == 0) {
        st = vt_fail(err, VT_ERR_ARG, "%s: data.store %s: no item in split %s%s", name, dc.store, SPLITS[c->split],
                     c->n_groups ? " of the bbtune.groups" : "");
        goto done;
    }
    if (c->eval_items && r->n_eval < (uint32_t)c->eval_items && r->rank == 0)
        vt_warn("bbtune: eval_items %lld, the store has %u val items%s", (long long)c->eval_items, r->n_eval,
                c->n_groups ? " of the bbtune.groups" : "");
    size_t rows = (size_t)r->n_train + r->n_eval, T = (size_t)r->T, pix = (size_t)3 * r->S * r->S;
    r->tok = malloc(rows * T * sizeof *r->tok);
    r->tgt = malloc(rows * T * sizeof *r->tgt);
    r->mask = malloc(rows * T);
    r->len = malloc(rows * sizeof *r->len);
    r->cnt = malloc(rows * sizeof *r->cnt);
    r->pix = malloc(rows * pix * sizeof *r->pix);
    vt_batch_shape shape = {.batch = 1, .channels = 3, .height = (uint32_t)r->S, .width = (uint32_t)r->S,
                            .seq_len = (uint32_t)dc.seq_len};
    if (!r->tok || !r->tgt || !r->mask || !r->len || !r->cnt || !r->pix) {
        st = vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory for %zu rows", rows);
        goto done;
    }
    if ((st = vt_batch_alloc(&bt, &shape, err))) goto done;
    vt_batch_source src = vt_dataset_source(d);
    int32_t *raw = malloc(rows * (size_t)dc.seq_len * sizeof *raw);
    if (!raw) {
        st = vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
        goto done;
    }
    for (size_t i = 0; i < rows && !st; i++) {
        bt.sample_indices[0] =
            i < r->n_train ? (pool ? pool[i] : i) : (picked_val ? picked_val : sp.val)[i - r->n_train];
        bt.epoch = 0;
        if ((st = src.fill(src.ctx, &bt, err))) break;
        memcpy(raw + i * (size_t)dc.seq_len, bt.tokens, (size_t)dc.seq_len * sizeof *raw);
        r->len[i] = bt.lengths[0];
        memcpy(r->tgt + i * T, bt.targets, (size_t)dc.seq_len * sizeof *raw); /* staged; prefixed below */
        memcpy(r->mask + i * T, bt.loss_mask, (size_t)dc.seq_len);
        memcpy(r->pix + i * pix, bt.pixels, pix * sizeof *r->pix);
    }
    if (!st) {
        if (c->n_ctx_ids) {
            memcpy(r->ctx_ids, c->ctx_ids, (size_t)c->n_ctx * sizeof *r->ctx_ids);
            for (int i = 0; i < c->n_ctx && !st; i++) {
                int32_t id = r->ctx_ids[i];
                bool bad = id >= r->ss.vocab || id == r->ss.image_token_index;
                for (int j = 0; j < i; j++) bad |= r->ctx_ids[j] == id;
                for (size_t k = 0; k < rows * (size_t)dc.seq_len && !bad; k++) bad = raw[k] == id;
                if (bad)
                    st = vt_fail(err, VT_ERR_ARG,
                                 "%s: bbtune.ctx_token_ids[%d] = %d: must be distinct, below vocab %d, not the image "
                                 "token and unused by the items",
                                 name, i, id, r->ss.vocab);
            }
        } else {
            st = vt_bbtune_pick_ctx_ids(raw, rows * (size_t)dc.seq_len, r->ss.vocab, r->ss.image_token_index,
                                        (int)c->n_ctx, r->ctx_ids, err);
        }
    }
    for (size_t i = 0; i < rows && !st; i++) {
        int32_t stg_tgt[4096];
        uint8_t stg_mask[4096];
        if ((size_t)dc.seq_len > sizeof stg_mask) {
            st = vt_fail(err, VT_ERR_RANGE, "bbtune: seq_len %d is above 4096", dc.seq_len);
            break;
        }
        memcpy(stg_tgt, r->tgt + i * T, (size_t)dc.seq_len * sizeof *stg_tgt);
        memcpy(stg_mask, r->mask + i * T, (size_t)dc.seq_len);
        vt_bbtune_prefix_row(r->ctx_ids, (int)c->n_ctx, r->T, raw + i * (size_t)dc.seq_len, stg_tgt, stg_mask,
                             r->tok + i * T, r->tgt + i * T, r->mask + i * T, &r->len[i]);
        r->cnt[i] = 0;
        for (int32_t t = 0; t < r->len[i]; t++) r->cnt[i] += r->mask[i * T + (size_t)t] != 0;
    }
    free(raw);
done:
    free(picked);
    free(picked_val);
    vt_batch_free(&bt);
    vt_heldout_split_free(&sp);
    vt_dataset_close(d);
    return st;
}

static vt_status setup(bb *r, vt_error *err) {
    bb_config *c = &r->c;
    const char *name = vt_config_name(r->cfg);
    vt_status st;
    if ((st = connect_service(r, err))) return st;
    r->hidden = r->ss.hidden;
    r->S = r->ss.image_size;
    r->T = (int)c->seq_len;
    r->D = (size_t)c->n_ctx * (size_t)r->hidden;
    if (c->n_ctx > r->ss.max_ctx || r->T > r->ss.max_seq)
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune n_ctx %lld / seq_len %d exceed the service's limits (%d / %d)", name,
                       (long long)c->n_ctx, r->T, r->ss.max_ctx, r->ss.max_seq);
    if ((st = load_rows(r, err))) return st;
    r->B = (int)(c->batch ? c->batch : 8);
    if (!c->batch && r->B > r->ss.max_batch) r->B = r->ss.max_batch;
    if (!c->batch && (uint32_t)r->B > r->n_train) r->B = (int)r->n_train;
    if (r->B > r->ss.max_batch || (uint32_t)r->B > r->n_train)
        return vt_fail(err, VT_ERR_ARG, "%s: bbtune.batch %d: more than the service's max_batch %d or the %u items",
                       name, r->B, r->ss.max_batch, r->n_train);
    /* budget plan: the first and last evaluation and at least one step */
    r->eval_cost = (r->n_train + (uint32_t)r->B - 1) / (uint32_t)r->B + (r->n_eval + (uint32_t)r->B - 1) / (uint32_t)r->B;
    size_t D = r->D;
    int craft_n = (int)c->craft_dim;
    if (c->method == METHOD_CBBT || c->method == METHOD_WHITEBOX) { /* whitebox: the same optimiser, true gradient */
        vt_zo_options zo;
        vt_zo_options_default(&zo);
        zo.q = (int)c->q;
        zo.lr = (float)c->lr;
        zo.clip = (float)c->clip;
        zo.eps = (float)c->eps;
        zo.momentum = (float)c->momentum;
        zo.beta1 = (float)c->beta1;
        zo.beta2 = (float)c->beta2;
        zo.seed = (uint64_t)c->seed;
        if ((st = vt_zo_create(&r->zo, D, &zo, err))) return VT_ERR_ARG;
        /* whitebox: one forward + backward on the minibatch counts as the one forward query it contains */
        r->step_cost = c->method == METHOD_WHITEBOX ? 1 : (uint64_t)c->q + 1;
        if (c->method == METHOD_WHITEBOX && !(r->wb_grad = malloc(D * sizeof *r->wb_grad)))
            return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    } else {
        vt_cmaes_options eo = {.lambda = (int)c->craft_pop, .sigma0 = c->craft_sigma, .bound = c->craft_bound,
                               .seed = (uint64_t)c->seed};
        if ((st = vt_cmaes_create(&r->es, craft_n, NULL, &eo, err))) return VT_ERR_ARG;
        r->step_cost = (uint64_t)vt_cmaes_lambda(r->es);
    }
    if (c->budget && (uint64_t)c->budget < 2 * r->eval_cost + r->step_cost)
        return vt_fail(err, VT_ERR_ARG,
                       "%s: bbtune.budget %lld cannot pay for the first and last evaluation (%" PRIu64
                       " queries each) and one step (%" PRIu64 ")",
                       name, (long long)c->budget, r->eval_cost, r->step_cost);
    size_t maxu = r->step_cost > r->eval_cost ? r->step_cost : r->eval_cost;
    size_t Tn = (size_t)r->T * (size_t)r->B, maxsets = (size_t)r->ss.max_sets;
    r->units = calloc(maxu, sizeof *r->units);
    r->ctx = calloc(D, sizeof *r->ctx);
    r->ctx0 = calloc(D, sizeof *r->ctx0);
    r->mb = calloc((size_t)r->B, sizeof *r->mb);
    r->eval_train = malloc(r->n_train * sizeof *r->eval_train);
    r->eval_held = malloc((r->n_eval ? r->n_eval : 1) * sizeof *r->eval_held);
    r->q_tok = malloc(Tn * sizeof *r->q_tok);
    r->q_tgt = malloc(Tn * sizeof *r->q_tgt);
    r->q_mask = malloc(Tn);
    r->q_len = malloc((size_t)r->B * sizeof *r->q_len);
    r->q_pix = malloc((size_t)r->B * 3 * r->S * r->S * sizeof *r->q_pix);
    r->q_pts = malloc(maxsets * D * sizeof *r->q_pts);
    r->q_loss = malloc(maxsets * (size_t)r->B * sizeof *r->q_loss);
    r->q_cnt = malloc((size_t)r->B * sizeof *r->q_cnt);
    if (r->es) {
        size_t l = (size_t)vt_cmaes_lambda(r->es);
        r->pop = malloc(l * (size_t)craft_n * sizeof *r->pop);
        r->fit = malloc(l * sizeof *r->fit);
        r->pts = malloc(l * D * sizeof *r->pts);
    }
    if (!r->units || !r->ctx || !r->ctx0 || !r->mb || !r->eval_train || !r->eval_held || !r->q_tok || !r->q_tgt ||
        !r->q_mask || !r->q_len || !r->q_pix || !r->q_pts || !r->q_loss || !r->q_cnt ||
        (r->es && (!r->pop || !r->fit || !r->pts)))
        return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    for (uint32_t i = 0; i < r->n_train; i++) r->eval_train[i] = i;
    for (uint32_t i = 0; i < r->n_eval; i++) r->eval_held[i] = r->n_train + i;
    /* the starting context: zeros, or N(0, init_std) from the seed */
    vt_rng g;
    vt_rng_init(&g, vt_hash4((uint64_t)c->seed, 0xc7, 0, 0));
    for (size_t j = 0; j < D; j++) r->ctx0[j] = (float)(c->init_std * (c->init_std > 0 ? vt_rng_normal(&g) : 0));
    memcpy(r->ctx, r->ctx0, D * sizeof *r->ctx);
    r->loss0 = r->eval0 = NAN;
    r->acc0 = r->eval_acc0 = NAN;
    r->em0 = r->eval_em0 = NAN;
    if (c->logits || c->ad_enabled) { /* every evaluation also fetches the answer positions' logits */
        size_t rows = (size_t)r->n_train + r->n_eval, maxc = 0;
        r->V = r->ss.vocab;
        if (r->ss.logits_version < VT_SERVE_LOGITS_V1)
            return vt_fail(err, VT_ERR_ARG, "%s: bbtune.adapter needs a service that returns logits (serve protocol v2)",
                           name);
        r->lg_off = malloc((rows + 1) * sizeof *r->lg_off);
        if (!r->lg_off) return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
        r->lg_off[0] = 0;
        for (size_t i = 0; i < rows; i++) {
            r->lg_off[i + 1] = r->lg_off[i] + r->cnt[i];
            maxc = r->cnt[i] > maxc ? r->cnt[i] : maxc;
        }
        r->q_lg_cap = (size_t)r->B * maxc * (size_t)r->V;
        if (r->q_lg_cap > r->ss.max_logits)
            return vt_fail(err, VT_ERR_ARG,
                           "%s: bbtune.adapter: a batch of %d items with up to %zu answer positions needs %zu logits a "
                           "reply; the service allows %" PRIu64 " (lower bbtune.batch or raise serve --max-logits)",
                           name, r->B, maxc, r->q_lg_cap, r->ss.max_logits);
        size_t npos = r->lg_off[rows];
        r->lg = malloc((npos ? npos : 1) * (size_t)r->V * sizeof *r->lg);
        r->lg_y = malloc((npos ? npos : 1) * sizeof *r->lg_y);
        r->q_lg = malloc((r->q_lg_cap ? r->q_lg_cap : 1) * sizeof *r->q_lg);
        if (!r->lg || !r->lg_y || !r->q_lg) return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory for %zu logits", npos);
        for (size_t i = 0; i < rows; i++) {
            size_t at = r->lg_off[i];
            for (int32_t t = 0; t < r->len[i]; t++)
                if (r->mask[i * (size_t)r->T + (size_t)t]) r->lg_y[at++] = r->tgt[i * (size_t)r->T + (size_t)t];
        }
        if (c->ad_enabled &&
            (st = vt_bbadapter_create(&r->ad, r->V, (int)c->ad_hidden, vt_hash4((uint64_t)c->seed, 0xada, 0, 0), err)))
            return st;
    }

    return VT_OK;
}

/* Checkpoint or fresh start, and the ledger. Collective. */
static vt_status setup_resume(bb *r, const char *resume, vt_error *err) {
    bb_config *c = &r->c;
    size_t D = r->D;
    vt_status st;
    if ((st = vt_path_join(r->root, sizeof r->root, c->run_dir, "bbtune", err))) return st;
    if ((st = vt_path_join(r->ckpt_root, sizeof r->ckpt_root, r->root, "checkpoints", err))) return st;
    if ((st = vt_path_join(r->ledger_dir, sizeof r->ledger_dir, r->root, "ledger", err))) return st;
    char found[PATH_MAX] = "";
    uint64_t ledger = 0;
    int f = 0;
    if (r->rank == 0) {
        st = vt_mkdir_p(r->ledger_dir, err);
        bool have = false;
        if (!st && resume && !strcmp(resume, "auto")) st = vt_ckpt_find_latest(r->ckpt_root, found, sizeof found, &have, err);
        else if (!st && resume) snprintf(found, sizeof found, "%s", resume), have = true;
        if (!st && resume) st = ledger_read(r, &ledger, err);
        if (!st && !resume) { /* a fresh run: refuse to mix with an earlier one's checkpoints */
            bool old = false;
            char p[PATH_MAX];
            st = vt_ckpt_find_latest(r->ckpt_root, p, sizeof p, &old, err);
            if (!st && old)
                st = vt_fail(err, VT_ERR_ARG, "%s holds checkpoints of an earlier run: pass --resume auto or remove them",
                             r->ckpt_root);
        }
        if (!st && !resume) { /* the old ledger belongs to the old run */
            st = vt_remove_tree(r->ledger_dir, err);
            if (!st) st = vt_mkdir_p(r->ledger_dir, err);
        }
        f = st ? -1 : have;
        if (!st && resume && !have) vt_info("resume auto: no checkpoint under %s, starting fresh", r->ckpt_root);
    }
    MPI_Bcast(&f, 1, MPI_INT, 0, r->comm);
    MPI_Bcast(found, sizeof found, MPI_CHAR, 0, r->comm);
    MPI_Bcast(&ledger, 1, MPI_UINT64_T, 0, r->comm);
    if (f < 0) return agree(r, r->rank == 0 ? st : VT_OK, err);
    if (f) {
        r->resumed = true;
        st = load_checkpoint(r, found, err);
        if ((st = agree(r, st, err))) return st;
        if (r->rank == 0)
            vt_info("resumed from %s at step %" PRIu64 " (%" PRIu64 " queries used; the ledger says %" PRIu64 ")", found,
                    r->step, r->used, ledger);
    }
    if (ledger > r->used) r->used = ledger; /* queries a killed run sent after its checkpoint */
    if (r->rank == 0) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/log.jsonl", r->root);
        r->log = fopen(path, "a");
        if (!r->log) return vt_fail_errno(err, VT_ERR_IO, "%s", path);
        vt_info("bbtune: %s, %lld context vectors (ids %d..), d = %zu, %u items (%u held out), batch %d, %" PRIu64
                " queries a step, budget %lld, %d rank(s), service %s",
                METHODS[c->method], (long long)c->n_ctx, r->ctx_ids[0], D, r->n_train, r->n_eval, r->B, r->step_cost,
                (long long)c->budget, r->ranks, c->endpoint ? c->endpoint : c->endpoint_file);
    }
    return VT_OK;
}

static void teardown(bb *r) {
    if (r->log) fclose(r->log);
    vt_serve_client_close(r->client);
    vt_whitebox_close(r->wb);
    free(r->wb_grad);
    vt_zo_free(r->zo);
    vt_cmaes_free(r->es);
    vt_bbadapter_free(r->ad);
    free(r->lg_off);
    free(r->lg);
    free(r->lg_y);
    free(r->q_lg);
    void *p[] = {r->tok,   r->tgt,   r->len,    r->mask,  r->pix,   r->cnt,  r->q_tok, r->q_tgt, r->q_len,
                 r->q_mask, r->q_pix, r->q_pts, r->q_loss, r->q_cnt, r->ctx,  r->ctx0,  r->pop,   r->fit,
                 r->pts,   r->mb,    r->eval_train, r->eval_held, r->units};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    vt_config_free(r->cfg);
}

/* ---------------- the loop ---------------- */

/* White-box: the true gradient of the minibatch's mean answer loss (one
 * forward + backward, counted as one query), then the CBBT optimiser's
 * update (vt_zo_apply: momentum, clipping, Adam). Every rank computes the
 * same gradient (deterministic), so nothing is exchanged. Collective. */
static vt_status whitebox_step(bb *r, double *loss, vt_error *err) {
    vt_serve_query q = gather_rows(r, r->mb, r->B, r->ctx, 1);
    vt_status st = vt_whitebox_grad(r->wb, &q, r->wb_grad, loss, err);
    if ((st = agree(r, st, err))) return st;
    r->used += 1;
    vt_zo_apply(r->zo, r->ctx, r->wb_grad);
    return VT_OK;
}

/* The local model's mean answer loss of npoints contexts on the minibatch
 * r->mb, outside the budget (a diagnostic): a vt_zo_objective. */
static vt_status wb_objective(void *arg, const float *points, int npoints, float *values, vt_error *err) {
    bb *r = arg;
    for (int a = 0; a < npoints;) {
        int k = npoints - a < r->ss.max_sets ? npoints - a : r->ss.max_sets;
        vt_serve_query q = gather_rows(r, r->mb, r->B, points + (size_t)a * r->D, k);
        vt_status st = vt_whitebox_score(r->wb, &q, r->q_loss, r->q_cnt, NULL, err);
        if (st) return st;
        double total = 0;
        for (int b = 0; b < r->B; b++) total += r->q_cnt[b];
        for (int p = 0; p < k; p++) {
            double s = 0;
            for (int b = 0; b < r->B; b++) s += (double)r->q_loss[(size_t)p * r->B + b] * r->q_cnt[b];
            values[a + p] = (float)(s / total);
        }
        a += k;
    }
    return VT_OK;
}

/* bbtune.whitebox.cosine_q: at the current context, for each seed offset k
 * (minibatch of step 0 under seed+k, CBBT directions of vt_zo seeded
 * seed+k, its eps), the cosine between CBBT's estimate (vt_zo_estimate, q
 * directions) and the true gradient, appended to RUN_DIR/bbtune/zo_cosine.jsonl
 * with the theory sqrt(q/(q+d)) (E cos for a Gaussian-like estimate of a
 * linear function). Rank 0 only; costs no budget. */
static vt_status zo_cosines(bb *r, const char *at, vt_error *err) {
    vt_status st = VT_OK;
    if (r->rank == 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/zo_cosine.jsonl", r->root);
        FILE *out = fopen(path, "a");
        float *g = malloc(r->D * sizeof *g), *e = malloc(r->D * sizeof *e);
        uint32_t *mb = malloc((size_t)r->B * sizeof *mb);
        if (!out) st = vt_fail_errno(err, VT_ERR_IO, "%s", path);
        else if (!g || !e || !mb) st = vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
        if (!st) memcpy(mb, r->mb, (size_t)r->B * sizeof *mb);
        for (int64_t k = 0; k < r->c.cos_seeds && !st; k++) {
            uint64_t seed = (uint64_t)(r->c.seed + k);
            vt_bbtune_minibatch(seed, 0, r->n_train, r->B, r->mb);
            vt_serve_query q = gather_rows(r, r->mb, r->B, r->ctx, 1);
            double l = 0, gn = 0;
            if ((st = vt_whitebox_grad(r->wb, &q, g, &l, err))) break;
            for (size_t j = 0; j < r->D; j++) gn += (double)g[j] * g[j];
            for (int i = 0; i < r->c.n_cos_q && !st; i++) {
                vt_zo_options o;
                vt_zo_options_default(&o);
                o.q = (int)r->c.cos_q[i];
                o.eps = (float)r->c.eps;
                o.seed = seed;
                vt_zo *z = NULL;
                float f0 = 0;
                if ((st = vt_zo_create(&z, r->D, &o, err))) break;
                st = vt_zo_estimate(z, r->ctx, wb_objective, r, e, &f0, err);
                double dot = 0, en = 0;
                for (size_t j = 0; j < r->D && !st; j++) dot += (double)e[j] * g[j], en += (double)e[j] * e[j];
                if (!st)
                    fprintf(out,
                            "{\"at\": \"%s\", \"step\": %" PRIu64 ", \"seed\": %" PRIu64 ", \"q\": %d, \"d\": %zu, "
                            "\"eps\": %.6g, \"loss\": %.6f, \"grad_norm\": %.6g, \"estimate_norm\": %.6g, "
                            "\"cosine\": %.6f, \"theory\": %.6f}\n",
                            at, r->step, seed, o.q, r->D, (double)vt_zo_eps(z), l, sqrt(gn), sqrt(en),
                            dot / (sqrt(gn) * sqrt(en) + 1e-300), sqrt((double)o.q / (o.q + (double)r->D)));
                vt_zo_free(z);
            }
        }
        if (mb) memcpy(r->mb, mb, (size_t)r->B * sizeof *mb);
        if (out && fclose(out) && !st) st = vt_fail_errno(err, VT_ERR_IO, "%s", path);
        free(g);
        free(e);
        free(mb);
        if (!st) vt_info("bbtune: ZO-vs-true-gradient cosines (%s) appended to %s", at, path);
    }
    return agree(r, st, err);
}

static vt_status craft_step(bb *r, double *mean_fit, double *best, vt_error *err) {
    int n = (int)r->c.craft_dim, l = vt_cmaes_lambda(r->es);
    vt_cmaes_ask(r->es, r->pop);
    for (int k = 0; k < l; k++) {
        vt_subspace_map(subspace_seed(r), r->D, n, r->ctx0, r->pop + (size_t)k * n, r->pts + (size_t)k * r->D);
        r->units[k] = (unit){.point = r->pts + (size_t)k * r->D, .items = r->mb, .n = r->B};
    }
    float *v = malloc((size_t)l * sizeof *v);
    if (!v) return vt_fail(err, VT_ERR_NOMEM, "bbtune: out of memory");
    vt_status st = score_units(r, r->units, l, r->eval_cost, v, err);
    *mean_fit = 0;
    *best = INFINITY;
    for (int k = 0; k < l && !st; k++) {
        r->fit[k] = v[k];
        *mean_fit += v[k] / (double)l;
        if (v[k] < *best) *best = v[k];
    }
    free(v);
    if (!st) st = vt_cmaes_tell(r->es, r->fit, err);
    if (!st) vt_subspace_map(subspace_seed(r), r->D, n, r->ctx0, vt_cmaes_mean(r->es), r->ctx);
    return st;
}

/* Over the answer positions of rows [lo, hi) (their gathered logits): mean
 * cross-entropy and argmax accuracy, under the adapter or (a == NULL) raw.
 * NAN when there are none. */
static void logit_stats(const bb *r, const vt_bbadapter *a, uint32_t lo, uint32_t hi, double *ce, double *acc,
                        double *em) {
    size_t n = r->lg_off[hi] - r->lg_off[lo], right = 0, exact = 0;
    double sum = 0;
    for (uint32_t i = lo; i < hi; i++) { /* per item: whole-answer exact match of the argmax */
        size_t c = 0;
        double s = 0;
        vt_bbadapter_eval(a, r->V, r->lg + r->lg_off[i] * (size_t)r->V, r->lg_y + r->lg_off[i], r->cnt[i], &s, &c);
        sum += s;
        right += c;
        exact += c == r->cnt[i];
    }
    *ce = n ? sum / (double)n : NAN;
    *acc = n ? (double)right / (double)n : NAN;
    *em = hi > lo ? (double)exact / (double)(hi - lo) : NAN;
}

static int run_loop(bb *r, vt_error *err) {
    vt_status st;
    char path[PATH_MAX] = "";
    double t0 = now_s();
    if (isnan(r->loss0) && r->step == 0) {
        r->want_logits = r->lg != NULL;
        st = eval_all(r, r->ctx, r->eval_cost, &r->loss0, &r->eval0, err);
        r->want_logits = 0;
        if (st) return -1;
        if (r->lg) {
            double ce;
            logit_stats(r, NULL, 0, r->n_train, &ce, &r->acc0, &r->em0);
            logit_stats(r, NULL, r->n_train, r->n_train + r->n_eval, &ce, &r->eval_acc0, &r->eval_em0);
        }
        if (r->rank == 0)
            vt_info("bbtune: before tuning: loss %.4f on the %u items%s", r->loss0, r->n_train,
                    r->n_eval ? "" : " (no held-out items)");
    }
    if (r->wb && r->c.n_cos_q && r->step == 0 && (st = zo_cosines(r, "start", err))) return -1;
    uint64_t last_saved = r->resumed ? r->step : UINT64_MAX; /* the checkpoint we resumed from */
    bool budget_end = false;
    while (r->step < (uint64_t)r->c.steps) {
        if (r->c.budget && r->used + r->step_cost + r->eval_cost > (uint64_t)r->c.budget) {
            budget_end = true;
            break;
        }
        vt_bbtune_minibatch((uint64_t)r->c.seed, r->step, r->n_train, r->B, r->mb);
        double loss = NAN, best = NAN;
        if (r->wb) {
            st = whitebox_step(r, &loss, err);
        } else if (r->zo) {
            float f0 = 0;
            st = vt_zo_step(r->zo, r->ctx, zo_objective, r, &f0, err);
            loss = f0;
        } else {
            st = craft_step(r, &loss, &best, err);
        }
        if (st && r->budget_hit) {
            if (r->rank == 0) vt_warn("%s: ending the run", err->msg);
            budget_end = true;
            break;
        }
        if (st) return -1;
        r->step++;
        if (r->rank == 0) {
            fprintf(r->log, "{\"step\": %" PRIu64 ", \"loss\": %.6f, ", r->step, loss);
            if (!isnan(best)) fprintf(r->log, "\"best\": %.6f, ", best);
            fprintf(r->log, "\"queries\": %" PRIu64 ", \"seconds\": %.3f}\n", r->used, now_s() - t0);
            fflush(r->log);
            if (r->step % (uint64_t)r->c.log_every == 0 || r->step == (uint64_t)r->c.steps)
                vt_info("step %" PRIu64 ": minibatch loss %.4f, %" PRIu64 " queries used", r->step, loss, r->used);
        }
        vt_stop stop;
        if ((st = vt_signals_agree(r->comm, &stop, err))) return -1;
        if (stop == VT_STOP_INTERRUPT) {
            if (r->rank == 0) vt_warn("interrupted at step %" PRIu64 " (no checkpoint)", r->step);
            return VT_EXIT_INTERRUPTED;
        }
        if (r->step % (uint64_t)r->c.ckpt_every == 0 || stop == VT_STOP_CHECKPOINT) {
            if ((st = save_checkpoint(r, path, err))) return -1;
            last_saved = r->step;
            if (r->rank == 0) vt_info("checkpoint %s", path);
        }
        if (stop == VT_STOP_CHECKPOINT) {
            if (r->rank == 0) {
                vt_signals_consume_file();
                vt_warn("stop requested: checkpointed at step %" PRIu64 ", exiting 3", r->step);
            }
            return VT_EXIT_CHECKPOINTED;
        }
    }
    if (budget_end && r->rank == 0)
        vt_info("bbtune: the budget cannot pay for another step (%" PRIu64 " of %lld used, %" PRIu64
                " reserved for the final evaluation)",
                r->used, (long long)r->c.budget, r->eval_cost);
    if (r->wb && r->c.n_cos_q && (st = zo_cosines(r, "final", err))) return -1;
    double loss1, eval1;
    r->want_logits = r->lg != NULL;
    st = eval_all(r, r->ctx, 0, &loss1, &eval1, err);
    r->want_logits = 0;
    if (st) return -1;
    /* the output adapter: trained locally on the final context's logits of the
     * tuning items (no queries beyond the final evaluation). Every rank has
     * all logits and runs the same deterministic steps, so every rank holds
     * the same adapter whatever the rank count. */
    double acc1 = NAN, eacc1 = NAN, aloss = NAN, aeval = NAN, aacc = NAN, aeacc = NAN, ce;
    double em1 = NAN, eem1 = NAN, aem = NAN, aeem = NAN;
    bool adapted = false;
    if (r->lg) {
        logit_stats(r, NULL, 0, r->n_train, &ce, &acc1, &em1);
        logit_stats(r, NULL, r->n_train, r->n_train + r->n_eval, &ce, &eacc1, &eem1);
    }
    if (r->ad) {
        vt_bbadapter_opts ao = {.lr = r->c.ad_lr, .kl_weight = r->c.ad_kl, .beta1 = 0.9, .beta2 = 0.999,
                                .batch = (int)r->c.ad_batch};
        adapted = r->ad->step < (uint64_t)r->c.ad_steps;
        double ta = now_s();
        if ((st = vt_bbadapter_train(r->ad, r->lg, r->lg_y, (uint32_t)r->lg_off[r->n_train], &ao,
                                     (uint64_t)r->c.ad_steps, err)))
            return -1;
        logit_stats(r, r->ad, 0, r->n_train, &aloss, &aacc, &aem);
        logit_stats(r, r->ad, r->n_train, r->n_train + r->n_eval, &aeval, &aeacc, &aeem);
        if (r->rank == 0)
            vt_info("bbtune: adapter (hidden %d, %" PRIu64 " steps, %.2f s): answer-token loss %.4f -> %.4f on the "
                    "items, %.4f -> %.4f held out; accuracy %.3f -> %.3f, held out %.3f -> %.3f",
                    r->ad->H, r->ad->step, now_s() - ta, loss1, aloss, eval1, aeval, acc1, aacc, eacc1, aeacc);
    }
    if (adapted && last_saved == r->step) { /* this step's checkpoint lacks the trained adapter: replace it (the
                                               previous one is kept, so a kill in between still resumes) */
        vt_status rs = VT_OK;
        if (r->rank == 0) {
            char name[32], dir[PATH_MAX + 40];
            vt_ckpt_dirname(r->step, name);
            snprintf(dir, sizeof dir, "%s/%s", r->ckpt_root, name);
            rs = vt_remove_tree(dir, err);
        }
        if ((st = agree(r, rs, err))) return -1;
    }
    if (last_saved != r->step || adapted) {
        if ((st = save_checkpoint(r, path, err))) return -1;
    } else if (r->rank == 0) {
        char name[32];
        vt_ckpt_dirname(r->step, name);
        snprintf(path, sizeof path, "%s/%s", r->ckpt_root, name);
    }
    /* Every rank talks to the service: a restart may be noticed by some only. */
    int reconnects = 0;
    MPI_Allreduce(&r->reconnects, &reconnects, 1, MPI_INT, MPI_SUM, r->comm);
    if (r->rank == 0) {
        char json[8192], ids[1024] = "";
        size_t at = 0;
        for (int i = 0; i < r->c.n_ctx; i++)
            at += (size_t)snprintf(ids + at, sizeof ids - at, "%s%d", i ? ", " : "", r->ctx_ids[i]);
#define JNUM(x) (isfinite(x) ? (x) : -1.0)
        int n = snprintf(json, sizeof json,
                         "{\"method\": \"%s\", \"steps\": %" PRIu64 ", \"queries_used\": %" PRIu64
                         ", \"budget\": %lld, \"ranks\": %d, \"n_ctx\": %lld, \"ctx_token_ids\": [%s], \"items\": %u, "
                         "\"eval_items\": %u, \"batch\": %d, \"loss_initial\": %.9g, \"loss_final\": %.9g, "
                         "\"eval_loss_initial\": %.9g, \"eval_loss_final\": %.9g, \"reconnects\": %d, "
                         "\"adapter_steps\": %" PRIu64 ", \"adapter_loss_final\": %.9g, "
                         "\"adapter_eval_loss_final\": %.9g, \"acc_initial\": %.9g, \"acc_final\": %.9g, "
                         "\"adapter_acc_final\": %.9g, \"eval_acc_initial\": %.9g, \"eval_acc_final\": %.9g, "
                         "\"adapter_eval_acc_final\": %.9g, \"em_initial\": %.9g, \"em_final\": %.9g, "
                         "\"adapter_em_final\": %.9g, \"eval_em_initial\": %.9g, \"eval_em_final\": %.9g, "
                         "\"adapter_eval_em_final\": %.9g, \"checkpoint\": \"%s\"}\n",
                         METHODS[r->c.method], r->step, r->used, (long long)r->c.budget, r->ranks,
                         (long long)r->c.n_ctx, ids, r->n_train, r->n_eval, r->B, JNUM(r->loss0), JNUM(loss1),
                         JNUM(r->eval0), JNUM(eval1), reconnects, r->ad ? r->ad->step : 0, JNUM(aloss),
                         JNUM(aeval), JNUM(r->acc0), JNUM(acc1), JNUM(aacc), JNUM(r->eval_acc0), JNUM(eacc1),
                         JNUM(aeacc), JNUM(r->em0), JNUM(em1), JNUM(aem), JNUM(r->eval_em0), JNUM(eem1), JNUM(aeem),
                         path);
#undef JNUM
        char sp[PATH_MAX + 16];
        snprintf(sp, sizeof sp, "%s/summary.json", r->root);
        if ((st = vt_write_file_atomic(sp, json, (size_t)n, err))) return -1;
        vt_info("bbtune: done after %" PRIu64 " steps: loss %.4f -> %.4f on the %u items%s, %" PRIu64
                " of %lld queries; context in %s",
                r->step, r->loss0, loss1, r->n_train, "", r->used, (long long)r->c.budget, path);
        if (r->n_eval) vt_info("bbtune: held-out loss %.4f -> %.4f on %u val items", r->eval0, eval1, r->n_eval);
    }
    return 0;
}

/* ---------------- command ---------------- */

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune bbtune RUN.yaml [--resume auto|PATH] [--set KEY=VALUE ...]\n"
            "  Black-box tuning: learn context vectors through a running `vistune serve`\n"
            "  (CBBT zeroth-order or CraFT CMA-ES; the bbtune section, docs/blackbox.md), or, with\n"
            "  bbtune.method whitebox, the same context learned by backprop through the frozen model\n"
            "  loaded in-process from bbtune.whitebox.checkpoint (the upper bound).\n"
            "  --resume auto   continue from the newest complete checkpoint under RUN_DIR/bbtune/checkpoints\n"
            "                  (start fresh when there is none)\n"
            "  --resume PATH   continue from exactly this checkpoint directory\n"
            "  --set K=V       override one config value (repeatable), e.g. --set bbtune.budget=2000\n"
            "  --stop-file F   when F exists (checked by rank 0 after every step), checkpoint, remove F\n"
            "                  and exit 3, as on SIGUSR1 (as `vistune train --stop-file`)\n"
            "Run under mpirun/srun to split each step's queries over ranks. Exit status: 0 done,\n"
            "1 failed, 2 bad usage or config, 3 checkpointed on SIGUSR1/SIGTERM/stop file (not done), 130 interrupted.\n");
}

int vt_cmd_bbtune(int argc, char **argv) {
    vt_run_args a;
    int done = vt_run_args_parse(argc, argv, "bbtune", usage, &a);
    if (done >= 0) return done;
    bb r;
    memset(&r, 0, sizeof r);
    vt_error err = {0};
    if (vt_signals_install(&err)) { /* before MPI_Init, as in `vistune train` */
        fprintf(stderr, "vistune bbtune: %s\n", err.msg);
        return 1;
    }
    vt_status st = vt_run_args_load(&a, &r.cfg, &err);
    if (!st) st = read_config(r.cfg, &r.c, &err);
    if (st) {
        fprintf(stderr, "vistune bbtune: %s\n", err.msg);
        vt_config_free(r.cfg);
        return 2;
    }
    r.cfg_text = vt_config_text(r.cfg, &r.cfg_len);
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        vt_leak_check_pause();
        MPI_Init(&argc, &argv);
        vt_leak_check_resume();
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &r.comm);
    MPI_Comm_rank(r.comm, &r.rank);
    MPI_Comm_size(r.comm, &r.ranks);
    vt_log_set_rank(r.ranks > 1 ? r.rank : -1);
    if (r.rank == 0) vt_signals_watch_file(a.stop_file);
    int rc;
    if ((st = vt_signals_install(&err)) || (st = agree(&r, setup(&r, &err), &err)) ||
        (st = setup_resume(&r, a.resume, &err))) {
        rc = st == VT_ERR_ARG ? 2 : 1;
    } else {
        rc = run_loop(&r, &err);
        if (rc < 0) rc = 1;
    }
    if ((rc == 1 || rc == 2) && (r.rank == 0 || !strstr(err.msg, "another rank failed")))
        fprintf(stderr, "vistune bbtune: %s\n", strncmp(err.msg, "bbtune: ", 8) ? err.msg : err.msg + 8);
    teardown(&r);
    MPI_Comm_free(&r.comm);
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return rc;
}
