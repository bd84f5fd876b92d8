/* `vistune serve`: load a checkpoint frozen and answer scoring queries over
 * ZeroMQ until SIGINT/SIGTERM (trainer/serve.h). Also generates CURVE keys. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/log.h"
#include "trainer/serve.h"
#include "trainer/signals.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune serve CHECKPOINT --bind ENDPOINT [options]\n"
            "       vistune serve --keygen PATH      (writes PATH.key and PATH.pub)\n"
            "       vistune serve --stats ENDPOINT   (a running plain service's counters)\n"
            "Serve a frozen model for black-box tuning: answers only scoring queries\n"
            "(per-item answer losses under given context vectors, optionally the logits at\n"
            "the answer positions) and counts them.\n"
            "  CHECKPOINT                 directory with config.json + model.safetensors\n"
            "  --bind ENDPOINT            e.g. tcp://127.0.0.1:5560 (port * = any free one)\n"
            "  --endpoint-file FILE       write the bound endpoint there once serving\n"
            "  --max-batch N              largest batch per request (8)\n"
            "  --max-seq N                longest sequence (min(256, max positions))\n"
            "  --max-sets N               context sets per request (256)\n"
            "  --max-ctx N                context vectors per set (16)\n"
            "  --max-request-bytes N      larger requests get an error reply (64 MiB)\n"
            "  --max-queries N            query budget for the service's life (0 = none)\n"
            "  --max-logits N             floats of answer-position logits one reply may carry (4194304)\n"
            "  --curve-secret FILE        enable CURVE with this z85 server secret key\n"
            "  --curve-clients FILE       allowed client public keys, one a line\n"
            "  --threads N                CPU threads (0 = OpenMP default)\n");
}

static int should_stop(void *arg) {
    (void)arg;
    return vt_signals_local() != VT_STOP_NONE;
}

static int parse_num(const char *opt, const char *s, long long lo, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo) {
        fprintf(stderr, "vistune serve: --%s expects an integer >= %lld, got '%s'\n", opt, lo, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int serve_checkpoint(const char *ckpt, vt_serve_options *o, int threads, const char *endpoint_file,
                            const long long lim[7]) {
    vt_error err = {0};
    vt_ctx *ctx = NULL;
    vt_model *m = NULL;
    vt_serve *s = NULL;
    char path[PATH_MAX];
    vt_model_config mc;
    vt_model_config_default(&mc);
    snprintf(path, sizeof path, "%s/config.json", ckpt);
    vt_status st = vt_model_config_from_hf_json(path, &mc, &err);
    if (!st) {
        mc.freeze_vision = mc.freeze_projector = mc.freeze_language = true; /* no gradient memory */
        vt_ctx_options co = {.backend = VT_BACKEND_CPU, .threads = threads};
        st = vt_ctx_create(&ctx, &co, &err);
    }
    if (!st) st = vt_model_create(&m, ctx, &mc, 0, &err);
    if (!st) st = vt_model_import_hf(m, ckpt, &err);
    if (!st) {
        vt_serve_options given = *o; /* the defaults depend on the model; keep what the flags set */
        vt_serve_options_default(o, &mc);
        o->endpoint = given.endpoint;
        o->curve_secret_file = given.curve_secret_file;
        o->curve_clients_file = given.curve_clients_file;
        if (lim[0]) o->max_batch = (int)lim[0];
        if (lim[1]) o->max_seq = (int)lim[1];
        if (lim[2]) o->max_sets = (int)lim[2];
        if (lim[3]) o->max_ctx = (int)lim[3];
        if (lim[4]) o->max_request_bytes = (size_t)lim[4];
        o->max_queries = (uint64_t)lim[5];
        if (lim[6]) o->max_logits = (size_t)lim[6];
        st = vt_serve_open(&s, m, o, &err);
    }
    if (!st) st = vt_signals_install(&err);
    if (!st && endpoint_file) {
        char line[300];
        int n = snprintf(line, sizeof line, "%s\n", vt_serve_endpoint(s));
        st = vt_write_file_atomic(endpoint_file, line, (size_t)n, &err);
    }
    if (!st) {
        vt_info("serve: %s on %s (max batch %d, seq %d, budget %llu queries%s)", ckpt, vt_serve_endpoint(s),
                o->max_batch, o->max_seq, (unsigned long long)o->max_queries, o->curve_secret_file ? ", CURVE" : "");
        st = vt_serve_run(s, should_stop, NULL, &err);
        vt_serve_stats ss;
        vt_serve_get_stats(s, &ss);
        vt_info("serve: stopped after %llu queries in %llu requests (%llu rejected, %llu CURVE refusals)",
                (unsigned long long)ss.queries, (unsigned long long)ss.requests, (unsigned long long)ss.rejected,
                (unsigned long long)ss.auth_denied);
    }
    vt_serve_close(s);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    if (st) {
        const char *msg = strncmp(err.msg, "serve: ", 7) ? err.msg : err.msg + 7; /* no "serve: serve:" */
        fprintf(stderr, "vistune serve: %s\n", msg);
        return 1;
    }
    return 0;
}

/* One StatsRequest to a plain (non-CURVE) service. */
static int print_stats(const char *endpoint) {
    vt_error err = {0};
    vt_serve_client *c = NULL;
    vt_serve_client_options co = {.endpoint = endpoint, .timeout_ms = 5000};
    vt_serve_stats s;
    vt_status st = vt_serve_client_open(&c, &co, &err);
    if (!st) st = vt_serve_client_stats(c, &s, &err);
    vt_serve_client_close(c);
    if (st) {
        fprintf(stderr, "vistune serve: %s\n", err.msg);
        return 1;
    }
    printf("queries %llu requests %llu rejected %llu max_queries %llu auth_denied %llu\n",
           (unsigned long long)s.queries, (unsigned long long)s.requests, (unsigned long long)s.rejected,
           (unsigned long long)s.max_queries, (unsigned long long)s.auth_denied);
    return 0;
}

int vt_cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},        {"endpoint-file", required_argument, NULL, 'e'},
        {"max-batch", required_argument, NULL, 1},     {"max-seq", required_argument, NULL, 2},
        {"max-sets", required_argument, NULL, 3},      {"max-ctx", required_argument, NULL, 4},
        {"max-request-bytes", required_argument, NULL, 5}, {"max-queries", required_argument, NULL, 6},
        {"curve-secret", required_argument, NULL, 7},  {"curve-clients", required_argument, NULL, 8},
        {"threads", required_argument, NULL, 9},       {"keygen", required_argument, NULL, 'k'},
        {"stats", required_argument, NULL, 10},        {"max-logits", required_argument, NULL, 11},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    vt_serve_options o;
    vt_serve_options_default(&o, NULL);
    const char *endpoint_file = NULL, *keygen = NULL, *stats = NULL;
    long long lim[7] = {0}, threads = 0;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "b:e:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': o.endpoint = optarg; break;
        case 'e': endpoint_file = optarg; break;
        case 'k': keygen = optarg; break;
        case 10: stats = optarg; break;
        case 7: o.curve_secret_file = optarg; break;
        case 8: o.curve_clients_file = optarg; break;
        case 1: case 2: case 3: case 4: case 5: case 6:
            if (parse_num(opts[c + 1].name, optarg, c == 6 ? 0 : 1, &lim[c - 1])) return 2;
            break;
        case 11:
            if (parse_num("max-logits", optarg, 1, &lim[6])) return 2;
            break;
        case 9:
            if (parse_num("threads", optarg, 0, &threads)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune serve: bad option '%s' (see vistune serve --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (stats) {
        if (optind != argc) {
            fprintf(stderr, "vistune serve: --stats takes no CHECKPOINT (see vistune serve --help)\n");
            return 2;
        }
        return print_stats(stats);
    }
    if (keygen) {
        vt_error err = {0};
        if (optind != argc) {
            fprintf(stderr, "vistune serve: --keygen takes no CHECKPOINT (see vistune serve --help)\n");
            return 2;
        }
        if (vt_serve_keygen(keygen, &err)) {
            fprintf(stderr, "vistune serve: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    if (optind + 1 != argc || !o.endpoint) {
        fprintf(stderr, "vistune serve: expected CHECKPOINT and --bind ENDPOINT (see vistune serve --help)\n");
        return 2;
    }
    if (o.curve_clients_file && !o.curve_secret_file) {
        fprintf(stderr, "vistune serve: --curve-clients needs --curve-secret\n");
        return 2;
    }
    return serve_checkpoint(argv[optind], &o, (int)threads, endpoint_file, lim);
}
