/* Task leasing over ZeroMQ: one dispatcher (ROUTER) hands evaluation tasks
 * to workers (DEALER) under leases. A worker heartbeats while it works; a
 * lease that is not renewed in time expires and its task goes to the next
 * worker that asks, so a killed worker costs one lease period, never a task.
 * Results go to the result store exactly once (insert-if-absent), so a late
 * result from an expired lease is acknowledged and dropped. A restarted
 * dispatcher reads the store and plans only what is missing. */
#ifndef VT_DISPATCH_H
#define VT_DISPATCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "proto/eval.pb-c.h"

typedef struct vt_dispatcher_options {
    const char *bind;      /* ZeroMQ endpoint, e.g. "tcp://127.0.0.1:*" (port chosen by the OS) */
    const char *results;   /* result store directory */
    int lease_ms;          /* lease length; workers heartbeat at a third of it (default 30000) */
    int max_failures;      /* a task reported failed this often aborts the schedule (default 3) */
    int linger_ms;         /* after the last message, keep answering "finished" this long (default 3000) */
    int expect_workers;    /* > 0: once done, serve until this many workers heard "finished"
                            * (e.g. the MPI ranks), or 60 s pass without a message */
} vt_dispatcher_options;

typedef struct vt_dispatch_stats {
    size_t planned, already_done, stored, duplicates, expired_leases, failures;
    double seconds, dispatcher_busy_seconds; /* wall time, and time spent handling messages */
    size_t messages;
} vt_dispatch_stats;

typedef struct vt_dispatcher vt_dispatcher;

/* Takes ownership of nothing: tasks must outlive the dispatcher. */
vt_status vt_dispatcher_open(const vt_dispatcher_options *o, Vt__EvalTask *const *tasks, size_t ntasks,
                             vt_dispatcher **out, vt_error *err);
/* The endpoint workers connect to (wildcards resolved). */
const char *vt_dispatcher_endpoint(const vt_dispatcher *d);
/* Serves until every task has a stored result (then lingers, see options),
 * or *stop becomes non-zero (VT_ERR_INTERRUPTED), or a task fails too often. */
vt_status vt_dispatcher_run(vt_dispatcher *d, const volatile sig_atomic_t *stop, vt_dispatch_stats *stats,
                            vt_error *err);
void vt_dispatcher_close(vt_dispatcher *d);

/* A worker's view of its current lease: executors call vt_lease_alive()
 * between units of work (e.g. after every batch) so the lease is renewed. */
typedef struct vt_lease vt_lease;
void vt_lease_alive(vt_lease *lease);

/* Runs one task. On success *out is a result the worker frees with
 * vt__eval_result__free_unpacked-compatible ownership: set free_result. */
typedef vt_status (*vt_task_executor)(const Vt__EvalTask *task, void *ctx, vt_lease *lease,
                                      Vt__EvalResult **out, vt_error *err);
typedef void (*vt_result_free)(Vt__EvalResult *r, void *ctx);

typedef struct vt_worker_options {
    const char *endpoint;
    const char *name;       /* shown in the dispatcher's logs; default host:pid */
    int reply_timeout_ms;   /* no answer from the dispatcher this long = gone (default 10000) */
} vt_worker_options;

typedef struct vt_worker_stats {
    size_t tasks_done, tasks_failed, results_duplicate;
} vt_worker_stats;

/* Leases and runs tasks until the dispatcher says finished (VT_OK), aborts,
 * stops answering, or *stop becomes non-zero. */
vt_status vt_worker_run(const vt_worker_options *o, vt_task_executor exec, vt_result_free free_result,
                        void *ctx, const volatile sig_atomic_t *stop, vt_worker_stats *stats, vt_error *err);

#endif
