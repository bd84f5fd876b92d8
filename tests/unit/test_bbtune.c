/* Black-box tuning through the scoring service: ZO steps lower the answer
 * loss, the query budget is never exceeded (client count == service count,
 * the step that would pass it is not started), and a service restart in the
 * middle of a run is survived by reconnecting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <cmocka.h>

#include "common/rng.h"
#include "trainer/bbtune.h"

enum { B = 2, T = 12, NCTX = 2, Q = 8 };
static const int32_t CTX_IDS[NCTX] = {280, 281};

typedef struct server {
    vt_ctx *ctx;
    vt_model *m;
    vt_serve *s;
    pthread_t th;
    atomic_int stop;
    char endpoint[256];
    int delay_ms; /* sleep before opening (restart test) */
} server;

static int stop_flag(void *arg) { return atomic_load((atomic_int *)arg); }

static void open_server(server *sv) {
    vt_error err = {0};
    assert_int_equal(vt_ctx_create(&sv->ctx, NULL, &err), VT_OK);
    vt_model_config c;
    vt_model_config_default(&c);
    c.freeze_vision = c.freeze_projector = c.freeze_language = true;
    assert_int_equal(vt_model_create(&sv->m, sv->ctx, &c, 11, &err), VT_OK);
    vt_serve_options o;
    vt_serve_options_default(&o, &sv->m->cfg);
    o.endpoint = sv->endpoint;
    o.max_batch = B;
    o.max_seq = T;
    o.max_sets = 16;
    vt_status st = vt_serve_open(&sv->s, sv->m, &o, &err);
    if (st) fail_msg("%s", err.msg);
    snprintf(sv->endpoint, sizeof sv->endpoint, "%s", vt_serve_endpoint(sv->s));
}

static void *run_server(void *arg) {
    server *sv = arg;
    if (sv->delay_ms) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)sv->delay_ms * 1000000L};
        nanosleep(&ts, NULL);
        open_server(sv);
    }
    vt_error err = {0};
    vt_serve_run(sv->s, stop_flag, &sv->stop, &err);
    return NULL;
}

static void start(server *sv, const char *endpoint, int delay_ms) {
    memset(sv, 0, sizeof *sv);
    snprintf(sv->endpoint, sizeof sv->endpoint, "%s", endpoint);
    sv->delay_ms = delay_ms;
    if (!delay_ms) open_server(sv);
    assert_int_equal(pthread_create(&sv->th, NULL, run_server, sv), 0);
}

static uint64_t stop(server *sv, vt_serve_client *c) {
    vt_serve_stats s = {0};
    vt_error err = {0};
    /* a short client timeout may expire on a loaded machine: ask again */
    vt_status st = VT_OK;
    for (int i = 0; c && i < 50 && (st = vt_serve_client_stats(c, &s, &err)) == VT_ERR_NET; i++) {}
    if (st) fail_msg("%s", err.msg);
    atomic_store(&sv->stop, 1);
    pthread_join(sv->th, NULL);
    vt_serve_close(sv->s);
    vt_model_free(sv->m);
    vt_ctx_destroy(sv->ctx);
    return s.queries;
}

typedef struct data {
    int32_t tokens[B * T], targets[B * T];
    uint8_t mask[B * T];
} data;

static void make_tuner(vt_bbtune *t, data *d, vt_serve_client *c, uint64_t budget) {
    vt_rng r;
    vt_rng_init(&r, 9);
    for (int i = 0; i < B * T; i++) {
        int pos = i % T;
        d->tokens[i] = pos < NCTX ? CTX_IDS[pos] : (int32_t)(1 + vt_rng_below(&r, 250));
        d->targets[i] = (int32_t)(1 + vt_rng_below(&r, 8)); /* a small answer vocabulary: learnable */
        d->mask[i] = pos >= T - 4;
    }
    *t = (vt_bbtune){.client = c, .budget = budget, .retries = 20, .retry_wait_ms = 50,
                     .batch = {.n_ctx = NCTX, .ctx_token_ids = CTX_IDS, .batch = B, .seq_len = T,
                               .tokens = d->tokens, .targets = d->targets, .loss_mask = d->mask, .hidden = 64}};
}

static vt_zo *make_zo(void) {
    vt_zo_options o;
    vt_zo_options_default(&o);
    o.q = Q;
    o.lr = 0.05f;
    o.seed = 4;
    vt_zo *z;
    vt_error err = {0};
    assert_int_equal(vt_zo_create(&z, NCTX * 64, &o, &err), VT_OK);
    return z;
}

static vt_serve_client *client(const char *ep, int timeout_ms) {
    vt_serve_client_options o = {.endpoint = ep, .timeout_ms = timeout_ms};
    vt_serve_client *c;
    vt_error err = {0};
    assert_int_equal(vt_serve_client_open(&c, &o, &err), VT_OK);
    return c;
}

static void test_budget_and_progress(void **state) {
    (void)state;
    server sv;
    start(&sv, "tcp://127.0.0.1:*", 0);
    vt_serve_client *c = client(sv.endpoint, 20000);
    vt_bbtune t;
    data d;
    const uint64_t budget = 40 * (Q + 1) + Q; /* 40 whole steps and a remainder too small for another */
    make_tuner(&t, &d, c, budget);
    vt_zo *z = make_zo();
    float ctx[NCTX * 64] = {0}, first = 0, last = 0;
    vt_error err = {0};
    assert_int_equal(vt_bbtune_objective(&t, ctx, 1, &first, &err), VT_OK);
    int steps = 0;
    vt_status st = vt_bbtune_zo(&t, z, ctx, 1000, &steps, &last, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(steps, 40); /* 1 + 40*(q+1) sent; the 7 left cannot pay for a step */
    float after;
    vt_status st2 = vt_bbtune_objective(&t, ctx, 1, &after, &err);
    print_message("loss %.4f -> %.4f in %d steps, %llu of %llu queries\n", first, after, steps,
                  (unsigned long long)t.used, (unsigned long long)budget);
    assert_true(t.used <= budget);
    uint64_t served = stop(&sv, c);
    assert_int_equal(served, t.used);
    (void)st2;
    assert_true(last < first - 0.05f);
    vt_serve_client_close(c);
    vt_zo_free(z);
}

static void test_service_restart(void **state) {
    (void)state;
    server sv;
    start(&sv, "tcp://127.0.0.1:*", 0);
    char ep[256];
    snprintf(ep, sizeof ep, "%s", sv.endpoint);
    vt_serve_client *c = client(ep, 300);
    vt_bbtune t;
    data d;
    make_tuner(&t, &d, c, 1000);
    vt_zo *z = make_zo();
    float ctx[NCTX * 64] = {0}, loss;
    vt_error err = {0};
    int steps;
    assert_int_equal(vt_bbtune_zo(&t, z, ctx, 3, &steps, &loss, &err), VT_OK);
    uint64_t first = stop(&sv, c);
    assert_true(first >= 3 * (Q + 1)); /* more only if a slow reply was retried */
    start(&sv, ep, 700); /* the service comes back on the same endpoint 0.7 s later */
    vt_status st = vt_bbtune_zo(&t, z, ctx, 3, &steps, &loss, &err);
    if (st) fail_msg("%s", err.msg);
    assert_int_equal(steps, 3);
    assert_true(t.reconnects >= 1);
    uint64_t second = stop(&sv, c);
    /* every step's queries reached the new service (more only if a slow reply was retried) */
    assert_true(second >= 3 * (Q + 1));
    assert_true(first + second <= t.used);
    assert_true(t.used <= t.budget);
    vt_serve_client_close(c);
    vt_zo_free(z);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_and_progress),
        cmocka_unit_test(test_service_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
