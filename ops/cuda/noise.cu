/* Philox4x32-10 Box-Muller noise (ops/noise.h): one thread per pair of
 * values, the same Philox block and double-precision transform as the CPU. */
#include "ops/cuda/cuda_common.cuh"

__device__ static void philox4x32(uint64_t key, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0, c1 = lo1, c2 = n2, c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

__global__ static void noise_kernel(float *out, const uint64_t *keys, int streams, size_t per, size_t pairs) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)streams * pairs;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t s = i / pairs, p = i % pairs;
        uint32_t w[4];
        philox4x32(keys[s], p, w);
        double u1 = (double)((((uint64_t)w[0] << 32) | w[1]) >> 11) * (1.0 / 9007199254740992.0);
        double u2 = (double)((((uint64_t)w[2] << 32) | w[3]) >> 11) * (1.0 / 9007199254740992.0);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
        float *o = out + s * per + 2 * p;
        o[0] = (float)(rad * cos(th));
        if (2 * p + 1 < per) o[1] = (float)(rad * sin(th));
    }
}

extern "C" vt_status vt_cuda_normal_noise(vt_ctx *ctx, float *out, const uint64_t *keys, int streams,
                                          size_t per_stream) {
    uint64_t *dkeys = static_cast<uint64_t *>(vt_ops_scratch(ctx, (size_t)streams * sizeof(uint64_t)));
    if (!dkeys) return ctx->err.code;
    VT_CUDA_CK(ctx, cudaMemcpyAsync(dkeys, keys, (size_t)streams * sizeof(uint64_t), cudaMemcpyHostToDevice,
                                    vt_cuda_stream(ctx)));
    size_t pairs = (per_stream + 1) / 2;
    noise_kernel<<<vt_cuda_blocks((size_t)streams * pairs, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        out, dkeys, streams, per_stream, pairs);
    VT_CUDA_LAUNCHED(ctx);
    /* keys may be a stack array of the caller: the copy must be done before it returns */
    VT_CUDA_CK(ctx, cudaStreamSynchronize(vt_cuda_stream(ctx)));
    return VT_OK;
}
