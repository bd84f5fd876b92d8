/* The LLaVA-1.5 projector (mlp2x_gelu): multi_modal_projector.linear_1
 * (vision width -> text width) -> projector_hidden_act -> linear_2, applied
 * to every image's patch features. */
#include "trainer/model_internal.h"

vt_status vt_projector_forward(vt_model *m, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    vt_model_acts *a = m->acts;
    int BN = a->cur_B * a->N, Dv = c->v_hidden, D = c->hidden;
    VT_OPS(m, err, vt_linear_forward(m->ctx, a->p_pre, a->feat, m->w.p1_w, m->w.p1_b, BN, Dv, D));
    VT_OPS(m, err, vt_activation_forward(m->ctx, c->proj_act, a->p_act, a->p_pre, (size_t)BN * D));
    VT_OPS(m, err, vt_linear_forward(m->ctx, a->p_out, a->p_act, m->w.p2_w, m->w.p2_b, BN, D, D));
    return VT_OK;
}

/* From dp_out (filled by the decoder backward); writes d_feat only when the
 * vision tower trains. */
vt_status vt_projector_backward(vt_model *m, vt_error *err) {
    const vt_model_config *c = &m->cfg;
    vt_model_acts *a = m->acts;
    vt_ctx *ctx = m->ctx;
    int BN = a->cur_B * a->N, Dv = c->v_hidden, D = c->hidden;
    size_t nD = (size_t)BN * D * sizeof(float);
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dp_act, nD));
    VT_OPS(m, err, vt_linear_backward(ctx, a->dp_act, m->g.p2_w, m->g.p2_b, a->dp_out, a->p_act, m->w.p2_w, BN, D, D));
    VT_OPS(m, err, vt_ctx_memset_zero(ctx, a->dp_pre, nD));
    VT_OPS(m, err, vt_activation_backward(ctx, c->proj_act, a->dp_pre, a->dp_act, a->p_pre, (size_t)BN * D));
    float *dfeat = NULL;
    if (!c->freeze_vision) {
        dfeat = a->d_feat;
        VT_OPS(m, err, vt_ctx_memset_zero(ctx, dfeat, (size_t)BN * Dv * sizeof(float)));
    }
    VT_OPS(m, err, vt_linear_backward(ctx, dfeat, m->g.p1_w, m->g.p1_b, a->dp_pre, a->feat, m->w.p1_w, BN, Dv, D));
    return VT_OK;
}
