/* RoPE on CUDA: one thread per (token, head, frequency) pair, angle and its
 * sine/cosine in double as on the CPU. sign -1 applies the inverse rotation
 * (backward); accumulate adds into out instead of overwriting. */
#include "ops/cuda/cuda_common.cuh"

__global__ static void rope_kernel(float *out, const float *inp, const int32_t *pos, int B, int T,
                                   int NH, int hd, double log_theta, float sign, int accumulate) {
    int half = hd / 2;
    size_t total = (size_t)B * T * NH * half;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int f = (int)(i % half);
        size_t head = i / half;          /* (b*T + t)*NH + h */
        size_t tok = head / NH;          /* b*T + t */
        double p = pos ? (double)pos[tok] : (double)(tok % T);
        double ang = p * exp(-2.0 * f / hd * log_theta);
        double sd, cd;
        sincos(ang, &sd, &cd);
        float c = (float)cd, s = sign * (float)sd;
        const float *x = inp + head * hd;
        float *y = out + head * hd;
        float x0 = x[f], x1 = x[f + half];
        float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
        if (accumulate) {
            y[f] += y0;
            y[f + half] += y1;
        } else {
            y[f] = y0;
            y[f + half] = y1;
        }
    }
}

extern "C" vt_status vt_cuda_rope(vt_ctx *ctx, float *out, const float *inp, const int32_t *pos,
                                  int B, int T, int NH, int hd, float theta, float sign,
                                  int accumulate) {
    size_t total = (size_t)B * T * NH * (hd / 2);
    rope_kernel<<<vt_cuda_blocks(total, 256), 256, 0, vt_cuda_stream(ctx)>>>(
        out, inp, pos, B, T, NH, hd, log((double)theta), sign, accumulate);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}
