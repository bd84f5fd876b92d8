/* Loader -> trainer streaming with pull/credit flow control (DESIGN §2).
 *
 * Protocol (every message is a vt.StreamMessage, proto/stream.proto):
 *
 *   trainer (one DEALER per loader)              loader (one ROUTER, bound)
 *     BatchRequest{request_id, epoch, step, rank, R, micro, M}  ------>
 *                                                  sampler slice + fill
 *     <------  [BatchHeader{request_id, sample_indices, frames}]
 *              [pixels][tokens][targets][loss_mask][lengths]  (raw, zero-copy)
 *     Heartbeat (every heartbeat_ms)  ------>
 *     <------  Heartbeat
 *     Shutdown (vt_stream_close)  ------>        exits after expect_trainers
 *     <------  Shutdown (ack, after every earlier answer; the trainer
 *              drains until then so no connection closes mid-batch)
 *     <------  StreamError / EndOfEpoch  for a request it cannot serve
 *
 * A trainer keeps `credits` requests outstanding over the live loaders (the
 * least loaded first), so its memory is bounded by credits x batch bytes. A
 * request unanswered after request_timeout_ms, or whose loader has been
 * silent for dead_after_ms (killed, hung, unreachable), is re-sent to another
 * loader; request_id identifies the micro-batch, so a late duplicate answer
 * is discarded. Batches are delivered strictly in (epoch, step, micro)
 * order, and each delivered batch's sample indices are checked against the
 * trainer's own sampler (a loader with another seed/dataset/batch is an
 * error, not silent corruption). A batch is a pure function of the request,
 * so which loader answered never changes the bytes.
 *
 * Single-process mode (no endpoints): the trainer fills batches itself from
 * `local`, producing the identical batches.
 *
 * Receiving: vt_stream_next_view hands out views of the received frames (no
 * copy) that stay valid for `hold` deliveries; vt_stream_next copies them
 * into the caller's batch.
 *
 * Failure semantics: see docs/pipeline.md. In short: a loader process that
 * dies (kill -9) costs a timeout, never a lost or duplicated sample; under
 * mpirun a dead rank aborts the whole job (OpenMPI's default), so loaders
 * that must be killable independently run as separate `vistune loader`
 * processes given the endpoints. */
#ifndef VT_STREAM_H
#define VT_STREAM_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "common/error.h"
#include "pipeline/batch.h"
#include "pipeline/sampler.h"

/* ---- trainer side ---- */

typedef struct vt_stream vt_stream;

typedef struct vt_stream_config {
    uint32_t rank, ranks;     /* this trainer rank and the trainer count R */
    uint32_t micro_count;     /* M micro-batches per step and rank (>= 1) */
    vt_batch_shape sample_shape; /* C, H, W, T of every batch (batch unused): required with
                                    loaders; single-process mode: zero = the source's */
    uint32_t hold;            /* deliveries whose views stay valid at once (0: micro_count) */
    vt_sampler_cursor start;  /* first micro-batch to deliver (resume point) */
    uint32_t credits;         /* outstanding requests (default 4) */
    int request_timeout_ms;   /* re-send an unanswered request (default 30000) */
    int heartbeat_ms;         /* heartbeat period (default 500) */
    int dead_after_ms;        /* loader silent this long: presumed dead (default 3000) */
    int give_up_ms;           /* no batch and no live loader this long: error (default 60000) */
} vt_stream_config;

typedef struct vt_stream_stats {
    uint64_t delivered;       /* batches handed to the caller */
    uint64_t requests;        /* requests sent, re-sends included */
    uint64_t resent;          /* re-sends after a timeout or a dead loader */
    uint64_t duplicates;      /* late answers discarded by request_id */
    uint64_t loaders_lost;    /* times a loader was presumed dead */
    uint64_t wait_ns;         /* time vt_stream_next spent waiting (data stall) */
    uint64_t realigned;       /* frames copied because ZeroMQ's buffer was misaligned for their type */
} vt_stream_stats;

void vt_stream_config_default(vt_stream_config *cfg);

/* Opens a stream for one trainer rank. endpoints: the loaders' ZeroMQ
 * endpoints ("ipc:///tmp/x", "tcp://host:port"); n_endpoints == 0 selects
 * single-process mode, which needs `local`. The sampler must be configured
 * like the loaders' (same seed, dataset size, global batch); the stream uses
 * it from the calling thread only. */
vt_status vt_stream_open(vt_stream **out, const vt_stream_config *cfg, vt_sampler *sampler,
                         const char *const *endpoints, int n_endpoints, const vt_batch_source *local,
                         vt_error *err);
/* The next micro-batch in order, without copying: `out` is overwritten with
 * views into the received ZeroMQ messages (single-process mode: into a batch
 * the stream filled), shape B = G/(R*M) x sample_shape, epoch/step/
 * micro_index/trainer_rank/sample_indices set, no slab. Lifetime: a call
 * (successful or not) may reuse the memory of the delivery made `hold` calls
 * before it, so the last `hold` deliveries are valid together (a trainer
 * holding one step's M micro-batches sets hold = M); vt_stream_close ends
 * all. The views are writable. Each view is aligned for its type: a frame
 * that ZeroMQ received at a misaligned address is copied (stats.realigned).
 * A loader whose frames differ from sample_shape fails with VT_ERR_FORMAT
 * naming the frame. */
vt_status vt_stream_next_view(vt_stream *s, vt_batch *out, vt_error *err);
/* vt_stream_next_view, copied into `out` (from vt_batch_alloc or
 * vt_batch_view) whose shape must be B = G/(R*M) x sample_shape; the copy is
 * the caller's. */
vt_status vt_stream_next(vt_stream *s, vt_batch *out, vt_error *err);
/* Micro-batch size this stream delivers. */
uint32_t vt_stream_batch_size(const vt_stream *s);
void vt_stream_get_stats(const vt_stream *s, vt_stream_stats *st);
/* Sends Shutdown to every live loader, drains their remaining answers until
 * each acknowledged (at most 2 s), and releases everything. NULL is a no-op. */
void vt_stream_close(vt_stream *s);

/* ---- loader side ---- */

typedef struct vt_loader vt_loader;

typedef struct vt_loader_config {
    uint32_t loader_rank;        /* reported in headers and logs */
    uint32_t expect_trainers;    /* return after this many Shutdowns (0: only stop/idle) */
    int idle_exit_ms;            /* return when no trainer message for this long once one
                                    has been seen (0: never) */
    const volatile sig_atomic_t *stop; /* optional: return when it becomes non-zero */
    uint32_t pool_slabs;         /* free batch slabs kept for reuse (default 8) */
} vt_loader_config;

/* Binds a ROUTER socket to each endpoint (a tcp port written as a star
 * picks a free one, ZeroMQ syntax;
 * ipc paths must be < 107 characters). */
vt_status vt_loader_open(vt_loader **out, const vt_loader_config *cfg, const char *const *bind, int n_bind,
                         vt_error *err);
/* The i-th bound endpoint as a peer would connect to it (port resolved;
 * "0.0.0.0" replaced by this host's name). */
const char *vt_loader_endpoint(const vt_loader *l, int i);
/* Sets the number of Shutdowns after which vt_loader_run returns. */
void vt_loader_expect_trainers(vt_loader *l, uint32_t n);
/* Serves requests until a stop condition. Bad requests are answered with a
 * StreamError and do not stop the loader; a source failure is answered the
 * same way and logged. */
vt_status vt_loader_run(vt_loader *l, vt_sampler *sampler, const vt_batch_source *src, vt_error *err);
void vt_loader_close(vt_loader *l);

/* ---- MPI roles ---- */

/* Result of splitting MPI_COMM_WORLD into loader and trainer ranks. On each
 * node the last `loaders_per_node` node-local ranks are loaders (at least
 * one trainer per node must remain). Trainers get their own communicator
 * for gradient allreduce and the endpoints of the loaders they stream from:
 * those on their own node over ipc:// when the node has any, else every
 * loader over tcp://. */
typedef struct vt_stream_roles {
    int is_loader;
    int world_rank, world_size;
    uint32_t trainer_rank, trainer_count; /* among trainers (valid for trainers) */
    uint32_t loader_index, loader_count;  /* among loaders */
    MPI_Comm trainer_comm;   /* trainers: their own communicator; loaders: MPI_COMM_NULL */
    vt_loader *loader;       /* loaders: bound and ready for vt_loader_run */
    char **endpoints;        /* trainers: endpoints to pass to vt_stream_open */
    int n_endpoints;
} vt_stream_roles;

/* transport: "auto" (ipc within a node, tcp across), "ipc" or "tcp".
 * Collective over MPI_COMM_WORLD; MPI must be initialised. Loaders' expect_trainers
 * (0 in loader_cfg) becomes the trainer count, so vt_loader_run returns once
 * every trainer called vt_stream_close. */
vt_status vt_stream_mpi_roles(vt_stream_roles *roles, int loaders_per_node, const char *transport,
                              const vt_loader_config *loader_cfg, vt_error *err);
void vt_stream_roles_free(vt_stream_roles *roles);

/* `vistune loader`: a standalone loader process serving a synthetic source
 * (endpoints on the command line), for tests, benchmarks and loaders that
 * must survive independently of an MPI job. */
int vt_cmd_loader(int argc, char **argv);

#endif
