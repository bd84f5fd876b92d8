/* White-box prompt tuning's local model (trainer/whitebox.h): scores context
 * sets like the service does and gives the true gradient of a batch's mean
 * answer loss in the context vectors, through the model's input override. */
#include "trainer/whitebox.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ops/ctx.h"

struct vt_whitebox {
    vt_model *m;
    vt_ctx *ctx;     /* owned when opened from a checkpoint */
    bool owns;
    int max_batch, max_seq;
    vt_batch batch;  /* (max_batch, max_seq) staging, re-viewed per query */
    void *slab;
    int32_t *pos;    /* [max_batch*max_seq] override positions */
    int *which;      /* [max_batch*max_seq] context vector index of each position */
    float *rows;     /* [max_batch*max_seq, hidden] */
    float *grad;     /* [max_batch*max_seq, hidden] */
    float *row;      /* [vocab] one logits row on the host */
};

vt_model *vt_whitebox_model(vt_whitebox *w) { return w->m; }

vt_status vt_whitebox_wrap(vt_whitebox **out, vt_model *m, int max_batch, int max_seq, vt_error *err) {
    *out = NULL;
    if (m->num_trainable)
        return vt_fail(err, VT_ERR_ARG, "whitebox: the model must be frozen (it has %zu trainable values)",
                       m->num_trainable);
    if (m->cfg.tie_embeddings)
        return vt_fail(err, VT_ERR_ARG,
                       "whitebox: tied embeddings: the service's context rows would also move the output layer, "
                       "the input override would not (not the same function)");
    if (max_batch < 1 || max_seq < 2 || max_seq > m->cfg.max_pos)
        return vt_fail(err, VT_ERR_ARG, "whitebox: batch %d / seq %d out of range (max_position_embeddings %d)",
                       max_batch, max_seq, m->cfg.max_pos);
    vt_whitebox *w = calloc(1, sizeof *w);
    if (!w) return vt_fail(err, VT_ERR_NOMEM, "whitebox: out of memory");
    w->m = m;
    w->max_batch = max_batch;
    w->max_seq = max_seq;
    size_t n = (size_t)max_batch * (size_t)max_seq, D = (size_t)m->cfg.hidden;
    vt_batch_shape shape = {.batch = (uint32_t)max_batch, .channels = 3, .height = (uint32_t)m->cfg.image_size,
                            .width = (uint32_t)m->cfg.image_size, .seq_len = (uint32_t)max_seq};
    vt_status st = vt_batch_alloc(&w->batch, &shape, err);
    if (!st) {
        w->slab = w->batch.slab;
        w->batch.owns_slab = 0;
        w->pos = malloc(n * sizeof *w->pos);
        w->which = malloc(n * sizeof *w->which);
        w->rows = malloc(n * D * sizeof *w->rows);
        w->grad = malloc(n * D * sizeof *w->grad);
        w->row = malloc((size_t)m->cfg.vocab * sizeof *w->row);
        if (!w->pos || !w->which || !w->rows || !w->grad || !w->row)
            st = vt_fail(err, VT_ERR_NOMEM, "whitebox: out of memory");
    }
    if (!st) st = vt_model_reserve(m, max_batch, max_seq, true, err);
    if (st) {
        vt_whitebox_close(w);
        return st;
    }
    *out = w;
    return VT_OK;
}

vt_status vt_whitebox_open(vt_whitebox **out, const char *ckpt_dir, int threads, int max_batch, int max_seq,
                           vt_error *err) {
    *out = NULL;
    char path[PATH_MAX];
    vt_model_config mc;
    vt_model_config_default(&mc);
    if (snprintf(path, sizeof path, "%s/config.json", ckpt_dir) >= (int)sizeof path)
        return vt_fail(err, VT_ERR_ARG, "whitebox: checkpoint path too long");
    vt_status st = vt_model_config_from_hf_json(path, &mc, err);
    if (st) return st;
    mc.freeze_vision = mc.freeze_projector = mc.freeze_language = true; /* no parameter gradients */
    vt_ctx *ctx = NULL;
    vt_model *m = NULL;
    vt_ctx_options co = {.backend = VT_BACKEND_CPU, .threads = threads};
    if (!(st = vt_ctx_create(&ctx, &co, err)) && !(st = vt_model_create(&m, ctx, &mc, 0, err)) &&
        !(st = vt_model_import_hf(m, ckpt_dir, err)))
        st = vt_whitebox_wrap(out, m, max_batch, max_seq, err);
    if (st) {
        vt_model_free(m);
        vt_ctx_destroy(ctx);
        return st;
    }
    (*out)->ctx = ctx;
    (*out)->owns = true;
    return VT_OK;
}

void vt_whitebox_close(vt_whitebox *w) {
    if (!w) return;
    if (w->owns) {
        vt_model_free(w->m);
        vt_ctx_destroy(w->ctx);
    }
    free(w->slab);
    free(w->pos);
    free(w->which);
    free(w->rows);
    free(w->grad);
    free(w->row);
    free(w);
}

void vt_whitebox_stats(const vt_whitebox *w, vt_serve_stats *out) {
    const vt_model_config *c = &w->m->cfg;
    memset(out, 0, sizeof *out);
    int g = c->image_size / c->patch_size;
    out->hidden = c->hidden;
    out->vocab = c->vocab;
    out->max_batch = w->max_batch;
    out->max_seq = w->max_seq;
    out->image_size = c->image_size;
    out->image_token_index = c->image_token_index;
    out->image_tokens = g * g;
    out->max_sets = 256;
    out->max_ctx = 64;
    out->logits_version = VT_SERVE_LOGITS_V1;
    out->max_logits = UINT64_MAX / 2;
}

/* Loads the query's rows into the staging batch and finds the context
 * positions (every position holding a context id). */
static vt_status stage(vt_whitebox *w, const vt_serve_query *q, int *npos, vt_error *err) {
    size_t B = (size_t)q->batch, T = (size_t)q->seq_len, D = (size_t)w->m->cfg.hidden;
    if (q->batch < 1 || q->batch > w->max_batch || q->seq_len < 2 || q->seq_len > w->max_seq || q->hidden != (int)D ||
        q->n_ctx < 1)
        return vt_fail(err, VT_ERR_ARG, "whitebox: batch %d x %d (hidden %d, %d context vectors) outside (%d, %d, %zu)",
                       q->batch, q->seq_len, q->hidden, q->n_ctx, w->max_batch, w->max_seq, D);
    vt_batch *bt = &w->batch;
    vt_batch_shape shape = {.batch = (uint32_t)B, .channels = q->pixels ? 3 : 0,
                            .height = (uint32_t)w->m->cfg.image_size, .width = (uint32_t)w->m->cfg.image_size,
                            .seq_len = (uint32_t)T};
    vt_batch_view(bt, &shape, w->slab);
    memcpy(bt->tokens, q->tokens, B * T * sizeof(int32_t));
    memcpy(bt->targets, q->targets, B * T * sizeof(int32_t));
    if (q->loss_mask) memcpy(bt->loss_mask, q->loss_mask, B * T);
    else memset(bt->loss_mask, 1, B * T);
    for (size_t b = 0; b < B; b++) bt->lengths[b] = q->lengths ? q->lengths[b] : (int32_t)T;
    if (q->pixels) memcpy(bt->pixels, q->pixels, B * 3 * (size_t)q->image_size * q->image_size * sizeof(float));
    int n = 0;
    for (size_t k = 0; k < B * T; k++)
        for (int i = 0; i < q->n_ctx; i++)
            if (q->tokens[k] == q->ctx_token_ids[i]) {
                w->pos[n] = (int32_t)k;
                w->which[n++] = i;
                break;
            }
    *npos = n;
    return VT_OK;
}

static void place(vt_whitebox *w, const float *set, int npos, float *grad) {
    size_t D = (size_t)w->m->cfg.hidden;
    for (int k = 0; k < npos; k++) memcpy(w->rows + (size_t)k * D, set + (size_t)w->which[k] * D, D * sizeof(float));
    w->m->input = (vt_input_override){.n = npos, .pos = w->pos, .rows = w->rows, .grad = grad};
}

vt_status vt_whitebox_score(vt_whitebox *w, const vt_serve_query *q, float *loss, uint32_t *count, float *logits,
                            vt_error *err) {
    int npos;
    vt_status st = stage(w, q, &npos, err);
    if (st) return st;
    vt_model *m = w->m;
    vt_batch *bt = &w->batch;
    size_t B = (size_t)q->batch, T = (size_t)q->seq_len;
    size_t per_set = (size_t)q->n_ctx * (size_t)q->hidden, out_row = 0;
    for (size_t b = 0; b < B; b++) {
        count[b] = 0;
        for (size_t t = 0; t < (size_t)bt->lengths[b]; t++) count[b] += bt->loss_mask[b * T + t] != 0;
    }
    for (int p = 0; p < q->n_sets && !st; p++) {
        place(w, q->ctx + (size_t)p * per_set, npos, NULL);
        st = vt_model_forward(m, bt, VT_FORWARD_LOGITS, NULL, err);
        m->input = (vt_input_override){0};
        if (st) break;
        if ((st = vt_serve_item_losses(m, bt, bt->loss_mask, count, w->row, loss + (size_t)p * B, logits, &out_row,
                                       err)))
            vt_error_prefix(err, "whitebox: ");
    }
    return st;
}

vt_status vt_whitebox_grad(vt_whitebox *w, const vt_serve_query *q, float *grad, double *loss, vt_error *err) {
    int npos;
    vt_status st = stage(w, q, &npos, err);
    if (st) return st;
    if (npos == 0) return vt_fail(err, VT_ERR_ARG, "whitebox: no row holds a context id");
    vt_model *m = w->m;
    size_t D = (size_t)m->cfg.hidden;
    memset(w->grad, 0, (size_t)npos * D * sizeof(float));
    place(w, q->ctx, npos, w->grad);
    float l = 0;
    st = vt_model_forward(m, &w->batch, VT_FORWARD_LOSS, &l, err);
    if (!st && m->loss_count == 0) st = vt_fail(err, VT_ERR_ARG, "whitebox: the batch has no answer tokens");
    if (!st) st = vt_model_backward(m, 1.0f / (float)m->loss_count, err);
    m->input = (vt_input_override){0};
    if (st) return st;
    /* every position of context vector i adds into its gradient, summed in double in a fixed order */
    size_t d = (size_t)q->n_ctx * D;
    double *acc = calloc(d, sizeof *acc);
    if (!acc) return vt_fail(err, VT_ERR_NOMEM, "whitebox: out of memory");
    for (int k = 0; k < npos; k++)
        for (size_t j = 0; j < D; j++) acc[(size_t)w->which[k] * D + j] += w->grad[(size_t)k * D + j];
    for (size_t j = 0; j < d; j++) grad[j] = (float)acc[j];
    free(acc);
    if (loss) *loss = l;
    return VT_OK;
}
