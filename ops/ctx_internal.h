/* Private to ops/: the layout of vt_ctx, argument checks shared by the op
 * files, and the CPU workspace. Not installed, not for other components. */
#ifndef VT_OPS_CTX_INTERNAL_H
#define VT_OPS_CTX_INTERNAL_H

#include <stddef.h>

#include "ops/ctx.h"

struct vt_ctx {
    vt_backend backend;
    int threads;
    int device;
    vt_error err;
    void *scratch; /* grown on demand, reused across ops */
    size_t scratch_bytes;
    void *cuda; /* backend state (cuBLAS handle, stream, ...) when CUDA */
};

/* Record an error on the ctx and return code. */
vt_status vt_ops_fail(vt_ctx *ctx, vt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A workspace of at least `bytes` in ctx memory, valid until the next call;
 * NULL (with the error recorded) when out of memory. */
void *vt_ops_scratch(vt_ctx *ctx, size_t bytes);

/* Same with "op: " in front of the message. */
vt_status vt_ops_fail_op(vt_ctx *ctx, vt_status code, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Argument checks: each returns from the calling op with VT_ERR_ARG and a
 * message naming the op and the argument. */
#define VT_OPS_REQUIRE(ctx, op, cond, ...)                                   \
    do {                                                                     \
        if (!(cond)) return vt_ops_fail_op((ctx), VT_ERR_ARG, (op), __VA_ARGS__); \
    } while (0)
#define VT_OPS_PTR(ctx, op, p) VT_OPS_REQUIRE(ctx, op, (p) != NULL, #p " is NULL")
#define VT_OPS_POS(ctx, op, d) VT_OPS_REQUIRE(ctx, op, (d) > 0, #d "=%d must be > 0", (int)(d))

/* Every op starts with this: the ctx itself must exist. */
#define VT_OPS_CTX(ctx)                   \
    do {                                  \
        if (!(ctx)) return VT_ERR_ARG;    \
    } while (0)

#ifdef _OPENMP
#include <omp.h>
static inline int vt_ops_thread_id(void) { return omp_get_thread_num(); }
#else
static inline int vt_ops_thread_id(void) { return 0; }
#endif

#ifdef VT_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"
#endif

#endif
