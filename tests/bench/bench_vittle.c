/* Vittle's cost per model pass, without data loading or checkpoints:
 *   bench_vittle [--preset tiny|wide|deep] [--reps N] [--threads T]
 * Builds the preset model (stage 2 freezing), one deterministic batch
 * (B 8, T 192, 16 image tokens per row, 8 answer tokens), and times,
 * alternating plain and Vittle-attached passes in each repetition:
 *   infer: vt_model_forward(LOGITS), the layer in its inference form
 *          (h' = (1 - alpha_end) h + alpha_end mu), i.e. one greedy-decoding
 *          step of validation / eval;
 *   train: forward(LOSS) + backward, the layer sampling noise and adding KL.
 * Prints medians and the overhead. Driven by bench_vittle.sh. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trainer/model.h"
#include "trainer/vittle.h"

enum { B = 8, T = 192, NIMG = 16, ANS = 8 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

#define CHECK(x)                                                   \
    do {                                                           \
        if ((x) != VT_OK) {                                        \
            fprintf(stderr, "bench_vittle: %s: %s\n", #x, err.msg); \
            return 1;                                              \
        }                                                          \
    } while (0)

int main(int argc, char **argv) {
    const char *preset = "tiny";
    int reps = 10, threads = 1;
    static const struct option opts[] = {{"preset", required_argument, NULL, 'p'},
                                         {"reps", required_argument, NULL, 'r'},
                                         {"threads", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:r:t:", opts, NULL)) != -1) {
        if (c == 'p') preset = optarg;
        else if (c == 'r') reps = atoi(optarg);
        else if (c == 't') threads = atoi(optarg);
        else return 2;
    }
    vt_error err = {0};
    vt_model_config mc;
    vt_model_config_default(&mc);
    mc.freeze_vision = true;
    mc.max_pos = T;
    if (!strcmp(preset, "wide") || !strcmp(preset, "deep")) {
        mc.hidden = 256, mc.inter = 688, mc.heads = 8, mc.kv_heads = 4;
        mc.layers = strcmp(preset, "deep") ? 4 : 16;
    } else if (strcmp(preset, "tiny")) {
        fprintf(stderr, "bench_vittle: unknown preset '%s'\n", preset);
        return 2;
    }
    vt_ctx *ctx = NULL;
    vt_ctx_options co = {.backend = VT_BACKEND_CPU, .threads = threads, .device = -1};
    CHECK(vt_ctx_create(&ctx, &co, &err));
    vt_model *m = NULL;
    CHECK(vt_model_create(&m, ctx, &mc, 1, &err));
    vt_batch b;
    vt_batch_shape bs = {.batch = B, .channels = 3, .height = (uint32_t)mc.image_size,
                         .width = (uint32_t)mc.image_size, .seq_len = T};
    CHECK(vt_batch_alloc(&b, &bs, &err));
    size_t npx = (size_t)B * 3 * mc.image_size * mc.image_size;
    for (size_t i = 0; i < npx; i++) b.pixels[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < B; i++) {
        b.lengths[i] = T - 8 * i; /* some right padding, as real batches */
        b.sample_indices[i] = (uint64_t)i;
        for (int t = 0; t < T; t++) {
            size_t k = (size_t)i * T + t;
            b.tokens[k] = t >= 4 && t < 4 + NIMG ? mc.image_token_index : (int32_t)((i * 31 + t * 7) % 256);
            b.targets[k] = (int32_t)((t * 13 + i) % 256);
            b.loss_mask[k] = (uint8_t)(t >= b.lengths[i] - ANS - 1 && t < b.lengths[i] - 1);
        }
    }
    vt_bottleneck_config bc;
    vt_bottleneck_config_default(&bc);
    double *ti[2], *tt[2];
    for (int k = 0; k < 2; k++) {
        ti[k] = calloc((size_t)reps, sizeof(double));
        tt[k] = calloc((size_t)reps, sizeof(double));
    }
    /* One layer for the whole run (as in training); plain passes hide its hook (nhooks 0). */
    vt_vittle *v = NULL;
    CHECK(vt_vittle_attach(&v, m, &bc, 1, &err));
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        for (int with = 0; with < 2; with++) {
            m->nhooks = with;
            if (with) vt_vittle_set(v, false, bc.alpha_end, 0, 1.0f);
            double t0 = now();
            CHECK(vt_model_forward(m, &b, VT_FORWARD_LOGITS, NULL, &err));
            double t1 = now();
            if (with) vt_vittle_set(v, true, 0.25f, (uint64_t)r, 1.0f);
            CHECK(vt_model_zero_grad(m, &err));
            double t2 = now();
            CHECK(vt_model_forward(m, &b, VT_FORWARD_LOSS, NULL, &err));
            CHECK(vt_model_backward(m, 1.0f / (float)m->loss_count, &err));
            double t3 = now();
            if (r >= 0) ti[with][r] = t1 - t0, tt[with][r] = t3 - t2;
        }
    }
    m->nhooks = 1;
    vt_vittle_free(v);
    double i0 = median(ti[0], reps), i1 = median(ti[1], reps), t0 = median(tt[0], reps), t1 = median(tt[1], reps);
    /* after median() sorted them: [0] is the fastest repetition (least disturbed by other load) */
    double i0m = ti[0][0], i1m = ti[1][0], t0m = tt[0][0], t1m = tt[1][0];
    printf("preset %s: width %d, %d blocks (layer after block %d), B %d x T %d, %d reps, %d thread(s)\n", preset,
           mc.hidden, mc.layers, (3 * mc.layers) / 4, B, T, reps, threads);
    printf("  inference forward  median: plain %8.2f ms  vittle %8.2f ms  overhead %+5.1f%%   "
           "fastest: %8.2f / %8.2f ms  %+5.1f%%\n",
           1e3 * i0, 1e3 * i1, 100 * (i1 / i0 - 1), 1e3 * i0m, 1e3 * i1m, 100 * (i1m / i0m - 1));
    printf("  training fwd+bwd   median: plain %8.2f ms  vittle %8.2f ms  overhead %+5.1f%%   "
           "fastest: %8.2f / %8.2f ms  %+5.1f%%\n",
           1e3 * t0, 1e3 * t1, 100 * (t1 / t0 - 1), 1e3 * t0m, 1e3 * t1m, 100 * (t1m / t0m - 1));
    for (int k = 0; k < 2; k++) free(ti[k]), free(tt[k]);
    vt_batch_free(&b);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    return 0;
}
