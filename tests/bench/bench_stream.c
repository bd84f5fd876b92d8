/* Stream benchmark: loader -> trainer throughput of vt_stream (pull/credit,
 * zero-copy frames) read through vt_stream_next_view (no copy, what the
 * trainer uses) and vt_stream_next (copy-out into a batch) against raw
 * ZeroMQ PUSH/PULL of the same frames over the same transport (receive only,
 * and receive + copy-out), plus resident memory of both processes over a
 * long run. The loader (or raw sender) is a forked child process, as in a
 * real job. Prints one JSON line per measurement.
 *
 *   bench_stream [--transport ipc|tcp] [--batches N] [--batch B] [--image CxHxW]
 *                [--seq T] [--credits K] [--mode both|view|stream|raw] [--repeat R]
 *
 * both: all four rows; view: the view row; stream: view and copy rows;
 * raw: the two raw rows. --repeat runs the rows R times interleaved and
 * prints each row's median (a busy 2-core machine drifts between rows, so
 * interleaving and medians make the ratios steadier).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "pipeline/stream.h"
#include "pipeline/synthetic.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_of(pid_t pid) {
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    else snprintf(path, sizeof path, "/proc/self/status");
    FILE *f = fopen(path, "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return v;
}

static long rss_kib(void) { return rss_of(0); }

static struct {
    const char *transport;
    long batches, warmup;
    unsigned b, c, h, w, t, credits;
} O = {"ipc", 2000, 50, 8, 3, 224, 224, 256, 4};

static void endpoint(char *out, size_t n, int id) {
    if (!strcmp(O.transport, "tcp")) snprintf(out, n, "tcp://127.0.0.1:*");
    else snprintf(out, n, "ipc:///tmp/vt-bench-%d-%d", (int)getpid(), id);
}

/* Child: a loader serving touch-only synthetic batches until the trainer
 * closes; writes its endpoint, then its RSS before/after, to fd. */
static void loader_child(int fd, const char *bind) {
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = 1u << 20, .seed = 1, .global_batch = O.b};
    vt_sampler_init(&s, &sc, NULL);
    vt_synthetic_config syn = {.seed = 1, .channels = O.c, .height = O.h, .width = O.w, .seq_len = O.t, .vocab = 32000,
                               .touch_only = 1};
    vt_batch_source src;
    vt_synthetic_source(&src, &syn);
    vt_loader_config lc = {.expect_trainers = 1};
    vt_loader *l;
    vt_error err = {0};
    const char *b[1] = {bind};
    if (vt_loader_open(&l, &lc, b, 1, &err)) {
        dprintf(fd, "error %s\n", err.msg);
        _exit(1);
    }
    dprintf(fd, "%s\n", vt_loader_endpoint(l, 0));
    long r0 = rss_kib();
    vt_loader_run(l, &s, &src, &err);
    long r1 = rss_kib();
    vt_loader_close(l);
    dprintf(fd, "%ld %ld\n", r0, r1);
    _exit(0);
}

static void nofree(void *d, void *h) {
    (void)d;
    (void)h;
}

/* Child: raw PUSH of header + the same 5 frames, zero-copy from one buffer. */
static void raw_child(int fd, const char *bind, vt_batch *bt, long count) {
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
    zmq_bind(s, bind);
    char last[256];
    size_t sz = sizeof last;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &sz);
    dprintf(fd, "%s\n", last);
    vt_batch_frame fr[VT_BATCH_NFRAMES];
    vt_batch_frames(bt, fr);
    char header[120] = {0};
    for (long i = 0; i < count; i++) {
        zmq_send(s, header, sizeof header, ZMQ_SNDMORE);
        for (int f = 0; f < VT_BATCH_NFRAMES; f++) {
            zmq_msg_t m;
            zmq_msg_init_data(&m, fr[f].data, fr[f].nbytes, nofree, NULL);
            zmq_msg_send(&m, s, f + 1 < VT_BATCH_NFRAMES ? ZMQ_SNDMORE : 0);
        }
    }
    int linger = -1; /* deliver everything before exiting */
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

static pid_t spawn(int mode, vt_batch *bt, long count, char *ep, size_t epn, FILE **from) {
    int fd[2];
    if (pipe(fd)) return -1;
    char bind[128];
    endpoint(bind, sizeof bind, mode);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        if (mode == 0) loader_child(fd[1], bind);
        else raw_child(fd[1], bind, bt, count);
    }
    close(fd[1]);
    *from = fdopen(fd[0], "r");
    if (!fgets(ep, (int)epn, *from)) return -1;
    ep[strcspn(ep, "\n")] = 0;
    return pid;
}

/* view: vt_stream_next_view (hold 1, nothing touched, like the raw PULL);
 * else vt_stream_next into bt. */
static double run_stream(vt_batch *bt, int view) {
    char ep[256];
    FILE *from;
    pid_t pid = spawn(0, bt, 0, ep, sizeof ep, &from);
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = 1u << 20, .seed = 1, .global_batch = O.b};
    vt_sampler_init(&s, &sc, NULL);
    vt_stream_config cfg;
    vt_stream_config_default(&cfg);
    cfg.credits = O.credits;
    cfg.sample_shape = bt->shape;
    const char *eps[1] = {ep};
    vt_stream *st;
    vt_error err = {0};
    if (vt_stream_open(&st, &cfg, &s, eps, 1, NULL, &err)) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        exit(1);
    }
    vt_batch v;
    for (long i = 0; i < O.warmup; i++)
        if (view ? vt_stream_next_view(st, &v, &err) : vt_stream_next(st, bt, &err)) {
            fprintf(stderr, "bench_stream: %s\n", err.msg);
            exit(1);
        }
    long r0 = rss_kib(), l0 = rss_of(pid);
    double t0 = now_s();
    for (long i = 0; i < O.batches; i++)
        if (view ? vt_stream_next_view(st, &v, &err) : vt_stream_next(st, bt, &err)) {
            fprintf(stderr, "bench_stream: %s\n", err.msg);
            exit(1);
        }
    double dt = now_s() - t0;
    long r1 = rss_kib(), l1 = rss_of(pid);
    vt_stream_stats stats;
    vt_stream_get_stats(st, &stats);
    vt_stream_close(st);
    long c0 = -1, c1 = -1; /* the loader's own view: before serving, after the run */
    if (fscanf(from, "%ld %ld", &c0, &c1) != 2) c0 = c1 = -1;
    fclose(from);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "bench_stream: loader child died (status %d)\n", status);
        exit(1);
    }
    vt_sampler_free(&s);
    vt_batch_frame fr[VT_BATCH_NFRAMES];
    vt_batch_frames(bt, fr);
    double bytes = 0;
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) bytes += (double)fr[f].nbytes;
    printf("{\"mode\":\"stream_%s\",\"transport\":\"%s\",\"batches\":%ld,\"batch_bytes\":%.0f,\"credits\":%u,"
           "\"batches_per_s\":%.1f,\"GB_per_s\":%.3f,\"trainer_rss_kib\":[%ld,%ld],\"loader_rss_kib\":[%ld,%ld],"
           "\"loader_rss_idle_kib\":%ld,\"wait_s\":%.3f,\"realigned_frames\":%llu}\n",
           view ? "view" : "copy", O.transport, O.batches, bytes, O.credits, O.batches / dt,
           bytes * O.batches / dt / 1e9, r0, r1, l0, l1,
           c0, stats.wait_ns * 1e-9, (unsigned long long)stats.realigned);
    return O.batches / dt;
}

static double run_raw(vt_batch *bt, int copy_out) {
    char ep[256];
    FILE *from;
    long total = O.warmup + O.batches;
    pid_t pid = spawn(1, bt, total, ep, sizeof ep, &from);
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PULL);
    zmq_connect(s, ep);
    vt_batch_frame fr[VT_BATCH_NFRAMES];
    vt_batch_frames(bt, fr);
    double t0 = 0;
    for (long i = 0; i < total; i++) {
        if (i == O.warmup) t0 = now_s();
        for (int f = 0; f <= VT_BATCH_NFRAMES; f++) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, s, 0);
            if (copy_out && f > 0) memcpy(fr[f - 1].data, zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
        }
    }
    double dt = now_s() - t0;
    zmq_close(s);
    zmq_ctx_term(ctx);
    fclose(from);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "bench_stream: sender child died (status %d)\n", status);
        exit(1);
    }
    double bytes = 0;
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) bytes += (double)fr[f].nbytes;
    printf("{\"mode\":\"raw_push_pull%s\",\"transport\":\"%s\",\"batches\":%ld,\"batch_bytes\":%.0f,"
           "\"batches_per_s\":%.1f,\"GB_per_s\":%.3f}\n",
           copy_out ? "_copy_out" : "", O.transport, O.batches, bytes, O.batches / dt, bytes * O.batches / dt / 1e9);
    return O.batches / dt;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of x[0..n) (sorts x). */
static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"transport", 1, 0, 'x'}, {"batches", 1, 0, 'n'}, {"batch", 1, 0, 'b'},
                                         {"image", 1, 0, 'i'},     {"seq", 1, 0, 't'},     {"credits", 1, 0, 'k'},
                                         {"mode", 1, 0, 'm'},      {"repeat", 1, 0, 'r'},  {0, 0, 0, 0}};
    const char *mode = "both";
    int o, repeat = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'x': O.transport = optarg; break;
        case 'n': O.batches = atol(optarg); break;
        case 'b': O.b = (unsigned)atoi(optarg); break;
        case 'i':
            if (sscanf(optarg, "%ux%ux%u", &O.c, &O.h, &O.w) != 3) return 2;
            break;
        case 't': O.t = (unsigned)atoi(optarg); break;
        case 'k': O.credits = (unsigned)atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 'r': repeat = atoi(optarg); break;
        default: fprintf(stderr, "usage: see the comment at the top of bench_stream.c\n"); return 2;
        }
    }
    if (O.batches < 1 || !O.b || !O.t || !O.credits || repeat < 1 || repeat > 64) return 2;
    if (O.warmup > O.batches) O.warmup = O.batches;
    vt_batch bt;
    vt_error err = {0};
    if (vt_batch_alloc(&bt, &(vt_batch_shape){O.b, O.c, O.h, O.w, O.t}, &err)) {
        fprintf(stderr, "bench_stream: %s\n", err.msg);
        return 1;
    }
    int all = !strcmp(mode, "both"), streams = all || !strcmp(mode, "stream");
    double rows[4][64] = {{0}}; /* view, copy, raw, raw + copy-out; per repetition */
    for (int i = 0; i < repeat; i++) {
        if (streams || !strcmp(mode, "view")) rows[0][i] = run_stream(&bt, 1);
        if (streams) rows[1][i] = run_stream(&bt, 0);
        if (all || !strcmp(mode, "raw")) {
            rows[2][i] = run_raw(&bt, 0);
            rows[3][i] = run_raw(&bt, 1);
        }
    }
    double v = median(rows[0], repeat), c = median(rows[1], repeat), r = median(rows[2], repeat),
           rc = median(rows[3], repeat);
    if (repeat > 1)
        printf("{\"medians_of\":%d,\"stream_view\":%.1f,\"stream_copy\":%.1f,\"raw_push_pull\":%.1f,"
               "\"raw_push_pull_copy_out\":%.1f}\n",
               repeat, v, c, r, rc);
    if (v > 0 && r > 0) printf("{\"stream_view_vs_raw\":%.3f}\n", v / r);
    if (c > 0 && r > 0) printf("{\"stream_copy_vs_raw\":%.3f,\"stream_copy_vs_raw_copy_out\":%.3f}\n", c / r, c / rc);
    vt_batch_free(&bt);
    return 0;
}
