/* The stream against the contract: batches streamed from two loaders (real
 * ZeroMQ over ipc, loaders on their own threads and contexts) equal the
 * single-process batches byte for byte across an epoch boundary; zero-copy
 * views stay intact and apart for `hold` deliveries (loaders and
 * single-process mode); a slow
 * loader's late answers are discarded as duplicates; and each bad
 * configuration fails with an error that names it. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipeline/stream.h"
#include "pipeline/synthetic.h"

enum { N = 40, G = 8 };
/* C, H, W, T of the test loaders' batches. */
#define SHAPE ((vt_batch_shape){0, 3, 8, 6, 16})

typedef struct loader_thread {
    pthread_t th;
    vt_loader *l;
    vt_sampler sampler;
    vt_synthetic_config syn;
    vt_batch_source src;
    volatile sig_atomic_t stop;
    int slow_ms; /* sleep before each batch */
    char ep[96];
} loader_thread;

static vt_status slow_fill(void *ctx, vt_batch *out, vt_error *err) {
    loader_thread *t = ctx;
    struct timespec ts = {0, (long)t->slow_ms * 1000000L};
    nanosleep(&ts, NULL);
    vt_batch_source inner;
    vt_synthetic_source(&inner, &t->syn);
    return inner.fill(inner.ctx, out, err);
}

static void *loader_main(void *arg) {
    loader_thread *t = arg;
    vt_error err = {0};
    vt_loader_run(t->l, &t->sampler, &t->src, &err);
    return NULL;
}

static void start_loader(loader_thread *t, int id, uint64_t seed, int slow_ms) {
    memset(t, 0, sizeof *t);
    snprintf(t->ep, sizeof t->ep, "ipc:///tmp/vt-test-%d-%d", (int)getpid(), id);
    vt_sampler_config sc = {.num_samples = N, .seed = seed, .global_batch = G};
    assert_int_equal(vt_sampler_init(&t->sampler, &sc, NULL), VT_OK);
    t->syn = (vt_synthetic_config){.seed = seed, .channels = 3, .height = 8, .width = 6, .seq_len = 16, .vocab = 50};
    vt_synthetic_source(&t->src, &t->syn);
    t->slow_ms = slow_ms;
    if (slow_ms) {
        t->src.fill = slow_fill;
        t->src.ctx = t;
    }
    vt_loader_config lc = {.loader_rank = (uint32_t)id, .stop = &t->stop};
    const char *b[1] = {t->ep};
    vt_error err = {0};
    assert_int_equal(vt_loader_open(&t->l, &lc, b, 1, &err), VT_OK);
    pthread_create(&t->th, NULL, loader_main, t);
}

static void stop_loader(loader_thread *t) {
    t->stop = 1;
    pthread_join(t->th, NULL);
    vt_loader_close(t->l);
    vt_sampler_free(&t->sampler);
    unlink(t->ep + 6);
}

/* 2 trainer ranks x 2 micro-batches, 3 epochs' worth of steps from a resume
 * point mid-epoch: streamed == local, byte for byte. */
static void test_stream_equals_local(void **state) {
    (void)state;
    loader_thread a, b;
    start_loader(&a, 0, 11, 0);
    start_loader(&b, 1, 11, 0);
    const char *eps[2] = {a.ep, b.ep};
    for (uint32_t rank = 0; rank < 2; rank++) {
        vt_sampler s1, s2;
        vt_sampler_config sc = {.num_samples = N, .seed = 11, .global_batch = G};
        vt_sampler_init(&s1, &sc, NULL);
        vt_sampler_init(&s2, &sc, NULL);
        vt_synthetic_config syn = a.syn;
        vt_batch_source local;
        vt_synthetic_source(&local, &syn);
        vt_stream_config cfg;
        vt_stream_config_default(&cfg);
        cfg.sample_shape = SHAPE;
        cfg.rank = rank;
        cfg.ranks = 2;
        cfg.micro_count = 2;
        cfg.credits = 3;
        cfg.start = (vt_sampler_cursor){.epoch = 1, .step = 3, .micro = 0};
        vt_stream *remote, *single;
        vt_error err = {0};
        assert_int_equal(vt_stream_open(&remote, &cfg, &s1, eps, 2, NULL, &err), VT_OK);
        assert_int_equal(vt_stream_open(&single, &cfg, &s2, NULL, 0, &local, &err), VT_OK);
        assert_int_equal(vt_stream_batch_size(remote), 2);
        vt_batch x, y;
        assert_int_equal(vt_batch_alloc(&x, &(vt_batch_shape){2, 3, 8, 6, 16}, &err), VT_OK);
        assert_int_equal(vt_batch_alloc(&y, &(vt_batch_shape){2, 3, 8, 6, 16}, &err), VT_OK);
        vt_sampler_cursor want = cfg.start;
        for (int i = 0; i < 2 * 5 * 2 + 3; i++) {
            assert_int_equal(vt_stream_next(remote, &x, &err), VT_OK);
            assert_int_equal(vt_stream_next(single, &y, &err), VT_OK);
            assert_int_equal(x.epoch, want.epoch);
            assert_int_equal(x.step, want.step);
            assert_int_equal(x.micro_index, want.micro);
            assert_int_equal(y.step, want.step);
            assert_memory_equal(x.slab, y.slab, x.slab_bytes);
            vt_sampler_cursor_advance(&s2, &want, 2);
        }
        vt_stream_stats st;
        vt_stream_get_stats(remote, &st);
        assert_int_equal(st.delivered, 23);
        assert_int_equal(st.resent, 0);
        vt_batch_free(&x);
        vt_batch_free(&y);
        vt_stream_close(remote);
        vt_stream_close(single);
        vt_sampler_free(&s1);
        vt_sampler_free(&s2);
    }
    stop_loader(&a);
    stop_loader(&b);
}

/* Frames, sample indices and position of x and y are equal. */
static void assert_batches_equal(const vt_batch *x, const vt_batch *y) {
    assert_memory_equal(&x->shape, &y->shape, sizeof x->shape);
    assert_int_equal(x->epoch, y->epoch);
    assert_int_equal(x->step, y->step);
    assert_int_equal(x->micro_index, y->micro_index);
    assert_memory_equal(x->sample_indices, y->sample_indices, x->shape.batch * sizeof *x->sample_indices);
    vt_batch_frame fx[VT_BATCH_NFRAMES], fy[VT_BATCH_NFRAMES];
    vt_batch_frames(x, fx);
    vt_batch_frames(y, fy);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) assert_memory_equal(fx[f].data, fy[f].data, fx[f].nbytes);
}

static int overlap(const void *a, size_t na, const void *b, size_t nb) {
    const char *x = a, *y = b;
    return na && nb && x < y + nb && y < x + na;
}

/* No byte of x (frames, sample indices) is a byte of y. */
static void assert_disjoint(const vt_batch *x, const vt_batch *y) {
    vt_batch_frame fx[VT_BATCH_NFRAMES], fy[VT_BATCH_NFRAMES];
    vt_batch_frames(x, fx);
    vt_batch_frames(y, fy);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++)
        for (int g = 0; g < VT_BATCH_NFRAMES; g++)
            assert_false(overlap(fx[f].data, fx[f].nbytes, fy[g].data, fy[g].nbytes));
    size_t ni = x->shape.batch * sizeof(uint64_t);
    assert_false(overlap(x->sample_indices, ni, y->sample_indices, ni));
}

enum { HOLD = 3 };

/* Reads n deliveries of `st` through the view API (hold HOLD) next to `ref`
 * through the copy API: each view equals ref's batch and is aligned for its
 * type; after every call the last HOLD views still hold the bytes they had
 * when delivered, and no two of them share a byte. */
static void check_views(vt_stream *st, vt_stream *ref, int n) {
    vt_batch views[HOLD], copies[HOLD], y;
    memset(copies, 0, sizeof copies);
    vt_error err = {0};
    assert_int_equal(vt_batch_alloc(&y, &(vt_batch_shape){vt_stream_batch_size(ref), 3, 8, 6, 16}, &err), VT_OK);
    for (int i = 0; i < n; i++) {
        int k = i % HOLD;
        assert_int_equal(vt_stream_next_view(st, &views[k], &err), VT_OK);
        assert_int_equal(vt_stream_next(ref, &y, &err), VT_OK);
        assert_batches_equal(&views[k], &y);
        const vt_batch *v = &views[k];
        assert_null(v->slab);
        assert_int_equal((uintptr_t)v->pixels % sizeof(float), 0);
        assert_int_equal((uintptr_t)v->tokens % sizeof(int32_t), 0);
        assert_int_equal((uintptr_t)v->targets % sizeof(int32_t), 0);
        assert_int_equal((uintptr_t)v->lengths % sizeof(int32_t), 0);
        assert_int_equal((uintptr_t)v->sample_indices % sizeof(uint64_t), 0);
        vt_batch_free(&copies[k]);
        assert_int_equal(vt_batch_alloc(&copies[k], &v->shape, &err), VT_OK);
        vt_batch_copy(&copies[k], v);
        int live = i + 1 < HOLD ? i + 1 : HOLD;
        for (int j = 0; j < live; j++) {
            assert_batches_equal(&views[j], &copies[j]);
            for (int l = j + 1; l < live; l++) assert_disjoint(&views[j], &views[l]);
        }
    }
    for (int k = 0; k < HOLD; k++) vt_batch_free(&copies[k]);
    vt_batch_free(&y);
}

/* The view API with loaders (hold 3 > credits 2: credit slots are reused
 * and new answers arrive while views are held) and in single-process mode.
 * ZeroMQ often decodes these tiny frames misaligned, so the realigning copy
 * is exercised too (printed). */
static void test_views_held(void **state) {
    (void)state;
    loader_thread a, b;
    start_loader(&a, 7, 11, 0);
    start_loader(&b, 8, 11, 0);
    const char *eps[2] = {a.ep, b.ep};
    vt_sampler s1, s2, s3, s4;
    vt_sampler_config sc = {.num_samples = N, .seed = 11, .global_batch = G};
    vt_sampler_init(&s1, &sc, NULL);
    vt_sampler_init(&s2, &sc, NULL);
    vt_sampler_init(&s3, &sc, NULL);
    vt_sampler_init(&s4, &sc, NULL);
    vt_batch_source local;
    vt_synthetic_source(&local, &a.syn);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.sample_shape = SHAPE;
    cfg.micro_count = 2;
    cfg.hold = HOLD;
    cfg.credits = 2;
    vt_stream *remote, *single, *ref1, *ref2;
    vt_error err = {0};
    assert_int_equal(vt_stream_open(&remote, &cfg, &s1, eps, 2, NULL, &err), VT_OK);
    assert_int_equal(vt_stream_open(&ref1, &cfg, &s2, NULL, 0, &local, &err), VT_OK);
    check_views(remote, ref1, 2 * 5 * 2 + 3);
    vt_stream_stats st;
    vt_stream_get_stats(remote, &st);
    print_message("views with loaders: %llu frames realigned\n", (unsigned long long)st.realigned);
    cfg.sample_shape = (vt_batch_shape){0}; /* single-process mode: the source's */
    assert_int_equal(vt_stream_open(&single, &cfg, &s3, NULL, 0, &local, &err), VT_OK);
    assert_int_equal(vt_stream_open(&ref2, &cfg, &s4, NULL, 0, &local, &err), VT_OK);
    check_views(single, ref2, 2 * 5 * 2 + 3);
    vt_stream_close(remote);
    vt_stream_close(single);
    vt_stream_close(ref1);
    vt_stream_close(ref2);
    vt_sampler_free(&s1);
    vt_sampler_free(&s2);
    vt_sampler_free(&s3);
    vt_sampler_free(&s4);
    stop_loader(&a);
    stop_loader(&b);
}

/* A loader taking 300 ms per batch vs a 100 ms request timeout: requests go
 * to the fast loader too, the slow one's late answers are discarded, and the
 * delivered sequence is still the sampler's. */
static void test_slow_loader_duplicates_dropped(void **state) {
    (void)state;
    loader_thread slow, fast;
    start_loader(&slow, 2, 5, 300);
    start_loader(&fast, 3, 5, 0);
    const char *eps[2] = {slow.ep, fast.ep};
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = N, .seed = 5, .global_batch = G};
    vt_sampler_init(&s, &sc, NULL);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.sample_shape = SHAPE;
    cfg.credits = 4;
    cfg.request_timeout_ms = 100;
    cfg.heartbeat_ms = 50;
    cfg.dead_after_ms = 2000;
    vt_stream *st;
    vt_error err = {0};
    assert_int_equal(vt_stream_open(&st, &cfg, &s, eps, 2, NULL, &err), VT_OK);
    vt_batch x;
    vt_batch_alloc(&x, &(vt_batch_shape){G, 3, 8, 6, 16}, &err);
    uint64_t want[G];
    vt_stream_stats stats = {0};
    /* Pull at least 10 batches, then on until a late answer of the slow
     * loader (or a re-sent one of the fast loader, on a loaded machine) has
     * been read and dropped; every delivered batch stays the sampler's. */
    for (uint64_t step = 0; step < 10 || (stats.duplicates == 0 && step < 400); step++) {
        uint64_t e = step / 5, k = step % 5;
        assert_int_equal(vt_stream_next(st, &x, &err), VT_OK);
        assert_int_equal(x.epoch, e);
        assert_int_equal(x.step, k);
        assert_int_equal(vt_sampler_slice(&s, e, k, 0, 1, 0, 1, want, NULL), VT_OK);
        assert_memory_equal(x.sample_indices, want, sizeof want);
        vt_stream_get_stats(st, &stats);
    }
    assert_true(stats.resent > 0);
    assert_true(stats.duplicates > 0);
    vt_batch_free(&x);
    vt_stream_close(st);
    vt_sampler_free(&s);
    stop_loader(&slow);
    stop_loader(&fast);
}

/* The trainer pauses (rank 0 validating, a checkpoint) for 3x dead_after_ms
 * between batches: the live loader owed it nothing meanwhile and is not
 * declared dead, nothing is re-sent. */
static void test_trainer_pause_is_not_loader_death(void **state) {
    (void)state;
    loader_thread a;
    start_loader(&a, 6, 5, 0);
    const char *eps[1] = {a.ep};
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = N, .seed = 5, .global_batch = G};
    vt_sampler_init(&s, &sc, NULL);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.sample_shape = SHAPE;
    cfg.credits = 2;
    cfg.heartbeat_ms = 20;
    cfg.dead_after_ms = 100;
    vt_stream *st;
    vt_error err = {0};
    assert_int_equal(vt_stream_open(&st, &cfg, &s, eps, 1, NULL, &err), VT_OK);
    vt_batch x;
    vt_batch_alloc(&x, &(vt_batch_shape){G, 3, 8, 6, 16}, &err);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vt_stream_next(st, &x, &err), VT_OK);
        struct timespec pause = {0, 300 * 1000000L};
        nanosleep(&pause, NULL);
    }
    vt_stream_stats stats;
    vt_stream_get_stats(st, &stats);
    assert_int_equal(stats.loaders_lost, 0);
    assert_int_equal(stats.resent, 0);
    vt_batch_free(&x);
    vt_stream_close(st);
    vt_sampler_free(&s);
    stop_loader(&a);
}

/* Loader and trainer disagree on the seed: the first batch is refused with
 * an error that says so, instead of training on other samples. */
static void test_seed_mismatch_detected(void **state) {
    (void)state;
    loader_thread a;
    start_loader(&a, 4, 99, 0);
    const char *eps[1] = {a.ep};
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = N, .seed = 100, .global_batch = G};
    vt_sampler_init(&s, &sc, NULL);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.sample_shape = SHAPE;
    vt_stream *st;
    vt_error err = {0};
    assert_int_equal(vt_stream_open(&st, &cfg, &s, eps, 1, NULL, &err), VT_OK);
    vt_batch x;
    vt_batch_alloc(&x, &(vt_batch_shape){G, 3, 8, 6, 16}, &err);
    assert_int_equal(vt_stream_next(st, &x, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "the sampler says"));
    /* The trainer expects T=32, the loader sends T=16: one error naming the
     * first frame that differs (pixels agree), through either API. */
    vt_stream_close(st);
    vt_sampler s2;
    sc.seed = 99;
    vt_sampler_init(&s2, &sc, NULL);
    cfg.sample_shape.seq_len = 32;
    vt_batch y;
    vt_batch_alloc(&y, &(vt_batch_shape){G, 3, 8, 6, 32}, &err);
    assert_int_equal(vt_stream_open(&st, &cfg, &s2, eps, 1, NULL, &err), VT_OK);
    assert_int_equal(vt_stream_next_view(st, &y, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "frame 'tokens' has 512 bytes, the trainer expects 1024 for 3x8x6, T=32"));
    vt_stream_close(st);
    vt_batch_free(&y);
    vt_batch_alloc(&y, &(vt_batch_shape){G, 3, 8, 6, 32}, &err);
    assert_int_equal(vt_stream_open(&st, &cfg, &s2, eps, 1, NULL, &err), VT_OK);
    assert_int_equal(vt_stream_next(st, &y, &err), VT_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "frame 'tokens'"));
    vt_stream_close(st);
    vt_batch_free(&x);
    vt_batch_free(&y);
    vt_sampler_free(&s);
    vt_sampler_free(&s2);
    stop_loader(&a);
}

/* A request the loader cannot serve (G=8 split over 3 ranks is caught
 * locally; an unreachable/absent loader makes vt_stream_next give up). */
static void test_bad_configs(void **state) {
    (void)state;
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = N, .seed = 1, .global_batch = G};
    vt_sampler_init(&s, &sc, NULL);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.sample_shape = SHAPE;
    vt_stream *st;
    vt_error err = {0};
    cfg.ranks = 3;
    assert_int_equal(vt_stream_open(&st, &cfg, &s, NULL, 0, NULL, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "not divisible by the 3 trainer ranks"));
    cfg.ranks = 1;
    assert_int_equal(vt_stream_open(&st, &cfg, &s, NULL, 0, NULL, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "no local batch source"));
    const char *bad[1] = {"nonsense://x"};
    cfg.sample_shape = (vt_batch_shape){0};
    assert_int_equal(vt_stream_open(&st, &cfg, &s, bad, 1, NULL, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "sample_shape (the C, H, W, T the trainer expects) must be set"));
    cfg.sample_shape = SHAPE;
    assert_int_equal(vt_stream_open(&st, &cfg, &s, bad, 1, NULL, &err), VT_ERR_NET);
    assert_non_null(strstr(err.msg, "nonsense://x"));
    cfg.start.step = 5;
    assert_int_equal(vt_stream_open(&st, &cfg, &s, bad, 1, NULL, &err), VT_ERR_ARG);
    cfg.start.step = 0;

    /* Nobody listens on this endpoint: give up after give_up_ms. */
    const char *none[1] = {"ipc:///tmp/vt-test-nobody-here"};
    cfg.heartbeat_ms = 20;
    cfg.dead_after_ms = 100;
    cfg.give_up_ms = 300;
    assert_int_equal(vt_stream_open(&st, &cfg, &s, none, 1, NULL, &err), VT_OK);
    vt_batch x;
    vt_batch_alloc(&x, &(vt_batch_shape){G, 3, 8, 6, 16}, &err);
    assert_int_equal(vt_stream_next(st, &x, &err), VT_ERR_NET);
    assert_non_null(strstr(err.msg, "no loader answered"));
    vt_stream_close(st);
    /* Output batch of the wrong size. */
    vt_batch y;
    vt_batch_alloc(&y, &(vt_batch_shape){G / 2, 3, 8, 6, 16}, &err);
    vt_synthetic_config syn = {.seed = 1, .channels = 3, .height = 8, .width = 6, .seq_len = 16, .vocab = 9};
    vt_batch_source local;
    vt_synthetic_source(&local, &syn);
    assert_int_equal(vt_stream_open(&st, &cfg, &s, NULL, 0, &local, &err), VT_OK);
    assert_int_equal(vt_stream_next(st, &y, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "holds 4 samples, the stream delivers 8"));
    vt_stream_close(st);
    /* Single-process mode: a sample_shape the local source does not make. */
    cfg.sample_shape.seq_len = 17;
    assert_int_equal(vt_stream_open(&st, &cfg, &s, NULL, 0, &local, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "sample_shape 3x8x6, T=17 differs from the local source's 3x8x6, T=16"));
    cfg.sample_shape = SHAPE;
    vt_batch_free(&x);
    vt_batch_free(&y);
    vt_sampler_free(&s);

    /* Loader side: an ipc path over the sun_path limit, an unbindable endpoint. */
    char longp[160] = "ipc:///tmp/";
    memset(longp + 11, 'x', 120);
    longp[131] = 0;
    const char *lb[1] = {longp};
    vt_loader_config lc = {0};
    vt_loader *l;
    assert_int_equal(vt_loader_open(&l, &lc, lb, 1, &err), VT_ERR_ARG);
    assert_non_null(strstr(err.msg, "limit is 106"));
    const char *ub[1] = {"tcp://no-such-interface-xyz:1"};
    assert_int_equal(vt_loader_open(&l, &lc, ub, 1, &err), VT_ERR_NET);
    assert_non_null(strstr(err.msg, "cannot bind"));
}

static void test_batch_layout(void **state) {
    (void)state;
    vt_batch b;
    vt_error err = {0};
    assert_int_equal(vt_batch_alloc(&b, &(vt_batch_shape){3, 3, 5, 7, 9}, &err), VT_OK);
    assert_int_equal((uintptr_t)b.pixels % 64, 0);
    assert_int_equal((uintptr_t)b.tokens % 64, 0);
    assert_int_equal((uintptr_t)b.loss_mask % 64, 0);
    vt_batch_frame fr[VT_BATCH_NFRAMES];
    vt_batch_frames(&b, fr);
    assert_int_equal(fr[0].nbytes, 3 * 3 * 5 * 7 * 4);
    assert_int_equal(fr[3].nbytes, 27);
    assert_true((char *)b.lengths + 12 <= (char *)b.slab + b.slab_bytes);
    vt_batch_free(&b);
    assert_int_equal(vt_batch_alloc(&b, &(vt_batch_shape){0, 3, 5, 7, 9}, &err), VT_ERR_ARG);
    assert_int_equal(vt_batch_alloc(&b, &(vt_batch_shape){UINT32_MAX, 16, 65535, 65535, 9}, &err), VT_ERR_RANGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_layout),
        cmocka_unit_test(test_stream_equals_local),
        cmocka_unit_test(test_views_held),
        cmocka_unit_test(test_slow_loader_duplicates_dropped),
        cmocka_unit_test(test_trainer_pause_is_not_loader_death),
        cmocka_unit_test(test_seed_mismatch_detected),
        cmocka_unit_test(test_bad_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
