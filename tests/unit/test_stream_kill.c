/* kill -9 drill: three `vistune loader` processes serve one trainer; two are
 * killed by PID mid-run. The trainer's stream must still be exactly the
 * sampler's sequence (no sample lost or duplicated) with the exact bytes a
 * single-process run produces. Both streams are read through the zero-copy
 * view API (vt_stream_next_view), as the trainer reads them. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipeline/stream.h"
#include "pipeline/synthetic.h"

enum { NLOADERS = 3, N = 64, G = 8 };

typedef struct child {
    pid_t pid;
    char ep[96];
} child;

/* Starts `vistune loader` and waits for its "endpoint" line (bound and ready). */
static void spawn(child *c, const char *vistune, int id) {
    snprintf(c->ep, sizeof c->ep, "ipc:///tmp/vt-kill-%d-%d", (int)getpid(), id);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char rank[16];
        snprintf(rank, sizeof rank, "%d", id);
        execl(vistune, vistune, "loader", "--bind", c->ep, "--samples", "64", "--global-batch", "8", "--seed", "3",
              "--image", "3x16x16", "--seq-len", "32", "--throttle-ms", "15", "--rank", rank, "--idle-exit-ms",
              "10000", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char line[256];
    FILE *f = fdopen(fd[0], "r");
    assert_non_null(fgets(line, sizeof line, f));
    assert_true(strncmp(line, "endpoint ", 9) == 0);
    fclose(f);
}

/* Frames, sample indices and position equal. */
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

static void test_kill9_loses_nothing(void **state) {
    (void)state;
    const char *vistune = getenv("VISTUNE");
    if (!vistune || access(vistune, X_OK)) skip();
    child ch[NLOADERS];
    for (int i = 0; i < NLOADERS; i++) spawn(&ch[i], vistune, i);
    const char *eps[NLOADERS];
    for (int i = 0; i < NLOADERS; i++) eps[i] = ch[i].ep;

    vt_sampler s, s_local;
    vt_sampler_config sc = {.num_samples = N, .seed = 3, .global_batch = G};
    vt_sampler_init(&s, &sc, NULL);
    vt_sampler_init(&s_local, &sc, NULL);
    vt_synthetic_config syn = {.seed = 3, .channels = 3, .height = 16, .width = 16, .seq_len = 32, .vocab = 1000};
    vt_batch_source local;
    vt_synthetic_source(&local, &syn);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.ranks = 2; /* this trainer is rank 1 of 2, two micro-batches per step */
    cfg.rank = 1;
    cfg.micro_count = 2;
    cfg.credits = 6;
    cfg.request_timeout_ms = 2000;
    cfg.heartbeat_ms = 50;
    cfg.dead_after_ms = 300;
    cfg.sample_shape = (vt_batch_shape){0, 3, 16, 16, 32};
    vt_stream *st, *ref;
    vt_error err = {0};
    assert_int_equal(vt_stream_open(&st, &cfg, &s, eps, NLOADERS, NULL, &err), VT_OK);
    assert_int_equal(vt_stream_open(&ref, &cfg, &s_local, NULL, 0, &local, &err), VT_OK);
    int total = 3 * 8 * 2; /* 3 epochs x 8 steps x 2 micro-batches */
    int seen[3][N] = {{0}};
    for (int i = 0; i < total; i++) {
        if (i == 7) kill(ch[0].pid, SIGKILL);
        if (i == 20) kill(ch[1].pid, SIGKILL);
        vt_batch x, y;
        assert_int_equal(vt_stream_next_view(st, &x, &err), VT_OK);
        assert_int_equal(vt_stream_next_view(ref, &y, &err), VT_OK);
        /* Same position, same samples (the sampler's), same bytes. */
        assert_batches_equal(&x, &y);
        uint64_t want[2];
        assert_int_equal(vt_sampler_slice(&s_local, y.epoch, y.step, 1, 2, y.micro_index, 2, want, NULL), VT_OK);
        assert_memory_equal(x.sample_indices, want, sizeof want);
        for (int j = 0; j < 2; j++) seen[x.epoch][x.sample_indices[j]]++;
    }
    /* Rank 1 of 2 sees each sample of its half of every epoch exactly once. */
    for (int e = 0; e < 3; e++) {
        int once = 0;
        for (int i = 0; i < N; i++) {
            assert_true(seen[e][i] <= 1);
            once += seen[e][i];
        }
        assert_int_equal(once, N / 2);
    }
    vt_stream_stats stats;
    vt_stream_get_stats(st, &stats);
    assert_int_equal(stats.delivered, total);
    assert_true(stats.loaders_lost >= 2);
    vt_stream_close(st);
    vt_stream_close(ref);
    vt_sampler_free(&s);
    vt_sampler_free(&s_local);
    kill(ch[2].pid, SIGTERM);
    for (int i = 0; i < NLOADERS; i++) {
        int status = 0;
        assert_int_equal(waitpid(ch[i].pid, &status, 0), ch[i].pid);
        if (i < 2) assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        else assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        unlink(ch[i].ep + 6);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9_loses_nothing)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
