/* Deterministic epoch permutations and their rank/micro-batch slices (the
 * contract is written out in sampler.h). The permutation is rebuilt only
 * when the epoch changes, so a loader serving requests in step order pays one
 * O(N) shuffle per epoch. */
#include "pipeline/sampler.h"

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

vt_status vt_sampler_init(vt_sampler *s, const vt_sampler_config *cfg, vt_error *err) {
    s->perm = NULL;
    s->cached_epoch = UINT64_MAX;
    s->steps_per_epoch = 0;
    s->indices = NULL;
    if (cfg->num_samples == 0) return vt_fail(err, VT_ERR_ARG, "sampler: dataset is empty (0 samples)");
    if (cfg->global_batch == 0) return vt_fail(err, VT_ERR_ARG, "sampler: global batch size must be > 0");
    if (cfg->remainder != VT_REMAINDER_DROP && cfg->remainder != VT_REMAINDER_WRAP)
        return vt_fail(err, VT_ERR_ARG, "sampler: unknown remainder mode %d", (int)cfg->remainder);
    if (cfg->remainder == VT_REMAINDER_DROP && cfg->global_batch > cfg->num_samples)
        return vt_fail(err, VT_ERR_ARG,
                       "sampler: global batch %u exceeds the %llu samples of the dataset "
                       "(no full step per epoch; use remainder 'wrap' or a smaller batch)",
                       cfg->global_batch, (unsigned long long)cfg->num_samples);
    if (cfg->num_samples > SIZE_MAX / sizeof(uint64_t))
        return vt_fail(err, VT_ERR_RANGE, "sampler: %llu samples do not fit in memory",
                       (unsigned long long)cfg->num_samples);
    s->cfg = *cfg;
    s->cfg.indices = NULL;
    if (cfg->indices) {
        s->indices = malloc(cfg->num_samples * sizeof *s->indices);
        if (!s->indices)
            return vt_fail(err, VT_ERR_NOMEM, "sampler: cannot allocate the list of %llu indices",
                           (unsigned long long)cfg->num_samples);
        memcpy(s->indices, cfg->indices, cfg->num_samples * sizeof *s->indices);
    }
    uint64_t n = cfg->num_samples, g = cfg->global_batch;
    s->steps_per_epoch = cfg->remainder == VT_REMAINDER_DROP ? n / g : (n + g - 1) / g;
    return VT_OK;
}

void vt_sampler_free(vt_sampler *s) {
    free(s->perm);
    s->perm = NULL;
    free(s->indices);
    s->indices = NULL;
    s->cached_epoch = UINT64_MAX;
}

uint64_t vt_sampler_steps_per_epoch(const vt_sampler *s) { return s->steps_per_epoch; }

uint64_t vt_sampler_sample_seed(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t purpose) {
    return vt_hash4(seed, epoch, index, purpose);
}

static vt_status build_perm(vt_sampler *s, uint64_t epoch, vt_error *err) {
    if (s->perm && s->cached_epoch == epoch) return VT_OK;
    uint64_t n = s->cfg.num_samples;
    if (!s->perm) {
        s->perm = malloc(n * sizeof *s->perm);
        if (!s->perm)
            return vt_fail(err, VT_ERR_NOMEM, "sampler: cannot allocate the permutation of %llu samples",
                           (unsigned long long)n);
    }
    for (uint64_t i = 0; i < n; i++) s->perm[i] = i;
    /* N is part of the key so datasets of different sizes get unrelated orders. */
    vt_rng r;
    vt_rng_init(&r, vt_hash4(s->cfg.seed, epoch, n, VT_PURPOSE_PERM));
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = vt_rng_below(&r, i + 1);
        uint64_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->cached_epoch = epoch;
    return VT_OK;
}

vt_status vt_sampler_check_split(const vt_sampler *s, uint32_t ranks, uint32_t micro_count,
                                 uint32_t *per_micro, vt_error *err) {
    uint32_t g = s->cfg.global_batch;
    if (ranks == 0 || micro_count == 0)
        return vt_fail(err, VT_ERR_ARG, "sampler: %u trainer ranks x %u micro-batches is not a split",
                       ranks, micro_count);
    if (g % ranks)
        return vt_fail(err, VT_ERR_ARG,
                       "sampler: global batch %u is not divisible by the %u trainer ranks", g, ranks);
    if ((g / ranks) % micro_count)
        return vt_fail(err, VT_ERR_ARG,
                       "sampler: per-rank batch %u (global %u / %u ranks) is not divisible by %u micro-batches",
                       g / ranks, g, ranks, micro_count);
    if (per_micro) *per_micro = g / ranks / micro_count;
    return VT_OK;
}

vt_status vt_sampler_slice(vt_sampler *s, uint64_t epoch, uint64_t step, uint32_t rank, uint32_t ranks,
                           uint32_t micro, uint32_t micro_count, uint64_t *out, vt_error *err) {
    uint32_t b;
    vt_status st = vt_sampler_check_split(s, ranks, micro_count, &b, err);
    if (st) return st;
    if (rank >= ranks) return vt_fail(err, VT_ERR_ARG, "sampler: rank %u out of range (%u ranks)", rank, ranks);
    if (micro >= micro_count)
        return vt_fail(err, VT_ERR_ARG, "sampler: micro-batch %u out of range (%u per step)", micro, micro_count);
    if (step >= s->steps_per_epoch)
        return vt_fail(err, VT_ERR_RANGE, "sampler: step %llu out of range (%llu steps per epoch)",
                       (unsigned long long)step, (unsigned long long)s->steps_per_epoch);
    if ((st = build_perm(s, epoch, err))) return st;
    uint64_t n = s->cfg.num_samples;
    uint64_t start = step * s->cfg.global_batch + (uint64_t)rank * (s->cfg.global_batch / ranks) +
                     (uint64_t)micro * b;
    for (uint32_t j = 0; j < b; j++) {
        uint64_t p = s->perm[(start + j) % n];
        out[j] = s->indices ? s->indices[p] : p;
    }
    return VT_OK;
}

void vt_sampler_cursor_advance(const vt_sampler *s, vt_sampler_cursor *c, uint32_t micro_count) {
    if (++c->micro < micro_count) return;
    c->micro = 0;
    if (++c->step < s->steps_per_epoch) return;
    c->step = 0;
    c->epoch++;
}
