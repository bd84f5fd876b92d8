/* A synthetic batch source: deterministic pseudo-random pixels and token rows
 * derived from (seed, epoch, sample index) alone. It is what the stream
 * tests and transport benchmarks run on, and what `vistune loader
 * --synthetic` serves, so the transport can be measured without storage
 * or decode cost. */
#ifndef VT_SYNTHETIC_H
#define VT_SYNTHETIC_H

#include <stdint.h>

#include "pipeline/batch.h"

typedef struct vt_synthetic_config {
    uint64_t seed;
    uint32_t channels, height, width, seq_len;
    uint32_t vocab;     /* token ids in [1, vocab); 0 is the pad id */
    int touch_only;     /* benchmarks: write one stamp value per sample and the
                           token rows, leave the rest of the pixels as they are */
} vt_synthetic_config;

/* Sets src to fill batches from cfg, which must outlive src. */
void vt_synthetic_source(vt_batch_source *src, const vt_synthetic_config *cfg);

#endif
