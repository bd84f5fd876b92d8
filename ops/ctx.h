/* The backend handle every op takes: CPU (OpenBLAS + OpenMP) or CUDA (cuBLAS
 * + own kernels). Pointers passed to ops live where the ctx computes (host
 * memory for CPU, device memory for CUDA); the memory helpers below are the
 * only way callers allocate and move such buffers. */
#ifndef VT_OPS_CTX_H
#define VT_OPS_CTX_H

#include <stddef.h>

#include "common/error.h"

typedef enum vt_backend {
    VT_BACKEND_CPU = 0,
    VT_BACKEND_CUDA = 1,
} vt_backend;

typedef struct vt_ctx vt_ctx; /* opaque */

typedef struct vt_ctx_options {
    vt_backend backend;
    /* CPU: OpenMP threads for the ops and OpenBLAS threads for sgemm.
     * 0 = the OpenMP default, which honours OMP_NUM_THREADS. */
    int threads;
    /* CUDA: device ordinal among CUDA_VISIBLE_DEVICES (the caller derives it
     * from the node-local MPI rank). Ignored for CPU. */
    int device;
} vt_ctx_options;

/* Create a context. opt NULL = CPU with default threads. Fails with
 * VT_ERR_DEVICE when CUDA is asked for but the build has no CUDA backend or
 * no device is usable. On success *out must be released with vt_ctx_destroy. */
vt_status vt_ctx_create(vt_ctx **out, const vt_ctx_options *opt, vt_error *err);
/* Frees the context's own workspace (not buffers from vt_ctx_alloc). NULL is fine. */
void vt_ctx_destroy(vt_ctx *ctx);

vt_backend vt_ctx_backend(const vt_ctx *ctx);
/* CPU: threads the ops use. CUDA: 1. */
int vt_ctx_threads(const vt_ctx *ctx);
/* Number of usable CUDA devices; 0 when the build has no CUDA backend or the
 * driver reports none. Never fails. */
int vt_cuda_device_count(void);

/* Every op and memory helper returns VT_OK or an error code; the message of
 * the most recent failure on this ctx (with the op name and the offending
 * value) is here. Valid until the next failing call on the ctx. */
const vt_error *vt_ctx_error(const vt_ctx *ctx);

/* Zero-filled buffer of `bytes` bytes (64-byte aligned on CPU), usable by ops
 * on this ctx. bytes == 0 gives a valid unique pointer. */
vt_status vt_ctx_alloc(vt_ctx *ctx, void **out, size_t bytes);
void vt_ctx_free(vt_ctx *ctx, void *p);
/* Copies between the host and ctx memory (plain memcpy on CPU). */
vt_status vt_ctx_memcpy_h2d(vt_ctx *ctx, void *dst, const void *src, size_t bytes);
vt_status vt_ctx_memcpy_d2h(vt_ctx *ctx, void *dst, const void *src, size_t bytes);
vt_status vt_ctx_memcpy_d2d(vt_ctx *ctx, void *dst, const void *src, size_t bytes);
vt_status vt_ctx_memset_zero(vt_ctx *ctx, void *dst, size_t bytes);
/* Wait until all queued work on the ctx is done (no-op on CPU). */
vt_status vt_ctx_sync(vt_ctx *ctx);

#endif
