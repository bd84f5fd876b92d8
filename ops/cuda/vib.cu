/* The bottleneck's mix-and-KL kernels (ops/vib.h). Forward: one block per
 * row, the row's KL reduced in double in a fixed order (deterministic).
 * Backward: one thread per element; the prior's gradients one thread per
 * dimension looping over the rows in order, as the CPU does. */
#include "ops/cuda/cuda_common.cuh"

enum { VIB_THREADS = 256 };

__global__ static void vib_forward_kernel(vt_vib_rows r, float *h, double *kl_rows) {
    __shared__ double part[VIB_THREADS];
    int i = blockIdx.x, D = r.width;
    float *mu = r.o + (size_t)i * 2 * D, *lv = mu + D;
    const float *x = r.x + (size_t)i * D, *e = r.eps ? r.eps + (size_t)i * D : nullptr;
    float *out = h + (size_t)r.rows[i] * D;
    float c = r.logvar_clamp, a = r.alpha;
    bool counted = r.counted[i] != 0;
    double sum = 0.0;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float l = fminf(fmaxf(lv[d], -c), c);
        lv[d] = l;
        float s = expf(0.5f * l);
        float z = e ? mu[d] + s * e[d] : mu[d];
        out[d] = (1.0f - a) * x[d] + a * z;
        if (counted) {
            double dm = (double)mu[d] - r.prior_mu[d], ip = exp(-(double)r.prior_logvar[d]);
            sum += 0.5 * (r.logvar_weight * ((double)r.prior_logvar[d] - l) + ((double)s * s + dm * dm) * ip - 1.0);
        }
    }
    part[threadIdx.x] = sum;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) kl_rows[i] = part[0];
}

__global__ static void vib_backward_kernel(vt_vib_rows r, const float *dh, double kc, float *d_o,
                                           float *d_x) {
    size_t D = (size_t)r.width, total = (size_t)r.n * D;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total;
         k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / D, d = k % D;
        const float *mu = r.o + i * 2 * D, *lv = mu + D;
        float G = dh[(size_t)r.rows[i] * D + d];
        float s = expf(0.5f * lv[d]);
        d_x[k] = (1.0f - r.alpha) * G;
        double gm = r.alpha * G;
        double gl = r.eps ? r.alpha * G * r.eps[k] * 0.5 * s : 0.0;
        if (r.counted[i] && kc != 0.0) {
            double dm = (double)mu[d] - r.prior_mu[d], ip = exp(-(double)r.prior_logvar[d]);
            gm += kc * dm * ip;
            gl += kc * 0.5 * ((double)s * s * ip - r.logvar_weight);
        }
        d_o[i * 2 * D + d] = (float)gm;
        d_o[i * 2 * D + D + d] = (float)gl;
    }
}

__global__ static void vib_prior_grad_kernel(vt_vib_rows r, double kc, float *gmu, float *glv) {
    int D = r.width;
    for (int d = blockIdx.x * blockDim.x + threadIdx.x; d < D; d += gridDim.x * blockDim.x) {
        double ip = exp(-(double)r.prior_logvar[d]), lw = r.logvar_weight;
        float am = gmu[d], al = glv[d];
        for (int i = 0; i < r.n; i++) {
            if (!r.counted[i]) continue;
            const float *mu = r.o + (size_t)i * 2 * D;
            float s = expf(0.5f * mu[D + d]);
            double dm = (double)mu[d] - r.prior_mu[d], s2 = (double)s * s;
            am -= (float)(kc * dm * ip);
            al += (float)(kc * 0.5 * (lw - (s2 + dm * dm) * ip));
        }
        gmu[d] = am;
        glv[d] = al;
    }
}

extern "C" vt_status vt_cuda_vib_forward(vt_ctx *ctx, const vt_vib_rows *r, float *h, double *kl_rows) {
    vib_forward_kernel<<<r->n, VIB_THREADS, 0, vt_cuda_stream(ctx)>>>(*r, h, kl_rows);
    VT_CUDA_LAUNCHED(ctx);
    return VT_OK;
}

extern "C" vt_status vt_cuda_vib_backward(vt_ctx *ctx, const vt_vib_rows *r, const float *dh, double kl_coef,
                                          float *d_o, float *d_x, float *gprior_mu, float *gprior_logvar) {
    size_t total = (size_t)r->n * r->width;
    vib_backward_kernel<<<vt_cuda_blocks(total, VIB_THREADS), VIB_THREADS, 0, vt_cuda_stream(ctx)>>>(
        *r, dh, kl_coef, d_o, d_x);
    VT_CUDA_LAUNCHED(ctx);
    if (gprior_mu && kl_coef != 0.0) {
        vib_prior_grad_kernel<<<vt_cuda_blocks((size_t)r->width, 128), 128, 0, vt_cuda_stream(ctx)>>>(
            *r, kl_coef, gprior_mu, gprior_logvar);
        VT_CUDA_LAUNCHED(ctx);
    }
    return VT_OK;
}
