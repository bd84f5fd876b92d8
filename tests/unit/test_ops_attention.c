/* Finite-difference gradient checks and bad-argument tests for attention
 * (bidirectional, causal, grouped-query, padded key lengths), RoPE and the
 * patch embedding, plus value checks from their definitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ops_gradcheck.h"

#define H 1e-2
#define RTOL 2e-3
#define ATOL 5e-4

static int setup(void **state) {
    vt_ctx *ctx = NULL;
    vt_ctx_options o = {VT_BACKEND_CPU, 2, 0};
    vt_error err = {0};
    if (vt_ctx_create(&ctx, &o, &err) != VT_OK) return -1;
    *state = ctx;
    return 0;
}
static int teardown(void **state) {
    vt_ctx_destroy(*state);
    return 0;
}

/* ---- attention ---- */
typedef struct {
    vt_ctx *ctx;
    int B, T, NH, NKV, hd, causal;
    const int32_t *kv_len;
    float *q, *k, *v, *out, *att, *R;
} att_st;

static double att_loss(void *p) {
    att_st *s = p;
    assert_int_equal(vt_attention_forward(s->ctx, s->out, s->att, s->q, s->k, s->v, s->kv_len,
                                          s->B, s->T, s->NH, s->NKV, s->hd, s->causal), VT_OK);
    return gc_dot(s->out, s->R, (size_t)s->B * s->T * s->NH * s->hd);
}

static void run_attention(vt_ctx *ctx, const char *name, int B, int T, int NH, int NKV, int hd,
                          int causal, const int32_t *kv_len) {
    att_st s = {ctx, B, T, NH, NKV, hd, causal, kv_len, 0, 0, 0, 0, 0, 0};
    vt_rng r;
    vt_rng_init(&r, vt_hash_bytes(name, strlen(name), 1));
    size_t nq = (size_t)B * T * NH * hd, nk = (size_t)B * T * NKV * hd;
    s.q = gc_alloc(nq); s.k = gc_alloc(nk); s.v = gc_alloc(nk); s.out = gc_alloc(nq);
    s.att = gc_alloc((size_t)B * NH * T * T); s.R = gc_alloc(nq);
    gc_fill(&r, s.q, nq, 1); gc_fill(&r, s.k, nk, 1); gc_fill(&r, s.v, nk, 1);
    gc_fill(&r, s.R, nq, 1);
    float *dq = gc_alloc(nq), *dk = gc_alloc(nk), *dv = gc_alloc(nk);
    gc_prefill(dq, nq); gc_prefill(dk, nk); gc_prefill(dv, nk);
    att_loss(&s);
    /* Each probability row sums to one over the visible keys, zero beyond. */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *row = s.att + (((size_t)b * NH + h) * T + t) * T;
                int L = kv_len ? kv_len[b] : T;
                if (causal && t + 1 < L) L = t + 1;
                double sum = 0.0;
                for (int j = 0; j < T; j++) {
                    if (j >= L) assert_float_equal(row[j], 0.0f, 0.0f);
                    sum += row[j];
                }
                assert_true(fabs(sum - (L > 0 ? 1.0 : 0.0)) < 1e-5);
            }
    assert_int_equal(vt_attention_backward(ctx, dq, dk, dv, s.R, s.att, s.q, s.k, s.v, B, T, NH,
                                           NKV, hd), VT_OK);
    gc_unprefill(dq, nq); gc_unprefill(dk, nk); gc_unprefill(dv, nk);
    gc_tensor ts[] = {{"q", s.q, dq, nq}, {"k", s.k, dk, nk}, {"v", s.v, dv, nk}};
    assert_int_equal(gc_check(name, ts, 3, att_loss, &s, H, RTOL, ATOL), 0);
    free(s.q); free(s.k); free(s.v); free(s.out); free(s.att); free(s.R);
    free(dq); free(dk); free(dv);
}

static void test_attention_bidirectional(void **state) {
    run_attention(*state, "attn_bidir", 2, 5, 2, 2, 4, 0, NULL);
}

static void test_attention_causal_gqa_padded(void **state) {
    static const int32_t kv_len[3] = {6, 4, 0};
    run_attention(*state, "attn_causal_gqa", 3, 6, 4, 2, 4, 1, kv_len);
    run_attention(*state, "attn_causal_mqa", 1, 5, 3, 1, 6, 1, NULL);
    static const int32_t kv2[2] = {2, 5};
    run_attention(*state, "attn_bidir_padded", 2, 5, 2, 1, 4, 0, kv2);
}

static void test_attention_values(void **state) {
    /* Causal query 0 sees only key 0, so its output is v_0; a query whose
     * keys all carry equal scores averages the visible values. */
    vt_ctx *ctx = *state;
    float q[3 * 2] = {1, 2, 0, 0, 0, 0}, k[3 * 2] = {0.5f, -1, 0, 0, 0, 0};
    float v[3 * 2] = {1, 2, 3, 4, 5, 6}, out[3 * 2], att[9];
    assert_int_equal(vt_attention_forward(ctx, out, att, q, k, v, NULL, 1, 3, 1, 1, 2, 1), VT_OK);
    assert_float_equal(out[0], 1.0f, 1e-6);
    assert_float_equal(out[1], 2.0f, 1e-6);
    assert_float_equal(out[4], 3.0f, 1e-6); /* q_2 = 0: uniform over 3 keys */
    assert_float_equal(out[5], 4.0f, 1e-6);
    int32_t kv_len[1] = {2};
    assert_int_equal(vt_attention_forward(ctx, out, att, q, k, v, kv_len, 1, 3, 1, 1, 2, 0), VT_OK);
    assert_float_equal(out[4], 2.0f, 1e-6);
    assert_float_equal(out[5], 3.0f, 1e-6);
}

static void test_attention_bad_args(void **state) {
    vt_ctx *ctx = *state;
    float x[64] = {0};
    assert_int_equal(vt_attention_forward(ctx, x, x, x, x, x, NULL, 1, 2, 3, 2, 2, 1), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "NKV=2 must divide NH=3"));
    int32_t bad[1] = {3};
    assert_int_equal(vt_attention_forward(ctx, x, x, x, x, x, bad, 1, 2, 1, 1, 2, 1), VT_ERR_RANGE);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "kv_len[0]=3"));
    assert_int_equal(vt_attention_backward(ctx, x, x, x, x, NULL, x, x, x, 1, 2, 1, 1, 2),
                     VT_ERR_ARG);
    assert_int_equal(vt_attention_forward(ctx, x, x, x, x, x, NULL, 1, 2, 1, 1, 0, 1), VT_ERR_ARG);
}

/* ---- rope ---- */
typedef struct {
    vt_ctx *ctx;
    int B, T, NH, hd;
    const int32_t *pos;
    float *inp, *out, *R;
} rope_st;

static double rope_loss(void *p) {
    rope_st *s = p;
    assert_int_equal(vt_rope_forward(s->ctx, s->out, s->inp, s->pos, s->B, s->T, s->NH, s->hd,
                                     10000.0f), VT_OK);
    return gc_dot(s->out, s->R, (size_t)s->B * s->T * s->NH * s->hd);
}

static void test_rope(void **state) {
    vt_ctx *ctx = *state;
    static const int32_t pos[2 * 4] = {0, 1, 2, 3, 7, 9, 100, 2047};
    for (int with_pos = 0; with_pos < 2; with_pos++) {
        rope_st s = {ctx, 2, 4, 3, 8, with_pos ? pos : NULL, 0, 0, 0};
        size_t n = (size_t)s.B * s.T * s.NH * s.hd;
        vt_rng r;
        vt_rng_init(&r, 71 + with_pos);
        s.inp = gc_alloc(n); s.out = gc_alloc(n); s.R = gc_alloc(n);
        gc_fill(&r, s.inp, n, 1); gc_fill(&r, s.R, n, 1);
        float *di = gc_alloc(n);
        gc_prefill(di, n);
        assert_int_equal(vt_rope_backward(ctx, di, s.R, s.pos, s.B, s.T, s.NH, s.hd, 10000.0f),
                         VT_OK);
        gc_unprefill(di, n);
        gc_tensor ts[] = {{"inp", s.inp, di, n}};
        assert_int_equal(gc_check(with_pos ? "rope_pos" : "rope", ts, 1, rope_loss, &s, H, RTOL,
                                  ATOL), 0);
        free(s.inp); free(s.out); free(s.R); free(di);
    }
}

static void test_rope_values(void **state) {
    vt_ctx *ctx = *state;
    /* hd = 4: pairs (0,2) at frequency 1 and (1,3) at theta^-1/2. Position 0
     * is the identity; in place works. */
    float x[2 * 4] = {1, 0, 0, 1, 1, 0, 0, 1};
    assert_int_equal(vt_rope_forward(ctx, x, x, NULL, 1, 2, 1, 4, 100.0f), VT_OK);
    assert_float_equal(x[0], 1.0f, 0.0f);
    assert_float_equal(x[3], 1.0f, 0.0f);
    assert_float_equal(x[4], cosf(1.0f), 1e-6);   /* x0 cos - x2 sin */
    assert_float_equal(x[6], sinf(1.0f), 1e-6);   /* x2 cos + x0 sin */
    assert_float_equal(x[5], -sinf(0.1f), 1e-6);  /* x1 cos - x3 sin, freq 100^-0.5 */
    assert_float_equal(x[7], cosf(0.1f), 1e-6);
    /* Relative property: <rope(a, m), rope(b, n)> depends only on m - n. */
    float a[8], b[8], ra[8], rb[8];
    vt_rng r;
    vt_rng_init(&r, 5);
    gc_fill(&r, a, 8, 1);
    gc_fill(&r, b, 8, 1);
    int32_t p1[1] = {3}, p2[1] = {10}, p3[1] = {103}, p4[1] = {110};
    assert_int_equal(vt_rope_forward(ctx, ra, a, p1, 1, 1, 1, 8, 10000.0f), VT_OK);
    assert_int_equal(vt_rope_forward(ctx, rb, b, p2, 1, 1, 1, 8, 10000.0f), VT_OK);
    double d1 = gc_dot(ra, rb, 8);
    assert_int_equal(vt_rope_forward(ctx, ra, a, p3, 1, 1, 1, 8, 10000.0f), VT_OK);
    assert_int_equal(vt_rope_forward(ctx, rb, b, p4, 1, 1, 1, 8, 10000.0f), VT_OK);
    assert_true(fabs(d1 - gc_dot(ra, rb, 8)) < 1e-5);
}

static void test_rope_bad_args(void **state) {
    vt_ctx *ctx = *state;
    float x[8] = {0};
    assert_int_equal(vt_rope_forward(ctx, x, x, NULL, 1, 1, 1, 3, 10000.0f), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "hd=3 must be even"));
    assert_int_equal(vt_rope_forward(ctx, x, x, NULL, 1, 1, 1, 4, 0.0f), VT_ERR_ARG);
    assert_int_equal(vt_rope_backward(ctx, x, x, NULL, 1, 1, 1, 4, 10000.0f), VT_ERR_ARG);
}

/* ---- patch embedding ---- */
typedef struct {
    vt_ctx *ctx;
    int B, Cin, Hh, W, P, D;
    float *img, *w, *out, *R;
} pe_st;

static double pe_loss(void *p) {
    pe_st *s = p;
    assert_int_equal(vt_patch_embed_forward(s->ctx, s->out, s->img, s->w, s->B, s->Cin, s->Hh,
                                            s->W, s->P, s->D), VT_OK);
    return gc_dot(s->out, s->R, (size_t)s->B * (s->Hh / s->P) * (s->W / s->P) * s->D);
}

static void test_patch_embed(void **state) {
    vt_ctx *ctx = *state;
    pe_st s = {ctx, 2, 3, 6, 9, 3, 5, 0, 0, 0, 0};
    int NP = (s.Hh / s.P) * (s.W / s.P);
    size_t ni = (size_t)s.B * s.Cin * s.Hh * s.W, nw = (size_t)s.D * s.Cin * s.P * s.P;
    size_t no = (size_t)s.B * NP * s.D;
    vt_rng r;
    vt_rng_init(&r, 81);
    s.img = gc_alloc(ni); s.w = gc_alloc(nw); s.out = gc_alloc(no); s.R = gc_alloc(no);
    gc_fill(&r, s.img, ni, 1); gc_fill(&r, s.w, nw, 0.3f); gc_fill(&r, s.R, no, 1);
    pe_loss(&s);
    /* Direct convolution (kernel = stride = P) as the value reference. */
    for (int b = 0; b < s.B; b++)
        for (int gy = 0; gy < s.Hh / s.P; gy++)
            for (int gx = 0; gx < s.W / s.P; gx++)
                for (int d = 0; d < s.D; d++) {
                    double acc = 0.0;
                    for (int c = 0; c < s.Cin; c++)
                        for (int y = 0; y < s.P; y++)
                            for (int x = 0; x < s.P; x++)
                                acc += (double)s.w[((d * s.Cin + c) * s.P + y) * s.P + x] *
                                       s.img[((b * s.Cin + c) * s.Hh + gy * s.P + y) * s.W +
                                             gx * s.P + x];
                    int p = gy * (s.W / s.P) + gx;
                    assert_true(fabs(s.out[((size_t)b * NP + p) * s.D + d] - acc) < 1e-5);
                }
    float *di = gc_alloc(ni), *dw = gc_alloc(nw);
    gc_prefill(di, ni); gc_prefill(dw, nw);
    assert_int_equal(vt_patch_embed_backward(ctx, di, dw, s.R, s.img, s.w, s.B, s.Cin, s.Hh, s.W,
                                             s.P, s.D), VT_OK);
    gc_unprefill(di, ni); gc_unprefill(dw, nw);
    gc_tensor ts[] = {{"img", s.img, di, ni}, {"w", s.w, dw, nw}};
    assert_int_equal(gc_check("patch_embed", ts, 2, pe_loss, &s, H, RTOL, ATOL), 0);
    free(s.img); free(s.w); free(s.out); free(s.R); free(di); free(dw);
}

static void test_patch_embed_bad_args(void **state) {
    vt_ctx *ctx = *state;
    float x[64] = {0};
    assert_int_equal(vt_patch_embed_forward(ctx, x, x, x, 1, 1, 4, 5, 2, 1), VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "image 4x5 is not a multiple of the patch size 2"));
    assert_int_equal(vt_patch_embed_backward(ctx, NULL, x, x, NULL, x, 1, 1, 4, 4, 2, 1),
                     VT_ERR_ARG);
    assert_non_null(strstr(vt_ctx_error(ctx)->msg, "img is NULL"));
}

/* Race-free layouts (serial heads around sgemm, per-thread row ownership,
 * column blocks for the embedding) make these results independent of the
 * thread count, bit for bit (docs/ops.md promises it). */
static void test_thread_count_invariance(void **state) {
    (void)state;
    enum { B = 2, T = 9, NH = 4, NKV = 2, HD = 8, V = 11, C = 70 };
    size_t nq = (size_t)B * T * NH * HD, nk = (size_t)B * T * NKV * HD;
    vt_rng r;
    vt_rng_init(&r, 99);
    float *q = gc_alloc(nq), *k = gc_alloc(nk), *v = gc_alloc(nk), *R = gc_alloc(nq);
    float *emb_dout = gc_alloc((size_t)T * C);
    gc_fill(&r, q, nq, 1); gc_fill(&r, k, nk, 1); gc_fill(&r, v, nk, 1); gc_fill(&r, R, nq, 1);
    gc_fill(&r, emb_dout, (size_t)T * C, 1);
    int32_t ids[T] = {1, 4, 1, 1, 10, 0, 4, 1, 7};
    float *res[2][5];
    for (int run = 0; run < 2; run++) {
        vt_ctx *ctx = NULL;
        vt_ctx_options o = {VT_BACKEND_CPU, run == 0 ? 1 : 3, 0};
        vt_error err = {0};
        assert_int_equal(vt_ctx_create(&ctx, &o, &err), VT_OK);
        float *out = gc_alloc(nq), *att = gc_alloc((size_t)B * NH * T * T);
        float *dq = gc_alloc(nq), *dk = gc_alloc(nk), *dv = gc_alloc(nk);
        float *dt = gc_alloc((size_t)V * C);
        assert_int_equal(vt_attention_forward(ctx, out, att, q, k, v, NULL, B, T, NH, NKV, HD, 1),
                         VT_OK);
        assert_int_equal(vt_attention_backward(ctx, dq, dk, dv, R, att, q, k, v, B, T, NH, NKV,
                                               HD), VT_OK);
        assert_int_equal(vt_embedding_backward(ctx, dt, emb_dout, ids, T, V, C), VT_OK);
        res[run][0] = out; res[run][1] = dq; res[run][2] = dk; res[run][3] = dv; res[run][4] = dt;
        free(att);
        vt_ctx_destroy(ctx);
    }
    size_t sizes[5] = {nq, nq, nk, nk, (size_t)V * C};
    for (int i = 0; i < 5; i++) {
        assert_memory_equal(res[0][i], res[1][i], sizes[i] * sizeof(float));
        free(res[0][i]);
        free(res[1][i]);
    }
    free(q); free(k); free(v); free(R); free(emb_dout);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attention_bidirectional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attention_causal_gqa_padded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attention_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attention_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rope_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rope_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_embed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_embed_bad_args, setup, teardown),
        cmocka_unit_test(test_thread_count_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
