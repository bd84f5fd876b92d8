/* Synthetic batches: a pure function of (seed, epoch, sample index), keyed
 * the same way real augmentation is (vt_sampler_sample_seed), so two
 * processes filling the same request produce the same bytes. */
#include "pipeline/synthetic.h"

#include "pipeline/sampler.h"

/* xorshift64*: a fast stream for bulk pixels; the key comes from Philox's hash. */
static inline uint64_t next(uint64_t *x) {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

static vt_status fill(void *ctx, vt_batch *out, vt_error *err) {
    (void)err;
    const vt_synthetic_config *c = ctx;
    const vt_batch_shape *s = &out->shape;
    size_t pix = (size_t)s->channels * s->height * s->width, T = s->seq_len;
    for (uint32_t b = 0; b < s->batch; b++) {
        uint64_t idx = out->sample_indices[b];
        uint64_t x = vt_sampler_sample_seed(c->seed, out->epoch, idx, VT_PURPOSE_AUGMENT) | 1;
        float *p = out->pixels + b * pix;
        if (c->touch_only) {
            if (pix) p[0] = (float)idx;
        } else {
            for (size_t i = 0; i < pix; i++) p[i] = (float)(next(&x) >> 40) * (4.0f / 16777216.0f) - 2.0f;
        }
        uint32_t len = (uint32_t)(T / 2 + next(&x) % (T - T / 2 + 1));
        if (len == 0) len = 1;
        int32_t *tok = out->tokens + b * T, *tgt = out->targets + b * T;
        uint8_t *mask = out->loss_mask + b * T;
        uint32_t vocab = c->vocab > 1 ? c->vocab : 2;
        for (size_t t = 0; t < T; t++) tok[t] = t < len ? (int32_t)(1 + next(&x) % (vocab - 1)) : 0;
        for (size_t t = 0; t < T; t++) {
            tgt[t] = t + 1 < len ? tok[t + 1] : 0;
            mask[t] = t + 1 < len && t >= len / 2;
        }
        out->lengths[b] = (int32_t)len;
    }
    return VT_OK;
}

void vt_synthetic_source(vt_batch_source *src, const vt_synthetic_config *cfg) {
    src->fill = fill;
    src->ctx = (void *)cfg;
    src->sample_shape = (vt_batch_shape){0, cfg->channels, cfg->height, cfg->width, cfg->seq_len};
}
