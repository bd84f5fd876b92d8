/* The black-box scoring service: per-item losses equal the model's own
 * cross-entropy of each item alone with the context rows written into the
 * embedding (an independent path: batch-1 forwards with loss), the model is
 * unchanged after a request, every malformed/oversized/over-budget request
 * gets an error reply and the service keeps serving, counts are exact, and
 * under CURVE an unauthenticated or unlisted client gets nothing while a
 * listed one is served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>
#include <zmq.h>

#include "common/fs.h"
#include "common/rng.h"
#include "proto/serve.pb-c.h"
#include "trainer/serve.h"

enum { B = 2, T = 30, NSETS = 3, NCTX = 2, BUDGET = 12 };
static const int32_t CTX_IDS[NCTX] = {280, 281};

typedef struct server {
    vt_ctx *ctx;
    vt_model *m;
    vt_serve *s;
    pthread_t th;
    atomic_int stop;
    vt_status st;
} server;

static vt_model *make_model(vt_ctx **ctx) {
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(ctx, NULL, &err), VT_OK);
    vt_model_config c;
    vt_model_config_default(&c);
    c.init_std = 0.2f;
    c.freeze_vision = c.freeze_projector = c.freeze_language = true;
    vt_model *m = NULL;
    assert_int_equal(vt_model_create(&m, *ctx, &c, 11, &err), VT_OK);
    return m;
}

static int stop_flag(void *arg) { return atomic_load((atomic_int *)arg); }

static void *run_server(void *arg) {
    server *sv = arg;
    vt_error err = {0};
    sv->st = vt_serve_run(sv->s, stop_flag, &sv->stop, &err);
    return NULL;
}

static void start(server *sv, const char *secret, const char *clients) {
    memset(sv, 0, sizeof *sv);
    sv->m = make_model(&sv->ctx);
    vt_serve_options o;
    vt_serve_options_default(&o, &sv->m->cfg);
    o.endpoint = "tcp://127.0.0.1:*";
    o.max_batch = 4;
    o.max_seq = 40;
    o.max_sets = 8;
    o.max_request_bytes = 200000;
    o.max_queries = BUDGET;
    o.max_logits = 10000; /* 3 sets x 10 answer positions x 288 fit, every position of a batch does not */
    o.curve_secret_file = secret;
    o.curve_clients_file = clients;
    vt_error err = {0};
    vt_status st = vt_serve_open(&sv->s, sv->m, &o, &err);
    if (st) fail_msg("%s", err.msg);
    atomic_store(&sv->stop, 0);
    assert_int_equal(pthread_create(&sv->th, NULL, run_server, sv), 0);
}

static void stop(server *sv) {
    atomic_store(&sv->stop, 1);
    pthread_join(sv->th, NULL);
    assert_int_equal(sv->st, VT_OK);
    vt_serve_close(sv->s);
    vt_model_free(sv->m);
    vt_ctx_destroy(sv->ctx);
}

static vt_serve_client *client(const char *ep, const char *server_pub, const char *secret, int timeout_ms) {
    vt_serve_client_options o = {.endpoint = ep, .timeout_ms = timeout_ms, .server_public_key_file = server_pub,
                                 .client_secret_key_file = secret};
    vt_serve_client *c = NULL;
    vt_error err = {0};
    assert_int_equal(vt_serve_client_open(&c, &o, &err), VT_OK);
    return c;
}

/* Two rows: a soft prompt (the context ids), an image span, a question and
 * an answer whose positions are the only counted ones. */
typedef struct query_data {
    int32_t tokens[B * T], targets[B * T], lengths[B];
    uint8_t mask[B * T];
    float *pixels, *ctx;
    vt_serve_query q;
} query_data;

static void make_query(query_data *d, const vt_model *m) {
    int N = vt_model_image_tokens(&m->cfg), S = m->cfg.image_size, D = m->cfg.hidden;
    vt_rng r;
    vt_rng_init(&r, 5);
    d->pixels = malloc((size_t)B * 3 * S * S * sizeof(float));
    d->ctx = malloc((size_t)NSETS * NCTX * D * sizeof(float));
    for (size_t i = 0; i < (size_t)B * 3 * S * S; i++) d->pixels[i] = (float)vt_rng_normal(&r);
    for (size_t i = 0; i < (size_t)NSETS * NCTX * D; i++) d->ctx[i] = 0.3f * (float)vt_rng_normal(&r);
    const int len[B] = {T, T - 4};
    for (int b = 0; b < B; b++) {
        d->lengths[b] = len[b];
        for (int t = 0; t < T; t++) {
            int32_t tok;
            if (t < NCTX) tok = CTX_IDS[t];
            else if (t < NCTX + N) tok = m->cfg.image_token_index;
            else tok = (int32_t)(1 + vt_rng_below(&r, 250));
            d->tokens[b * T + t] = tok;
            d->targets[b * T + t] = (int32_t)(1 + vt_rng_below(&r, 250));
            d->mask[b * T + t] = t >= len[b] - 5 && t < len[b];
        }
    }
    d->q = (vt_serve_query){.n_ctx = NCTX, .ctx_token_ids = CTX_IDS, .n_sets = NSETS, .ctx = d->ctx, .batch = B,
                            .seq_len = T, .tokens = d->tokens, .targets = d->targets, .loss_mask = d->mask,
                            .lengths = d->lengths, .pixels = d->pixels, .image_size = S, .hidden = D};
}

/* The model's own loss for item b alone under context set p. */
static float reference_loss(vt_model *ref, const query_data *d, int p, int b) {
    int S = ref->cfg.image_size, D = ref->cfg.hidden;
    vt_batch one;
    vt_batch_shape shape = {.batch = 1, .channels = 3, .height = (uint32_t)S, .width = (uint32_t)S, .seq_len = T};
    vt_error err = {0};
    assert_int_equal(vt_batch_alloc(&one, &shape, &err), VT_OK);
    memcpy(one.tokens, d->tokens + b * T, T * sizeof(int32_t));
    memcpy(one.targets, d->targets + b * T, T * sizeof(int32_t));
    memcpy(one.loss_mask, d->mask + b * T, T);
    memcpy(one.pixels, d->pixels + (size_t)b * 3 * S * S, (size_t)3 * S * S * sizeof(float));
    one.lengths[0] = d->lengths[b];
    float saved[NCTX][64];
    assert_true(D <= 64);
    for (int i = 0; i < NCTX; i++) {
        memcpy(saved[i], ref->w.embed + (size_t)CTX_IDS[i] * D, D * sizeof(float));
        memcpy(ref->w.embed + (size_t)CTX_IDS[i] * D, d->ctx + ((size_t)p * NCTX + i) * D, D * sizeof(float));
    }
    float loss = 0;
    assert_int_equal(vt_model_forward(ref, &one, VT_FORWARD_LOSS, &loss, &err), VT_OK);
    for (int i = 0; i < NCTX; i++) memcpy(ref->w.embed + (size_t)CTX_IDS[i] * D, saved[i], D * sizeof(float));
    vt_batch_free(&one);
    return loss;
}

static void test_scores_match_model_and_counts(void **state) {
    (void)state;
    server sv;
    start(&sv, NULL, NULL);
    vt_ctx *rctx;
    vt_model *ref = make_model(&rctx);
    query_data d;
    make_query(&d, ref);
    vt_serve_client *c = client(vt_serve_endpoint(sv.s), NULL, NULL, 20000);
    vt_error err = {0};
    float loss[NSETS * B], again[NSETS * B];
    uint32_t count[B];
    vt_status st = vt_serve_client_score(c, &d.q, loss, count, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(count[0], 5);
    assert_int_equal(count[1], 5);
    for (int p = 0; p < NSETS; p++)
        for (int b = 0; b < B; b++) {
            float want = reference_loss(ref, &d, p, b);
            assert_true(fabsf(loss[p * B + b] - want) <= 1e-4f * fmaxf(1.0f, fabsf(want)));
        }
    /* different context sets give different losses: the vectors reach the model */
    assert_true(fabsf(loss[0] - loss[B]) > 1e-6f);
    /* the model is unchanged: the same request again is bit-identical */
    assert_int_equal(vt_serve_client_score(c, &d.q, again, NULL, &err), VT_OK);
    assert_memory_equal(loss, again, sizeof loss);
    vt_serve_stats s;
    assert_int_equal(vt_serve_client_stats(c, &s, &err), VT_OK);
    assert_int_equal(s.queries, 2 * NSETS);
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.hidden, ref->cfg.hidden);
    assert_int_equal(s.image_token_index, ref->cfg.image_token_index);

    /* budget: 6 of 12 used; 2 more requests of 3 fit exactly, the next is refused and not counted */
    assert_int_equal(vt_serve_client_score(c, &d.q, loss, NULL, &err), VT_OK);
    assert_int_equal(vt_serve_client_score(c, &d.q, loss, NULL, &err), VT_OK);
    d.q.n_sets = 1;
    assert_int_equal(vt_serve_client_score(c, &d.q, loss, NULL, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "budget"));
    assert_int_equal(vt_serve_client_stats(c, &s, &err), VT_OK);
    assert_int_equal(s.queries, BUDGET);
    assert_int_equal(s.rejected, 1);

    vt_serve_client_close(c);
    free(d.pixels);
    free(d.ctx);
    vt_model_free(ref);
    vt_ctx_destroy(rctx);
    stop(&sv);
}

static void expect_error(vt_serve_client *c, const vt_serve_query *q, vt_status code, const char *needle) {
    float loss[64];
    vt_error err = {0};
    vt_status st = vt_serve_client_score(c, q, loss, NULL, &err);
    if (st != code || !strstr(err.msg, needle)) fail_msg("expected %d '%s', got %d '%s'", code, needle, st, err.msg);
}

static void test_bad_requests_get_errors_and_service_goes_on(void **state) {
    (void)state;
    server sv;
    start(&sv, NULL, NULL);
    query_data d;
    make_query(&d, sv.m);
    const char *ep = vt_serve_endpoint(sv.s);
    vt_serve_client *c = client(ep, NULL, NULL, 20000);
    vt_error err = {0};
    int rejected = 0;

    uint8_t garbage[257];
    vt_rng r;
    vt_rng_init(&r, 3);
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (uint8_t)vt_rng_below(&r, 256);
    garbage[0] = 0xff; /* an invalid wire type so the bytes cannot parse */
    assert_int_equal(vt_serve_client_send_raw(c, garbage, sizeof garbage, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a vt.ServeRequest"));
    rejected++;
    assert_int_equal(vt_serve_client_send_raw(c, "", 0, &err), VT_ERR_FORMAT); /* names no operation */
    rejected++;
    uint8_t *big = calloc(200001, 1);
    assert_int_equal(vt_serve_client_send_raw(c, big, 200001, &err), VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "exceeds the limit"));
    free(big);
    rejected++;

    /* arrays whose sizes disagree with batch*seq_len, packed by hand */
    {
        Vt__ScoreRequest r = VT__SCORE_REQUEST__INIT;
        r.ctx_per_set = NCTX;
        r.n_ctx_token_ids = NCTX;
        r.ctx_token_ids = (int32_t *)CTX_IDS;
        r.n_sets = 1;
        r.n_context = (size_t)NCTX * d.q.hidden;
        r.context = d.ctx;
        r.batch = B;
        r.seq_len = T;
        r.n_tokens = B * T - 1;
        r.tokens = d.tokens;
        r.n_targets = B * T;
        r.targets = d.targets;
        Vt__ServeRequest req = VT__SERVE_REQUEST__INIT;
        req.kind_case = VT__SERVE_REQUEST__KIND_SCORE;
        req.score = &r;
        uint8_t buf[8192];
        assert_true(vt__serve_request__get_packed_size(&req) <= sizeof buf);
        size_t n = vt__serve_request__pack(&req, buf);
        assert_int_equal(vt_serve_client_send_raw(c, buf, n, &err), VT_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "tokens has 59 ids, expected batch*seq_len = 60"));
        r.n_tokens = B * T;
        r.loss_mask.len = 3;
        r.loss_mask.data = d.mask;
        n = vt__serve_request__pack(&req, buf);
        assert_int_equal(vt_serve_client_send_raw(c, buf, n, &err), VT_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "loss_mask has 3 bytes"));
        rejected += 2;
    }
    vt_serve_query q = d.q;
    q.hidden = d.q.hidden - 1;
    expect_error(c, &q, VT_ERR_FORMAT, "context has");
    static int32_t zeros5[5 * T];
    static float ctx9[9 * NCTX * 64];
    q = d.q;
    q.batch = 5; /* arrays sized for it: only the limit is wrong */
    q.tokens = q.targets = zeros5;
    q.loss_mask = NULL;
    q.lengths = NULL;
    q.pixels = NULL;
    expect_error(c, &q, VT_ERR_RANGE, "batch 5 outside");
    q = d.q;
    assert_true(d.q.hidden <= 64);
    q.ctx = ctx9;
    q.n_sets = 9;
    expect_error(c, &q, VT_ERR_RANGE, "n_sets 9 outside");
    q = d.q;
    int32_t dup[NCTX] = {280, 280};
    q.ctx_token_ids = dup;
    expect_error(c, &q, VT_ERR_ARG, "repeats id 280");
    int32_t img[NCTX] = {280, sv.m->cfg.image_token_index};
    q.ctx_token_ids = img;
    expect_error(c, &q, VT_ERR_RANGE, "not a usable token id");
    q = d.q;
    d.ctx[7] = NAN;
    expect_error(c, &q, VT_ERR_RANGE, "context[7] is not finite");
    d.ctx[7] = 0.5f;
    int32_t keep = d.tokens[3];
    d.tokens[3] = 9999;
    expect_error(c, &q, VT_ERR_RANGE, "tokens[3] = 9999");
    d.tokens[3] = keep;
    d.lengths[1] = 0;
    expect_error(c, &q, VT_ERR_RANGE, "lengths[1] = 0");
    d.lengths[1] = T;
    /* the model itself refuses a wrong image-token count: still an error reply */
    d.tokens[NCTX] = 5;
    expect_error(c, &q, VT_ERR_RANGE, "");
    d.tokens[NCTX] = sv.m->cfg.image_token_index;
    rejected += 9;

    /* a two-part message from a raw REQ socket */
    void *zc = zmq_ctx_new(), *raw = zmq_socket(zc, ZMQ_REQ);
    int zero = 0, tmo = 20000;
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(raw, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    assert_int_equal(zmq_connect(raw, ep), 0);
    assert_true(zmq_send(raw, "a", 1, ZMQ_SNDMORE) == 1);
    assert_true(zmq_send(raw, "b", 1, 0) == 1);
    char buf[512];
    int n = zmq_recv(raw, buf, sizeof buf, 0);
    assert_true(n > 0);
    n = n < (int)sizeof buf ? n : (int)sizeof buf - 1;
    for (int i = 0; i < n; i++) if (!buf[i]) buf[i] = ' '; /* protobuf bytes around the text */
    buf[n] = 0;
    assert_non_null(strstr(buf, "single message part"));
    rejected++;
    zmq_close(raw);
    zmq_ctx_term(zc);

    /* still serving, and the counts are exact */
    float loss[NSETS * B];
    vt_status st = vt_serve_client_score(c, &d.q, loss, NULL, &err);
    if (st) fail_msg("%s", err.msg);
    vt_serve_stats s;
    assert_int_equal(vt_serve_client_stats(c, &s, &err), VT_OK);
    assert_int_equal(s.queries, NSETS);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.rejected, rejected);
    vt_serve_client_close(c);
    free(d.pixels);
    free(d.ctx);
    stop(&sv);
}

static void test_curve(void **state) {
    (void)state;
    const char *tmp = getenv("VT_TEST_TMP");
    char dir[4096], skey[4200], spub[4200], akey[4200], apub[4200], bkey[4200], list[4200];
    snprintf(dir, sizeof dir, "%s/serve_curve", tmp ? tmp : "/tmp");
    vt_error err = {0};
    assert_int_equal(vt_mkdir_p(dir, &err), VT_OK);
    char p[4200];
    snprintf(p, sizeof p, "%s/server", dir);
    assert_int_equal(vt_serve_keygen(p, &err), VT_OK);
    snprintf(p, sizeof p, "%s/alice", dir);
    assert_int_equal(vt_serve_keygen(p, &err), VT_OK);
    snprintf(p, sizeof p, "%s/bob", dir);
    assert_int_equal(vt_serve_keygen(p, &err), VT_OK);
    snprintf(skey, sizeof skey, "%s/server.key", dir);
    snprintf(spub, sizeof spub, "%s/server.pub", dir);
    snprintf(akey, sizeof akey, "%s/alice.key", dir);
    snprintf(apub, sizeof apub, "%s/alice.pub", dir);
    snprintf(bkey, sizeof bkey, "%s/bob.key", dir);
    snprintf(list, sizeof list, "%s/clients", dir);
    char *pubtext;
    size_t len;
    assert_int_equal(vt_read_file(apub, 100, &pubtext, &len, &err), VT_OK);
    assert_int_equal(vt_write_file_atomic(list, pubtext, len, &err), VT_OK);
    free(pubtext);
    /* a bad key file is an error naming it */
    char q41[41];
    assert_int_equal(vt_serve_read_key(list, q41, &err), VT_OK);
    snprintf(p, sizeof p, "%s/bad.key", dir);
    assert_int_equal(vt_write_file_atomic(p, "short\n", 6, &err), VT_OK);
    assert_int_equal(vt_serve_read_key(p, q41, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a z85"));

    server sv;
    start(&sv, skey, list);
    const char *ep = vt_serve_endpoint(sv.s);
    vt_serve_stats s;
    vt_serve_client *plain = client(ep, NULL, NULL, 400);
    assert_int_equal(vt_serve_client_stats(plain, &s, &err), VT_ERR_NET);
    assert_non_null(strstr(err.msg, "no reply"));
    vt_serve_client_close(plain);
    vt_serve_client *bob = client(ep, spub, bkey, 400);
    assert_int_equal(vt_serve_client_stats(bob, &s, &err), VT_ERR_NET);
    vt_serve_client_close(bob);
    vt_serve_client *alice = client(ep, spub, akey, 20000);
    vt_status st = vt_serve_client_stats(alice, &s, &err);
    if (st) fail_msg("%s", err.msg);
    assert_true(s.auth_denied >= 1);
    assert_int_equal(s.requests, 0);
    vt_serve_client_close(alice);
    stop(&sv);
}

/* ScoreRequest.logits = 1: the raw logits of the counted positions, in the
 * documented layout; their cross-entropy reproduces the losses; the request
 * counts its sets as queries; a bad layout version and an oversized reply
 * get error replies and the service goes on. */
static void test_logits(void **state) {
    (void)state;
    server sv;
    start(&sv, NULL, NULL);
    query_data d;
    make_query(&d, sv.m);
    int V = sv.m->cfg.vocab;
    vt_serve_client *c = client(vt_serve_endpoint(sv.s), NULL, NULL, 20000);
    vt_error err = {0};
    float loss[NSETS * B], plain[NSETS * B];
    uint32_t count[B];
    size_t cap = (size_t)NSETS * 10 * V, got = 0;
    float *lg = malloc(cap * sizeof *lg);
    vt_status st = vt_serve_client_score_logits(c, &d.q, loss, count, lg, cap, &got, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(count[0] + count[1], 10);
    assert_int_equal(got, cap);
    size_t row = 0;
    for (int p = 0; p < NSETS; p++)
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int t = 0; t < d.lengths[b]; t++) {
                if (!d.mask[b * T + t]) continue;
                const float *z = lg + row++ * V;
                double mx = z[0], zz = 0;
                for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
                for (int v = 0; v < V; v++) zz += exp(z[v] - mx);
                sum += mx + log(zz) - z[d.targets[b * T + t]];
            }
            assert_true(fabs(sum / count[b] - loss[p * B + b]) < 1e-5);
        }
    assert_int_equal(row, (size_t)NSETS * 10);
    /* the losses are those of a plain request */
    assert_int_equal(vt_serve_client_score(c, &d.q, plain, NULL, &err), VT_OK);
    assert_memory_equal(loss, plain, sizeof loss);
    vt_serve_stats s;
    assert_int_equal(vt_serve_client_stats(c, &s, &err), VT_OK);
    assert_int_equal(s.queries, 2 * NSETS); /* a logits request counts its sets like any other */
    assert_int_equal(s.logits_version, VT_SERVE_LOGITS_V1);
    assert_int_equal(s.max_logits, 10000);

    /* a layout this service does not know (a later protocol's), packed by hand */
    {
        Vt__ScoreRequest r = VT__SCORE_REQUEST__INIT;
        r.ctx_per_set = NCTX;
        r.n_ctx_token_ids = NCTX;
        r.ctx_token_ids = (int32_t *)CTX_IDS;
        r.n_sets = 1;
        r.n_context = (size_t)NCTX * d.q.hidden;
        r.context = d.ctx;
        r.batch = B;
        r.seq_len = T;
        r.n_tokens = r.n_targets = B * T;
        r.tokens = d.tokens;
        r.targets = d.targets;
        r.logits = 2;
        Vt__ServeRequest req = VT__SERVE_REQUEST__INIT;
        req.kind_case = VT__SERVE_REQUEST__KIND_SCORE;
        req.score = &r;
        uint8_t buf[8192];
        assert_true(vt__serve_request__get_packed_size(&req) <= sizeof buf);
        size_t n = vt__serve_request__pack(&req, buf);
        assert_int_equal(vt_serve_client_send_raw(c, buf, n, &err), VT_ERR_ARG);
        assert_non_null(strstr(err.msg, "logits layout 2 is not served"));
    }
    /* every position counted: 3 sets x 56 positions x 288 > 10000 floats */
    vt_serve_query q = d.q;
    q.loss_mask = NULL;
    float *big = malloc((size_t)NSETS * B * T * V * sizeof *big);
    st = vt_serve_client_score_logits(c, &q, loss, count, big, (size_t)NSETS * B * T * V, &got, &err);
    if (st != VT_ERR_RANGE || !strstr(err.msg, "logits reply of 48384 floats"))
        fail_msg("expected the size limit, got %d '%s'", st, err.msg);
    free(big);
    /* a client buffer too small is the client's error (the service served it) */
    st = vt_serve_client_score_logits(c, &d.q, loss, count, lg, cap - 1, &got, &err);
    assert_int_equal(st, VT_ERR_RANGE);
    assert_non_null(strstr(err.msg, "exceed the"));
    /* still serving, counts exact: the two refused requests cost no queries */
    assert_int_equal(vt_serve_client_score_logits(c, &d.q, loss, count, lg, cap, &got, &err), VT_OK);
    assert_int_equal(vt_serve_client_stats(c, &s, &err), VT_OK);
    assert_int_equal(s.queries, 4 * NSETS);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(s.requests, 4);
    free(lg);
    vt_serve_client_close(c);
    free(d.pixels);
    free(d.ctx);
    stop(&sv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scores_match_model_and_counts),
        cmocka_unit_test(test_bad_requests_get_errors_and_service_goes_on),
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_curve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
