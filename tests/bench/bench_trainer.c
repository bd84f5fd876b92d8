/* Trainer benchmark, vistune side (driven by bench_trainer.sh):
 *   bench_trainer --out DIR [--preset small|smoke|gpu] [--backend cpu|cuda]
 *                 [--steps N] [--warmup W] [--threads T]
 * Builds the preset model (stage 2: vision tower frozen, projector and decoder
 * train), a deterministic synthetic batch, exports both to DIR (so the PyTorch
 * side trains the identical model on the identical batch), measures the
 * backend's float32 matrix-product peak through vistune's own linear op
 * (OpenBLAS sgemm with the same threads on CPU, cuBLAS on CUDA), then times
 * full training steps (forward + backward + clip + AdamW; on CUDA the step
 * ends with a device sync). Prints key=value lines. */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "ops/ops.h"
#include "trainer/model.h"
#include "trainer/safetensors.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Best rate of the backend's linear op (one sgemm: out = in . w^T) over a
 * few square sizes: the peak the matrix library reaches here. */
static double matmul_peak(vt_ctx *ctx) {
    bool gpu = vt_ctx_backend(ctx) == VT_BACKEND_CUDA;
    int sizes_cpu[] = {512, 1024, 1536}, sizes_gpu[] = {2048, 4096, 8192};
    double best = 0;
    for (int s = 0; s < 3; s++) {
        int n = gpu ? sizes_gpu[s] : sizes_cpu[s];
        size_t nn = (size_t)n * (size_t)n;
        float *h = malloc(sizeof(float) * nn), *a = NULL, *b = NULL, *c = NULL;
        for (size_t i = 0; i < nn; i++) h[i] = (float)(i % 7) * 0.1f - 0.3f;
        if (vt_ctx_alloc(ctx, (void **)&a, sizeof(float) * nn) || vt_ctx_alloc(ctx, (void **)&b, sizeof(float) * nn) ||
            vt_ctx_alloc(ctx, (void **)&c, sizeof(float) * nn) || vt_ctx_memcpy_h2d(ctx, a, h, sizeof(float) * nn) ||
            vt_ctx_memcpy_h2d(ctx, b, h, sizeof(float) * nn))
            return 0;
        for (int r = 0; r < 4; r++) { /* the first is the warm-up */
            double t0 = now();
            if (vt_linear_forward(ctx, c, a, b, NULL, n, n, n) || vt_ctx_sync(ctx)) return 0;
            double rate = 2.0 * (double)nn * (double)n / (now() - t0);
            if (r > 0 && rate > best) best = rate;
        }
        vt_ctx_free(ctx, a);
        vt_ctx_free(ctx, b);
        vt_ctx_free(ctx, c);
        free(h);
    }
    return best;
}

/* Model FLOPs of one training step (multiply-add = 2), counting attention
 * scores over the full T x T square as computed. Frozen vision tower: forward
 * only. Projector: forward + weight grads + input grad of linear_2.
 * Decoder and lm_head: forward + input grads + weight grads = 3x forward. */
static double step_flops(const vt_model_config *c, int B, int T) {
    double N = vt_model_image_tokens(c), Nv = N + 1, Dv = c->v_hidden, Iv = c->v_inter, P = c->patch_size;
    int fl = c->vision_feature_layer, run = fl < 0 ? c->v_layers + 1 + fl : fl;
    double vis = B * (2 * N * Dv * 3 * P * P + run * (2 * Nv * (4 * Dv * Dv + 2 * Dv * Iv) + 4 * Nv * Nv * Dv));
    double D = c->hidden, Ff = c->inter, V = c->vocab, KV = (double)c->kv_heads * (D / c->heads), BT = (double)B * T;
    double proj_fwd = 2 * B * N * (Dv * D + D * D);
    double proj = proj_fwd + 2 * B * N * (Dv * D + 2 * D * D);
    double dec_fwd = c->layers * (2 * BT * (2 * D * D + 2 * D * KV + 3 * D * Ff) + 4.0 * B * T * T * D) + 2 * BT * D * V;
    return vis + proj + 3 * dec_fwd;
}

int main(int argc, char **argv) {
    const char *out = NULL, *preset = "small", *backend = "cpu";
    int steps = 10, warmup = 2, threads = 2;
    static const struct option opts[] = {{"out", 1, 0, 'o'},    {"preset", 1, 0, 'p'},  {"steps", 1, 0, 's'},
                                         {"warmup", 1, 0, 'w'}, {"threads", 1, 0, 't'}, {"backend", 1, 0, 'b'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'o') out = optarg;
        else if (ch == 'p') preset = optarg;
        else if (ch == 'b') backend = optarg;
        else if (ch == 's') steps = atoi(optarg);
        else if (ch == 'w') warmup = atoi(optarg);
        else if (ch == 't') threads = atoi(optarg);
        else return 2;
    }
    bool cuda = !strcmp(backend, "cuda");
    if (!out || steps < 1 || warmup < 0 || threads < 1 || (!cuda && strcmp(backend, "cpu"))) {
        fprintf(stderr, "usage: bench_trainer --out DIR [--preset small|smoke|gpu] [--backend cpu|cuda] [--steps N] "
                        "[--warmup W] [--threads T]\n");
        return 2;
    }
    vt_model_config c;
    vt_model_config_default(&c);
    int B = 2, T = 48;
    if (!strcmp(preset, "small")) {
        /* ~12M parameters: CLIP 64px/8px (64 image tokens), 4 x 256 wide; LLaMA 4 x 384, GQA 6/2, vocab 4096. */
        c.v_hidden = 256, c.v_inter = 1024, c.v_layers = 4, c.v_heads = 4, c.image_size = 64, c.patch_size = 8;
        c.vocab = 4096, c.hidden = 384, c.inter = 1024, c.layers = 4, c.heads = 6, c.kv_heads = 2;
        c.image_token_index = 4095;
        B = 4, T = 256;
    } else if (!strcmp(preset, "gpu")) {
        /* ~245M parameters, sized for one GPU: CLIP-B/14 at 224 px (256 image tokens, 12 x 768, frozen);
         * LLaMA 8 x 1024, GQA 16/4, MLP 2816, vocab 32000. */
        c.v_hidden = 768, c.v_inter = 3072, c.v_layers = 12, c.v_heads = 12, c.image_size = 224, c.patch_size = 14;
        c.vocab = 32000, c.hidden = 1024, c.inter = 2816, c.layers = 8, c.heads = 16, c.kv_heads = 4;
        c.image_token_index = 31999, c.max_pos = 2048;
        B = 8, T = 1024;
    } else if (strcmp(preset, "smoke")) {
        fprintf(stderr, "bench_trainer: unknown preset '%s' (small, smoke, gpu)\n", preset);
        return 2;
    }
    vt_error err = {0};
    vt_ctx *ctx = NULL;
    vt_ctx_options opt = {.backend = cuda ? VT_BACKEND_CUDA : VT_BACKEND_CPU, .threads = threads, .device = 0};
    vt_model *m = NULL;
    if (vt_ctx_create(&ctx, &opt, &err) || vt_model_create(&m, ctx, &c, 42, &err)) {
        fprintf(stderr, "bench_trainer: %s\n", err.msg);
        return 1;
    }
    /* Synthetic batch: image tokens at 1..N, answer tokens (counted) after them. */
    int N = vt_model_image_tokens(&c), S = c.image_size;
    size_t BT = (size_t)B * T;
    float *pixels = malloc(sizeof(float) * B * 3 * S * S);
    int32_t *tokens = malloc(sizeof(int32_t) * BT), *targets = malloc(sizeof(int32_t) * BT);
    int32_t *lengths = malloc(sizeof(int32_t) * B);
    uint8_t *mask = malloc(BT);
    vt_rng r;
    vt_rng_init(&r, 99);
    for (int i = 0; i < B * 3 * S * S; i++) pixels[i] = (float)vt_rng_normal(&r);
    for (size_t i = 0; i < BT; i++) {
        int t = (int)(i % (size_t)T);
        tokens[i] = (t >= 1 && t <= N) ? c.image_token_index : (int32_t)vt_rng_below(&r, (uint64_t)c.vocab - 1);
        targets[i] = (int32_t)vt_rng_below(&r, (uint64_t)c.vocab - 1);
        mask[i] = (uint8_t)(t > N);
    }
    for (int b = 0; b < B; b++) lengths[b] = T;
    vt_batch batch = {.shape = {.batch = (uint32_t)B, .channels = 3, .height = (uint32_t)S, .width = (uint32_t)S,
                                .seq_len = (uint32_t)T},
                      .pixels = pixels, .tokens = tokens, .targets = targets, .loss_mask = mask, .lengths = lengths};
    char path[4096];
    snprintf(path, sizeof path, "%s/init", out);
    vt_status st = vt_model_export_hf(m, path, NULL, &err);
    if (!st) {
        vt_st_writer *w = vt_st_writer_new();
        int64_t ps[4] = {B, 3, S, S}, ts[2] = {B, T}, ls[1] = {B};
        st = vt_st_writer_add(w, "pixels", VT_ST_F32, 4, ps, pixels, &err);
        if (!st) st = vt_st_writer_add(w, "tokens", VT_ST_I32, 2, ts, tokens, &err);
        if (!st) st = vt_st_writer_add(w, "targets", VT_ST_I32, 2, ts, targets, &err);
        if (!st) st = vt_st_writer_add(w, "loss_mask", VT_ST_U8, 2, ts, mask, &err);
        if (!st) st = vt_st_writer_add(w, "lengths", VT_ST_I32, 1, ls, lengths, &err);
        snprintf(path, sizeof path, "%s/batch.safetensors", out);
        if (!st) st = vt_st_writer_write(w, path, &err);
        vt_st_writer_free(w);
    }
    if (st) {
        fprintf(stderr, "bench_trainer: %s\n", err.msg);
        return 1;
    }
    double peak = matmul_peak(ctx);
    if (peak <= 0) {
        fprintf(stderr, "bench_trainer: matrix-product peak: %s\n", vt_ctx_error(ctx)->msg);
        return 1;
    }
    vt_adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    double *times = malloc(sizeof(double) * (size_t)steps);
    float first_loss = 0, loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now();
        if (vt_model_forward(m, &batch, VT_FORWARD_LOSS, &loss, &err) || vt_model_zero_grad(m, &err) ||
            vt_model_backward(m, 1.0f / (float)m->loss_count, &err) || vt_model_step(m, &hp, s + 1, 1.0f, NULL, &err) ||
            vt_ctx_sync(ctx)) {
            fprintf(stderr, "bench_trainer: step %d: %s\n", s, err.msg);
            return 1;
        }
        double dt = now() - t0;
        if (s == 0) first_loss = loss;
        if (s >= warmup) times[s - warmup] = dt;
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = times[steps / 2], flops = step_flops(&c, B, T);
    printf("preset=%s backend=%s threads=%d B=%d T=%d params=%zu trainable=%zu\n", preset, backend, threads, B, T,
           m->num_params, m->num_trainable);
    printf("vistune_first_loss=%.6f\n", first_loss);
    printf("vistune_step_ms=%.2f (median of %d, min %.2f, max %.2f)\n", med * 1e3, steps, times[0] * 1e3,
           times[steps - 1] * 1e3);
    printf("step_gflop=%.3f\n", flops / 1e9);
    printf("vistune_gflops=%.2f\n", flops / med / 1e9);
    printf("matmul_peak_gflops=%.2f\n", peak / 1e9);
    free(times);
    free(pixels);
    free(tokens);
    free(targets);
    free(lengths);
    free(mask);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    return 0;
}
