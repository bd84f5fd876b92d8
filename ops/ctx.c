/* vt_ctx: backend selection, error slot, workspace and the memory helpers.
 * CPU memory is plain aligned host memory; CUDA calls go to ops/cuda. */
#include "ops/ctx_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

vt_status vt_ops_fail(vt_ctx *ctx, vt_status code, const char *fmt, ...) {
    ctx->err.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err.msg, sizeof ctx->err.msg, fmt, ap);
    va_end(ap);
    return code;
}

vt_status vt_ops_fail_op(vt_ctx *ctx, vt_status code, const char *op, const char *fmt, ...) {
    ctx->err.code = code;
    int k = snprintf(ctx->err.msg, sizeof ctx->err.msg, "%s: ", op);
    if (k < 0 || (size_t)k >= sizeof ctx->err.msg) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err.msg + k, sizeof ctx->err.msg - (size_t)k, fmt, ap);
    va_end(ap);
    return code;
}

int vt_cuda_device_count(void) {
#ifdef VT_HAVE_CUDA
    return vt_cuda_count_devices();
#else
    return 0;
#endif
}

vt_status vt_ctx_create(vt_ctx **out, const vt_ctx_options *opt, vt_error *err) {
    if (!out) return vt_fail(err, VT_ERR_ARG, "vt_ctx_create: out is NULL");
    *out = NULL;
    vt_ctx_options o = {VT_BACKEND_CPU, 0, 0};
    if (opt) o = *opt;
    if (o.backend != VT_BACKEND_CPU && o.backend != VT_BACKEND_CUDA)
        return vt_fail(err, VT_ERR_ARG, "vt_ctx_create: unknown backend %d", (int)o.backend);
    if (o.threads < 0)
        return vt_fail(err, VT_ERR_ARG, "vt_ctx_create: threads=%d must be >= 0", o.threads);
    vt_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return vt_fail(err, VT_ERR_NOMEM, "vt_ctx_create: out of memory");
    ctx->backend = o.backend;
    ctx->device = o.device;
    if (o.backend == VT_BACKEND_CUDA) {
#ifdef VT_HAVE_CUDA
        vt_status st = vt_cuda_ctx_init(ctx);
        if (st != VT_OK) {
            vt_fail(err, st, "%s", ctx->err.msg);
            free(ctx);
            return st;
        }
        ctx->threads = 1;
#else
        free(ctx);
        return vt_fail(err, VT_ERR_DEVICE,
                       "vt_ctx_create: CUDA backend requested but vistune was built without CUDA");
#endif
    } else {
#ifdef _OPENMP
        ctx->threads = o.threads > 0 ? o.threads : omp_get_max_threads();
#else
        ctx->threads = 1;
#endif
        /* Only an explicit choice overrides OpenBLAS's own reading of
         * OPENBLAS_NUM_THREADS / OMP_NUM_THREADS. */
        if (o.threads > 0) openblas_set_num_threads(o.threads);
    }
    *out = ctx;
    return VT_OK;
}

void vt_ctx_destroy(vt_ctx *ctx) {
    if (!ctx) return;
    if (ctx->scratch) vt_ctx_free(ctx, ctx->scratch);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) vt_cuda_ctx_release(ctx);
#endif
    free(ctx);
}

vt_backend vt_ctx_backend(const vt_ctx *ctx) { return ctx->backend; }
int vt_ctx_threads(const vt_ctx *ctx) { return ctx->threads; }
const vt_error *vt_ctx_error(const vt_ctx *ctx) { return &ctx->err; }

vt_status vt_ctx_alloc(vt_ctx *ctx, void **out, size_t bytes) {
    VT_OPS_CTX(ctx);
    VT_OPS_PTR(ctx, "vt_ctx_alloc", out);
    *out = NULL;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_alloc(ctx, out, bytes);
#endif
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) return vt_ops_fail(ctx, VT_ERR_NOMEM, "vt_ctx_alloc: %zu bytes", bytes);
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) return vt_ops_fail(ctx, VT_ERR_NOMEM, "vt_ctx_alloc: out of memory for %zu bytes", bytes);
    memset(p, 0, rounded);
    *out = p;
    return VT_OK;
}

void vt_ctx_free(vt_ctx *ctx, void *p) {
    if (!ctx || !p) return;
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) {
        vt_cuda_free(ctx, p);
        return;
    }
#endif
    free(p);
}

static vt_status copy(vt_ctx *ctx, const char *op, void *dst, const void *src, size_t bytes,
                      int kind) {
    VT_OPS_CTX(ctx);
    if (bytes == 0) return VT_OK;
    VT_OPS_REQUIRE(ctx, "vt_ctx_memcpy", dst && src, "%s: NULL pointer", op);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_memcpy(ctx, dst, src, bytes, kind);
#else
    (void)kind;
#endif
    memmove(dst, src, bytes);
    return VT_OK;
}

vt_status vt_ctx_memcpy_h2d(vt_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return copy(ctx, "h2d", dst, src, bytes, 0);
}
vt_status vt_ctx_memcpy_d2h(vt_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return copy(ctx, "d2h", dst, src, bytes, 1);
}
vt_status vt_ctx_memcpy_d2d(vt_ctx *ctx, void *dst, const void *src, size_t bytes) {
    return copy(ctx, "d2d", dst, src, bytes, 2);
}

vt_status vt_ctx_memset_zero(vt_ctx *ctx, void *dst, size_t bytes) {
    VT_OPS_CTX(ctx);
    if (bytes == 0) return VT_OK;
    VT_OPS_PTR(ctx, "vt_ctx_memset_zero", dst);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_memset_zero(ctx, dst, bytes);
#endif
    memset(dst, 0, bytes);
    return VT_OK;
}

vt_status vt_ctx_sync(vt_ctx *ctx) {
    VT_OPS_CTX(ctx);
#ifdef VT_HAVE_CUDA
    if (ctx->backend == VT_BACKEND_CUDA) return vt_cuda_sync(ctx);
#endif
    return VT_OK;
}

void *vt_ops_scratch(vt_ctx *ctx, size_t bytes) {
    if (bytes <= ctx->scratch_bytes) return ctx->scratch;
    if (ctx->scratch) vt_ctx_free(ctx, ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_bytes = 0;
    void *p = NULL;
    if (vt_ctx_alloc(ctx, &p, bytes) != VT_OK) return NULL;
    ctx->scratch = p;
    ctx->scratch_bytes = bytes;
    return p;
}
