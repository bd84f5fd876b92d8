/* Greedy decoding over the model's forward pass (see generate.h). */
#include "trainer/generate.h"

#include <stdbool.h>
#include <stdlib.h>

vt_status vt_generate_greedy(vt_model *m, vt_batch *batch, int max_new, int32_t eos_id, int32_t extra_stop_id,
                             int32_t *out_tokens, int32_t *out_len, vt_error *err) {
    const int B = (int)batch->shape.batch, T = (int)batch->shape.seq_len, V = m->cfg.vocab;
    if (max_new < 0) return vt_fail(err, VT_ERR_ARG, "generate: max_new %d < 0", max_new);
    for (int b = 0; b < B; b++) {
        out_len[b] = 0;
        if (batch->lengths[b] < 1 || batch->lengths[b] + max_new > T)
            return vt_fail(err, VT_ERR_RANGE,
                           "generate: row %d: prompt of %d tokens + %d new exceeds the batch length %d", b,
                           batch->lengths[b], max_new, T);
    }
    bool *done = calloc((size_t)B, sizeof *done);
    float *row = malloc((size_t)V * sizeof *row);
    if (!done || !row) {
        free(done);
        free(row);
        return vt_fail(err, VT_ERR_NOMEM, "generate: out of memory");
    }
    vt_status st = VT_OK;
    for (int step = 0; step < max_new && !st; step++) {
        bool any = false;
        for (int b = 0; b < B; b++) any |= !done[b];
        if (!any) break;
        st = vt_model_forward(m, batch, VT_FORWARD_LOGITS, NULL, err);
        if (st) break;
        const float *logits = vt_model_logits(m);
        for (int b = 0; b < B && !st; b++) {
            if (done[b]) continue;
            int pos = batch->lengths[b] - 1;
            st = vt_ctx_memcpy_d2h(m->ctx, row, logits + ((size_t)b * T + pos) * V, (size_t)V * sizeof *row);
            if (st) {
                vt_fail(err, st, "generate: reading logits: %s", vt_ctx_error(m->ctx)->msg);
                break;
            }
            int best = 0; /* first maximum: ties resolve to the lowest id, like torch.argmax */
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            if (best == eos_id || best == extra_stop_id) {
                done[b] = true;
                continue;
            }
            out_tokens[(size_t)b * max_new + out_len[b]++] = best;
            batch->tokens[(size_t)b * T + batch->lengths[b]] = best;
            batch->lengths[b]++;
        }
    }
    free(done);
    free(row);
    return st;
}
