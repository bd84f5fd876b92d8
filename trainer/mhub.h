/* MMICT's M-Hub (research/methods.md §3, DESIGN.md §4): a small Q-Former
 * in which Q learnable queries and the text tokens of an item share
 * bidirectional self-attention and only the query positions cross-attend to
 * the item's visual features (the vision tower's output tokens). Used in
 * two modes on the same weights:
 *   - a demonstration (image + its caption/answer as text): the outputs at
 *     the TEXT positions are its visual-guided textual features (VT);
 *   - the query item (image + its prompt as text): the outputs at the QUERY
 *     positions are its textual-guided visual features (TV), which the
 *     recipe places before the prompt's own word embeddings.
 *
 * Per item b with vision features v [Nv, V], text embeddings e [L, E] of
 * which the first len_b are real (the rest padding), T = Q + L rows:
 *   vn   = LayerNorm_vis(v)                                (affine, eps 1e-6)
 *   x    = [queries ; Linear_text_in(e) + text_pos[0..L)]   [T, W]
 *   layer l = 0..layers-1 (pre-LN):
 *     x += Proj(MHA(LN1(x)))   keys restricted to rows < Q + len_b
 *     if l % cross_every == 0, on the Q query rows only:
 *       x[:Q] += CProj(MHA(q = CQ(LNc(x[:Q])), k = CK(vn), v = CV(vn)))
 *     x += FC2(GELU(FC1(LN2(x))))                       (exact erf GELU)
 *   out  = Linear_out(LayerNorm_f(x))                     [T, D]
 * where every LayerNorm is affine with eps 1e-6, MHA is H-head scaled
 * dot-product attention (scale 1/sqrt(W/H), no dropout) and the K and V
 * projections of the cross-attention are one Linear(V -> 2W) (rows K then
 * V). Rows Q + len_b .. T-1 are padding: their output is 0 and their
 * gradient ignored. Linear_out maps to the decoder's width D (the
 * `t5_proj` of the reference): its output is what the decoder reads.
 *
 * Parameters (one flat buffer, names as saved in mhub.safetensors):
 * mhub.queries [Q, W], mhub.text_in.{weight [W, E], bias}, mhub.text_pos
 * [max_text, W], mhub.vis_ln.{weight, bias} [V], per layer
 * mhub.layers.<l>.{ln1, attn.qkv [3W, W], attn.proj, (cross layers) lnc,
 * cross.q [W, W], cross.kv [2W, V], cross.proj, ln2, mlp.fc1 [M, W],
 * mlp.fc2 [W, M]}, mhub.ln_f, mhub.out.{weight [D, W], bias [D]}.
 * Initialisation (BERT's, as the Q-Former's): matrices, queries and
 * text_pos N(0, init_std), biases 0, LayerNorm weights 1. Weight decay on
 * the Linear weights only. Host memory; the linears, norms and the
 * self-attention run on the ops' CPU ctx (a CUDA ctx is VT_ERR_DEVICE). */
#ifndef VT_TRAINER_MHUB_H
#define VT_TRAINER_MHUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "ops/ctx.h"

typedef struct vt_mhub_config {
    int queries;     /* Q (32) */
    int width;       /* W (256); heads must divide it */
    int layers;      /* (2) */
    int heads;       /* (4) */
    float mlp_ratio; /* M = (int)(W * mlp_ratio) (4) */
    int cross_every; /* layer l cross-attends when l % cross_every == 0 (1; BLIP-2 uses 2) */
    int max_text;    /* text positions (rows of text_pos) (64) */
    float init_std;  /* (0.02) */
    /* set by vt_mhub_config_resolve */
    int vis_dim;     /* V: vision tower width */
    int text_dim;    /* E: width of the text embeddings given (the decoder's) */
    int out_dim;     /* D: decoder hidden size */
} vt_mhub_config;

/* Defaults above; vis_dim, text_dim, out_dim 0. */
void vt_mhub_config_default(vt_mhub_config *c);
/* Reads the `prefix` section keys queries, width, layers, heads, mlp_ratio,
 * cross_every, max_text, init_std over c (absent keys keep their values);
 * VT_ERR_ARG naming the key on a bad value. Other keys of the section
 * belong to the recipe. */
vt_status vt_mhub_config_read(const vt_config *cfg, const char *prefix, vt_mhub_config *c,
                              vt_error *err);
/* Sets the three input/output widths and validates the shape (heads divide
 * width, sizes positive); VT_ERR_ARG naming the key otherwise. */
vt_status vt_mhub_config_resolve(vt_mhub_config *c, int vis_dim, int text_dim, int out_dim,
                                 vt_error *err);

typedef struct vt_mhub_layer {
    float *ln1_w, *ln1_b;     /* [W] */
    float *qkv_w, *qkv_b;     /* [3W, W], [3W]: q rows, k rows, v rows */
    float *proj_w, *proj_b;   /* [W, W], [W] */
    float *lnc_w, *lnc_b;     /* [W]          (NULL on layers without cross-attention) */
    float *cq_w, *cq_b;       /* [W, W], [W]  (idem) */
    float *ckv_w, *ckv_b;     /* [2W, V], [2W] (idem) */
    float *cproj_w, *cproj_b; /* [W, W], [W]  (idem) */
    float *ln2_w, *ln2_b;     /* [W] */
    float *fc1_w, *fc1_b;     /* [M, W], [M] */
    float *fc2_w, *fc2_b;     /* [W, M], [W] */
} vt_mhub_layer;

typedef struct vt_mhub_views {
    float *queries;            /* [Q, W] */
    float *tin_w, *tin_b;      /* [W, E], [W] */
    float *text_pos;           /* [max_text, W] */
    float *vln_w, *vln_b;      /* [V] */
    vt_mhub_layer *layers;     /* [layers] */
    float *lnf_w, *lnf_b;      /* [W] */
    float *out_w, *out_b;      /* [D, W], [D] */
} vt_mhub_views;

typedef struct vt_mhub_tensor {
    char name[64];
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
    bool decay;
} vt_mhub_tensor;

typedef struct vt_mhub_work vt_mhub_work; /* activations (private) */

typedef struct vt_mhub {
    vt_mhub_config cfg;
    vt_ctx *ctx;           /* borrowed */
    float *params, *grads; /* num_params floats each */
    size_t num_params;
    vt_mhub_views w, g;
    int ntensors;
    vt_mhub_tensor *tensors;
    vt_mhub_work *work;
    /* shape of the last forward */
    int n_items, n_vis, text_len;
} vt_mhub;

/* Allocates parameters (initialised as above, each tensor from a Philox
 * stream keyed by (seed, tensor name)) and zeroed gradients. The config
 * must be resolved. */
vt_status vt_mhub_create(vt_mhub **out, vt_ctx *ctx, const vt_mhub_config *cfg, uint64_t seed,
                         vt_error *err);
void vt_mhub_free(vt_mhub *h);
void vt_mhub_zero_grad(vt_mhub *h);

/* vis [B, Nv, V], text [B, L, E] (L <= max_text), text_len [B] in [0, L].
 * Computes out [B, Q + L, D] (vt_mhub_output) and keeps what backward needs
 * (inputs are copied). B may be 0. */
vt_status vt_mhub_forward(vt_mhub *h, const float *vis, int B, int Nv, const float *text,
                          const int32_t *text_len, int L, vt_error *err);
/* The last forward's output [B, Q + L, D]: rows 0..Q-1 of item b are its
 * textual-guided visual features, rows Q..Q+len_b-1 its visual-guided
 * textual features, the rest 0. */
const float *vt_mhub_output(const vt_mhub *h);
/* Backward of sum(out * dout) for the last forward: ADDS into h->grads and,
 * when not NULL, into dvis [B, Nv, V] and dtext [B, L, E]. dout rows of
 * padding are ignored. */
vt_status vt_mhub_backward(vt_mhub *h, const float *dout, float *dvis, float *dtext,
                           vt_error *err);

/* mhub.safetensors: F32, names as in h->tensors, metadata
 * vistune_method=mmict, written atomically. Load is strict (every tensor
 * with the exact shape, nothing unknown: VT_ERR_FORMAT). */
vt_status vt_mhub_save(const vt_mhub *h, const char *path, vt_error *err);
vt_status vt_mhub_load(vt_mhub *h, const char *path, vt_error *err);

/* Demonstration selection (pure logic, for the pipeline): among n items
 * with task-group ids group[n], picks up to k demonstrations for item
 * `query` from the items of the same group, never the query itself, and
 * writes their indices to out[k]; returns how many (fewer when the group is
 * smaller). emb NULL: a uniform random choice without replacement from a
 * Philox stream keyed by (seed, query). emb [n, dim] given: the k most
 * cosine-similar items (ties broken by lower index), most similar first.
 * A pure function of its arguments. */
int vt_mmict_select_demos(const uint32_t *group, const float *emb, int dim, int n, int query,
                          int k, uint64_t seed, int *out);

#endif
