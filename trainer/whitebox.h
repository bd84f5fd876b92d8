/* White-box prompt tuning (the upper bound of docs/blackbox.md): the frozen
 * model runs in-process and scores context sets exactly as `vistune serve`
 * does (same rows, per-item mean answer cross-entropy in double from the
 * logits), and also gives the TRUE gradient of a batch's count-weighted mean
 * answer loss with respect to the context vectors, by backprop through the
 * frozen model (vt_model.input override). The context goes in through the
 * input override at the positions holding the context ids instead of the
 * embedding rows the service overwrites: the same function when the model's
 * embeddings are untied (tied ones are refused: the output rows would move). */
#ifndef VT_TRAINER_WHITEBOX_H
#define VT_TRAINER_WHITEBOX_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "trainer/model.h"
#include "trainer/serve.h"

typedef struct vt_whitebox vt_whitebox;

/* Loads the checkpoint directory (config.json + model.safetensors) frozen on
 * the CPU with `threads` threads (0 = default) and sizes the activations for
 * (max_batch, max_seq) with input-gradient buffers. */
vt_status vt_whitebox_open(vt_whitebox **out, const char *ckpt_dir, int threads, int max_batch, int max_seq,
                           vt_error *err);
/* The same over a model the caller owns (every part must be frozen; it must
 * outlive the scorer). */
vt_status vt_whitebox_wrap(vt_whitebox **out, vt_model *m, int max_batch, int max_seq, vt_error *err);
void vt_whitebox_close(vt_whitebox *w);
vt_model *vt_whitebox_model(vt_whitebox *w);

/* What a service over this model would say in its StatsReply (limits: the
 * sizes given at open; max_sets 256, max_ctx 64, logits v1, no budget). */
void vt_whitebox_stats(const vt_whitebox *w, vt_serve_stats *out);

/* As vt_serve_client_score[_logits] against a service on the same model:
 * loss[s*B+b] = item b's mean CE over its counted positions under set s,
 * count[b]; logits (may be NULL) [n_sets, sum(count), vocab]. Every
 * position of a row holding one of the context ids takes that id's vector. */
vt_status vt_whitebox_score(vt_whitebox *w, const vt_serve_query *q, float *loss, uint32_t *count, float *logits,
                            vt_error *err);

/* The true gradient of L = (sum of CE over the counted positions of all
 * items) / (their number) under the one context set q->ctx (q->n_sets is
 * ignored, set 0 is used): grad gets n_ctx*hidden floats, *loss (may be
 * NULL) L as the model computed it. One forward + one backward. */
vt_status vt_whitebox_grad(vt_whitebox *w, const vt_serve_query *q, float *grad, double *loss, vt_error *err);

#endif
