/* The `icl` recipe (trainer/icl.h): MMICT in-context tuning of the M-Hub
 * and an end-of-chunk row in front of the frozen LLaVA model, the
 * vanilla-ICT baseline (raw projected image tokens + demonstration text),
 * and their validation with demonstrations (greedy answers, exact match). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/rng.h"
#include "ops/activation.h"
#include "ops/linear.h"
#include "trainer/eval_score.h"
#include "trainer/generate.h"
#include "trainer/icl.h"
#include "trainer/mhub.h"
#include "trainer/safetensors.h"

enum { ICL_MMICT = 0, ICL_VANILLA = 1 };

typedef struct icl_state {
    vt_mhub_config hc;
    int k;
    int mode;         /* icl.mode: ICL_MMICT | ICL_VANILLA */
    /* data */
    vt_dataset *ds; /* own handle: demonstrations */
    vt_batch_source src;
    uint64_t *train;
    uint32_t *groups; /* per train position, + 1 slot for a held-out query */
    size_t n_train;
    bool similar;     /* icl.selection: similar */
    float *emb;       /* [n_train + 1, v_hidden]: mean image feature per train item (built at the first step)
                       * and a held-out query's in the last row */
    int seq_len, N;
    /* model side */
    vt_model *m;
    vt_mhub *hub;
    uint8_t *hub_decay;
    float *eoc, *eoc_grad;
    uint8_t *eoc_decay;
    uint64_t seed;
    int T_in; /* decoder rows: mmict k (max_text + 1) + seq_len - N + Q; vanilla k (N + max_text + 1) + seq_len */
    /* scratch, sized for cap queries */
    int cap;
    vt_batch demo;
    int *ndemo;   /* [cap] */
    int *demo_at; /* [cap * k] item index of each demonstration */
    float *pix, *vis, *text, *dout;
    int32_t *tlen;
    vt_batch in;
    int32_t *opos, *osrc;
    float *orows, *ograd;
    int n_over;                  /* override rows of the last prepare */
    int nd;                      /* demonstrations of the last prepare */
    int32_t *qend;               /* [cap] end of each query's hub prompt text */
    float *p_pre, *p_act, *p_out, *dp_out, *dp_act, *dp_pre; /* vanilla: demonstrations' projector [cap k N, D] */
    int32_t *gen, *gen_len;      /* validation: generated tokens [cap * max_new], counts [cap] */
    int gen_cap;
    vt_eval_row *rows;           /* [cap] */
} icl_state;

static const uint64_t ICL_TAG = 0x49434c00u; /* "ICL" */

vt_status vt_icl_recipe_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    icl_state *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory");
    *state = s;
    static const char *const modes[] = {"mmict", "vanilla"};
    vt_status st0 = vt_config_enum(cfg, "icl.mode", modes, 2, &s->mode, err);
    if (st0) return st0;
    mc->freeze_vision = true;
    mc->freeze_projector = s->mode == ICL_MMICT; /* vanilla trains the projector (and <eoc>) */
    mc->freeze_language = true;
    vt_mhub_config_default(&s->hc);
    vt_status st = vt_mhub_config_read(cfg, "icl", &s->hc, err);
    if (st) return st;
    int64_t k = 2;
    if ((st = vt_config_int_range(cfg, "icl.k", 0, 16, &k, err))) return VT_ERR_ARG; /* a bad value: exit 2 */
    s->k = (int)k;
    static const char *const sel[] = {"random", "similar"};
    int which = 0;
    if ((st = vt_config_enum(cfg, "icl.selection", sel, 2, &which, err))) return st;
    s->similar = which == 1;
    return VT_OK;
}

vt_status vt_icl_recipe_data(void *state, const vt_dataset_config *dcfg, const uint64_t *train, size_t n_train,
                             vt_error *err) {
    icl_state *s = state;
    vt_dataset_config c = *dcfg;
    c.jitter = 0; /* demonstrations are shown as stored */
    vt_status st = vt_dataset_open(&c, &s->ds, err);
    if (st) return st;
    s->src = vt_dataset_source(s->ds);
    s->seq_len = dcfg->seq_len;
    s->N = dcfg->n_image_tokens;
    s->n_train = n_train;
    s->train = malloc(sizeof *s->train * (n_train ? n_train : 1));
    s->groups = malloc(sizeof *s->groups * (n_train + 1));
    if (!s->train || !s->groups) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory");
    memcpy(s->train, train, sizeof *train * n_train);
    for (size_t i = 0; i < n_train && !st; i++) st = vt_dataset_group(s->ds, train[i], &s->groups[i], err);
    return st;
}

vt_status vt_icl_recipe_init(void *state, vt_model *m, uint64_t seed, vt_error *err) {
    icl_state *s = state;
    if (!s->ds) return vt_fail(err, VT_ERR_ARG, "recipe icl: needs data.source: store (demonstrations are read from it)");
    s->m = m;
    s->seed = seed;
    const vt_model_config *c = &m->cfg;
    vt_status st = vt_mhub_config_resolve(&s->hc, c->v_hidden, c->hidden, c->hidden, err);
    if (st) return st;
    if (s->mode == ICL_VANILLA) {
        /* The demonstrations' projector gradient is added after the decoder's
         * backward (micro_step). The loop starts reducing gradients during
         * that backward only from decoder blocks that train (model.h
         * grads_ready); with the decoder frozen nothing is reduced before
         * the step's end, so the addition is in time. */
        if (!c->freeze_language || !c->freeze_vision || c->freeze_projector)
            return vt_fail(err, VT_ERR_ARG, "recipe icl: icl.mode vanilla trains the projector (and <eoc>) only: "
                                            "leave model.freeze.* at the recipe's defaults");
        s->T_in = s->k * (s->N + s->hc.max_text + 1) + s->seq_len;
        if (s->T_in > c->max_pos)
            return vt_fail(err, VT_ERR_ARG,
                           "recipe icl: the decoder input needs icl.k (%d) x (%d image tokens + icl.max_text %d + 1) + "
                           "data.seq_len %d = %d positions, model max_position_embeddings is %d",
                           s->k, s->N, s->hc.max_text, s->seq_len, s->T_in, c->max_pos);
    } else {
        s->T_in = s->k * (s->hc.max_text + 1) + s->seq_len - s->N + s->hc.queries;
        if (s->T_in > c->max_pos)
            return vt_fail(err, VT_ERR_ARG,
                           "recipe icl: the decoder input needs icl.k (%d) x (icl.max_text %d + 1) + data.seq_len %d - %d "
                           "image tokens + icl.queries %d = %d positions, model max_position_embeddings is %d",
                           s->k, s->hc.max_text, s->seq_len, s->N, s->hc.queries, s->T_in, c->max_pos);
        if ((st = vt_mhub_create(&s->hub, m->ctx, &s->hc, seed, err))) return st;
        s->hub_decay = calloc(s->hub->num_params, 1);
        if (!s->hub_decay) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory");
        for (int i = 0; i < s->hub->ntensors; i++)
            if (s->hub->tensors[i].decay) memset(s->hub_decay + s->hub->tensors[i].offset, 1, s->hub->tensors[i].numel);
    }
    s->eoc = malloc(sizeof(float) * (size_t)c->hidden);
    s->eoc_grad = calloc((size_t)c->hidden, sizeof(float));
    s->eoc_decay = calloc((size_t)c->hidden, 1);
    if (!s->eoc || !s->eoc_grad || !s->eoc_decay) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory");
    vt_rng r;
    vt_rng_init(&r, vt_hash_bytes("icl.eoc", 7, seed));
    for (int d = 0; d < c->hidden; d++) s->eoc[d] = (float)(vt_rng_normal(&r) * s->hc.init_std);
    return VT_OK;
}

vt_status vt_icl_recipe_param_groups(void *state, vt_param_group *out, int *n, vt_error *err) {
    (void)err;
    icl_state *s = state;
    int g = 0;
    if (s->hub)
        out[g++] = (vt_param_group){.name = "mhub", .params = s->hub->params, .grads = s->hub->grads,
                                    .decay_mask = s->hub_decay, .n = s->hub->num_params};
    out[g++] = (vt_param_group){.name = "icl.eoc", .params = s->eoc, .grads = s->eoc_grad,
                                .decay_mask = s->eoc_decay, .n = (size_t)s->m->cfg.hidden};
    *n = g;
    return VT_OK;
}

static void free_scratch(icl_state *s) {
    vt_batch_free(&s->demo);
    vt_batch_free(&s->in);
    if (s->rows)
        for (int i = 0; i < s->cap; i++) vt_eval_row_free(&s->rows[i]);
    free(s->rows);
    free(s->ndemo);
    free(s->demo_at);
    free(s->pix);
    free(s->vis);
    free(s->text);
    free(s->dout);
    free(s->tlen);
    free(s->opos);
    free(s->osrc);
    free(s->orows);
    free(s->ograd);
    free(s->qend);
    free(s->p_pre);
    free(s->p_act);
    free(s->p_out);
    free(s->dp_out);
    free(s->dp_act);
    free(s->dp_pre);
    free(s->gen);
    free(s->gen_len);
    s->rows = NULL;
    s->ndemo = s->demo_at = NULL;
    s->pix = s->vis = s->text = s->dout = s->orows = s->ograd = NULL;
    s->p_pre = s->p_act = s->p_out = s->dp_out = s->dp_act = s->dp_pre = NULL;
    s->tlen = s->opos = s->osrc = s->qend = s->gen = s->gen_len = NULL;
    s->cap = s->gen_cap = 0;
}

static vt_status ensure_scratch(icl_state *s, int B, uint32_t S, vt_error *err) {
    if (B <= s->cap) return VT_OK;
    free_scratch(s);
    const vt_model_config *c = &s->m->cfg;
    int k = s->k, items = B * (1 + k), Q = s->hc.queries, L = s->hc.max_text, D = c->hidden;
    size_t img = (size_t)3 * S * S;
    vt_status st;
    if (k > 0) {
        vt_batch_shape ds = {.batch = (uint32_t)(B * k), .channels = 3, .height = S, .width = S,
                             .seq_len = (uint32_t)s->seq_len};
        if ((st = vt_batch_alloc(&s->demo, &ds, err))) return st;
    }
    /* vanilla: the query rows keep their own image (the model's image path) */
    vt_batch_shape is = {.batch = (uint32_t)B, .channels = s->mode == ICL_VANILLA ? 3 : 0,
                         .height = s->mode == ICL_VANILLA ? S : 0, .width = s->mode == ICL_VANILLA ? S : 0,
                         .seq_len = (uint32_t)s->T_in};
    if ((st = vt_batch_alloc(&s->in, &is, err))) return st;
    size_t nover = (size_t)B * (size_t)s->T_in, prow = (size_t)B * (k ? k : 1) * s->N * D;
    s->rows = calloc((size_t)B, sizeof *s->rows);
    s->ndemo = calloc((size_t)B, sizeof(int));
    s->demo_at = calloc((size_t)B * (k ? k : 1), sizeof(int));
    s->pix = malloc(sizeof(float) * (size_t)items * img);
    s->vis = malloc(sizeof(float) * (size_t)items * s->N * c->v_hidden);
    s->text = malloc(sizeof(float) * (size_t)items * L * D);
    s->dout = malloc(sizeof(float) * (size_t)items * (Q + L) * D);
    s->tlen = malloc(sizeof(int32_t) * (size_t)items);
    s->qend = malloc(sizeof(int32_t) * (size_t)B);
    s->opos = malloc(sizeof(int32_t) * nover);
    s->osrc = malloc(sizeof(int32_t) * nover);
    s->orows = malloc(sizeof(float) * nover * D);
    s->ograd = malloc(sizeof(float) * nover * D);
    bool ok = s->rows && s->ndemo && s->demo_at && s->pix && s->vis && s->text && s->dout && s->tlen && s->qend &&
              s->opos && s->osrc && s->orows && s->ograd;
    if (ok && s->mode == ICL_VANILLA) {
        s->p_pre = malloc(sizeof(float) * prow);
        s->p_act = malloc(sizeof(float) * prow);
        s->p_out = malloc(sizeof(float) * prow);
        s->dp_out = malloc(sizeof(float) * prow);
        s->dp_act = malloc(sizeof(float) * prow);
        s->dp_pre = malloc(sizeof(float) * prow);
        ok = s->p_pre && s->p_act && s->p_out && s->dp_out && s->dp_act && s->dp_pre;
    }
    if (!ok) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory for a micro-batch of %d", B);
    s->cap = B;
    return VT_OK;
}

/* The image span [*a, *e) of row r (T columns, length len); VT_ERR_ARG without one. */
static vt_status image_span(const vt_batch *b, int r, int image_token, int *a, int *e, vt_error *err) {
    int T = (int)b->shape.seq_len, len = b->lengths[r];
    const int32_t *tok = b->tokens + (size_t)r * T;
    *a = *e = -1;
    for (int t = 0; t < len; t++)
        if (tok[t] == image_token) {
            if (*a < 0) *a = t;
            *e = t + 1;
        }
    if (*a < 0)
        return vt_fail(err, VT_ERR_ARG, "recipe icl: sample %llu has no image (every item needs one)",
                       (unsigned long long)b->sample_indices[r]);
    return VT_OK;
}

/* Text of one item: the non-image tokens of row r in [from, to), at most L of
 * them: the first L (a query's prompt) or, with last, the last L (a
 * demonstration: its answer, which carries the group's format, is at the
 * end). Writes the ids to ids (when not NULL) and their embeddings to dst
 * (when not NULL, L rows, zero padded); returns how many. */
static int item_text(const icl_state *s, const vt_batch *b, int r, int from, int to, bool last, int32_t *ids,
                     float *dst) {
    int T = (int)b->shape.seq_len, L = s->hc.max_text, D = s->m->cfg.hidden, n = 0;
    const int32_t *tok = b->tokens + (size_t)r * T;
    if (last) { /* move `from` so that at most L non-image tokens remain */
        int keep = 0, t = to;
        while (t > from && keep < L)
            if (tok[--t] != s->m->cfg.image_token_index) keep++;
        from = t;
    }
    if (dst) memset(dst, 0, sizeof(float) * (size_t)L * D);
    for (int t = from; t < to && n < L; t++) {
        if (tok[t] == s->m->cfg.image_token_index) continue;
        if (ids) ids[n] = tok[t];
        if (dst) memcpy(dst + (size_t)n * D, s->m->w.embed + (size_t)tok[t] * D, sizeof(float) * (size_t)D);
        n++;
    }
    return n;
}

/* Mean over the N image tokens of one item's features [N, Vh]. */
static void mean_feature(const float *f, int N, int Vh, float *e) {
    for (int d = 0; d < Vh; d++) {
        double acc = 0;
        for (int t = 0; t < N; t++) acc += f[(size_t)t * Vh + d];
        e[d] = (float)(acc / N);
    }
}

/* The retrieval index of icl.selection: similar: every train item's image
 * features from the frozen tower, mean over the image tokens. Built once,
 * at the first step (after a resume has loaded the weights), in chunks of
 * the demonstration batch; the same on every rank. One more row holds a
 * held-out query's feature at validation. */
static vt_status build_index(icl_state *s, vt_model *m, vt_error *err) {
    int Vh = m->cfg.v_hidden, N = s->N, chunk = s->cap * s->k; /* the demonstration batch holds cap x k */
    s->emb = malloc(sizeof(float) * (s->n_train + 1) * (size_t)Vh);
    if (!s->emb) return vt_fail(err, VT_ERR_NOMEM, "recipe icl: no memory for the index of %zu items", s->n_train);
    for (size_t at = 0; at < s->n_train; at += (size_t)chunk) {
        int n = s->n_train - at < (size_t)chunk ? (int)(s->n_train - at) : chunk;
        for (int i = 0; i < n; i++) s->demo.sample_indices[i] = s->train[at + (size_t)i];
        s->demo.shape.batch = (uint32_t)n;
        s->demo.epoch = 0;
        vt_status st = s->src.fill(s->src.ctx, &s->demo, err);
        if (!st) st = vt_model_image_features(m, s->demo.pixels, n, s->vis, err);
        if (st) return st;
        for (int i = 0; i < n; i++)
            mean_feature(s->vis + (size_t)i * N * Vh, N, Vh, s->emb + (at + (size_t)i) * (size_t)Vh);
    }
    return VT_OK;
}

static int find_train(const icl_state *s, uint64_t idx) {
    size_t lo = 0, hi = s->n_train;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->train[mid] < idx) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n_train && s->train[lo] == idx ? (int)lo : -1;
}

static vt_status ops_fail(icl_state *s, vt_status st, const char *what, vt_error *err) {
    return vt_fail(err, st, "recipe icl: %s: %s", what, vt_ctx_error(s->m->ctx)->msg);
}

/* The decoder's input for the B query rows of b (s->in, the override rows
 * in s->opos/osrc/orows, s->n_over, s->nd): demonstrations chosen and read,
 * hub or projector run. b holds training rows (prompts false: targets and
 * loss mask kept) or evaluation prompt rows (prompts true). dq NULL: every
 * query is in the train split (training); else the queries are held-out
 * items of the handle dq, their demonstrations drawn from the train split
 * by the same rule and seed as in training (never the query). */
static vt_status prepare(icl_state *s, vt_model *m, const vt_batch *b, bool prompts, vt_dataset *dq, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    int B = (int)b->shape.batch, T = (int)b->shape.seq_len, k = s->k, Q = s->hc.queries, L = s->hc.max_text;
    int D = c->hidden, Vh = c->v_hidden, N = s->N, TI = s->T_in, img_tok = c->image_token_index;
    bool van = s->mode == ICL_VANILLA;
    if (T != s->seq_len || b->shape.channels != 3)
        return vt_fail(err, VT_ERR_ARG, "recipe icl: micro-batch T=%d C=%u (expected T=%d with images)", T,
                       b->shape.channels, s->seq_len);
    if (B > 64) return vt_fail(err, VT_ERR_ARG, "recipe icl: micro-batch %d > 64", B);
    uint32_t S = b->shape.height;
    int spa[64], spe[64]; /* image span of each query row */
    vt_status st = ensure_scratch(s, B, S, err);
    if (!st) st = vt_model_reserve(m, B, TI, true, err);
    if (!st && s->similar && k > 0 && !s->emb) st = build_index(s, m, err);
    if (st) return st;
    size_t img = (size_t)3 * S * S, fsz = (size_t)N * Vh;
    /* 1. the queries' image features (the hub's input; a held-out query's similarity key) */
    memcpy(s->pix, b->pixels, sizeof(float) * img * (size_t)B);
    if ((!van || (dq && s->similar && k > 0)) && (st = vt_model_image_features(m, s->pix, B, s->vis, err)))
        return st;
    /* 2. demonstrations: chosen per query, read through the dataset */
    int nd = 0;
    for (int r = 0; r < B; r++) {
        uint64_t idx = b->sample_indices[r];
        int q, n = (int)s->n_train, pick[16];
        if (!dq) {
            if ((q = find_train(s, idx)) < 0)
                return vt_fail(err, VT_ERR_STATE, "recipe icl: sample %llu is not in the train split",
                               (unsigned long long)idx);
        } else {
            /* the held-out query as one more item: same group rule, never itself */
            q = n++;
            if (find_train(s, idx) >= 0)
                return vt_fail(err, VT_ERR_STATE, "recipe icl: validation item %llu is in the train split",
                               (unsigned long long)idx);
            if ((st = vt_dataset_group(dq, idx, &s->groups[q], err))) return st;
            if (s->emb) mean_feature(s->vis + (size_t)r * fsz, N, Vh, s->emb + (size_t)q * Vh);
        }
        int got = vt_mmict_select_demos(s->groups, s->emb, Vh, n, q, k, vt_hash4(s->seed, idx, ICL_TAG, 0), pick);
        s->ndemo[r] = got;
        for (int j = 0; j < got; j++) {
            s->demo.sample_indices[nd] = s->train[pick[j]];
            s->demo_at[r * (k ? k : 1) + j] = nd;
            nd++;
        }
    }
    s->nd = nd;
    if (nd > 0) {
        s->demo.shape.batch = (uint32_t)nd;
        s->demo.epoch = 0; /* no augmentation: the epoch does not matter */
        if ((st = s->src.fill(s->src.ctx, &s->demo, err))) return st;
        if ((st = vt_model_image_features(m, s->demo.pixels, nd, s->vis + (size_t)B * fsz, err))) return st;
    }
    /* 3. what the demonstrations become: hub rows (mmict) or projected image tokens (vanilla) */
    int dspa[64 * 16], dspe[64 * 16];
    for (int j = 0; j < nd; j++)
        if ((st = image_span(&s->demo, j, img_tok, &dspa[j], &dspe[j], err))) return st;
    for (int r = 0; r < B; r++) {
        if ((st = image_span(b, r, img_tok, &spa[r], &spe[r], err))) return st;
        int to = spe[r];
        if (prompts) {
            to = b->lengths[r];
        } else {
            const uint8_t *mk = b->loss_mask + (size_t)r * T;
            while (to < b->lengths[r] && !mk[to]) to++;
            if (to < b->lengths[r]) to++; /* the token that predicts the first answer token */
        }
        s->qend[r] = to;
    }
    const float *table; /* override source rows */
    if (!van) {
        for (int r = 0; r < B; r++)
            s->tlen[r] = item_text(s, b, r, spe[r], s->qend[r], false, NULL, s->text + (size_t)r * L * D);
        for (int j = 0; j < nd; j++)
            s->tlen[B + j] = item_text(s, &s->demo, j, dspe[j], s->demo.lengths[j], true, NULL,
                                       s->text + (size_t)(B + j) * L * D);
        if ((st = vt_mhub_forward(s->hub, s->vis, B + nd, N, s->text, s->tlen, L, err))) return st;
        table = vt_mhub_output(s->hub);
    } else {
        int BN = nd * N;
        const float *dv = s->vis + (size_t)B * fsz;
        if (BN > 0) {
            if ((st = vt_linear_forward(m->ctx, s->p_pre, dv, m->w.p1_w, m->w.p1_b, BN, Vh, D)) ||
                (st = vt_activation_forward(m->ctx, c->proj_act, s->p_act, s->p_pre, (size_t)BN * D)) ||
                (st = vt_linear_forward(m->ctx, s->p_out, s->p_act, m->w.p2_w, m->w.p2_b, BN, D, D)))
                return ops_fail(s, st, "projector (demonstrations)", err);
        }
        table = s->p_out;
    }
    /* 4. the decoder's input rows */
    vt_batch *in = &s->in;
    in->shape.batch = (uint32_t)B;
    memset(in->tokens, 0, sizeof(int32_t) * (size_t)B * TI);
    memset(in->targets, 0, sizeof(int32_t) * (size_t)B * TI);
    memset(in->loss_mask, 0, (size_t)B * TI);
    if (van) memcpy(in->pixels, b->pixels, sizeof(float) * img * (size_t)B);
    int no = 0;
#define OVER(flat, src_row)                                                                        \
    do {                                                                                           \
        long long src__ = (long long)(src_row);                                                    \
        s->opos[no] = (int32_t)(flat);                                                             \
        s->osrc[no] = (int32_t)src__;                                                              \
        memcpy(s->orows + (size_t)no * D, src__ >= 0 ? table + (size_t)src__ * D : s->eoc,         \
               sizeof(float) * (size_t)D);                                                         \
        no++;                                                                                      \
    } while (0)
    for (int r = 0; r < B; r++) {
        int p = 0;
        size_t base = (size_t)r * TI;
        for (int j = 0; j < s->ndemo[r]; j++) {
            int dj = s->demo_at[r * (k ? k : 1) + j], it = B + dj;
            if (!van) {
                for (int t = 0; t < s->tlen[it]; t++, p++) OVER(base + p, (size_t)it * (Q + L) + Q + t);
            } else {
                for (int t = 0; t < N; t++, p++) OVER(base + p, (size_t)dj * N + t);
                p += item_text(s, &s->demo, dj, dspe[dj], s->demo.lengths[dj], true, in->tokens + base + p, NULL);
            }
            OVER(base + p, -1);
            p++;
        }
        const int32_t *tok = b->tokens + (size_t)r * T, *tg = b->targets + (size_t)r * T;
        const uint8_t *mk = b->loss_mask + (size_t)r * T;
        for (int t = 0; t < b->lengths[r]; t++) {
            if (!van && t == spa[r]) {
                for (int q = 0; q < Q; q++, p++) OVER(base + p, (size_t)r * (Q + L) + q);
                /* the last TV row predicts what followed the image span */
                if (!prompts) {
                    in->targets[base + p - 1] = tg[spe[r] - 1];
                    in->loss_mask[base + p - 1] = mk[spe[r] - 1];
                }
                t = spe[r] - 1;
                continue;
            }
            in->tokens[base + p] = tok[t];
            if (!prompts) {
                in->targets[base + p] = tg[t];
                in->loss_mask[base + p] = mk[t];
            }
            p++;
        }
        in->lengths[r] = p;
    }
#undef OVER
    s->n_over = no;
    return VT_OK;
}

vt_status vt_icl_recipe_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale, double progress,
                                   double *loss_sum, vt_error *err) {
    (void)progress;
    icl_state *s = state;
    int D = m->cfg.hidden, Q = s->hc.queries, L = s->hc.max_text, N = s->N;
    *loss_sum = 0;
    vt_status st = prepare(s, m, b, false, NULL, err);
    if (st) return st;
    int no = s->n_over, B = (int)b->shape.batch, nd = s->nd;
    int items = B + nd;
    /* frozen decoder: loss, and the gradient at the override rows */
    memset(s->ograd, 0, sizeof(float) * (size_t)no * D);
    m->input = (vt_input_override){.n = no, .pos = s->opos, .rows = s->orows, .grad = s->ograd};
    float loss = 0;
    st = vt_model_forward(m, &s->in, VT_FORWARD_LOSS, &loss, err);
    if (!st) {
        *loss_sum = (double)loss * (double)m->loss_count;
        if (m->loss_count > 0) st = vt_model_backward(m, dloss_scale, err);
    }
    m->input = (vt_input_override){0};
    if (st || m->loss_count == 0) return st;
    /* back into the hub (mmict) or the projector (vanilla), and the <eoc> row */
    if (s->mode == ICL_MMICT) {
        memset(s->dout, 0, sizeof(float) * (size_t)items * (Q + L) * D);
        for (int i = 0; i < no; i++) {
            const float *g = s->ograd + (size_t)i * D;
            float *dst = s->osrc[i] >= 0 ? s->dout + (size_t)s->osrc[i] * D : s->eoc_grad;
            for (int d = 0; d < D; d++) dst[d] += g[d];
        }
        return vt_mhub_backward(s->hub, s->dout, NULL, NULL, err);
    }
    int BN = nd * N, Vh = m->cfg.v_hidden;
    if (BN) memset(s->dp_out, 0, sizeof(float) * (size_t)BN * D);
    for (int i = 0; i < no; i++) {
        const float *g = s->ograd + (size_t)i * D;
        float *dst = s->osrc[i] >= 0 ? s->dp_out + (size_t)s->osrc[i] * D : s->eoc_grad;
        for (int d = 0; d < D; d++) dst[d] += g[d];
    }
    if (BN == 0) return VT_OK;
    /* the projector's backward for the demonstrations' image tokens, added
     * to the gradient the model's backward left for the query images */
    memset(s->dp_act, 0, sizeof(float) * (size_t)BN * D);
    memset(s->dp_pre, 0, sizeof(float) * (size_t)BN * D);
    if ((st = vt_linear_backward(m->ctx, s->dp_act, m->g.p2_w, m->g.p2_b, s->dp_out, s->p_act, m->w.p2_w, BN, D, D)) ||
        (st = vt_activation_backward(m->ctx, m->cfg.proj_act, s->dp_pre, s->dp_act, s->p_pre, (size_t)BN * D)) ||
        (st = vt_linear_backward(m->ctx, NULL, m->g.p1_w, m->g.p1_b, s->dp_pre, s->vis + (size_t)B * N * Vh,
                                 m->w.p1_w, BN, Vh, D)))
        return ops_fail(s, st, "projector backward (demonstrations)", err);
    return VT_OK;
}

/* Validation with demonstrations (recipe hook `validate`, rank 0): for each
 * held-out item, the loss of its answer and a greedy answer
 * (vt_generate_greedy through the input override) with k demonstrations
 * from the train split chosen as in training (same selection, seed keyed by
 * the item), scored by exact match per question type and task group. */
vt_status vt_icl_recipe_validate(void *state, vt_model *m, vt_dataset *d, const uint64_t *items, size_t n,
                                 vt_batch *batch, int max_new, vt_val_result *out, vt_error *err) {
    icl_state *s = state;
    memset(out, 0, sizeof *out);
    const uint32_t B = batch->shape.batch;
    if (B == 0 || max_new < 1) return vt_fail(err, VT_ERR_ARG, "validation: empty batch or max_new < 1");
    if ((size_t)B * (size_t)max_new > (size_t)s->gen_cap) {
        free(s->gen);
        free(s->gen_len);
        s->gen = malloc(sizeof(int32_t) * (size_t)B * (size_t)max_new);
        s->gen_len = malloc(sizeof(int32_t) * B);
        if (!s->gen || !s->gen_len) return vt_fail(err, VT_ERR_NOMEM, "validation: out of memory");
        s->gen_cap = (int)(B * (uint32_t)max_new);
    }
    vt_batch_source src = vt_dataset_source(d);
    vt_tokenizer *tok = vt_dataset_tokenizer(d);
    int32_t eos = vt_tokenizer_eos_id(tok), eot = vt_dataset_template(d)->end_of_turn;
    double loss_sum = 0;
    vt_status st = VT_OK;
    for (size_t at = 0; !st && at < n; at += B) {
        uint32_t kq = (uint32_t)(n - at < B ? n - at : B);
        batch->shape.batch = kq;
        batch->epoch = 0;
        batch->step = 0;
        memcpy(batch->sample_indices, items + at, kq * sizeof *items);
        /* the answer's loss: training rows with demonstrations, forward only */
        float loss = 0;
        if ((st = src.fill(src.ctx, batch, err))) break;
        if ((st = prepare(s, m, batch, false, d, err))) break;
        m->input = (vt_input_override){.n = s->n_over, .pos = s->opos, .rows = s->orows, .grad = NULL};
        st = vt_model_forward(m, &s->in, VT_FORWARD_LOSS, &loss, err);
        m->input = (vt_input_override){0};
        if (st) break;
        if (m->loss_count > 0) loss_sum += (double)loss * m->loss_count;
        out->loss_tokens += m->loss_count;
        /* the answers: prompt rows with demonstrations, greedy decoding */
        if ((st = vt_dataset_fill_prompts(d, batch, max_new, NULL, NULL, s->rows, err))) break;
        if ((st = prepare(s, m, batch, true, d, err))) break;
        m->input = (vt_input_override){.n = s->n_over, .pos = s->opos, .rows = s->orows, .grad = NULL};
        st = vt_generate_greedy(m, &s->in, max_new, eos, eot, s->gen, s->gen_len, err);
        m->input = (vt_input_override){0};
        for (uint32_t r = 0; !st && r < kq; r++) {
            char *text = NULL;
            size_t len = 0;
            uint32_t group = 0;
            if ((st = vt_tokenizer_decode(tok, s->gen + (size_t)r * max_new, (size_t)s->gen_len[r],
                                          VT_TOK_SKIP_SPECIAL, &text, &len, err)))
                break;
            float sc = vt_score(VT_SCORE_EXACT, text, s->rows[r].reference);
            free(text);
            if (!(st = vt_dataset_group(d, items[at + r], &group, err)))
                st = vt_val_result_add(out, s->rows[r].task, group, sc, err);
        }
        for (uint32_t r = 0; r < kq; r++) vt_eval_row_free(&s->rows[r]);
    }
    batch->shape.batch = B;
    if (st) {
        vt_val_result_free(out);
        return st;
    }
    vt_val_result_finish(out, loss_sum);
    return VT_OK;
}

vt_status vt_icl_recipe_save(void *state, vt_ckpt_writer *w, vt_error *err) {
    icl_state *s = state;
    if (vt_ckpt_writer_rank(w) != 0) return VT_OK; /* replicated: rank 0 writes it */
    char path[4096];
    vt_status st = VT_OK;
    if (s->hub) { /* vanilla: the projector is in model.safetensors */
        st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "mhub.safetensors", err);
        if (!st) st = vt_mhub_save(s->hub, path, err);
    }
    if (!st) st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "icl.safetensors", err);
    if (st) return st;
    vt_st_writer *wr = vt_st_writer_new();
    if (!wr) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    int64_t shape[1] = {s->m->cfg.hidden};
    st = vt_st_writer_meta(wr, "vistune_method", s->hub ? "mmict" : "vanilla_ict", err);
    if (!st) st = vt_st_writer_add(wr, "icl.eoc", VT_ST_F32, 1, shape, s->eoc, err);
    if (!st) st = vt_st_writer_write(wr, path, err);
    vt_st_writer_free(wr);
    return st;
}

vt_status vt_icl_recipe_load(void *state, const vt_ckpt *c, vt_error *err) {
    icl_state *s = state;
    char path[4096];
    vt_status st = VT_OK;
    if (s->hub) {
        st = vt_ckpt_file(c, "mhub.safetensors", path, sizeof path, err);
        if (!st) st = vt_mhub_load(s->hub, path, err);
    }
    if (!st) st = vt_ckpt_file(c, "icl.safetensors", path, sizeof path, err);
    if (st) return st;
    vt_st_file *f = NULL;
    if ((st = vt_st_open(path, &f, err))) return st;
    const vt_st_tensor *t = vt_st_find(f, "icl.eoc");
    if (!t || t->ndim != 1 || t->shape[0] != s->m->cfg.hidden || vt_st_count(f) != 1)
        st = vt_fail(err, VT_ERR_FORMAT, "%s: expected exactly icl.eoc [%d]", path, s->m->cfg.hidden);
    else
        st = vt_st_read_f32(f, t, s->eoc, s->m->cfg.hidden, err);
    vt_st_close(f);
    return st;
}

void vt_icl_recipe_destroy(void *state) {
    icl_state *s = state;
    if (!s) return;
    free_scratch(s);
    vt_mhub_free(s->hub);
    vt_dataset_close(s->ds);
    free(s->train);
    free(s->groups);
    free(s->emb);
    free(s->hub_decay);
    free(s->eoc);
    free(s->eoc_grad);
    free(s->eoc_decay);
    free(s);
}
