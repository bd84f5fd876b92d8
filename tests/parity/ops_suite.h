/* The per-op suite shared by the parity driver (tests/parity/ops_parity_dump.c)
 * and the CUDA-vs-CPU unit test: runs every op forward and backward on inputs
 * drawn from a fixed seed through a vt_ctx and hands inputs, outputs and
 * gradients to a sink. Header-only; include from one .c file per program. */
#ifndef VT_TESTS_OPS_SUITE_H
#define VT_TESTS_OPS_SUITE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "ops/ops.h"

/* Where the suite sends its records: a file (parity driver) or memory
 * (CUDA-vs-CPU unit test). */
typedef struct ops_sink {
    void (*record)(void *user, const char *name);
    void (*tensor)(void *user, const char *name, uint32_t dtype, const void *data, size_t esize,
                   const int64_t *dims, int ndim);
    void (*record_end)(void *user);
    void *user;
} ops_sink;

static vt_ctx *ctx;
static vt_rng rng;
static ops_sink *sink;

static void die_if(vt_status st, const char *what) {
    if (st == VT_OK) return;
    fprintf(stderr, "ops suite: %s: %s\n", what, vt_ctx_error(ctx)->msg);
    exit(1);
}
#define CK(call) die_if((call), #call)

static void record(const char *name) { sink->record(sink->user, name); }
static void record_end(void) { sink->record_end(sink->user); }
static void tensor(const char *name, uint32_t dtype, const void *data, size_t esize,
                   const int64_t *dims, int ndim) {
    sink->tensor(sink->user, name, dtype, data, esize, dims, ndim);
}
#define DIMS(...) (const int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / 8)
/* Host tensors. */
#define TF(name, p, ...) tensor(name, 0, p, 4, DIMS(__VA_ARGS__))
#define TI(name, p, ...) tensor(name, 1, p, 4, DIMS(__VA_ARGS__))
#define TU(name, p, ...) tensor(name, 2, p, 1, DIMS(__VA_ARGS__))

static float *hrand(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)vt_rng_normal(&rng);
    return p;
}
static float *hzero(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}
/* Device copies of host buffers and back. */
static void *up(const void *h, size_t bytes) {
    void *d = NULL;
    CK(vt_ctx_alloc(ctx, &d, bytes));
    if (h) CK(vt_ctx_memcpy_h2d(ctx, d, h, bytes));
    return d;
}
#define UPF(h, n) ((float *)up((h), (n) * sizeof(float)))
static float *down(const void *d, size_t n) {
    float *h = hzero(n);
    CK(vt_ctx_memcpy_d2h(ctx, h, d, n * sizeof(float)));
    return h;
}
static void fr(void *d) { vt_ctx_free(ctx, d); }

static void op_linear(int bias) {
    const int N = 24, C = 40, OC = 36;
    float *x = hrand((size_t)N * C, 1), *w = hrand((size_t)OC * C, 0.2f), *b = hrand(OC, 0.5f);
    float *dout = hrand((size_t)N * OC, 1);
    float *dx_ = UPF(x, N * C), *dw_ = UPF(w, OC * C), *db_ = UPF(b, OC);
    float *dout_ = UPF(dout, N * OC), *o_ = UPF(NULL, N * OC);
    float *gx = UPF(NULL, N * C), *gw = UPF(NULL, OC * C), *gb = UPF(NULL, OC);
    CK(vt_linear_forward(ctx, o_, dx_, dw_, bias ? db_ : NULL, N, C, OC));
    CK(vt_linear_backward(ctx, gx, gw, bias ? gb : NULL, dout_, dx_, dw_, N, C, OC));
    record(bias ? "linear" : "linear_nobias");
    TF("x", x, N, C); TF("w", w, OC, C);
    if (bias) TF("b", b, OC);
    float *o = down(o_, N * OC), *hx = down(gx, N * C), *hw = down(gw, OC * C), *hb = down(gb, OC);
    TF("out", o, N, OC); TF("dout", dout, N, OC); TF("dx", hx, N, C); TF("dw", hw, OC, C);
    if (bias) TF("db", hb, OC);
    record_end();
    free(x); free(w); free(b); free(dout); free(o); free(hx); free(hw); free(hb);
    fr(dx_); fr(dw_); fr(db_); fr(dout_); fr(o_); fr(gx); fr(gw); fr(gb);
}

static void op_norm(int rms) {
    const int N = 16, C = 64;
    const float eps = rms ? 1e-6f : 1e-5f;
    float *x = hrand((size_t)N * C, 2), *w = hrand(C, 1), *b = hrand(C, 1);
    for (int n = 0; n < N; n++) x[(size_t)n * C] += 4.0f;
    float *dout = hrand((size_t)N * C, 1);
    float *x_ = UPF(x, N * C), *w_ = UPF(w, C), *b_ = UPF(b, C), *d_ = UPF(dout, N * C);
    float *o_ = UPF(NULL, N * C), *mean_ = UPF(NULL, N), *rstd_ = UPF(NULL, N);
    float *gx = UPF(NULL, N * C), *gw = UPF(NULL, C), *gb = UPF(NULL, C);
    if (rms) {
        CK(vt_rmsnorm_forward(ctx, o_, rstd_, x_, w_, N, C, eps));
        CK(vt_rmsnorm_backward(ctx, gx, gw, d_, x_, w_, rstd_, N, C));
    } else {
        CK(vt_layernorm_forward(ctx, o_, mean_, rstd_, x_, w_, b_, N, C, eps));
        CK(vt_layernorm_backward(ctx, gx, gw, gb, d_, x_, w_, mean_, rstd_, N, C));
    }
    record(rms ? "rmsnorm" : "layernorm");
    TF("x", x, N, C); TF("w", w, C);
    if (!rms) TF("b", b, C);
    TF("eps", &eps, 1);
    float *o = down(o_, N * C), *hx = down(gx, N * C), *hw = down(gw, C), *hb = down(gb, C);
    TF("out", o, N, C); TF("dout", dout, N, C); TF("dx", hx, N, C); TF("dw", hw, C);
    if (!rms) TF("db", hb, C);
    record_end();
    free(x); free(w); free(b); free(dout); free(o); free(hx); free(hw); free(hb);
    fr(x_); fr(w_); fr(b_); fr(d_); fr(o_); fr(mean_); fr(rstd_); fr(gx); fr(gw); fr(gb);
}

static void op_act(vt_activation act) {
    const size_t n = 500;
    float *x = hrand(n, 3), *dout = hrand(n, 1);
    float *x_ = UPF(x, n), *d_ = UPF(dout, n), *o_ = UPF(NULL, n), *g_ = UPF(NULL, n);
    CK(vt_activation_forward(ctx, act, o_, x_, n));
    CK(vt_activation_backward(ctx, act, g_, d_, x_, n));
    char name[64];
    snprintf(name, sizeof name, "act_%s", vt_activation_name(act));
    record(name);
    float *o = down(o_, n), *g = down(g_, n);
    TF("x", x, (int64_t)n); TF("out", o, (int64_t)n); TF("dout", dout, (int64_t)n);
    TF("dx", g, (int64_t)n);
    record_end();
    free(x); free(dout); free(o); free(g); fr(x_); fr(d_); fr(o_); fr(g_);
}

static void op_swiglu(void) {
    const size_t n = 400;
    float *gt = hrand(n, 3), *u = hrand(n, 1), *dout = hrand(n, 1);
    float *g_ = UPF(gt, n), *u_ = UPF(u, n), *d_ = UPF(dout, n), *o_ = UPF(NULL, n);
    float *gg = UPF(NULL, n), *gu = UPF(NULL, n);
    CK(vt_swiglu_forward(ctx, o_, g_, u_, n));
    CK(vt_swiglu_backward(ctx, gg, gu, d_, g_, u_, n));
    record("swiglu");
    float *o = down(o_, n), *hg = down(gg, n), *hu = down(gu, n);
    TF("gate", gt, (int64_t)n); TF("up", u, (int64_t)n); TF("out", o, (int64_t)n);
    TF("dout", dout, (int64_t)n); TF("dgate", hg, (int64_t)n); TF("dup", hu, (int64_t)n);
    record_end();
    free(gt); free(u); free(dout); free(o); free(hg); free(hu);
    fr(g_); fr(u_); fr(d_); fr(o_); fr(gg); fr(gu);
}

static void op_residual(void) {
    const size_t n = 300;
    float *a = hrand(n, 1), *b = hrand(n, 1), *dout = hrand(n, 1);
    float *a_ = UPF(a, n), *b_ = UPF(b, n), *d_ = UPF(dout, n), *o_ = UPF(NULL, n);
    float *ga = UPF(NULL, n), *gb = UPF(NULL, n);
    CK(vt_residual_forward(ctx, o_, a_, b_, n));
    CK(vt_residual_backward(ctx, ga, gb, d_, n));
    record("residual");
    float *o = down(o_, n), *ha = down(ga, n), *hb = down(gb, n);
    TF("a", a, (int64_t)n); TF("b", b, (int64_t)n); TF("out", o, (int64_t)n);
    TF("dout", dout, (int64_t)n); TF("da", ha, (int64_t)n); TF("db", hb, (int64_t)n);
    record_end();
    free(a); free(b); free(dout); free(o); free(ha); free(hb);
    fr(a_); fr(b_); fr(d_); fr(o_); fr(ga); fr(gb);
}

static void op_embedding(void) {
    const int N = 30, V = 17, C = 24;
    int32_t ids[30];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)vt_rng_below(&rng, V);
    ids[3] = ids[7] = ids[20] = 5; /* repeated ids accumulate */
    float *t = hrand((size_t)V * C, 1), *dout = hrand((size_t)N * C, 1);
    int32_t *ids_ = up(ids, sizeof ids);
    float *t_ = UPF(t, V * C), *d_ = UPF(dout, N * C), *o_ = UPF(NULL, N * C);
    float *gt = UPF(NULL, V * C);
    CK(vt_embedding_forward(ctx, o_, ids_, t_, N, V, C));
    CK(vt_embedding_backward(ctx, gt, d_, ids_, N, V, C));
    record("embedding");
    float *o = down(o_, N * C), *ht = down(gt, V * C);
    TI("ids", ids, N); TF("table", t, V, C); TF("out", o, N, C); TF("dout", dout, N, C);
    TF("dtable", ht, V, C);
    record_end();
    free(t); free(dout); free(o); free(ht); fr(ids_); fr(t_); fr(d_); fr(o_); fr(gt);
}

static void op_patch_embed(void) {
    const int B = 2, Cin = 3, H = 16, W = 12, P = 4, D = 24, NP = (H / P) * (W / P);
    size_t ni = (size_t)B * Cin * H * W, nw = (size_t)D * Cin * P * P, no = (size_t)B * NP * D;
    float *img = hrand(ni, 1), *w = hrand(nw, 0.2f), *dout = hrand(no, 1);
    float *i_ = UPF(img, ni), *w_ = UPF(w, nw), *d_ = UPF(dout, no), *o_ = UPF(NULL, no);
    float *gi = UPF(NULL, ni), *gw = UPF(NULL, nw);
    CK(vt_patch_embed_forward(ctx, o_, i_, w_, B, Cin, H, W, P, D));
    CK(vt_patch_embed_backward(ctx, gi, gw, d_, i_, w_, B, Cin, H, W, P, D));
    record("patch_embed");
    float *o = down(o_, no), *hi = down(gi, ni), *hw = down(gw, nw);
    TF("img", img, B, Cin, H, W); TF("w", w, D, Cin, P, P); TF("out", o, B, NP, D);
    TF("dout", dout, B, NP, D); TF("dimg", hi, B, Cin, H, W); TF("dw", hw, D, Cin, P, P);
    record_end();
    free(img); free(w); free(dout); free(o); free(hi); free(hw);
    fr(i_); fr(w_); fr(d_); fr(o_); fr(gi); fr(gw);
}

static void op_rope(void) {
    const int B = 2, T = 7, NH = 3, hd = 16;
    const float theta = 10000.0f;
    size_t n = (size_t)B * T * NH * hd;
    int32_t pos[2 * 7] = {0, 1, 2, 3, 4, 5, 6, 5, 9, 40, 41, 300, 1000, 4095};
    float *x = hrand(n, 1), *dout = hrand(n, 1);
    int32_t *p_ = up(pos, sizeof pos);
    float *x_ = UPF(x, n), *d_ = UPF(dout, n), *o_ = UPF(NULL, n), *g_ = UPF(NULL, n);
    CK(vt_rope_forward(ctx, o_, x_, p_, B, T, NH, hd, theta));
    CK(vt_rope_backward(ctx, g_, d_, p_, B, T, NH, hd, theta));
    record("rope");
    float *o = down(o_, n), *g = down(g_, n);
    TF("x", x, B, T, NH, hd); TI("pos", pos, B, T); TF("theta", &theta, 1);
    TF("out", o, B, T, NH, hd); TF("dout", dout, B, T, NH, hd); TF("dx", g, B, T, NH, hd);
    record_end();
    free(x); free(dout); free(o); free(g); fr(p_); fr(x_); fr(d_); fr(o_); fr(g_);
}

static void op_attention(const char *name, int B, int T, int NH, int NKV, int hd, int causal,
                         const int32_t *kv_len) {
    size_t nq = (size_t)B * T * NH * hd, nk = (size_t)B * T * NKV * hd;
    float *q = hrand(nq, 1), *k = hrand(nk, 1), *v = hrand(nk, 1), *dout = hrand(nq, 1);
    float *q_ = UPF(q, nq), *k_ = UPF(k, nk), *v_ = UPF(v, nk), *d_ = UPF(dout, nq);
    float *o_ = UPF(NULL, nq), *att_ = UPF(NULL, (size_t)B * NH * T * T);
    float *gq = UPF(NULL, nq), *gk = UPF(NULL, nk), *gv = UPF(NULL, nk);
    int32_t *kl_ = kv_len ? up(kv_len, sizeof(int32_t) * B) : NULL;
    CK(vt_attention_forward(ctx, o_, att_, q_, k_, v_, kl_, B, T, NH, NKV, hd, causal));
    CK(vt_attention_backward(ctx, gq, gk, gv, d_, att_, q_, k_, v_, B, T, NH, NKV, hd));
    record(name);
    int32_t c = causal;
    float *o = down(o_, nq), *hq = down(gq, nq), *hk = down(gk, nk), *hv = down(gv, nk);
    TF("q", q, B, T, NH, hd); TF("k", k, B, T, NKV, hd); TF("v", v, B, T, NKV, hd);
    TI("causal", &c, 1);
    if (kv_len) TI("kv_len", kv_len, B);
    TF("out", o, B, T, NH, hd); TF("dout", dout, B, T, NH, hd); TF("dq", hq, B, T, NH, hd);
    TF("dk", hk, B, T, NKV, hd); TF("dv", hv, B, T, NKV, hd);
    record_end();
    free(q); free(k); free(v); free(dout); free(o); free(hq); free(hk); free(hv);
    fr(q_); fr(k_); fr(v_); fr(d_); fr(o_); fr(att_); fr(gq); fr(gk); fr(gv); fr(kl_);
}

static void op_crossentropy(void) {
    const int N = 20, V = 50;
    float *logits = hrand((size_t)N * V, 3);
    int32_t tg[20];
    uint8_t mask[20];
    for (int i = 0; i < N; i++) {
        mask[i] = (uint8_t)(i % 3 != 0);
        tg[i] = mask[i] ? (int32_t)vt_rng_below(&rng, V) : -100;
    }
    int32_t *t_ = up(tg, sizeof tg);
    uint8_t *m_ = up(mask, sizeof mask);
    float *l_ = UPF(logits, N * V), *p_ = UPF(NULL, N * V), *ls_ = UPF(NULL, N);
    float *g_ = UPF(NULL, N * V);
    float loss = 0;
    int count = 0;
    CK(vt_crossentropy_forward(ctx, p_, ls_, l_, t_, m_, N, V, &loss, &count));
    CK(vt_crossentropy_backward(ctx, g_, p_, t_, m_, N, V, 1.0f / (float)count));
    record("crossentropy");
    float *probs = down(p_, N * V), *ls = down(ls_, N), *g = down(g_, N * V);
    int32_t cnt = count;
    TF("logits", logits, N, V); TI("targets", tg, N); TU("mask", mask, N);
    TF("loss", &loss, 1); TI("count", &cnt, 1); TF("losses", ls, N); TF("probs", probs, N, V);
    TF("dlogits", g, N, V);
    record_end();
    free(logits); free(probs); free(ls); free(g); fr(t_); fr(m_); fr(l_); fr(p_); fr(ls_); fr(g_);
}

static void op_adamw(void) {
    enum { N = 200, STEPS = 10 };
    float *p = hrand(N, 1), *grads = hrand((size_t)STEPS * N, 0.3f);
    uint8_t mask[N];
    for (int i = 0; i < N; i++) mask[i] = (uint8_t)(i % 4 != 0);
    vt_adamw_hparams hp = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f};
    float *p_ = UPF(p, N), *m_ = UPF(NULL, N), *v_ = UPF(NULL, N), *g_ = UPF(NULL, N);
    uint8_t *mk_ = up(mask, sizeof mask);
    for (int s = 0; s < STEPS; s++) {
        CK(vt_ctx_memcpy_h2d(ctx, g_, grads + (size_t)s * N, N * sizeof(float)));
        CK(vt_adamw_update(ctx, p_, g_, m_, v_, mk_, N, &hp, s + 1));
    }
    record("adamw");
    float hps[5] = {hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay};
    float *pf = down(p_, N), *mf = down(m_, N), *vf = down(v_, N);
    TF("p0", p, N); TF("grads", grads, STEPS, N); TU("decay_mask", mask, N); TF("hparams", hps, 5);
    TF("p", pf, N); TF("m", mf, N); TF("v", vf, N);
    record_end();
    free(p); free(grads); free(pf); free(mf); free(vf); fr(p_); fr(m_); fr(v_); fr(g_); fr(mk_);
}

static void op_grad_clip(void) {
    const size_t n = 1000;
    float *g = hrand(n, 0.5f);
    float max_norm = 1.0f, norm = 0;
    float *g_ = UPF(g, n);
    CK(vt_grad_clip(ctx, g_, n, max_norm, &norm));
    record("grad_clip");
    float *go = down(g_, n);
    TF("g", g, (int64_t)n); TF("max_norm", &max_norm, 1); TF("norm", &norm, 1);
    TF("g_out", go, (int64_t)n);
    record_end();
    free(g); free(go); fr(g_);
}

/* Run every op on c, sending records to s. Same seed = same inputs. */
static void ops_suite_run(vt_ctx *c, ops_sink *s) {
    ctx = c;
    sink = s;
    vt_rng_init(&rng, 20261122);
    op_linear(1);
    op_linear(0);
    op_norm(0);
    op_norm(1);
    op_act(VT_ACT_GELU);
    op_act(VT_ACT_GELU_TANH);
    op_act(VT_ACT_QUICK_GELU);
    op_act(VT_ACT_SILU);
    op_swiglu();
    op_residual();
    op_embedding();
    op_patch_embed();
    op_rope();
    op_attention("attention_bidir", 2, 10, 4, 4, 8, 0, NULL);
    static const int32_t kv_len[3] = {12, 7, 1};
    op_attention("attention_causal_gqa_padded", 3, 12, 4, 2, 8, 1, kv_len);
    op_crossentropy();
    op_adamw();
    op_grad_clip();
}

#endif
