/* The `icl` recipe (trainer/icl.h): MMICT in-context tuning of the M-Hub
 * and an end-of-chunk row in front of the frozen LLaVA model. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/rng.h"
#include "trainer/icl.h"
#include "trainer/mhub.h"
#include "trainer/safetensors.h"

typedef struct icl_state {
    vt_mhub_config hc;
    int k;
    /* data */
    vt_dataset *ds; /* own handle: demonstrations */
    vt_batch_source src;
    uint64_t *train;
    uint32_t *groups; /* per train position */
    size_t n_train;
    bool similar;     /* icl.selection: similar */
    float *emb;       /* [n_train, v_hidden]: mean image feature per train item, built at the first step */
    int seq_len, N;
    /* model side */
    vt_model *m;
    vt_mhub *hub;
    uint8_t *hub_decay;
    float *eoc, *eoc_grad;
    uint8_t *eoc_decay;
    uint64_t seed;
    int T_in; /* decoder rows: k (max_text + 1) + seq_len - N + Q */
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
} icl_state;

static const uint64_t ICL_TAG = 0x49434c00u; /* "ICL" */

vt_status vt_icl_recipe_configure(const vt_config *cfg, vt_model_config *mc, void **state, vt_error *err) {
    mc->freeze_vision = true;
    mc->freeze_projector = true;
    mc->freeze_language = true;
    icl_state *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory");
    *state = s;
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
    s->groups = malloc(sizeof *s->groups * (n_train ? n_train : 1));
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
    s->T_in = s->k * (s->hc.max_text + 1) + s->seq_len - s->N + s->hc.queries;
    if (s->T_in > c->max_pos)
        return vt_fail(err, VT_ERR_ARG,
                       "recipe icl: the decoder input needs icl.k (%d) x (icl.max_text %d + 1) + data.seq_len %d - %d "
                       "image tokens + icl.queries %d = %d positions, model max_position_embeddings is %d",
                       s->k, s->hc.max_text, s->seq_len, s->N, s->hc.queries, s->T_in, c->max_pos);
    if ((st = vt_mhub_create(&s->hub, m->ctx, &s->hc, seed, err))) return st;
    s->hub_decay = calloc(s->hub->num_params, 1);
    s->eoc = malloc(sizeof(float) * (size_t)c->hidden);
    s->eoc_grad = calloc((size_t)c->hidden, sizeof(float));
    s->eoc_decay = calloc((size_t)c->hidden, 1);
    if (!s->hub_decay || !s->eoc || !s->eoc_grad || !s->eoc_decay) return vt_fail(err, VT_ERR_NOMEM, "icl: no memory");
    for (int i = 0; i < s->hub->ntensors; i++)
        if (s->hub->tensors[i].decay) memset(s->hub_decay + s->hub->tensors[i].offset, 1, s->hub->tensors[i].numel);
    vt_rng r;
    vt_rng_init(&r, vt_hash_bytes("icl.eoc", 7, seed));
    for (int d = 0; d < c->hidden; d++) s->eoc[d] = (float)(vt_rng_normal(&r) * s->hc.init_std);
    return VT_OK;
}

vt_status vt_icl_recipe_param_groups(void *state, vt_param_group *out, int *n, vt_error *err) {
    (void)err;
    icl_state *s = state;
    out[0] = (vt_param_group){.name = "mhub", .params = s->hub->params, .grads = s->hub->grads,
                              .decay_mask = s->hub_decay, .n = s->hub->num_params};
    out[1] = (vt_param_group){.name = "icl.eoc", .params = s->eoc, .grads = s->eoc_grad,
                              .decay_mask = s->eoc_decay, .n = (size_t)s->m->cfg.hidden};
    *n = 2;
    return VT_OK;
}

static void free_scratch(icl_state *s) {
    vt_batch_free(&s->demo);
    vt_batch_free(&s->in);
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
    s->ndemo = s->demo_at = NULL;
    s->pix = s->vis = s->text = s->dout = s->orows = s->ograd = NULL;
    s->tlen = s->opos = s->osrc = NULL;
    s->cap = 0;
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
    vt_batch_shape is = {.batch = (uint32_t)B, .channels = 0, .seq_len = (uint32_t)s->T_in};
    if ((st = vt_batch_alloc(&s->in, &is, err))) return st;
    size_t nover = (size_t)B * (size_t)s->T_in;
    s->ndemo = calloc((size_t)B, sizeof(int));
    s->demo_at = calloc((size_t)B * (k ? k : 1), sizeof(int));
    s->pix = malloc(sizeof(float) * (size_t)items * img);
    s->vis = malloc(sizeof(float) * (size_t)items * s->N * c->v_hidden);
    s->text = malloc(sizeof(float) * (size_t)items * L * D);
    s->dout = malloc(sizeof(float) * (size_t)items * (Q + L) * D);
    s->tlen = malloc(sizeof(int32_t) * (size_t)items);
    s->opos = malloc(sizeof(int32_t) * nover);
    s->osrc = malloc(sizeof(int32_t) * nover);
    s->orows = malloc(sizeof(float) * nover * D);
    s->ograd = malloc(sizeof(float) * nover * D);
    if (!s->ndemo || !s->demo_at || !s->pix || !s->vis || !s->text || !s->dout || !s->tlen || !s->opos || !s->osrc ||
        !s->orows || !s->ograd)
        return vt_fail(err, VT_ERR_NOMEM, "icl: no memory for a micro-batch of %d", B);
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

/* Text of one hub item: embeddings of tokens [from, to) of row r, at most L. */
static int item_text(const icl_state *s, const vt_batch *b, int r, int from, int to, float *dst) {
    int T = (int)b->shape.seq_len, L = s->hc.max_text, D = s->m->cfg.hidden, n = 0;
    const int32_t *tok = b->tokens + (size_t)r * T;
    memset(dst, 0, sizeof(float) * (size_t)L * D);
    for (int t = from; t < to && n < L; t++) {
        if (tok[t] == s->m->cfg.image_token_index) continue;
        memcpy(dst + (size_t)n * D, s->m->w.embed + (size_t)tok[t] * D, sizeof(float) * (size_t)D);
        n++;
    }
    return n;
}

/* The retrieval index of icl.selection: similar: every train item's image
 * features from the frozen tower, mean over the image tokens. Built once,
 * at the first step (after a resume has loaded the weights), in chunks of
 * the demonstration batch; the same on every rank. */
static vt_status build_index(icl_state *s, vt_model *m, vt_error *err) {
    int Vh = m->cfg.v_hidden, N = s->N, chunk = s->cap * s->k; /* the demonstration batch holds cap x k */
    s->emb = malloc(sizeof(float) * (s->n_train ? s->n_train : 1) * (size_t)Vh);
    if (!s->emb) return vt_fail(err, VT_ERR_NOMEM, "recipe icl: no memory for the index of %zu items", s->n_train);
    for (size_t at = 0; at < s->n_train; at += (size_t)chunk) {
        int n = s->n_train - at < (size_t)chunk ? (int)(s->n_train - at) : chunk;
        for (int i = 0; i < n; i++) s->demo.sample_indices[i] = s->train[at + (size_t)i];
        s->demo.shape.batch = (uint32_t)n;
        s->demo.epoch = 0;
        vt_status st = s->src.fill(s->src.ctx, &s->demo, err);
        if (!st) st = vt_model_image_features(m, s->demo.pixels, n, s->vis, err);
        if (st) return st;
        for (int i = 0; i < n; i++) {
            float *e = s->emb + (at + (size_t)i) * (size_t)Vh;
            const float *f = s->vis + (size_t)i * N * Vh;
            for (int d = 0; d < Vh; d++) {
                double acc = 0;
                for (int t = 0; t < N; t++) acc += f[(size_t)t * Vh + d];
                e[d] = (float)(acc / N);
            }
        }
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

vt_status vt_icl_recipe_micro_step(void *state, vt_model *m, const vt_batch *b, float dloss_scale, double progress,
                                   double *loss_sum, vt_error *err) {
    (void)progress;
    icl_state *s = state;
    const vt_model_config *c = &m->cfg;
    int B = (int)b->shape.batch, T = (int)b->shape.seq_len, k = s->k, Q = s->hc.queries, L = s->hc.max_text;
    int D = c->hidden, TI = s->T_in, img_tok = c->image_token_index;
    *loss_sum = 0;
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
    /* 1. demonstrations: chosen per query, read through the dataset */
    int nd = 0;
    for (int r = 0; r < B; r++) {
        uint64_t idx = b->sample_indices[r];
        int q = find_train(s, idx), pick[16];
        if (q < 0)
            return vt_fail(err, VT_ERR_STATE, "recipe icl: sample %llu is not in the train split",
                           (unsigned long long)idx);
        int n = vt_mmict_select_demos(s->groups, s->emb, m->cfg.v_hidden, (int)s->n_train, q, k,
                                      vt_hash4(s->seed, idx, ICL_TAG, 0), pick);
        s->ndemo[r] = n;
        for (int j = 0; j < n; j++) {
            s->demo.sample_indices[nd] = s->train[pick[j]];
            s->demo_at[r * k + j] = B + nd;
            nd++;
        }
    }
    if (nd > 0) {
        s->demo.shape.batch = (uint32_t)nd;
        s->demo.epoch = 0; /* no augmentation: the epoch does not matter */
        if ((st = s->src.fill(s->src.ctx, &s->demo, err))) return st;
    }
    /* 2. hub items: the B queries, then the nd demonstrations */
    int items = B + nd;
    size_t img = (size_t)3 * S * S;
    memcpy(s->pix, b->pixels, sizeof(float) * img * (size_t)B);
    if (nd) memcpy(s->pix + img * (size_t)B, s->demo.pixels, sizeof(float) * img * (size_t)nd);
    if ((st = vt_model_image_features(m, s->pix, items, s->vis, err))) return st;
    for (int r = 0; r < B; r++) {
        if ((st = image_span(b, r, img_tok, &spa[r], &spe[r], err))) return st;
        const uint8_t *mk = b->loss_mask + (size_t)r * T;
        int to = spe[r];
        while (to < b->lengths[r] && !mk[to]) to++;
        if (to < b->lengths[r]) to++; /* the token that predicts the first answer token */
        s->tlen[r] = item_text(s, b, r, spe[r], to, s->text + (size_t)r * L * D);
    }
    for (int j = 0; j < nd; j++) {
        int a, e;
        if ((st = image_span(&s->demo, j, img_tok, &a, &e, err))) return st;
        s->tlen[B + j] = item_text(s, &s->demo, j, e, s->demo.lengths[j], s->text + (size_t)(B + j) * L * D);
    }
    if ((st = vt_mhub_forward(s->hub, s->vis, items, s->N, s->text, s->tlen, L, err))) return st;
    const float *hout = vt_mhub_output(s->hub);
    /* 3. the decoder's input rows */
    vt_batch *in = &s->in;
    in->shape.batch = (uint32_t)B;
    memset(in->tokens, 0, sizeof(int32_t) * (size_t)B * TI);
    memset(in->targets, 0, sizeof(int32_t) * (size_t)B * TI);
    memset(in->loss_mask, 0, (size_t)B * TI);
    int no = 0;
#define OVER(flat, src_row)                                                                        \
    do {                                                                                           \
        long long src__ = (long long)(src_row);                                                    \
        s->opos[no] = (int32_t)(flat);                                                             \
        s->osrc[no] = (int32_t)src__;                                                              \
        memcpy(s->orows + (size_t)no * D, src__ >= 0 ? hout + (size_t)src__ * D : s->eoc,          \
               sizeof(float) * (size_t)D);                                                         \
        no++;                                                                                      \
    } while (0)
    for (int r = 0; r < B; r++) {
        int p = 0;
        size_t base = (size_t)r * TI;
        for (int j = 0; j < s->ndemo[r]; j++) {
            int it = s->demo_at[r * k + j];
            for (int t = 0; t < s->tlen[it]; t++, p++) OVER(base + p, (size_t)it * (Q + L) + Q + t);
            OVER(base + p, -1);
            p++;
        }
        const int32_t *tok = b->tokens + (size_t)r * T, *tg = b->targets + (size_t)r * T;
        const uint8_t *mk = b->loss_mask + (size_t)r * T;
        for (int t = 0; t < b->lengths[r]; t++) {
            if (t == spa[r]) {
                for (int q = 0; q < Q; q++, p++) OVER(base + p, (size_t)r * (Q + L) + q);
                /* the last TV row predicts what followed the image span */
                in->targets[base + p - 1] = tg[spe[r] - 1];
                in->loss_mask[base + p - 1] = mk[spe[r] - 1];
                t = spe[r] - 1;
                continue;
            }
            in->tokens[base + p] = tok[t];
            in->targets[base + p] = tg[t];
            in->loss_mask[base + p] = mk[t];
            p++;
        }
        in->lengths[r] = p;
    }
#undef OVER
    /* 4. frozen decoder: loss, and the gradient at the override rows */
    memset(s->ograd, 0, sizeof(float) * (size_t)no * D);
    m->input = (vt_input_override){.n = no, .pos = s->opos, .rows = s->orows, .grad = s->ograd};
    float loss = 0;
    st = vt_model_forward(m, in, VT_FORWARD_LOSS, &loss, err);
    if (!st) {
        *loss_sum = (double)loss * (double)m->loss_count;
        if (m->loss_count > 0) st = vt_model_backward(m, dloss_scale, err);
    }
    m->input = (vt_input_override){0};
    if (st || m->loss_count == 0) return st;
    /* 5. back into the hub and the <eoc> row */
    memset(s->dout, 0, sizeof(float) * (size_t)items * (Q + L) * D);
    for (int i = 0; i < no; i++) {
        const float *g = s->ograd + (size_t)i * D;
        float *dst = s->osrc[i] >= 0 ? s->dout + (size_t)s->osrc[i] * D : s->eoc_grad;
        for (int d = 0; d < D; d++) dst[d] += g[d];
    }
    return vt_mhub_backward(s->hub, s->dout, NULL, NULL, err);
}

vt_status vt_icl_recipe_save(void *state, vt_ckpt_writer *w, vt_error *err) {
    icl_state *s = state;
    if (vt_ckpt_writer_rank(w) != 0) return VT_OK; /* replicated: rank 0 writes it */
    char path[4096];
    vt_status st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "mhub.safetensors", err);
    if (!st) st = vt_mhub_save(s->hub, path, err);
    if (!st) st = vt_path_join(path, sizeof path, vt_ckpt_writer_dir(w), "icl.safetensors", err);
    if (st) return st;
    vt_st_writer *wr = vt_st_writer_new();
    if (!wr) return vt_fail(err, VT_ERR_NOMEM, "%s: no memory", path);
    int64_t shape[1] = {s->m->cfg.hidden};
    st = vt_st_writer_meta(wr, "vistune_method", "mmict", err);
    if (!st) st = vt_st_writer_add(wr, "icl.eoc", VT_ST_F32, 1, shape, s->eoc, err);
    if (!st) st = vt_st_writer_write(wr, path, err);
    vt_st_writer_free(wr);
    return st;
}

vt_status vt_icl_recipe_load(void *state, const vt_ckpt *c, vt_error *err) {
    icl_state *s = state;
    char path[4096];
    vt_status st = vt_ckpt_file(c, "mhub.safetensors", path, sizeof path, err);
    if (!st) st = vt_mhub_load(s->hub, path, err);
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
