/* The model object: parameter table with Hugging Face names, the flat
 * param/grad/moment buffers (frozen parts first so the trainable parameters
 * are one contiguous suffix), deterministic init, activation sizing, and the
 * forward/backward/step entry points that call the three parts in order. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "trainer/model_internal.h"

vt_status vt_model_op_fail(vt_model *m, vt_status st, const char *what, vt_error *err) {
    const vt_error *e = vt_ctx_error(m->ctx);
    return vt_fail(err, st, "model: %s: %s", what, e && e->msg[0] ? e->msg : vt_status_name(st));
}

/* ---- parameter table ---- */

typedef enum { INIT_NORMAL, INIT_ZERO, INIT_ONE } init_kind;

typedef struct slot {
    float **w, **g;
    init_kind init;
} slot;

typedef struct table {
    vt_param_info *t;
    slot *s;
    int n, cap;
    int oom;
} table;

static void add(table *tb, vt_model_part part, float **w, float **g, init_kind init, int ndim, const int64_t *shape,
                const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void add(table *tb, vt_model_part part, float **w, float **g, init_kind init, int ndim, const int64_t *shape,
                const char *fmt, ...) {
    if (tb->oom) return;
    if (tb->n == tb->cap) {
        int nc = tb->cap ? tb->cap * 2 : 64;
        vt_param_info *nt = realloc(tb->t, sizeof *nt * (size_t)nc);
        slot *ns = nt ? realloc(tb->s, sizeof *ns * (size_t)nc) : NULL;
        if (nt) tb->t = nt;
        if (!nt || !ns) {
            tb->oom = 1;
            return;
        }
        tb->s = ns;
        tb->cap = nc;
    }
    vt_param_info *p = &tb->t[tb->n];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->part = part;
    p->decay = ndim >= 2;
    tb->s[tb->n] = (slot){w, g, init};
    tb->n++;
}

#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* The table in Hugging Face state_dict order (vision, projector, language). */
static void build_table(table *tb, const vt_model_config *c, vt_model_views *w, vt_model_views *g) {
    const char *vm = "vision_tower.vision_model";
    int64_t Dv = c->v_hidden, Iv = c->v_inter, P = c->patch_size, N = vt_model_image_tokens(c);
    vt_model_part V = VT_PART_VISION;
    add(tb, V, &w->class_emb, &g->class_emb, INIT_NORMAL, 1, SH(Dv), "%s.embeddings.class_embedding", vm);
    add(tb, V, &w->patch_w, &g->patch_w, INIT_NORMAL, 4, SH(Dv, 3, P, P), "%s.embeddings.patch_embedding.weight", vm);
    add(tb, V, &w->pos_emb, &g->pos_emb, INIT_NORMAL, 2, SH(N + 1, Dv), "%s.embeddings.position_embedding.weight", vm);
    add(tb, V, &w->pre_ln_w, &g->pre_ln_w, INIT_ONE, 1, SH(Dv), "%s.pre_layrnorm.weight", vm);
    add(tb, V, &w->pre_ln_b, &g->pre_ln_b, INIT_ZERO, 1, SH(Dv), "%s.pre_layrnorm.bias", vm);
    for (int l = 0; l < c->v_layers; l++) {
        vt_clip_layer *a = &w->vl[l], *b = &g->vl[l];
        const char *e = "encoder.layers";
#define VL(field, init, nd, shape, suffix)                                                               \
    add(tb, V, &a->field, &b->field, init, nd, shape, "%s.%s.%d.%s", vm, e, l, suffix)
        VL(k_w, INIT_NORMAL, 2, SH(Dv, Dv), "self_attn.k_proj.weight");
        VL(k_b, INIT_ZERO, 1, SH(Dv), "self_attn.k_proj.bias");
        VL(v_w, INIT_NORMAL, 2, SH(Dv, Dv), "self_attn.v_proj.weight");
        VL(v_b, INIT_ZERO, 1, SH(Dv), "self_attn.v_proj.bias");
        VL(q_w, INIT_NORMAL, 2, SH(Dv, Dv), "self_attn.q_proj.weight");
        VL(q_b, INIT_ZERO, 1, SH(Dv), "self_attn.q_proj.bias");
        VL(o_w, INIT_NORMAL, 2, SH(Dv, Dv), "self_attn.out_proj.weight");
        VL(o_b, INIT_ZERO, 1, SH(Dv), "self_attn.out_proj.bias");
        VL(ln1_w, INIT_ONE, 1, SH(Dv), "layer_norm1.weight");
        VL(ln1_b, INIT_ZERO, 1, SH(Dv), "layer_norm1.bias");
        VL(fc1_w, INIT_NORMAL, 2, SH(Iv, Dv), "mlp.fc1.weight");
        VL(fc1_b, INIT_ZERO, 1, SH(Iv), "mlp.fc1.bias");
        VL(fc2_w, INIT_NORMAL, 2, SH(Dv, Iv), "mlp.fc2.weight");
        VL(fc2_b, INIT_ZERO, 1, SH(Dv), "mlp.fc2.bias");
        VL(ln2_w, INIT_ONE, 1, SH(Dv), "layer_norm2.weight");
        VL(ln2_b, INIT_ZERO, 1, SH(Dv), "layer_norm2.bias");
#undef VL
    }
    /* Unused by LLaVA (features come from hidden_states) but part of the
     * CLIPVisionModel state dict, so it is kept for interop. */
    add(tb, V, &w->post_ln_w, &g->post_ln_w, INIT_ONE, 1, SH(Dv), "%s.post_layernorm.weight", vm);
    add(tb, V, &w->post_ln_b, &g->post_ln_b, INIT_ZERO, 1, SH(Dv), "%s.post_layernorm.bias", vm);

    int64_t D = c->hidden, I = c->inter, Vt = c->vocab, KV = (int64_t)c->kv_heads * (c->hidden / c->heads);
    vt_model_part Pj = VT_PART_PROJECTOR, L = VT_PART_LANGUAGE;
    add(tb, Pj, &w->p1_w, &g->p1_w, INIT_NORMAL, 2, SH(D, Dv), "multi_modal_projector.linear_1.weight");
    add(tb, Pj, &w->p1_b, &g->p1_b, INIT_ZERO, 1, SH(D), "multi_modal_projector.linear_1.bias");
    add(tb, Pj, &w->p2_w, &g->p2_w, INIT_NORMAL, 2, SH(D, D), "multi_modal_projector.linear_2.weight");
    add(tb, Pj, &w->p2_b, &g->p2_b, INIT_ZERO, 1, SH(D), "multi_modal_projector.linear_2.bias");

    add(tb, L, &w->embed, &g->embed, INIT_NORMAL, 2, SH(Vt, D), "language_model.model.embed_tokens.weight");
    for (int l = 0; l < c->layers; l++) {
        vt_llama_layer *a = &w->ll[l], *b = &g->ll[l];
#define LL(field, init, nd, shape, suffix)                                                               \
    add(tb, L, &a->field, &b->field, init, nd, shape, "language_model.model.layers.%d.%s", l, suffix)
        LL(q_w, INIT_NORMAL, 2, SH(D, D), "self_attn.q_proj.weight");
        LL(k_w, INIT_NORMAL, 2, SH(KV, D), "self_attn.k_proj.weight");
        LL(v_w, INIT_NORMAL, 2, SH(KV, D), "self_attn.v_proj.weight");
        LL(o_w, INIT_NORMAL, 2, SH(D, D), "self_attn.o_proj.weight");
        LL(gate_w, INIT_NORMAL, 2, SH(I, D), "mlp.gate_proj.weight");
        LL(up_w, INIT_NORMAL, 2, SH(I, D), "mlp.up_proj.weight");
        LL(down_w, INIT_NORMAL, 2, SH(D, I), "mlp.down_proj.weight");
        LL(ln1_w, INIT_ONE, 1, SH(D), "input_layernorm.weight");
        LL(ln2_w, INIT_ONE, 1, SH(D), "post_attention_layernorm.weight");
#undef LL
    }
    add(tb, L, &w->norm_w, &g->norm_w, INIT_ONE, 1, SH(D), "language_model.model.norm.weight");
    if (!c->tie_embeddings)
        add(tb, L, &w->lm_head, &g->lm_head, INIT_NORMAL, 2, SH(Vt, D), "language_model.lm_head.weight");
}

static bool part_frozen(const vt_model_config *c, vt_model_part p) {
    return p == VT_PART_VISION ? c->freeze_vision : p == VT_PART_PROJECTOR ? c->freeze_projector : c->freeze_language;
}

vt_status vt_model_add_hook(vt_model *m, const vt_decoder_hook *hook, vt_error *err) {
    for (int i = 0; i < m->nhooks; i++)
        if (m->hooks[i].forward == hook->forward)
            return vt_fail(err, VT_ERR_STATE, "the model already has this method's decoder hook (after block %d)",
                           m->hooks[i].layer);
    if (m->nhooks == VT_MODEL_MAX_HOOKS)
        return vt_fail(err, VT_ERR_STATE, "the model has %d decoder hooks already", VT_MODEL_MAX_HOOKS);
    if (hook->layer < 0 || hook->layer >= m->cfg.layers)
        return vt_fail(err, VT_ERR_RANGE, "decoder hook after block %d: the decoder has blocks 0..%d", hook->layer,
                       m->cfg.layers - 1);
    m->hooks[m->nhooks++] = *hook;
    return VT_OK;
}

void vt_model_remove_hook(vt_model *m, const void *arg) {
    for (int i = 0; i < m->nhooks; i++)
        if (m->hooks[i].arg == arg) {
            memmove(&m->hooks[i], &m->hooks[i + 1], (size_t)(m->nhooks - i - 1) * sizeof m->hooks[0]);
            m->nhooks--;
            return;
        }
}

const vt_param_info *vt_model_find(const vt_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static vt_status init_weights(vt_model *m, const slot *slots, uint64_t seed, vt_error *err) {
    size_t maxn = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].numel > maxn) maxn = m->tensors[i].numel;
    float *host = malloc((maxn ? maxn : 1) * sizeof(float));
    if (!host) return vt_fail(err, VT_ERR_NOMEM, "model: cannot allocate %zu floats for init", maxn);
    for (int i = 0; i < m->ntensors; i++) {
        const vt_param_info *p = &m->tensors[i];
        if (slots[i].init == INIT_NORMAL) {
            vt_rng r;
            vt_rng_init(&r, vt_hash_bytes(p->name, strlen(p->name), seed));
            for (size_t k = 0; k < p->numel; k++) host[k] = (float)(vt_rng_normal(&r) * m->cfg.init_std);
        } else {
            float v = slots[i].init == INIT_ONE ? 1.0f : 0.0f;
            for (size_t k = 0; k < p->numel; k++) host[k] = v;
        }
        vt_status st = vt_ctx_memcpy_h2d(m->ctx, m->params + p->offset, host, p->numel * sizeof(float));
        if (st) {
            free(host);
            return vt_model_op_fail(m, st, "init", err);
        }
    }
    free(host);
    return VT_OK;
}

vt_status vt_model_create(vt_model **out, vt_ctx *ctx, const vt_model_config *cfg, uint64_t seed, vt_error *err) {
    *out = NULL;
    vt_status st = vt_model_config_validate(cfg, err);
    if (st) return st;
    vt_model *m = calloc(1, sizeof *m);
    if (!m) return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->ctx = ctx;
    m->w.vl = calloc((size_t)cfg->v_layers, sizeof(vt_clip_layer));
    m->g.vl = calloc((size_t)cfg->v_layers, sizeof(vt_clip_layer));
    m->w.ll = calloc((size_t)cfg->layers, sizeof(vt_llama_layer));
    m->g.ll = calloc((size_t)cfg->layers, sizeof(vt_llama_layer));
    table tb = {0};
    if (m->w.vl && m->g.vl && m->w.ll && m->g.ll) build_table(&tb, cfg, &m->w, &m->g);
    if (!m->w.vl || !m->g.vl || !m->w.ll || !m->g.ll || tb.oom) {
        free(tb.t);
        free(tb.s);
        vt_model_free(m);
        return vt_fail(err, VT_ERR_NOMEM, "model: out of memory building the parameter table");
    }
    m->tensors = tb.t;
    m->ntensors = tb.n;
    /* Offsets: frozen parts first, then trainable ones, each in HF order. */
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) m->train_offset = off;
        for (int i = 0; i < tb.n; i++) {
            vt_param_info *p = &tb.t[i];
            p->trainable = !part_frozen(cfg, p->part);
            if (p->trainable != (pass == 1)) continue;
            p->offset = off;
            off += p->numel;
        }
    }
    m->num_params = off;
    m->num_trainable = off - m->train_offset;
    st = vt_ctx_alloc(ctx, (void **)&m->params, m->num_params * sizeof(float));
    if (!st && m->num_trainable) {
        size_t nb = m->num_trainable * sizeof(float);
        if (!(st = vt_ctx_alloc(ctx, (void **)&m->grads, nb)) && !(st = vt_ctx_alloc(ctx, (void **)&m->m, nb)) &&
            !(st = vt_ctx_alloc(ctx, (void **)&m->v, nb)))
            st = vt_ctx_alloc(ctx, (void **)&m->decay_mask, m->num_trainable);
    }
    if (st) {
        free(tb.s);
        vt_model_op_fail(m, st, "allocating parameters", err);
        vt_model_free(m);
        return st;
    }
    for (int i = 0; i < tb.n; i++) {
        const vt_param_info *p = &tb.t[i];
        *tb.s[i].w = m->params + p->offset;
        *tb.s[i].g = p->trainable ? m->grads + (p->offset - m->train_offset) : NULL;
    }
    if (cfg->tie_embeddings) {
        m->w.lm_head = m->w.embed;
        m->g.lm_head = m->g.embed;
    }
    st = init_weights(m, tb.s, seed, err);
    if (!st && m->num_trainable) {
        uint8_t *mask = malloc(m->num_trainable);
        if (!mask) st = vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
        for (int i = 0; !st && i < tb.n; i++) {
            const vt_param_info *p = &tb.t[i];
            if (p->trainable) memset(mask + (p->offset - m->train_offset), p->decay, p->numel);
        }
        if (!st) {
            vt_status s2 = vt_ctx_memcpy_h2d(ctx, m->decay_mask, mask, m->num_trainable);
            if (s2) st = vt_model_op_fail(m, s2, "decay mask", err);
        }
        free(mask);
    }
    free(tb.s);
    if (st) {
        vt_model_free(m);
        return st;
    }
    *out = m;
    return VT_OK;
}

static void free_acts(vt_model *m) {
    vt_model_acts *a = m->acts;
    if (!a) return;
    vt_ctx_free(m->ctx, a->fbase);
    vt_ctx_free(m->ctx, a->ibase);
    free(a->vl);
    free(a->ll);
    free(a->h_img_pos);
    free(a->h_ids);
    free(a->h_mask);
    free(a);
    m->acts = NULL;
}

void vt_model_free(vt_model *m) {
    if (!m) return;
    free_acts(m);
    if (m->ctx) {
        vt_ctx_free(m->ctx, m->params);
        vt_ctx_free(m->ctx, m->grads);
        vt_ctx_free(m->ctx, m->m);
        vt_ctx_free(m->ctx, m->v);
        vt_ctx_free(m->ctx, m->decay_mask);
    }
    free(m->tensors);
    free(m->w.vl);
    free(m->g.vl);
    free(m->w.ll);
    free(m->g.ll);
    free(m);
}

/* ---- activations ---- */

/* Two passes over the same list: count, then assign pointers. */
typedef struct layout {
    size_t nf, ni;
    float *fb;
    int32_t *ib;
} layout;

static void fl(layout *L, float **p, size_t n) {
    /* 16-float (64-byte) alignment of every buffer keeps SIMD loads aligned. */
    n = (n + 15) & ~(size_t)15;
    if (L->fb) *p = L->fb + L->nf;
    L->nf += n;
}
static void il(layout *L, int32_t **p, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (L->ib) *p = L->ib + L->ni;
    L->ni += n;
}

static int vision_run_layers(const vt_model_config *c) {
    int fl_ = c->vision_feature_layer;
    return fl_ < 0 ? c->v_layers + 1 + fl_ : fl_;
}

static void plan(vt_model_acts *a, const vt_model_config *c, layout *L) {
    size_t B = (size_t)a->B, T = (size_t)a->T, N = (size_t)a->N, Nv = N + 1, BT = B * T, BNv = B * Nv;
    size_t Dv = (size_t)c->v_hidden, Iv = (size_t)c->v_inter, Hv = (size_t)c->v_heads;
    size_t D = (size_t)c->hidden, I = (size_t)c->inter, V = (size_t)c->vocab, NH = (size_t)c->heads;
    size_t KV = (size_t)c->kv_heads * (D / NH), S = (size_t)c->image_size;
    bool tv = !c->freeze_vision;
    fl(L, &a->v_pix, B * 3 * S * S);
    fl(L, &a->v_patch, B * N * Dv);
    fl(L, &a->v_emb, BNv * Dv);
    fl(L, &a->v_x0, BNv * Dv);
    fl(L, &a->v_pre_mean, BNv);
    fl(L, &a->v_pre_rstd, BNv);
    il(L, &a->v_pos_ids, BNv);
    for (int l = 0; l < a->v_nbuf; l++) {
        vt_clip_acts *x = L->fb ? &a->vl[l] : &(vt_clip_acts){0};
        fl(L, &x->ln1, BNv * Dv);
        fl(L, &x->ln1_mean, BNv);
        fl(L, &x->ln1_rstd, BNv);
        fl(L, &x->q, BNv * Dv);
        fl(L, &x->k, BNv * Dv);
        fl(L, &x->v, BNv * Dv);
        fl(L, &x->att, B * Hv * Nv * Nv);
        fl(L, &x->atty, BNv * Dv);
        fl(L, &x->mid, BNv * Dv);
        fl(L, &x->ln2, BNv * Dv);
        fl(L, &x->ln2_mean, BNv);
        fl(L, &x->ln2_rstd, BNv);
        fl(L, &x->fc1, BNv * Iv);
        fl(L, &x->act, BNv * Iv);
        fl(L, &x->out, BNv * Dv);
    }
    fl(L, &a->feat, B * N * Dv);
    fl(L, &a->p_pre, B * N * D);
    fl(L, &a->p_act, B * N * D);
    fl(L, &a->p_out, B * N * D);
    il(L, &a->ids, BT);
    il(L, &a->emb_ids, BT);
    il(L, &a->targets, BT);
    il(L, &a->lengths, B);
    il(L, (int32_t **)&a->mask, (BT + 3) / 4);
    fl(L, &a->x0, BT * D);
    for (int l = 0; l < c->layers; l++) {
        vt_llama_acts *x = L->fb ? &a->ll[l] : &(vt_llama_acts){0};
        fl(L, &x->ln1, BT * D);
        fl(L, &x->ln1_rstd, BT);
        fl(L, &x->q, BT * D);
        fl(L, &x->k, BT * KV);
        fl(L, &x->v, BT * KV);
        fl(L, &x->att, B * NH * T * T);
        fl(L, &x->atty, BT * D);
        fl(L, &x->mid, BT * D);
        fl(L, &x->ln2, BT * D);
        fl(L, &x->ln2_rstd, BT);
        fl(L, &x->gate, BT * I);
        fl(L, &x->up, BT * I);
        fl(L, &x->h, BT * I);
        fl(L, &x->out, BT * D);
    }
    fl(L, &a->lnf, BT * D);
    fl(L, &a->lnf_rstd, BT);
    fl(L, &a->logits, BT * V);
    fl(L, &a->losses, BT);
    size_t tmpn = BT * D > BNv * Dv ? BT * D : BNv * Dv;
    fl(L, &a->tmp, tmpn);
    if (!a->backward) return;
    fl(L, &a->d_res, BT * D);
    fl(L, &a->d_ln, BT * D);
    fl(L, &a->d_q, BT * D);
    fl(L, &a->d_k, BT * KV);
    fl(L, &a->d_v, BT * KV);
    fl(L, &a->d_rot, BT * D);
    fl(L, &a->d_atty, BT * D);
    fl(L, &a->d_gate, BT * I);
    fl(L, &a->d_up, BT * I);
    fl(L, &a->d_h, BT * I);
    fl(L, &a->d_logits, BT * V);
    fl(L, &a->dp_out, B * N * D);
    fl(L, &a->dp_act, B * N * D);
    fl(L, &a->dp_pre, B * N * D);
    if (!tv) return;
    fl(L, &a->d_feat, B * N * Dv);
    fl(L, &a->dv_res, BNv * Dv);
    fl(L, &a->dv_ln, BNv * Dv);
    fl(L, &a->dv_q, BNv * Dv);
    fl(L, &a->dv_k, BNv * Dv);
    fl(L, &a->dv_v, BNv * Dv);
    fl(L, &a->dv_atty, BNv * Dv);
    fl(L, &a->dv_fc1, BNv * Iv);
    fl(L, &a->dv_act, BNv * Iv);
    fl(L, &a->dv_emb, BNv * Dv);
    fl(L, &a->dv_patch, B * N * Dv);
}

static vt_status alloc_acts(vt_model *m, int B, int T, vt_error *err) {
    vt_model_acts *a = calloc(1, sizeof *a);
    if (!a) return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
    m->acts = a;
    a->B = B;
    a->T = T;
    a->N = vt_model_image_tokens(&m->cfg);
    a->v_run = vision_run_layers(&m->cfg);
    a->backward = m->num_trainable > 0 || m->input_grad_wanted;
    a->v_nbuf = !m->cfg.freeze_vision ? a->v_run : (a->v_run < 2 ? a->v_run : 2);
    a->vl = calloc((size_t)a->v_nbuf + 1, sizeof *a->vl);
    a->ll = calloc((size_t)m->cfg.layers, sizeof *a->ll);
    a->h_img_pos = malloc(sizeof(int32_t) * (size_t)B * (size_t)(a->N ? a->N : 1));
    a->h_ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    a->h_mask = malloc((size_t)B * (size_t)T);
    if (!a->vl || !a->ll || !a->h_img_pos || !a->h_ids || !a->h_mask) {
        free_acts(m);
        return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
    }
    layout L = {0};
    plan(a, &m->cfg, &L);
    vt_status st = vt_ctx_alloc(m->ctx, (void **)&a->fbase, L.nf * sizeof(float));
    if (!st) st = vt_ctx_alloc(m->ctx, (void **)&a->ibase, L.ni * sizeof(int32_t));
    if (st) {
        vt_model_op_fail(m, st, "allocating activations", err);
        vt_error_prefix(err, "(B=%d, T=%d: %zu floats) ", B, T, L.nf);
        free_acts(m);
        return st;
    }
    layout L2 = {0, 0, a->fbase, a->ibase};
    plan(a, &m->cfg, &L2);
    /* Position ids of the vision tower never change: 0..N for every image. */
    size_t BNv = (size_t)B * (size_t)(a->N + 1);
    int32_t *pos = malloc(sizeof(int32_t) * BNv);
    if (!pos) {
        free_acts(m);
        return vt_fail(err, VT_ERR_NOMEM, "model: out of memory");
    }
    for (size_t i = 0; i < BNv; i++) pos[i] = (int32_t)(i % (size_t)(a->N + 1));
    st = vt_ctx_memcpy_h2d(m->ctx, a->v_pos_ids, pos, BNv * sizeof(int32_t));
    free(pos);
    if (st) {
        vt_model_op_fail(m, st, "position ids", err);
        free_acts(m);
        return st;
    }
    m->B = B;
    m->T = T;
    return VT_OK;
}

const float *vt_model_logits(const vt_model *m) { return m->acts ? m->acts->logits : NULL; }

vt_status vt_model_image_runs(vt_model *m, vt_image_run_fn fn, void *arg, vt_error *err) {
    vt_model_acts *a = m->acts;
    int N = a->N;
    for (int b = 0; b < a->cur_B; b++) {
        const int32_t *pos = a->h_img_pos + (size_t)b * N;
        if (pos[0] < 0) continue;
        int i = 0;
        while (i < N) {
            int j = i + 1;
            while (j < N && pos[j] == pos[j - 1] + 1) j++;
            vt_status st = fn(m, pos[i], b * N + i, j - i, arg, err);
            if (st) return st;
            i = j;
        }
    }
    return VT_OK;
}

/* Validates the batch on the host and stages ids, mask, targets, lengths and
 * pixels into ctx memory. */
static vt_status stage_batch(vt_model *m, const vt_batch *bt, bool with_targets, vt_error *err) {
    vt_model_acts *a = m->acts;
    const vt_model_config *c = &m->cfg;
    int B = (int)bt->shape.batch, T = (int)bt->shape.seq_len, N = a->N;
    size_t BT = (size_t)B * (size_t)T;
    a->cur_B = B;
    a->cur_T = T;
    a->has_images = false;
    a->lengths_valid = bt->lengths != NULL;
    if (bt->lengths)
        for (int b = 0; b < B; b++)
            if (bt->lengths[b] < 0 || bt->lengths[b] > T)
                return vt_fail(err, VT_ERR_RANGE, "model: batch: lengths[%d] = %d outside [0, %d]", b, bt->lengths[b], T);
    for (int b = 0; b < B; b++) {
        int n = 0;
        int len = bt->lengths ? bt->lengths[b] : T;
        int32_t *pos = a->h_img_pos + (size_t)b * N;
        pos[0] = -1;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            int32_t id = bt->tokens[i];
            if (id == c->image_token_index && t < len) {
                if (n < N) pos[n] = (int32_t)i;
                n++;
                a->h_ids[i] = 0; /* looked up, then overwritten by the image feature */
                continue;
            }
            if (id < 0 || id >= c->vocab)
                return vt_fail(err, VT_ERR_RANGE, "model: batch: tokens[%d][%d] = %d outside the vocabulary [0, %d)", b,
                               t, id, c->vocab);
            a->h_ids[i] = id;
        }
        if (n != 0 && n != N)
            return vt_fail(err, VT_ERR_RANGE,
                           "model: batch: sequence %d has %d image tokens (id %d), expected 0 or %d (one image)", b, n,
                           c->image_token_index, N);
        if (n) {
            a->has_images = true;
            if (!bt->pixels || bt->shape.channels != 3 || (int)bt->shape.height != c->image_size ||
                (int)bt->shape.width != c->image_size)
                return vt_fail(err, VT_ERR_ARG,
                               "model: batch: sequence %d has image tokens but the pixels are %ux%ux%u, the model needs "
                               "3x%dx%d",
                               b, bt->shape.channels, bt->shape.height, bt->shape.width, c->image_size, c->image_size);
        } else {
            pos[0] = -1;
        }
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            a->h_mask[i] = (uint8_t)((bt->loss_mask ? bt->loss_mask[i] != 0 : 1) && t < len);
        }
    }
    vt_ctx *ctx = m->ctx;
    vt_status st;
    if ((st = vt_ctx_memcpy_h2d(ctx, a->emb_ids, a->h_ids, BT * sizeof(int32_t))) ||
        (st = vt_ctx_memcpy_h2d(ctx, a->mask, a->h_mask, BT)))
        return vt_model_op_fail(m, st, "staging the batch", err);
    if (with_targets && (st = vt_ctx_memcpy_h2d(ctx, a->targets, bt->targets, BT * sizeof(int32_t))))
        return vt_model_op_fail(m, st, "staging targets", err);
    if (bt->lengths && (st = vt_ctx_memcpy_h2d(ctx, a->lengths, bt->lengths, (size_t)B * sizeof(int32_t))))
        return vt_model_op_fail(m, st, "staging lengths", err);
    if (a->has_images) {
        size_t S = (size_t)c->image_size;
        if ((st = vt_ctx_memcpy_h2d(ctx, a->v_pix, bt->pixels, (size_t)B * 3 * S * S * sizeof(float))))
            return vt_model_op_fail(m, st, "staging pixels", err);
    }
    return VT_OK;
}

vt_status vt_model_forward(vt_model *m, const vt_batch *bt, vt_forward_mode mode, float *loss, vt_error *err) {
    bool with_loss = mode == VT_FORWARD_LOSS;
    if (!bt || !bt->tokens || bt->shape.batch == 0 || bt->shape.seq_len == 0 || (with_loss && !bt->targets))
        return vt_fail(err, VT_ERR_ARG, "model: forward: batch needs B > 0, T > 0, tokens%s",
                       with_loss ? " and targets" : "");
    if (bt->shape.batch > 1u << 20 || bt->shape.seq_len > (uint32_t)m->cfg.max_pos)
        return vt_fail(err, VT_ERR_ARG, "model: forward: B = %u or T = %u too large (max_position_embeddings %d)",
                       bt->shape.batch, bt->shape.seq_len, m->cfg.max_pos);
    int B = (int)bt->shape.batch, T = (int)bt->shape.seq_len;
    if (m->input.n > 0) {
        if (!m->input.pos || !m->input.rows)
            return vt_fail(err, VT_ERR_ARG, "model: forward: input override with %d rows needs pos and rows",
                           m->input.n);
        for (int i = 0; i < m->input.n; i++) {
            int32_t p = m->input.pos[i];
            if (p < 0 || p >= B * T)
                return vt_fail(err, VT_ERR_RANGE, "model: forward: input override %d at flat position %d outside "
                               "[0, %d)", i, p, B * T);
        }
        if (m->input.grad) {
            vt_status st = vt_model_reserve(m, B, T, true, err);
            if (st) return st;
        }
    }
    if (!m->acts) {
        vt_status st = alloc_acts(m, B, T, err);
        if (st) return st;
    } else if (B > m->B || T > m->T) {
        return vt_fail(err, VT_ERR_ARG, "model: forward: batch (B=%d, T=%d) exceeds the activations sized for (%d, %d)",
                       B, T, m->B, m->T);
    }
    m->have_targets = false;
    vt_status st = stage_batch(m, bt, with_loss, err);
    if (st) return st;
    if (m->acts->has_images) {
        if ((st = vt_vision_forward(m, err)) || (st = vt_projector_forward(m, err))) return st;
    }
    m->acts->batch = bt;
    st = vt_decoder_forward(m, with_loss, err);
    m->acts->batch = NULL;
    if (st) return st;
    m->have_targets = with_loss;
    if (loss) *loss = with_loss ? m->loss : 0.0f;
    return VT_OK;
}

vt_status vt_model_reserve(vt_model *m, int B, int T, bool input_grad, vt_error *err) {
    if (B <= 0 || T <= 0 || T > m->cfg.max_pos)
        return vt_fail(err, VT_ERR_ARG, "model: reserve: B = %d, T = %d (max_position_embeddings %d)", B, T,
                       m->cfg.max_pos);
    if (input_grad) m->input_grad_wanted = true;
    if (m->acts) {
        bool grad_ok = m->acts->backward || !m->input_grad_wanted;
        if (B <= m->B && T <= m->T && grad_ok) return VT_OK;
        if (m->B > B) B = m->B;
        if (m->T > T) T = m->T;
        free_acts(m);
    }
    m->have_targets = false;
    return alloc_acts(m, B, T, err);
}

vt_status vt_model_image_features(vt_model *m, const float *pixels, int n, float *out, vt_error *err) {
    vt_model_acts *a = m->acts;
    if (!a) return vt_fail(err, VT_ERR_STATE, "model: image features: no activations (forward or reserve first)");
    const vt_model_config *c = &m->cfg;
    size_t S = (size_t)c->image_size, img = 3 * S * S, feat = (size_t)a->N * (size_t)c->v_hidden;
    m->have_targets = false;
    for (int at = 0; at < n; at += a->B) {
        int k = n - at < a->B ? n - at : a->B;
        a->cur_B = k;
        vt_status st = vt_ctx_memcpy_h2d(m->ctx, a->v_pix, pixels + (size_t)at * img, (size_t)k * img * sizeof(float));
        if (st) return vt_model_op_fail(m, st, "staging pixels", err);
        if ((st = vt_vision_forward(m, err))) return st;
        st = vt_ctx_memcpy_d2h(m->ctx, out + (size_t)at * feat, a->feat, (size_t)k * feat * sizeof(float));
        if (st) return vt_model_op_fail(m, st, "reading image features", err);
    }
    return VT_OK;
}

vt_status vt_model_zero_grad(vt_model *m, vt_error *err) {
    if (!m->num_trainable) return VT_OK;
    vt_status st = vt_ctx_memset_zero(m->ctx, m->grads, m->num_trainable * sizeof(float));
    return st ? vt_model_op_fail(m, st, "zero_grad", err) : VT_OK;
}

vt_status vt_model_backward(vt_model *m, float dloss_scale, vt_error *err) {
    bool input_grad = m->input.n > 0 && m->input.grad;
    if (!m->num_trainable && !input_grad)
        return vt_fail(err, VT_ERR_STATE, "model: backward: every part is frozen (and no input override gradient)");
    if (!m->acts || !m->have_targets)
        return vt_fail(err, VT_ERR_STATE, "model: backward: needs a forward with targets first");
    vt_status st = vt_decoder_backward(m, dloss_scale, err);
    if (st) return st;
    const vt_model_config *c = &m->cfg;
    if (m->acts->has_images && (!c->freeze_projector || !c->freeze_vision)) {
        if ((st = vt_projector_backward(m, err))) return st;
        if (!c->freeze_vision && (st = vt_vision_backward(m, err))) return st;
    }
    return VT_OK;
}

vt_status vt_model_step(vt_model *m, const vt_adamw_hparams *hp, long step, float max_grad_norm, float *norm,
                        vt_error *err) {
    if (!m->num_trainable) return vt_fail(err, VT_ERR_STATE, "model: step: every part is frozen");
    float n = 0;
    vt_status st = vt_grad_clip(m->ctx, m->grads, m->num_trainable, max_grad_norm, &n);
    if (st) return vt_model_op_fail(m, st, "gradient clipping", err);
    if (norm) *norm = n;
    if (!isfinite(n)) return vt_fail(err, VT_ERR_RANGE, "model: step %ld: gradient norm is %g, update skipped", step, n);
    st = vt_adamw_update(m->ctx, m->params + m->train_offset, m->grads, m->m, m->v, m->decay_mask, m->num_trainable,
                         hp, step);
    return st ? vt_model_op_fail(m, st, "AdamW", err) : VT_OK;
}
