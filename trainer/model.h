/* The LLaVA-1.5 model (DESIGN.md §3): CLIP ViT vision tower (pre-LN) ->
 * mlp2x projector -> LLaMA decoder, with Hugging Face
 * LlavaForConditionalGeneration tensor names. llm.c style: parameters,
 * gradients and AdamW moments each live in ONE flat buffer with named views
 * into it, activations in one buffer sized from (B, T); layers are the ops/
 * forward/backward pairs on the model's vt_ctx.
 *
 * Buffer layout. Parameters of frozen parts come first, trainable parts last,
 * each part in Hugging Face state_dict order. So the trainable parameters are
 * the contiguous suffix params[train_offset .. num_params), and grads, m, v
 * (each num_trainable floats) mirror exactly that suffix: zero-grad, gradient
 * allreduce, clipping and the AdamW step are one call each over a flat
 * buffer. Checkpoints go by tensor name, never by offset, so a stage-1 model
 * (projector only) loads into a stage-2 model (projector + decoder) whose
 * layout differs.
 *
 * Memory lives where the ctx computes (device memory for CUDA): use the
 * vt_ctx_memcpy_* helpers to read params/grads/logits on the host. */
#ifndef VT_TRAINER_MODEL_H
#define VT_TRAINER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "ops/activation.h"
#include "ops/ctx.h"
#include "ops/optim.h"
#include "pipeline/batch.h"

/* ---- configuration (Hugging Face names in the run YAML `model:` section) ---- */

typedef struct vt_model_config {
    /* vision_config.* (CLIPVisionConfig) */
    int v_hidden;        /* hidden_size */
    int v_inter;         /* intermediate_size */
    int v_layers;        /* num_hidden_layers */
    int v_heads;         /* num_attention_heads */
    int image_size;      /* image_size (square) */
    int patch_size;      /* patch_size */
    vt_activation v_act; /* hidden_act: quick_gelu (CLIP) or gelu */
    float v_ln_eps;      /* layer_norm_eps */
    /* text_config.* (LlamaConfig) */
    int vocab;           /* vocab_size */
    int hidden;          /* hidden_size */
    int inter;           /* intermediate_size */
    int layers;          /* num_hidden_layers */
    int heads;           /* num_attention_heads */
    int kv_heads;        /* num_key_value_heads (divides heads) */
    float rms_eps;       /* rms_norm_eps */
    float rope_theta;    /* rope_theta */
    int max_pos;         /* max_position_embeddings: upper bound on T */
    bool tie_embeddings; /* tie_word_embeddings: lm_head shares embed_tokens */
    /* top level (LlavaConfig) */
    int image_token_index;     /* id of an <image> position in `tokens` */
    vt_activation proj_act;    /* projector_hidden_act (gelu) */
    int vision_feature_layer;  /* index into hidden_states (0 = embeddings), negative from the end */
    /* training-side: which parts get gradients (model.freeze.*) */
    bool freeze_vision;    /* default true */
    bool freeze_projector; /* default false */
    bool freeze_language;  /* default false; stage 1 sets it true */
    float init_std;        /* model.initializer_range: normal std of weights (0.02) */
} vt_model_config;

/* The tiny CPU-test defaults: CLIP 32px/8px patches (16 image tokens), 2
 * vision layers of width 32, a 2-layer LLaMA of width 64 with GQA 4/2 heads,
 * vocab 288 (the byte tokenizer's 256 bytes + specials + <image> = 287). */
void vt_model_config_default(vt_model_config *c);
/* Reads the `prefix` section (normally "model") of a run config over the
 * current values of c (absent keys keep them), then validates. Keys:
 * vision_config.{hidden_size,intermediate_size,num_hidden_layers,
 * num_attention_heads,image_size,patch_size,hidden_act,layer_norm_eps},
 * text_config.{vocab_size,hidden_size,intermediate_size,num_hidden_layers,
 * num_attention_heads,num_key_value_heads,rms_norm_eps,rope_theta,
 * max_position_embeddings,tie_word_embeddings}, image_token_index,
 * projector_hidden_act, vision_feature_layer, initializer_range,
 * freeze.{vision_tower,multi_modal_projector,language_model}. */
vt_status vt_model_config_read(const vt_config *cfg, const char *prefix, vt_model_config *c,
                               vt_error *err);
/* Reads a Hugging Face LLaVA config.json (model_type llava) over c. */
vt_status vt_model_config_from_hf_json(const char *path, vt_model_config *c, vt_error *err);
/* Divisibility, ranges and the feature layer; VT_ERR_ARG naming the key. */
vt_status vt_model_config_validate(const vt_model_config *c, vt_error *err);
/* Image tokens per image: (image_size / patch_size)^2. */
int vt_model_image_tokens(const vt_model_config *c);

/* ---- named parameter views ---- */

typedef struct vt_clip_layer {
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* self_attn.{q,k,v,out}_proj */
    float *ln1_w, *ln1_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ln2_w, *ln2_b;
} vt_clip_layer;

typedef struct vt_llama_layer {
    float *q_w, *k_w, *v_w, *o_w;      /* self_attn.{q,k,v,o}_proj */
    float *gate_w, *up_w, *down_w;     /* mlp.*_proj */
    float *ln1_w, *ln2_w;              /* input_layernorm, post_attention_layernorm */
} vt_llama_layer;

/* One view over a flat buffer. In the gradient view, tensors of frozen parts
 * are NULL. */
typedef struct vt_model_views {
    /* vision_tower.vision_model.* */
    float *class_emb, *patch_w, *pos_emb, *pre_ln_w, *pre_ln_b, *post_ln_w, *post_ln_b;
    vt_clip_layer *vl; /* [v_layers] */
    /* multi_modal_projector.* */
    float *p1_w, *p1_b, *p2_w, *p2_b;
    /* language_model.* */
    float *embed, *norm_w, *lm_head; /* lm_head == embed when tied */
    vt_llama_layer *ll; /* [layers] */
} vt_model_views;

typedef enum vt_model_part { VT_PART_VISION = 0, VT_PART_PROJECTOR = 1, VT_PART_LANGUAGE = 2 } vt_model_part;

/* One tensor of the parameter table. */
typedef struct vt_param_info {
    char name[96];     /* Hugging Face name */
    int ndim;
    int64_t shape[4];
    size_t offset;     /* elements into params */
    size_t numel;
    vt_model_part part;
    bool trainable;
    bool decay;        /* weight decay applies (matrices and embeddings; not biases/norms) */
} vt_param_info;

/* ---- the model ---- */

typedef struct vt_model_acts vt_model_acts; /* activation views (private) */

/* A tuning method acting inside the decoder (e.g. Vittle's bottleneck).
 * After decoder block `layer` runs, forward may rewrite that block's output
 * h [B*T, D] (ctx memory) in place; the rest of the decoder sees the result.
 * `batch` is the batch vt_model_forward was given (host memory; tokens,
 * lengths, loss_mask say which row is what). In backward, dh holds dL/dh' on
 * entry and must hold dL/dh on return. Installed with vt_model_add_hook;
 * several methods can sit in one model (Vittle after block 0.75 L and ROSS
 * after the last, recipe vittle_ross). */
typedef struct vt_model vt_model;
enum { VT_MODEL_MAX_HOOKS = 4 };
typedef struct vt_decoder_hook {
    int layer;
    vt_status (*forward)(void *arg, vt_model *m, const vt_batch *batch, float *h, vt_error *err);
    vt_status (*backward)(void *arg, vt_model *m, float *dh, vt_error *err);
    void *arg;
} vt_decoder_hook;

/* Called during vt_model_backward each time every gradient at index >=
 * ready_from of vt_model.grads is final for this backward: after each
 * decoder block (its gradients and everything above it in the buffer: later
 * blocks, the final norm, an untied lm_head). A data-parallel caller starts
 * reducing those while backward goes on (trainer/dist.h). A decoder hook may
 * add into gradients above its block: its backward runs before that block's
 * report. Installed by setting vt_model.grads_ready; fn NULL = none. */
typedef struct vt_grads_ready {
    vt_status (*fn)(void *arg, size_t ready_from, vt_error *err);
    void *arg;
} vt_grads_ready;

/* Input-embeddings override: rows of the decoder's input sequence that come
 * from outside the embedding table (e.g. MMICT's M-Hub features, recipe
 * `icl`). In vt_model_forward, after the token lookup and the image
 * features, x0[pos[i]] = rows[i] for i < n (pos flat b*T + t of the batch
 * given, distinct, not <image> positions; the token id there is looked up
 * and then overwritten, so any valid id will do). vt_model_backward then
 * ADDS dL/d rows[i] into grad[i] (when grad is not NULL), and a trainable
 * embedding table gets no gradient from those positions. With grad set this
 * works with EVERY part frozen: the backward then runs through the frozen
 * decoder for this gradient only (no parameter gradient work). pos, rows and
 * grad are host memory ([n], [n, hidden], [n, hidden]); the override must
 * stay set and unchanged from the forward to its backward; zero it (n = 0)
 * so that other forwards (validation) are plain. Installed by setting
 * vt_model.input; zeroed = none. */
typedef struct vt_input_override {
    int n;
    const int32_t *pos;
    const float *rows;
    float *grad;
} vt_input_override;

typedef struct vt_model {
    vt_model_config cfg;
    vt_ctx *ctx; /* borrowed */
    /* parameter table in buffer order */
    int ntensors;
    vt_param_info *tensors;
    float *params;            /* num_params floats */
    size_t num_params;
    size_t train_offset;      /* first trainable element */
    size_t num_trainable;     /* num_params - train_offset */
    float *grads, *m, *v;     /* num_trainable floats each (NULL if nothing trains) */
    uint8_t *decay_mask;      /* num_trainable bytes */
    vt_model_views w;         /* views into params */
    vt_model_views g;         /* views into grads (NULL for frozen tensors) */
    /* activations, sized for (B, T) at the first forward; later batches must fit */
    int B, T;
    vt_model_acts *acts;
    /* results of the last forward */
    float loss;               /* mean CE over masked positions */
    int loss_count;           /* masked positions counted */
    bool have_targets;        /* last forward computed the loss */
    vt_decoder_hook hooks[VT_MODEL_MAX_HOOKS]; /* the first nhooks, in the order added */
    int nhooks;
    vt_grads_ready grads_ready; /* zeroed = none */
    vt_input_override input;    /* zeroed = none */
    bool input_grad_wanted;     /* set by vt_model_reserve(input_grad): activations keep gradient buffers */
} vt_model;

/* Builds the parameter table, allocates params (and grads/m/v for trainable
 * parts) on ctx and initialises weights from seed: every tensor drawn from its
 * own Philox stream keyed by hash(seed, name), normal(0, init_std) for
 * matrices and embeddings, zero biases, unit norm weights. */
vt_status vt_model_create(vt_model **out, vt_ctx *ctx, const vt_model_config *cfg, uint64_t seed,
                          vt_error *err);
void vt_model_free(vt_model *m);

/* Installs a decoder hook (copied). Hooks after the same block run their
 * forwards in the order they were added and their backwards in reverse, so
 * a later hook sees what an earlier one wrote. VT_ERR_STATE when a hook
 * with the same forward (the same method) is installed already, or when
 * VT_MODEL_MAX_HOOKS are. */
vt_status vt_model_add_hook(vt_model *m, const vt_decoder_hook *hook, vt_error *err);
/* Removes the hook whose arg is `arg` (nothing when there is none). */
void vt_model_remove_hook(vt_model *m, const void *arg);

/* Tensor lookup by Hugging Face name (NULL when absent). */
const vt_param_info *vt_model_find(const vt_model *m, const char *name);

/* Forward on a batch as the data pipeline hands it over (pipeline/batch.h,
 * host memory):
 *   pixels    float [B,3,H,W], CLIP-normalised, H = W = image_size; unused
 *             (may be NULL, shape.channels 0) when no sequence has an image
 *   tokens    int32 [B,T]; an image's N positions hold image_token_index
 *             (at most one image per sequence, exactly N such positions or
 *             none; the i-th image position gets the i-th projected patch
 *             feature). Sequence b uses image b.
 *   targets   int32 [B,T] next token (read in VT_FORWARD_LOSS mode)
 *   loss_mask uint8 [B,T] 1 = counted (assistant answer tokens); NULL = all
 *   lengths   int32 [B] valid length per sequence (right padding); NULL = T.
 *             Keys at or past the length are masked; so are their losses.
 * VT_FORWARD_LOSS: loss = mean CE over masked positions (also m->loss,
 * m->loss_count; *loss may be NULL) and the logits buffer then holds the
 * softmax probabilities. VT_FORWARD_LOGITS: no loss, the buffer holds the
 * logits, and backward is not possible. The first call sizes the activations
 * for (B, T); a later batch with larger B or T is VT_ERR_ARG. Bad token ids,
 * image token counts other than 0 or N, or lengths out of range are
 * VT_ERR_RANGE naming the sequence and position. */
typedef enum vt_forward_mode { VT_FORWARD_LOSS = 0, VT_FORWARD_LOGITS = 1 } vt_forward_mode;
vt_status vt_model_forward(vt_model *m, const vt_batch *batch, vt_forward_mode mode, float *loss,
                           vt_error *err);
/* Sizes the activations for batches of up to (B, T) now, with the gradient
 * buffers an input override's gradient needs when input_grad (even if every
 * part is frozen). Existing activations that are smaller (or lack those
 * buffers) are reallocated to the larger of both sizes; the last forward is
 * then gone (backward needs a new one). */
vt_status vt_model_reserve(vt_model *m, int B, int T, bool input_grad, vt_error *err);
/* The vision tower's features for n images: pixels host float [n, 3, S, S]
 * (CLIP-normalised), out host float [n, N, v_hidden] = the hidden state at
 * vision_feature_layer without the class token (what the projector reads).
 * Runs in chunks of the activations' B, so it needs sized activations (a
 * forward or vt_model_reserve first); it overwrites the last forward's
 * activations (backward then needs a new forward). No gradient. */
vt_status vt_model_image_features(vt_model *m, const float *pixels, int n, float *out, vt_error *err);

/* [B*T, vocab] on ctx memory, valid after a forward. */
const float *vt_model_logits(const vt_model *m);

/* Sets the trainable gradients to zero (one memset). */
vt_status vt_model_zero_grad(vt_model *m, vt_error *err);
/* Backward of the last forward (which must have had targets). ADDS into
 * grads (so micro-batches accumulate): dlogits = dloss_scale * (p - onehot)
 * on masked rows. For this batch's mean loss pass 1.0f / m->loss_count; when
 * accumulating, 1 / (masked count over all micro-batches and ranks).
 * Frozen parts get no gradient work; the vision tower runs no backward at
 * all while frozen. */
vt_status vt_model_backward(vt_model *m, float dloss_scale, vt_error *err);

/* Clip the global gradient norm to max_norm (<= 0: no clipping; *norm gets
 * the norm before clipping, may be NULL), then one AdamW step (step is
 * 1-based) over the trainable suffix; biases, norms and the class embedding
 * skip weight decay. */
vt_status vt_model_step(vt_model *m, const vt_adamw_hparams *hp, long step, float max_grad_norm,
                        float *norm, vt_error *err);

/* ---- method parameters outside the model (trainer/optimizer_state.c) ---- */

/* A flat buffer of trainable parameters that is not part of the Hugging Face
 * model (a tuning method's own layers, e.g. Vittle's bottleneck), optimised
 * together with the model: one global clipping norm, one AdamW step, moments
 * in the same optimizer file. All buffers are ctx memory (host for the CPU
 * backend), n floats each (decay_mask n bytes). */
typedef struct vt_param_group {
    const char *name;          /* optimizer state: "exp_avg.<name>", "exp_avg_sq.<name>" */
    float *params, *grads;
    float *m, *v;              /* AdamW moments (owned by whoever steps, zero at start) */
    const uint8_t *decay_mask; /* nonzero = weight decay applies; NULL = every element decays */
    size_t n;
} vt_param_group;

/* vt_model_step over the model's trainable suffix AND the groups: the norm
 * is taken over all of them together (clipping scales all), then AdamW runs
 * on each. With ngroups 0 it is exactly vt_model_step. A model with nothing
 * trainable is fine when groups are given. */
vt_status vt_model_step_ex(vt_model *m, const vt_param_group *groups, int ngroups,
                           const vt_adamw_hparams *hp, long step, float max_grad_norm, float *norm,
                           vt_error *err);

/* ---- checkpoints (trainer/hf_checkpoint.c) ---- */

/* Writes dir/model.safetensors (F32, Hugging Face LlavaForConditionalGeneration
 * names and shapes; the `__metadata__` has format=pt plus meta_kv pairs,
 * NULL-terminated key, value, key, value, ... may be NULL) and dir/config.json.
 * Creates dir. Both files are written atomically. */
vt_status vt_model_export_hf(const vt_model *m, const char *dir, const char *const *meta_kv,
                             vt_error *err);
/* Loads every parameter from a LLaVA-layout safetensors file (F32/F16/BF16/F64)
 * or a directory holding model.safetensors. Every model tensor must be
 * present with the exact shape, and every file tensor must be known
 * (mismatches are VT_ERR_FORMAT naming the tensor and both shapes). A tied
 * model accepts a file with or without language_model.lm_head.weight (which
 * must then equal embed_tokens? no: it is ignored). */
vt_status vt_model_import_hf(vt_model *m, const char *path, vt_error *err);
/* Writes the AdamW moments as safetensors "exp_avg.<name>" / "exp_avg_sq.<name>"
 * for every trainable tensor (atomic), with meta_kv as above. */
vt_status vt_model_save_optimizer(const vt_model *m, const char *path, const char *const *meta_kv,
                                  vt_error *err);
/* Loads moments saved by vt_model_save_optimizer (by name: layouts may differ;
 * a trainable tensor missing from the file is an error). */
vt_status vt_model_load_optimizer(vt_model *m, const char *path, vt_error *err);
/* The same with the groups' moments in the file too, as 1-D tensors
 * "exp_avg.<group name>" / "exp_avg_sq.<group name>" of n floats. Loading
 * requires every group's tensors with exactly n elements (VT_ERR_FORMAT
 * naming it otherwise). Either may run with a frozen model when ngroups > 0. */
vt_status vt_model_save_optimizer_ex(const vt_model *m, const vt_param_group *groups, int ngroups,
                                     const char *path, const char *const *meta_kv, vt_error *err);
vt_status vt_model_load_optimizer_ex(vt_model *m, const vt_param_group *groups, int ngroups,
                                     const char *path, vt_error *err);

#endif
