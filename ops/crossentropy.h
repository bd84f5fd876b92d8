/* Softmax cross-entropy over vocabulary logits with a loss mask: the loss is
 * the mean over counted positions only (answer tokens), and the count is
 * reported so callers can normalise across micro-batches and ranks. */
#ifndef VT_OPS_CROSSENTROPY_H
#define VT_OPS_CROSSENTROPY_H

#include <stdint.h>

#include "ops/ctx.h"

/* logits, probs [N, V]; targets [N]; mask [N] (nonzero = counted; NULL = all
 * positions count). Writes probs = softmax(logits) for every row (probs may
 * alias logits), losses[n] = -log probs[n, targets[n]] for counted rows and 0
 * elsewhere (losses may be NULL), and on the host *mean_loss = mean over
 * counted rows (0 when none) and *count = number of counted rows (either host
 * pointer may be NULL). A counted target outside [0, V) is VT_ERR_RANGE;
 * uncounted rows' targets are ignored (e.g. -100). */
vt_status vt_crossentropy_forward(vt_ctx *ctx, float *probs, float *losses, const float *logits,
                                  const int32_t *targets, const uint8_t *mask, int N, int V,
                                  float *mean_loss, int *count);
/* dlogits[n, :] += scale * (probs[n, :] - onehot(targets[n])) for counted rows.
 * For the mean loss pass scale = 1/count (or 1/total count over all
 * micro-batches and ranks when accumulating). dlogits must not alias probs. */
vt_status vt_crossentropy_backward(vt_ctx *ctx, float *dlogits, const float *probs,
                                   const int32_t *targets, const uint8_t *mask, int N, int V,
                                   float scale);

#endif
