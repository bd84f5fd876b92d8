/* Private to trainer/model*.c, vision_tower.c, projector.c, decoder.c: the
 * activation views and the helpers that turn an op failure into a vt_error. */
#ifndef VT_TRAINER_MODEL_INTERNAL_H
#define VT_TRAINER_MODEL_INTERNAL_H

#include "ops/ops.h"
#include "ops/attention.h"
#include "ops/patch_embed.h"
#include "ops/rope.h"
#include "trainer/model.h"

typedef struct vt_clip_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *q, *k, *v, *att, *atty, *mid;
    float *ln2, *ln2_mean, *ln2_rstd, *fc1, *act, *out;
} vt_clip_acts;

typedef struct vt_llama_acts {
    float *ln1, *ln1_rstd, *q, *k, *v, *att, *atty, *mid, *ln2, *ln2_rstd, *gate, *up, *h, *out;
} vt_llama_acts;

struct vt_model_acts {
    int B, T;       /* capacity */
    int N;          /* image tokens per image */
    int v_run;      /* vision blocks run (hidden_states index of the features) */
    int v_nbuf;     /* vision block buffer sets: v_run when training, <= 2 when frozen */
    bool backward;  /* gradient buffers allocated (something trains) */
    float *fbase;
    int32_t *ibase;
    /* vision tower */
    float *v_pix, *v_patch, *v_emb, *v_x0, *v_pre_mean, *v_pre_rstd;
    int32_t *v_pos_ids;
    vt_clip_acts *vl;
    /* projector */
    float *feat, *p_pre, *p_act, *p_out;
    /* decoder */
    int32_t *ids, *emb_ids, *targets, *lengths;
    uint8_t *mask;
    float *x0;
    vt_llama_acts *ll;
    float *lnf, *lnf_rstd, *logits, *losses;
    float *tmp; /* linear outputs before a residual add */
    /* gradients of activations (scratch reused across layers) */
    float *d_res, *d_ln, *d_q, *d_k, *d_v, *d_rot, *d_atty, *d_gate, *d_up, *d_h, *d_logits;
    float *dp_out, *dp_act, *dp_pre, *d_feat;
    float *dv_res, *dv_ln, *dv_q, *dv_k, *dv_v, *dv_atty, *dv_fc1, *dv_act, *dv_emb, *dv_patch;
    /* host side of the current batch */
    int cur_B, cur_T;
    const vt_batch *batch; /* the batch of the running forward (for the decoder hook) */
    bool has_images;     /* some sequence has image tokens */
    bool lengths_valid;  /* the batch gave lengths (else every sequence is T long) */
    int32_t *h_img_pos;  /* [B*N] flat position b*T+t of the i-th image token of b, -1 = none */
    int32_t *h_ids;      /* [B*T] staging */
    uint8_t *h_mask;     /* [B*T] staging */
};

/* Copies the ctx's last error into err with "model: <what>: " in front. */
vt_status vt_model_op_fail(vt_model *m, vt_status st, const char *what, vt_error *err);

/* Evaluates an ops call; on failure returns its status with the op's message. */
#define VT_OPS(m, err, call)                                                                             \
    do {                                                                                                 \
        vt_status s__ = (call);                                                                          \
        if (s__) return vt_model_op_fail((m), s__, #call, (err));                                        \
    } while (0)

/* Runs of consecutive image positions of the current batch: calls
 * fn(m, flat_pos, feature_row, len) for each maximal run. */
typedef vt_status (*vt_image_run_fn)(vt_model *m, int pos, int row, int len, void *arg, vt_error *err);
vt_status vt_model_image_runs(vt_model *m, vt_image_run_fn fn, void *arg, vt_error *err);

vt_status vt_vision_forward(vt_model *m, vt_error *err);
vt_status vt_vision_backward(vt_model *m, vt_error *err);
vt_status vt_projector_forward(vt_model *m, vt_error *err);
vt_status vt_projector_backward(vt_model *m, vt_error *err);
vt_status vt_decoder_forward(vt_model *m, bool with_loss, vt_error *err);
vt_status vt_decoder_backward(vt_model *m, float dloss_scale, vt_error *err);

#endif
