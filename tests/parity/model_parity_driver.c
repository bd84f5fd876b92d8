/* C side of the model parity test (driven by test_model_parity.py):
 *   model_parity_driver DIR
 * reads DIR/model.yaml (the `model:` section) and DIR/batch.safetensors,
 * builds the model from seed 1234, exports its initial weights to DIR/init/
 * (Hugging Face layout), and writes DIR/out.safetensors with the logits, the
 * masked loss, every trainable gradient ("grad.<name>") and the losses of 10
 * AdamW steps ("losses"). Exit 0 on success, 1 with one line on failure. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "ops/ops.h"
#include "trainer/model.h"
#include "trainer/safetensors.h"

static int die(const char *what, const vt_error *err) {
    fprintf(stderr, "model_parity_driver: %s: %s\n", what, err->msg);
    return 1;
}

/* A copy of the tensor's bytes: file data need not be aligned for its type. */
static void *need(const vt_st_file *f, const char *name, vt_st_dtype dt, int64_t numel, vt_error *err) {
    const vt_st_tensor *t = vt_st_find(f, name);
    if (!t || t->dtype != dt || t->numel != numel) {
        vt_fail(err, VT_ERR_FORMAT, "batch: tensor '%s' missing or not %s[%lld]", name, vt_st_dtype_name(dt),
                (long long)numel);
        return NULL;
    }
    void *p = malloc(t->end - t->begin + 1);
    if (p) memcpy(p, t->data, t->end - t->begin);
    return p;
}

int main(int argc, char **argv) {
    bool cuda = argc == 3 && !strcmp(argv[2], "--cuda");
    if (argc != 2 && !cuda) {
        fprintf(stderr, "usage: model_parity_driver DIR [--cuda]\n");
        return 2;
    }
    if (cuda && vt_cuda_device_count() == 0) {
        fprintf(stderr, "model_parity_driver: no CUDA device (or no CUDA backend): skipped\n");
        return 77;
    }
    const char *dir = argv[1];
    char path[4096];
    vt_error err = {0};
    vt_config *cfg = NULL;
    snprintf(path, sizeof path, "%s/model.yaml", dir);
    if (vt_config_load(path, &cfg, &err)) return die("config", &err);
    vt_model_config mc;
    vt_model_config_default(&mc);
    int64_t B = 0, T = 0;
    if (vt_model_config_read(cfg, "model", &mc, &err) || vt_config_require_int(cfg, "batch.B", &B, &err) ||
        vt_config_require_int(cfg, "batch.T", &T, &err) || vt_config_check_unused(cfg, &err))
        return die("config", &err);
    vt_config_free(cfg);

    snprintf(path, sizeof path, "%s/batch.safetensors", dir);
    vt_st_file *bf = NULL;
    if (vt_st_open(path, &bf, &err)) return die("batch", &err);
    int64_t S = mc.image_size, BT = B * T;
    vt_batch batch = {.shape = {.batch = (uint32_t)B, .channels = 3, .height = (uint32_t)S, .width = (uint32_t)S,
                                .seq_len = (uint32_t)T}};
    batch.pixels = (float *)need(bf, "pixels", VT_ST_F32, B * 3 * S * S, &err);
    batch.tokens = (int32_t *)need(bf, "tokens", VT_ST_I32, BT, &err);
    batch.targets = (int32_t *)need(bf, "targets", VT_ST_I32, BT, &err);
    batch.loss_mask = (uint8_t *)need(bf, "loss_mask", VT_ST_U8, BT, &err);
    batch.lengths = (int32_t *)need(bf, "lengths", VT_ST_I32, B, &err);
    if (!batch.pixels || !batch.tokens || !batch.targets || !batch.loss_mask || !batch.lengths)
        return die("batch", &err);

    vt_ctx *ctx = NULL;
    /* tiny shapes: threads only add contention */
    vt_ctx_options opt = {.backend = cuda ? VT_BACKEND_CUDA : VT_BACKEND_CPU, .threads = 1, .device = 0};
    if (vt_ctx_create(&ctx, &opt, &err)) return die("ctx", &err);
    vt_model *m = NULL;
    if (vt_model_create(&m, ctx, &mc, 1234, &err)) return die("model", &err);
    snprintf(path, sizeof path, "%s/init", dir);
    const char *meta[] = {"producer", "model_parity_driver", NULL};
    if (vt_model_export_hf(m, path, meta, &err)) return die("export", &err);

    size_t V = (size_t)mc.vocab;
    float *logits = malloc(sizeof(float) * (size_t)BT * V);
    float *grads = malloc(sizeof(float) * (m->num_trainable ? m->num_trainable : 1));
    float loss = 0, losses[10];
    if (!logits || !grads) return 1;
    if (vt_model_forward(m, &batch, VT_FORWARD_LOGITS, NULL, &err)) return die("forward (logits)", &err);
    if (vt_ctx_memcpy_d2h(ctx, logits, vt_model_logits(m), sizeof(float) * (size_t)BT * V))
        return die("logits", vt_ctx_error(ctx));
    if (vt_model_forward(m, &batch, VT_FORWARD_LOSS, &loss, &err) || vt_model_zero_grad(m, &err) ||
        vt_model_backward(m, 1.0f / (float)m->loss_count, &err))
        return die("forward/backward", &err);
    if (vt_ctx_memcpy_d2h(ctx, grads, m->grads, sizeof(float) * m->num_trainable))
        return die("grads", vt_ctx_error(ctx));

    vt_adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    for (int s = 1; s <= 10; s++) {
        float norm = 0;
        if (vt_model_forward(m, &batch, VT_FORWARD_LOSS, &losses[s - 1], &err) || vt_model_zero_grad(m, &err) ||
            vt_model_backward(m, 1.0f / (float)m->loss_count, &err) || vt_model_step(m, &hp, s, 1.0f, &norm, &err))
            return die("training step", &err);
    }

    vt_st_writer *w = vt_st_writer_new();
    int64_t lshape[3] = {B, T, (int64_t)V}, one = 1, ten = 10;
    vt_status st = vt_st_writer_add(w, "logits", VT_ST_F32, 3, lshape, logits, &err);
    if (!st) st = vt_st_writer_add(w, "loss", VT_ST_F32, 1, &one, &loss, &err);
    if (!st) st = vt_st_writer_add(w, "losses", VT_ST_F32, 1, &ten, losses, &err);
    char name[160];
    for (int i = 0; !st && i < m->ntensors; i++) {
        const vt_param_info *p = &m->tensors[i];
        if (!p->trainable) continue;
        snprintf(name, sizeof name, "grad.%s", p->name);
        st = vt_st_writer_add(w, name, VT_ST_F32, p->ndim, p->shape, grads + (p->offset - m->train_offset), &err);
    }
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    if (!st) st = vt_st_writer_write(w, path, &err);
    vt_st_writer_free(w);
    if (st) return die("write", &err);
    printf("model_parity_driver: %zu params (%zu trainable), loss %.6f, masked positions %d\n", m->num_params,
           m->num_trainable, loss, m->loss_count);
    free(logits);
    free(grads);
    vt_model_free(m);
    vt_ctx_destroy(ctx);
    vt_st_close(bf);
    free(batch.pixels);
    free(batch.tokens);
    free(batch.targets);
    free(batch.loss_mask);
    free(batch.lengths);
    return 0;
}
