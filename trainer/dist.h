/* Data parallelism across trainer ranks: node-local rank and device choice,
 * and gradient averaging over the trainers' own communicator (the loader /
 * trainer split itself is pipeline/stream's).
 *
 * Gradients live in one flat float buffer (trainer/model.h). vt_grad_sync
 * cuts it into fixed buckets from the END of the buffer backwards, because
 * backward produces the last parameters' gradients first: as backward
 * reports "everything at index >= k is final", every bucket lying wholly in
 * [k, n) is reduced with a non-blocking MPI_Iallreduce(MPI_IN_PLACE, SUM),
 * overlapping communication with the rest of backward. vt_grad_sync_finish
 * launches what is left, waits, and scales. Bucket bounds depend only
 * on (n, bucket size), so the summation order -- and with it the result -- is
 * the same run to run for a given R. */
#ifndef VT_TRAINER_DIST_H
#define VT_TRAINER_DIST_H

#include <mpi.h>
#include <stddef.h>

#include "common/error.h"
#include "ops/ctx.h"

typedef struct vt_dist_node {
    int local_rank; /* rank among this node's ranks of `comm` */
    int local_size;
} vt_dist_node;

/* Node-local rank via MPI_Comm_split_type(MPI_COMM_TYPE_SHARED); never from
 * SLURM_LOCALID, which is 0 on every rank under mpirun. Collective. */
vt_status vt_dist_node_info(MPI_Comm comm, vt_dist_node *out, vt_error *err);

/* Which device a rank drives: local_rank modulo the visible devices. The
 * visible count is CUDA_VISIBLE_DEVICES's entry count when set ("" or "-1"
 * mean none) and `detected` (the runtime's count) otherwise; the returned
 * index is relative to the visible set, as CUDA numbers them. Returns -1
 * when there is no device (CPU). */
int vt_dist_pick_device(int local_rank, int detected);
/* Entries in CUDA_VISIBLE_DEVICES, or -1 when the variable is unset. */
int vt_dist_visible_devices(void);

typedef struct vt_grad_sync vt_grad_sync;

/* grad has n floats in ctx's memory. Debian's OpenMPI is not CUDA-aware,
 * so on a device each bucket is copied to a host staging buffer when it
 * launches and the reduced buffer is copied back in finish (with one rank,
 * nothing is copied). bucket_floats > 0 (e.g. 1<<20 = 4 MiB). comm may have
 * size 1, in which case every call is a no-op apart from bookkeeping. */
vt_status vt_grad_sync_new(MPI_Comm comm, vt_ctx *ctx, float *grad, size_t n, size_t bucket_floats,
                           vt_grad_sync **out, vt_error *err);
void vt_grad_sync_free(vt_grad_sync *s);
/* Starts a new round (after the last micro-batch's backward began). */
void vt_grad_sync_begin(vt_grad_sync *s);
/* Gradients at indices >= ready_from are final for this step: launch every
 * bucket wholly inside [ready_from, n) not yet launched. Monotone calls. */
vt_status vt_grad_sync_ready(vt_grad_sync *s, size_t ready_from, vt_error *err);
/* Launches the rest, waits for all, then multiplies every element by scale
 * (1/R to average; 1 when the loss is already normalised by the global
 * token count, which is what keeps results independent of R). With one rank
 * only the scaling happens. */
vt_status vt_grad_sync_finish(vt_grad_sync *s, float scale, vt_error *err);
/* Number of buckets launched before finish in the last round (for tests
 * and logs: shows the overlap happened). */
int vt_grad_sync_early_buckets(const vt_grad_sync *s);

#endif
