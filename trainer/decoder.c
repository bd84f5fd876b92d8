/* LLaMA decoder with the image features spliced in: embed_tokens, projected
 * patch features written over the <image> positions, L blocks of RMSNorm ->
 * attention (no biases, RoPE, causal, grouped-query heads, key lengths for
 * right padding) -> residual, RMSNorm -> SwiGLU MLP -> residual, final norm,
 * lm_head and the masked cross-entropy. */
#include <stdlib.h>

#include "trainer/model_internal.h"

static vt_status scatter_run(vt_model *m, int pos, int row, int len, void *arg, vt_error *err) {
    (void)arg;
    size_t D = (size_t)m->cfg.hidden;
    VT_OPS(m, err, vt_ctx_memcpy_d2d(m->ctx, m->acts->x0 + (size_t)pos * D, m->acts->p_out + (size_t)row * D,
                                     (size_t)len * D * sizeof(float)));
    return VT_OK;
}

static vt_status gather_run(vt_model *m, int pos, int row, int len, void *arg, vt_error *err) {
    (void)arg;
    size_t D = (size_t)m->cfg.hidden;
    VT_OPS(m, err, vt_ctx_memcpy_d2d(m->ctx, m->acts->dp_out + (size_t)row * D, m->acts->d_res + (size_t)pos * D,
                                     (size_t)len * D * sizeof(float)));
    return VT_OK;
}

static vt_status zero_run(vt_model *m, int pos, int row, int len, void *arg, vt_error *err) {
    (void)arg;
    (void)row;
    size_t D = (size_t)m->cfg.hidden;
    VT_OPS(m, err, vt_ctx_memset_zero(m->ctx, m->acts->d_res + (size_t)pos * D, (size_t)len * D * sizeof(float)));
    return VT_OK;
}

static const float *layer_input(vt_model_acts *a, int l) { return l == 0 ? a->x0 : a->ll[l - 1].out; }

vt_status vt_decoder_forward(vt_model *m, bool with_loss, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    vt_model_acts *a = m->acts;
    vt_ctx *ctx = m->ctx;
    int B = a->cur_B, T = a->cur_T, BT = B * T, D = c->hidden, I = c->inter, V = c->vocab;
    int NH = c->heads, NKV = c->kv_heads, hd = D / NH, KV = NKV * hd;
    const int32_t *kv_len = a->lengths_valid ? a->lengths : NULL;
    VT_OPS(m, err, vt_embedding_forward(ctx, a->x0, a->emb_ids, m->w.embed, BT, V, D));
    if (a->has_images) {
        vt_status st = vt_model_image_runs(m, scatter_run, NULL, err);
        if (st) return st;
    }
    /* The input override (model.h) is written last: it wins over both. */
    for (int i = 0; i < m->input.n; i++)
        VT_OPS(m, err, vt_ctx_memcpy_h2d(ctx, a->x0 + (size_t)m->input.pos[i] * D, m->input.rows + (size_t)i * D,
                                         (size_t)D * sizeof(float)));
    for (int l = 0; l < c->layers; l++) {
        const vt_llama_layer *w = &m->w.ll[l];
        vt_llama_acts *x = &a->ll[l];
        const float *in = layer_input(a, l);
        VT_OPS(m, err, vt_rmsnorm_forward(ctx, x->ln1, x->ln1_rstd, in, w->ln1_w, BT, D, c->rms_eps));
        VT_OPS(m, err, vt_linear_forward(ctx, x->q, x->ln1, w->q_w, NULL, BT, D, D));
        VT_OPS(m, err, vt_linear_forward(ctx, x->k, x->ln1, w->k_w, NULL, BT, D, KV));
        VT_OPS(m, err, vt_linear_forward(ctx, x->v, x->ln1, w->v_w, NULL, BT, D, KV));
        VT_OPS(m, err, vt_rope_forward(ctx, x->q, x->q, NULL, B, T, NH, hd, c->rope_theta));
        VT_OPS(m, err, vt_rope_forward(ctx, x->k, x->k, NULL, B, T, NKV, hd, c->rope_theta));
        VT_OPS(m, err, vt_attention_forward(ctx, x->atty, x->att, x->q, x->k, x->v, kv_len, B, T, NH, NKV, hd, 1));
        VT_OPS(m, err, vt_linear_forward(ctx, a->tmp, x->atty, w->o_w, NULL, BT, D, D));
        VT_OPS(m, err, vt_residual_forward(ctx, x->mid, in, a->tmp, (size_t)BT * D));
        VT_OPS(m, err, vt_rmsnorm_forward(ctx, x->ln2, x->ln2_rstd, x->mid, w->ln2_w, BT, D, c->rms_eps));
        VT_OPS(m, err, vt_linear_forward(ctx, x->gate, x->ln2, w->gate_w, NULL, BT, D, I));
        VT_OPS(m, err, vt_linear_forward(ctx, x->up, x->ln2, w->up_w, NULL, BT, D, I));
        VT_OPS(m, err, vt_swiglu_forward(ctx, x->h, x->gate, x->up, (size_t)BT * I));
        VT_OPS(m, err, vt_linear_forward(ctx, a->tmp, x->h, w->down_w, NULL, BT, I, D));
        VT_OPS(m, err, vt_residual_forward(ctx, x->out, x->mid, a->tmp, (size_t)BT * D));
        /* In place is safe: block l's backward never reads its own output. */
        for (int k = 0; k < m->nhooks; k++) {
            const vt_decoder_hook *hk = &m->hooks[k];
            vt_status st = hk->layer == l ? hk->forward(hk->arg, m, a->batch, x->out, err) : VT_OK;
            if (st) return st;
        }
    }
    const float *last = layer_input(a, c->layers);
    VT_OPS(m, err, vt_rmsnorm_forward(ctx, a->lnf, a->lnf_rstd, last, m->w.norm_w, BT, D, c->rms_eps));
    VT_OPS(m, err, vt_linear_forward(ctx, a->logits, a->lnf, m->w.lm_head, NULL, BT, D, V));
    if (!with_loss) return VT_OK;
    float loss = 0;
    int count = 0;
    VT_OPS(m, err, vt_crossentropy_forward(ctx, a->logits, a->losses, a->logits, a->targets, a->mask, BT, V, &loss,
                                           &count));
    m->loss = loss;
    m->loss_count = count;
    return VT_OK;
}

vt_status vt_decoder_backward(vt_model *m, float dloss_scale, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    vt_model_acts *a = m->acts;
    vt_ctx *ctx = m->ctx;
    int B = a->cur_B, T = a->cur_T, BT = B * T, D = c->hidden, I = c->inter, V = c->vocab;
    int NH = c->heads, NKV = c->kv_heads, hd = D / NH, KV = NKV * hd;
    size_t nD = (size_t)BT * D * sizeof(float), nI = (size_t)BT * I * sizeof(float);
    size_t nKV = (size_t)BT * KV * sizeof(float);
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_logits, (size_t)BT * V * sizeof(float)));
    VT_OPS(m, err, vt_crossentropy_backward(ctx, a->d_logits, a->logits, a->targets, a->mask, BT, V, dloss_scale));
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_ln, nD));
    VT_OPS(m, err, vt_linear_backward(ctx, a->d_ln, m->g.lm_head, NULL, a->d_logits, a->lnf, m->w.lm_head, BT, D, V));
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_res, nD));
    VT_OPS(m, err, vt_rmsnorm_backward(ctx, a->d_res, m->g.norm_w, a->d_ln, layer_input(a, c->layers), m->w.norm_w,
                                       a->lnf_rstd, BT, D));
    for (int l = c->layers - 1; l >= 0; l--) {
        const vt_llama_layer *w = &m->w.ll[l], *g = &m->g.ll[l];
        vt_llama_acts *x = &a->ll[l];
        const float *in = layer_input(a, l);
        for (int k = m->nhooks - 1; k >= 0; k--) {
            const vt_decoder_hook *hk = &m->hooks[k];
            vt_status st = hk->layer == l ? hk->backward(hk->arg, m, a->d_res, err) : VT_OK;
            if (st) return st;
        }
        /* MLP: d_res is the gradient of the block output and, through the
         * residual, of `mid`; the norm backward adds the MLP path to it. */
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_h, nI));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_h, g->down_w, NULL, a->d_res, x->h, w->down_w, BT, I, D));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_gate, nI));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_up, nI));
        VT_OPS(m, err, vt_swiglu_backward(ctx, a->d_gate, a->d_up, a->d_h, x->gate, x->up, (size_t)BT * I));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_ln, nD));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_ln, g->gate_w, NULL, a->d_gate, x->ln2, w->gate_w, BT, D, I));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_ln, g->up_w, NULL, a->d_up, x->ln2, w->up_w, BT, D, I));
        VT_OPS(m, err, vt_rmsnorm_backward(ctx, a->d_res, g->ln2_w, a->d_ln, x->mid, w->ln2_w, x->ln2_rstd, BT, D));
        /* Attention. */
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_atty, nD));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_atty, g->o_w, NULL, a->d_res, x->atty, w->o_w, BT, D, D));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_q, nD));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_k, nKV));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_v, nKV));
        VT_OPS(m, err, vt_attention_backward(ctx, a->d_q, a->d_k, a->d_v, a->d_atty, x->att, x->q, x->k, x->v, B, T,
                                             NH, NKV, hd));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_ln, nD));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_rot, nD));
        VT_OPS(m, err, vt_rope_backward(ctx, a->d_rot, a->d_q, NULL, B, T, NH, hd, c->rope_theta));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_ln, g->q_w, NULL, a->d_rot, x->ln1, w->q_w, BT, D, D));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->d_rot, nKV));
        VT_OPS(m, err, vt_rope_backward(ctx, a->d_rot, a->d_k, NULL, B, T, NKV, hd, c->rope_theta));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_ln, g->k_w, NULL, a->d_rot, x->ln1, w->k_w, BT, D, KV));
        VT_OPS(m, err, vt_linear_backward(ctx, a->d_ln, g->v_w, NULL, a->d_v, x->ln1, w->v_w, BT, D, KV));
        VT_OPS(m, err, vt_rmsnorm_backward(ctx, a->d_res, g->ln1_w, a->d_ln, in, w->ln1_w, x->ln1_rstd, BT, D));
        /* Block l is done, and with it everything above it in the buffer
         * (HF order: blocks ascending, q_proj first, then norm and lm_head). */
        if (m->grads_ready.fn && g->q_w) {
            vt_status st = m->grads_ready.fn(m->grads_ready.arg, (size_t)(g->q_w - m->grads), err);
            if (st) return st;
        }
    }
    /* d_res is now the gradient of the input embeddings. */
    vt_status st;
    if (m->input.n > 0) {
        float *row = malloc(sizeof(float) * (size_t)D);
        if (!row) return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
        for (int i = 0; i < m->input.n; i++) {
            float *dp = a->d_res + (size_t)m->input.pos[i] * D;
            if (m->input.grad) {
                st = vt_ctx_memcpy_d2h(ctx, row, dp, (size_t)D * sizeof(float));
                if (st) {
                    free(row);
                    return vt_model_op_fail(m, st, "reading the input override gradient", err);
                }
                float *g = m->input.grad + (size_t)i * D;
                for (int d = 0; d < D; d++) g[d] += row[d];
            }
            /* Not a token lookup: no embedding-table gradient from here. */
            st = vt_ctx_memset_zero(ctx, dp, (size_t)D * sizeof(float));
            if (st) {
                free(row);
                return vt_model_op_fail(m, st, "input override", err);
            }
        }
        free(row);
    }
    if (a->has_images && (!c->freeze_projector || !c->freeze_vision)) {
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dp_out, (size_t)B * a->N * D * sizeof(float)));
        if ((st = vt_model_image_runs(m, gather_run, NULL, err))) return st;
    }
    if (m->g.embed) {
        /* Image positions looked up id 0 only as a placeholder: no gradient. */
        if (a->has_images && (st = vt_model_image_runs(m, zero_run, NULL, err))) return st;
        VT_OPS(m, err, vt_embedding_backward(ctx, m->g.embed, a->d_res, a->emb_ids, BT, V, D));
    }
    return VT_OK;
}
