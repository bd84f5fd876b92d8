/* Philox Box-Muller noise on the CPU (the CUDA kernel in ops/cuda/noise.cu
 * computes the same pairs one per thread). */
#include "ops/noise.h"

#include <math.h>

#include "common/rng.h"
#include "ops/ctx_internal.h"

vt_status vt_normal_noise(vt_ctx *ctx, float *out, const uint64_t *keys, int streams, size_t per_stream) {
    VT_OPS_CTX(ctx);
    static const char op[] = "vt_normal_noise";
    VT_OPS_REQUIRE(ctx, op, streams >= 0, "streams=%d", streams);
    if (streams == 0 || per_stream == 0) return VT_OK;
    VT_OPS_PTR(ctx, op, out);
    VT_OPS_PTR(ctx, op, keys);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_normal_noise(ctx, out, keys, streams, per_stream);
#endif
    for (int s = 0; s < streams; s++) {
        float *o = out + (size_t)s * per_stream;
        for (size_t p = 0; 2 * p < per_stream; p++) {
            uint32_t w[4];
            vt_philox4x32(keys[s], 0, p, w);
            double u1 = (double)((((uint64_t)w[0] << 32) | w[1]) >> 11) * (1.0 / 9007199254740992.0);
            double u2 = (double)((((uint64_t)w[2] << 32) | w[3]) >> 11) * (1.0 / 9007199254740992.0);
            if (u1 < 1e-300) u1 = 1e-300;
            double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
            o[2 * p] = (float)(rad * cos(th));
            if (2 * p + 1 < per_stream) o[2 * p + 1] = (float)(rad * sin(th));
        }
    }
    return VT_OK;
}
