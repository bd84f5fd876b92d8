/* `vistune loader`: a standalone loader process. It serves the synthetic
 * source today (tests, transport benchmarks, kill -9 drills); loaders that
 * must be killable without taking an MPI job down run this way, with the
 * endpoints handed to the trainers on their command line. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "pipeline/stream.h"
#include "pipeline/synthetic.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct throttled {
    vt_batch_source inner;
    int ms;
} throttled;

/* Simulates slow storage/decode: sleeps before each batch. */
static vt_status throttled_fill(void *ctx, vt_batch *out, vt_error *err) {
    throttled *t = ctx;
    struct timespec ts = {t->ms / 1000, (long)(t->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return t->inner.fill(t->inner.ctx, out, err);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune loader --bind ENDPOINT [--bind ...] --samples N --global-batch G [options]\n"
            "Serve batches to trainers over ZeroMQ (pull/credit protocol, docs/pipeline.md).\n"
            "  --bind EP            ZeroMQ endpoint to bind (ipc:///tmp/x, tcp://*:5555, tcp://*:*)\n"
            "  --samples N          dataset size (must match the trainers')\n"
            "  --global-batch G     global batch size (must match the trainers')\n"
            "  --seed S             run seed (default 1)\n"
            "  --remainder MODE     drop (default) or wrap\n"
            "  --synthetic          serve the synthetic source (the only source so far; default)\n"
            "  --image CxHxW        per-sample image shape (default 3x32x32)\n"
            "  --seq-len T          tokens per sample (default 64)\n"
            "  --vocab V            synthetic vocabulary size (default 1000)\n"
            "  --touch-only         synthetic: do not write pixels (transport benchmarks)\n"
            "  --throttle-ms MS     sleep MS before each batch (simulates slow storage)\n"
            "  --rank R             loader id in headers and logs (default 0)\n"
            "  --trainers K         exit after K trainers sent Shutdown (default 0: signal or idle)\n"
            "  --idle-exit-ms MS    exit after MS without trainer messages (default 0: never)\n"
            "Prints 'endpoint <EP>' per bound endpoint once ready.\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

int vt_cmd_loader(int argc, char **argv) {
    enum { O_BIND = 1, O_SAMPLES, O_GB, O_SEED, O_REM, O_SYN, O_IMAGE, O_SEQ, O_VOCAB, O_TOUCH, O_THROTTLE,
           O_RANK, O_TRAINERS, O_IDLE, O_HELP };
    static const struct option opts[] = {
        {"bind", required_argument, 0, O_BIND},       {"samples", required_argument, 0, O_SAMPLES},
        {"global-batch", required_argument, 0, O_GB}, {"seed", required_argument, 0, O_SEED},
        {"remainder", required_argument, 0, O_REM},   {"synthetic", no_argument, 0, O_SYN},
        {"image", required_argument, 0, O_IMAGE},     {"seq-len", required_argument, 0, O_SEQ},
        {"vocab", required_argument, 0, O_VOCAB},     {"touch-only", no_argument, 0, O_TOUCH},
        {"throttle-ms", required_argument, 0, O_THROTTLE}, {"rank", required_argument, 0, O_RANK},
        {"trainers", required_argument, 0, O_TRAINERS}, {"idle-exit-ms", required_argument, 0, O_IDLE},
        {"help", no_argument, 0, O_HELP},             {0, 0, 0, 0}};
    const char *binds[16];
    int nbind = 0;
    uint64_t samples = 0, gb = 0, seed = 1, seq = 64, vocab = 1000, throttle = 0, rank = 0, trainers = 0, idle = 0;
    unsigned c = 3, h = 32, w = 32;
    int touch = 0;
    vt_remainder rem = VT_REMAINDER_DROP;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *a = optarg;
        int bad = 0;
        switch (o) {
        case O_BIND:
            if (nbind == 16) {
                fprintf(stderr, "vistune loader: at most 16 --bind endpoints\n");
                return 2;
            }
            binds[nbind++] = a;
            break;
        case O_SAMPLES: bad = parse_u64(a, &samples); break;
        case O_GB: bad = parse_u64(a, &gb) || gb > UINT32_MAX; break;
        case O_SEED: bad = parse_u64(a, &seed); break;
        case O_REM:
            if (!strcmp(a, "drop")) rem = VT_REMAINDER_DROP;
            else if (!strcmp(a, "wrap")) rem = VT_REMAINDER_WRAP;
            else bad = 1;
            break;
        case O_SYN: break;
        case O_IMAGE: {
            char tail;
            bad = sscanf(a, "%ux%ux%u%c", &c, &h, &w, &tail) != 3 || c > 16 || h > 16384 || w > 16384;
            break;
        }
        case O_SEQ: bad = parse_u64(a, &seq) || seq == 0 || seq > (1u << 24); break;
        case O_VOCAB: bad = parse_u64(a, &vocab) || vocab < 2 || vocab > INT32_MAX; break;
        case O_TOUCH: touch = 1; break;
        case O_THROTTLE: bad = parse_u64(a, &throttle) || throttle > 600000; break;
        case O_RANK: bad = parse_u64(a, &rank) || rank > UINT32_MAX; break;
        case O_TRAINERS: bad = parse_u64(a, &trainers) || trainers > UINT32_MAX; break;
        case O_IDLE: bad = parse_u64(a, &idle) || idle > INT32_MAX; break;
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune loader: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "vistune loader: invalid value '%s' for --%s\n", a, opts[o - 1].name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vistune loader: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!nbind || !samples || !gb) {
        fprintf(stderr, "vistune loader: --bind, --samples and --global-batch are required (see --help)\n");
        return 2;
    }
    vt_error err = {0};
    vt_sampler sampler;
    vt_sampler_config scfg = {.num_samples = samples, .seed = seed, .global_batch = (uint32_t)gb, .remainder = rem};
    if (vt_sampler_init(&sampler, &scfg, &err)) {
        fprintf(stderr, "vistune loader: %s\n", err.msg);
        return 2;
    }
    vt_synthetic_config syn = {.seed = seed, .channels = c, .height = h, .width = w, .seq_len = (uint32_t)seq,
                               .vocab = (uint32_t)vocab, .touch_only = touch};
    vt_batch_source src;
    vt_synthetic_source(&src, &syn);
    throttled th = {src, (int)throttle};
    if (throttle) src = (vt_batch_source){throttled_fill, &th, src.sample_shape};

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    vt_loader_config lcfg = {.loader_rank = (uint32_t)rank, .expect_trainers = (uint32_t)trainers,
                             .idle_exit_ms = (int)idle, .stop = &g_stop};
    vt_loader *l;
    if (vt_loader_open(&l, &lcfg, binds, nbind, &err)) {
        fprintf(stderr, "vistune loader: %s\n", err.msg);
        vt_sampler_free(&sampler);
        return 1;
    }
    for (int i = 0; i < nbind; i++) printf("endpoint %s\n", vt_loader_endpoint(l, i));
    fflush(stdout);
    vt_status st = vt_loader_run(l, &sampler, &src, &err);
    vt_loader_close(l);
    vt_sampler_free(&sampler);
    if (st) {
        fprintf(stderr, "vistune loader: %s\n", err.msg);
        return 1;
    }
    return 0;
}
