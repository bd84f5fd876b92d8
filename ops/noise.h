/* Standard-normal noise from counter-based Philox streams, on either
 * backend, with the same numbers on both: stream s (keyed by keys[s]) gives
 * values in pairs, pair p from Philox4x32-10 block p of that key (the block's
 * words as two 53-bit uniforms u1, u2; Box-Muller: r = sqrt(-2 ln u1),
 * r cos(2 pi u2), r sin(2 pi u2)), exactly what drawing vt_rng_uniform_double
 * twice per pair from vt_rng_init(key) gives. Being a pure function of
 * (key, index), a device draws it in parallel and a resumed run redraws it. */
#ifndef VT_OPS_NOISE_H
#define VT_OPS_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ctx.h"

/* out[s * per_stream + j] (ctx memory) = value j of stream keys[s] (host). */
vt_status vt_normal_noise(vt_ctx *ctx, float *out, const uint64_t *keys, int streams, size_t per_stream);

#endif
