/* The determinism contract (DESIGN §2): which samples make up every global
 * step, every trainer rank's share of it and every gradient-accumulation
 * micro-batch, as a pure function of (seed, epoch, step, rank, R, micro, M).
 *
 * For global batch G the samples of global step s in epoch e are
 *   perm(seed, e)[s*G + j]            j = 0 .. G-1
 * where perm is one Fisher-Yates shuffle of 0..N-1 keyed by
 * vt_hash4(seed, e, N, VT_PURPOSE_PERM). Trainer rank r of R takes the r-th
 * contiguous G/R of them; micro-batch m of M takes the m-th contiguous
 * G/(R*M) of that. So a run resumed at (epoch, step) with any R sees the
 * same global order (elastic resume), and a loader serving a request needs
 * nothing but the request and the run's (seed, N, G).
 *
 * The remainder, when G does not divide N (VT_REMAINDER_*):
 *   DROP (default): steps_per_epoch = floor(N/G). Each epoch uses perm[0, S*G):
 *     every sample is seen AT MOST once per epoch, and EXACTLY once when
 *     G divides N. The N mod G left out are perm's last entries, a different
 *     random set each epoch (perm changes), so none is starved in the long run.
 *   WRAP: steps_per_epoch = ceil(N/G); positions past N wrap to perm[p - N]
 *     (p mod N). Every sample is seen AT LEAST once per epoch; the
 *     S*G - N padding samples are the epoch's first ones, seen twice.
 * Either way every trainer rank gets exactly steps_per_epoch * M batches of
 * equal size, so collectives never hang on an uneven last batch.
 *
 * Index list: with cfg.indices set, N is the length of that list and the
 * permutation runs over list positions; slices hand out indices[perm[p]].
 * Training uses it to draw from the train split only (the list of training
 * indices in store order, built identically on every rank), so the contract
 * above holds unchanged over that list.
 *
 * Not thread-safe: a vt_sampler caches one epoch's permutation (8N bytes). */
#ifndef VT_SAMPLER_H
#define VT_SAMPLER_H

#include <stdint.h>

#include "common/error.h"

typedef enum vt_remainder { VT_REMAINDER_DROP = 0, VT_REMAINDER_WRAP = 1 } vt_remainder;

/* Purposes for per-sample seeds: distinct streams for distinct uses. */
enum {
    VT_PURPOSE_PERM = 0x7065726d,    /* the epoch permutation itself */
    VT_PURPOSE_AUGMENT = 0x61756700, /* crop / flip / colour augmentation */
    VT_PURPOSE_SHIFT = 0x73686600,   /* distribution-shift corruption */
    VT_PURPOSE_NOISE = 0x6e6f6900,   /* method noise draws (ROSS, bottleneck) */
    VT_PURPOSE_DEMO = 0x64656d00,    /* in-context demonstration choice */
};

typedef struct vt_sampler_config {
    uint64_t num_samples;  /* N > 0 */
    uint64_t seed;
    uint32_t global_batch; /* G > 0 */
    vt_remainder remainder;
    const uint64_t *indices; /* NULL: samples 0..N-1; else N dataset indices (copied at init) */
} vt_sampler_config;

typedef struct vt_sampler {
    vt_sampler_config cfg;
    uint64_t steps_per_epoch;
    uint64_t *perm;        /* cached permutation of cached_epoch */
    uint64_t cached_epoch; /* UINT64_MAX when none */
    uint64_t *indices;     /* copy of cfg.indices, NULL for 0..N-1 */
} vt_sampler;

/* Validates cfg (N > 0, G > 0, and in DROP mode G <= N so an epoch has at
 * least one step). No permutation is built until first use. */
vt_status vt_sampler_init(vt_sampler *s, const vt_sampler_config *cfg, vt_error *err);
void vt_sampler_free(vt_sampler *s);

uint64_t vt_sampler_steps_per_epoch(const vt_sampler *s);

/* Checks a (ranks, micro_count) split of G: G % R == 0 and (G/R) % M == 0;
 * on success *per_micro = G/(R*M). The error names the numbers. */
vt_status vt_sampler_check_split(const vt_sampler *s, uint32_t ranks, uint32_t micro_count,
                                 uint32_t *per_micro, vt_error *err);

/* The sample indices of micro-batch `micro` of `micro_count` of trainer rank
 * `rank` of `ranks` at (epoch, step): writes G/(ranks*micro_count) indices
 * to out. Errors: step >= steps_per_epoch, rank >= ranks, micro >= count,
 * a split that does not divide G, out of memory. */
vt_status vt_sampler_slice(vt_sampler *s, uint64_t epoch, uint64_t step, uint32_t rank, uint32_t ranks,
                           uint32_t micro, uint32_t micro_count, uint64_t *out, vt_error *err);

/* Seed of one sample's randomness for one purpose: vt_hash4(seed, epoch,
 * index, purpose). Independent of which loader, rank or R handles it. */
uint64_t vt_sampler_sample_seed(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t purpose);

/* A position in the stream of one trainer rank: next micro-batch to use.
 * Resume = save (epoch, step) at an optimizer-step boundary (micro = 0) and
 * restart from it with any R. */
typedef struct vt_sampler_cursor {
    uint64_t epoch;
    uint64_t step;
    uint32_t micro;
} vt_sampler_cursor;

/* Moves the cursor one micro-batch on, rolling over into the next step and
 * epoch. */
void vt_sampler_cursor_advance(const vt_sampler *s, vt_sampler_cursor *c, uint32_t micro_count);

#endif
