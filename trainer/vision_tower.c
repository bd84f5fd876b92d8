/* CLIP ViT vision tower (pre-LN): patch embedding without bias, class token,
 * learned positions, pre_layrnorm, blocks of LN -> MHA (q/k/v/out biases,
 * bidirectional) -> residual, LN -> fc1 -> quick_gelu/gelu -> fc2 -> residual.
 * Only the blocks up to vision_feature_layer run; the features are that
 * hidden state's patch tokens (class token dropped), copied into `feat`. */
#include "trainer/model_internal.h"

/* Block l's buffers: its own set when training, two ping-pong sets when frozen. */
static vt_clip_acts *block_acts(vt_model_acts *a, int l) { return &a->vl[a->v_nbuf == a->v_run ? l : l % 2]; }

static float *block_input(vt_model_acts *a, int l) { return l == 0 ? a->v_x0 : block_acts(a, l - 1)->out; }

vt_status vt_vision_forward(vt_model *m, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    vt_model_acts *a = m->acts;
    vt_ctx *ctx = m->ctx;
    int B = a->cur_B, N = a->N, Nv = N + 1, BNv = B * Nv, Dv = c->v_hidden, Iv = c->v_inter, H = c->v_heads;
    int S = c->image_size, P = c->patch_size;
    size_t row = (size_t)Dv * sizeof(float);
    VT_OPS(m, err, vt_patch_embed_forward(ctx, a->v_patch, a->v_pix, m->w.patch_w, B, 3, S, S, P, Dv));
    for (int b = 0; b < B; b++) {
        VT_OPS(m, err, vt_ctx_memcpy_d2d(ctx, a->v_emb + (size_t)b * Nv * Dv, m->w.class_emb, row));
        VT_OPS(m, err, vt_ctx_memcpy_d2d(ctx, a->v_emb + ((size_t)b * Nv + 1) * Dv, a->v_patch + (size_t)b * N * Dv,
                                         (size_t)N * row));
    }
    VT_OPS(m, err, vt_embedding_forward(ctx, a->tmp, a->v_pos_ids, m->w.pos_emb, BNv, Nv, Dv));
    VT_OPS(m, err, vt_residual_forward(ctx, a->v_emb, a->v_emb, a->tmp, (size_t)BNv * Dv));
    VT_OPS(m, err, vt_layernorm_forward(ctx, a->v_x0, a->v_pre_mean, a->v_pre_rstd, a->v_emb, m->w.pre_ln_w,
                                        m->w.pre_ln_b, BNv, Dv, c->v_ln_eps));
    for (int l = 0; l < a->v_run; l++) {
        const vt_clip_layer *w = &m->w.vl[l];
        vt_clip_acts *x = block_acts(a, l);
        const float *in = block_input(a, l);
        VT_OPS(m, err, vt_layernorm_forward(ctx, x->ln1, x->ln1_mean, x->ln1_rstd, in, w->ln1_w, w->ln1_b, BNv, Dv,
                                            c->v_ln_eps));
        VT_OPS(m, err, vt_linear_forward(ctx, x->q, x->ln1, w->q_w, w->q_b, BNv, Dv, Dv));
        VT_OPS(m, err, vt_linear_forward(ctx, x->k, x->ln1, w->k_w, w->k_b, BNv, Dv, Dv));
        VT_OPS(m, err, vt_linear_forward(ctx, x->v, x->ln1, w->v_w, w->v_b, BNv, Dv, Dv));
        VT_OPS(m, err, vt_attention_forward(ctx, x->atty, x->att, x->q, x->k, x->v, NULL, B, Nv, H, H, Dv / H, 0));
        VT_OPS(m, err, vt_linear_forward(ctx, a->tmp, x->atty, w->o_w, w->o_b, BNv, Dv, Dv));
        VT_OPS(m, err, vt_residual_forward(ctx, x->mid, in, a->tmp, (size_t)BNv * Dv));
        VT_OPS(m, err, vt_layernorm_forward(ctx, x->ln2, x->ln2_mean, x->ln2_rstd, x->mid, w->ln2_w, w->ln2_b, BNv,
                                            Dv, c->v_ln_eps));
        VT_OPS(m, err, vt_linear_forward(ctx, x->fc1, x->ln2, w->fc1_w, w->fc1_b, BNv, Dv, Iv));
        VT_OPS(m, err, vt_activation_forward(ctx, c->v_act, x->act, x->fc1, (size_t)BNv * Iv));
        VT_OPS(m, err, vt_linear_forward(ctx, a->tmp, x->act, w->fc2_w, w->fc2_b, BNv, Iv, Dv));
        VT_OPS(m, err, vt_residual_forward(ctx, x->out, x->mid, a->tmp, (size_t)BNv * Dv));
    }
    const float *hs = block_input(a, a->v_run);
    for (int b = 0; b < B; b++)
        VT_OPS(m, err, vt_ctx_memcpy_d2d(ctx, a->feat + (size_t)b * N * Dv, hs + ((size_t)b * Nv + 1) * Dv,
                                         (size_t)N * row));
    return VT_OK;
}

/* Needs d_feat from the projector; only called when the tower trains, so
 * every block kept its own activations. */
vt_status vt_vision_backward(vt_model *m, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    vt_model_acts *a = m->acts;
    vt_ctx *ctx = m->ctx;
    int B = a->cur_B, N = a->N, Nv = N + 1, BNv = B * Nv, Dv = c->v_hidden, Iv = c->v_inter, H = c->v_heads;
    int S = c->image_size, P = c->patch_size;
    size_t row = (size_t)Dv * sizeof(float), nD = (size_t)BNv * Dv * sizeof(float);
    size_t nI = (size_t)BNv * Iv * sizeof(float);
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_res, nD));
    for (int b = 0; b < B; b++)
        VT_OPS(m, err, vt_ctx_memcpy_d2d(ctx, a->dv_res + ((size_t)b * Nv + 1) * Dv, a->d_feat + (size_t)b * N * Dv,
                                         (size_t)N * row));
    for (int l = a->v_run - 1; l >= 0; l--) {
        const vt_clip_layer *w = &m->w.vl[l], *g = &m->g.vl[l];
        vt_clip_acts *x = block_acts(a, l);
        const float *in = block_input(a, l);
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_act, nI));
        VT_OPS(m, err, vt_linear_backward(ctx, a->dv_act, g->fc2_w, g->fc2_b, a->dv_res, x->act, w->fc2_w, BNv, Iv, Dv));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_fc1, nI));
        VT_OPS(m, err, vt_activation_backward(ctx, c->v_act, a->dv_fc1, a->dv_act, x->fc1, (size_t)BNv * Iv));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_ln, nD));
        VT_OPS(m, err, vt_linear_backward(ctx, a->dv_ln, g->fc1_w, g->fc1_b, a->dv_fc1, x->ln2, w->fc1_w, BNv, Dv, Iv));
        VT_OPS(m, err, vt_layernorm_backward(ctx, a->dv_res, g->ln2_w, g->ln2_b, a->dv_ln, x->mid, w->ln2_w,
                                             x->ln2_mean, x->ln2_rstd, BNv, Dv));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_atty, nD));
        VT_OPS(m, err, vt_linear_backward(ctx, a->dv_atty, g->o_w, g->o_b, a->dv_res, x->atty, w->o_w, BNv, Dv, Dv));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_q, nD));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_k, nD));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_v, nD));
        VT_OPS(m, err, vt_attention_backward(ctx, a->dv_q, a->dv_k, a->dv_v, a->dv_atty, x->att, x->q, x->k, x->v, B,
                                             Nv, H, H, Dv / H));
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_ln, nD));
        VT_OPS(m, err, vt_linear_backward(ctx, a->dv_ln, g->q_w, g->q_b, a->dv_q, x->ln1, w->q_w, BNv, Dv, Dv));
        VT_OPS(m, err, vt_linear_backward(ctx, a->dv_ln, g->k_w, g->k_b, a->dv_k, x->ln1, w->k_w, BNv, Dv, Dv));
        VT_OPS(m, err, vt_linear_backward(ctx, a->dv_ln, g->v_w, g->v_b, a->dv_v, x->ln1, w->v_w, BNv, Dv, Dv));
        VT_OPS(m, err, vt_layernorm_backward(ctx, a->dv_res, g->ln1_w, g->ln1_b, a->dv_ln, in, w->ln1_w, x->ln1_mean,
                                             x->ln1_rstd, BNv, Dv));
    }
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dv_emb, nD));
    VT_OPS(m, err, vt_layernorm_backward(ctx, a->dv_emb, m->g.pre_ln_w, m->g.pre_ln_b, a->dv_res, a->v_emb,
                                         m->w.pre_ln_w, a->v_pre_mean, a->v_pre_rstd, BNv, Dv));
    VT_OPS(m, err, vt_embedding_backward(ctx, m->g.pos_emb, a->dv_emb, a->v_pos_ids, BNv, Nv, Dv));
    for (int b = 0; b < B; b++) {
        VT_OPS(m, err, vt_residual_backward(ctx, m->g.class_emb, NULL, a->dv_emb + (size_t)b * Nv * Dv, (size_t)Dv));
        VT_OPS(m, err, vt_ctx_memcpy_d2d(ctx, a->dv_patch + (size_t)b * N * Dv, a->dv_emb + ((size_t)b * Nv + 1) * Dv,
                                         (size_t)N * row));
    }
    VT_OPS(m, err, vt_patch_embed_backward(ctx, NULL, m->g.patch_w, a->dv_patch, a->v_pix, m->w.patch_w, B, 3, S, S,
                                           P, Dv));
    return VT_OK;
}
