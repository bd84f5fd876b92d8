/* Greedy decoding, shared by validation during training and by evaluation.
 * The prompts are a vt_batch whose rows hold right-padded prompt tokens
 * (lengths[b] = prompt length, image positions expanded as for training) and
 * whose T leaves room for max_new more tokens. No KV cache: every new token
 * re-runs the forward pass over the whole row, which is fine for the short
 * answers of instruction benchmarks on small models and keeps one code path
 * with training (the logits are the training forward's, bit for bit). */
#ifndef VT_TRAINER_GENERATE_H
#define VT_TRAINER_GENERATE_H

#include <stdint.h>

#include "common/error.h"
#include "pipeline/batch.h"
#include "trainer/model.h"

/* Appends up to max_new greedy tokens to each row of batch->tokens (and
 * grows batch->lengths), stopping a row at the first stop token (eos_id, and
 * extra_stop_id when >= 0), which is not emitted. out_tokens [B * max_new]
 * receives the generated ids per row, out_len [B] how many. Requires
 * lengths[b] + max_new <= T for every row. */
vt_status vt_generate_greedy(vt_model *m, vt_batch *batch, int max_new, int32_t eos_id, int32_t extra_stop_id,
                             int32_t *out_tokens, int32_t *out_len, vt_error *err);

#endif
