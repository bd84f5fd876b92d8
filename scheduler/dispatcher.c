/* The dispatcher side of task leasing (see dispatch.h). Single-threaded:
 * one ROUTER socket polled with a timeout that also drives lease expiry. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "scheduler/dispatch.h"
#include "scheduler/dispatch_wire.h"
#include "scheduler/result_store.h"

typedef enum { TASK_PENDING, TASK_LEASED, TASK_DONE } task_state;

typedef struct {
    Vt__EvalTask *task;
    task_state state;
    int64_t deadline_ms;
    unsigned char worker[256]; /* ROUTER identity of the lease holder */
    size_t worker_len;
    int failures;
} slot;

struct vt_dispatcher {
    vt_dispatcher_options o;
    void *zctx, *sock;
    char endpoint[256];
    vt_result_store *store;
    slot *slots;
    size_t n, done, next; /* next: where to look for a pending task */
    unsigned char (*told)[256]; /* identities told "finished" (expect_workers of them) */
    size_t *told_len, ntold;
};

vt_status vt_dispatcher_open(const vt_dispatcher_options *o, Vt__EvalTask *const *tasks, size_t ntasks,
                             vt_dispatcher **out, vt_error *err) {
    *out = NULL;
    vt_dispatcher *d = calloc(1, sizeof *d);
    if (!d) return vt_fail(err, VT_ERR_NOMEM, "dispatcher: out of memory");
    d->o = *o;
    if (d->o.lease_ms <= 0) d->o.lease_ms = 30000;
    if (d->o.max_failures <= 0) d->o.max_failures = 3;
    if (d->o.linger_ms <= 0) d->o.linger_ms = 3000; /* > the longest Wait, so idle workers hear "finished" */
    d->n = ntasks;
    d->slots = calloc(ntasks ? ntasks : 1, sizeof *d->slots);
    size_t expect = o->expect_workers > 0 ? (size_t)o->expect_workers : 1;
    d->told = calloc(expect, sizeof *d->told);
    d->told_len = calloc(expect, sizeof *d->told_len);
    if (!d->slots || !d->told || !d->told_len) {
        free(d->slots);
        free(d->told);
        free(d->told_len);
        free(d);
        return vt_fail(err, VT_ERR_NOMEM, "dispatcher: out of memory");
    }
    vt_status st = vt_result_store_open(o->results, true, &d->store, err);
    for (size_t i = 0; !st && i < ntasks; i++) {
        d->slots[i].task = tasks[i];
        bool has = false;
        st = vt_result_store_has(d->store, tasks[i]->task_id, &has, err);
        if (has) {
            d->slots[i].state = TASK_DONE;
            d->done++;
        }
    }
    if (!st) {
        d->zctx = zmq_ctx_new();
        d->sock = d->zctx ? zmq_socket(d->zctx, ZMQ_ROUTER) : NULL;
        int zero = 0;
        if (d->sock) zmq_setsockopt(d->sock, ZMQ_LINGER, &zero, sizeof zero);
        size_t len = sizeof d->endpoint;
        if (!d->sock || zmq_bind(d->sock, o->bind) != 0 ||
            zmq_getsockopt(d->sock, ZMQ_LAST_ENDPOINT, d->endpoint, &len) != 0)
            st = vt_fail(err, VT_ERR_NET, "dispatcher: cannot bind '%s': %s", o->bind, zmq_strerror(zmq_errno()));
    }
    if (st) {
        vt_dispatcher_close(d);
        return st;
    }
    *out = d;
    return VT_OK;
}

const char *vt_dispatcher_endpoint(const vt_dispatcher *d) { return d->endpoint; }

void vt_dispatcher_close(vt_dispatcher *d) {
    if (!d) return;
    if (d->sock) zmq_close(d->sock);
    if (d->zctx) zmq_ctx_term(d->zctx);
    vt_result_store_close(d->store);
    free(d->slots);
    free(d->told);
    free(d->told_len);
    free(d);
}

/* Remembers a worker told "finished" (up to expect_workers distinct ones). */
static void note_told(vt_dispatcher *d, const zmq_msg_t *id) {
    size_t len = zmq_msg_size(id) < sizeof d->told[0] ? zmq_msg_size(id) : sizeof d->told[0];
    for (size_t i = 0; i < d->ntold; i++)
        if (d->told_len[i] == len && !memcmp(d->told[i], zmq_msg_data((zmq_msg_t *)id), len)) return;
    if (d->ntold < (size_t)d->o.expect_workers) {
        memcpy(d->told[d->ntold], zmq_msg_data((zmq_msg_t *)id), len);
        d->told_len[d->ntold++] = len;
    }
}

static slot *find_task(vt_dispatcher *d, const char *id) {
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->slots[i].task->task_id, id)) return &d->slots[i];
    return NULL;
}

static slot *next_pending(vt_dispatcher *d) {
    for (size_t k = 0; k < d->n; k++) {
        slot *s = &d->slots[(d->next + k) % d->n];
        if (s->state == TASK_PENDING) {
            d->next = (size_t)(s - d->slots + 1) % d->n;
            return s;
        }
    }
    return NULL;
}

static vt_status answer_request(vt_dispatcher *d, const zmq_msg_t *id, const char *worker, vt_error *err) {
    Vt__DispatcherMessage m = VT__DISPATCHER_MESSAGE__INIT;
    Vt__Lease lease = VT__LEASE__INIT;
    Vt__Wait wait = VT__WAIT__INIT;
    Vt__Finished fin = VT__FINISHED__INIT;
    slot *s = d->done < d->n ? next_pending(d) : NULL;
    if (s) {
        s->state = TASK_LEASED;
        s->deadline_ms = vt_now_ms() + d->o.lease_ms;
        s->worker_len = zmq_msg_size(id) < sizeof s->worker ? zmq_msg_size(id) : sizeof s->worker;
        memcpy(s->worker, zmq_msg_data((zmq_msg_t *)id), s->worker_len);
        lease.task = s->task;
        lease.lease_ms = (uint32_t)d->o.lease_ms;
        m.kind_case = VT__DISPATCHER_MESSAGE__KIND_LEASE;
        m.lease = &lease;
        vt_debug("dispatcher: leased %s to %s", s->task->task_id, worker);
    } else if (d->done < d->n) {
        wait.retry_ms = (uint32_t)(d->o.lease_ms / 10 < 200 ? 200 : d->o.lease_ms / 10);
        if (wait.retry_ms > 2000) wait.retry_ms = 2000;
        m.kind_case = VT__DISPATCHER_MESSAGE__KIND_WAIT;
        m.wait = &wait;
    } else {
        fin.tasks = d->n;
        m.kind_case = VT__DISPATCHER_MESSAGE__KIND_FINISHED;
        m.finished = &fin;
        note_told(d, id);
    }
    return vt_send_dispatcher_msg(d->sock, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size(id), &m, err);
}

static vt_status handle_result(vt_dispatcher *d, const zmq_msg_t *id, const Vt__TaskResult *tr,
                               vt_dispatch_stats *stats, vt_error *err) {
    const Vt__EvalResult *r = tr->result;
    if (!r || !r->task || !r->task->task_id) {
        vt_warn("dispatcher: result without a task id from %s ignored", tr->worker);
        return VT_OK;
    }
    slot *s = find_task(d, r->task->task_id);
    if (!s) {
        vt_warn("dispatcher: result for unplanned task '%s' from %s ignored", r->task->task_id, tr->worker);
        return VT_OK;
    }
    bool stored = false;
    vt_status st = vt_result_store_put(d->store, r, &stored, err);
    if (st) return st;
    if (stored) stats->stored++;
    else stats->duplicates++;
    if (s->state != TASK_DONE) {
        s->state = TASK_DONE;
        d->done++;
        vt_info("dispatcher: %s done by %s (%zu/%zu)", s->task->task_id, tr->worker, d->done, d->n);
    }
    Vt__DispatcherMessage m = VT__DISPATCHER_MESSAGE__INIT;
    Vt__Ack ack = VT__ACK__INIT;
    ack.task_id = r->task->task_id;
    ack.stored = stored;
    m.kind_case = VT__DISPATCHER_MESSAGE__KIND_ACK;
    m.ack = &ack;
    return vt_send_dispatcher_msg(d->sock, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size(id), &m, err);
}

static void expire_leases(vt_dispatcher *d, vt_dispatch_stats *stats) {
    int64_t now = vt_now_ms();
    for (size_t i = 0; i < d->n; i++) {
        slot *s = &d->slots[i];
        if (s->state == TASK_LEASED && now > s->deadline_ms) {
            s->state = TASK_PENDING;
            stats->expired_leases++;
            vt_warn("dispatcher: lease on %s expired (worker silent for %d ms): re-queued",
                    s->task->task_id, d->o.lease_ms);
        }
    }
}

static vt_status broadcast_abort(vt_dispatcher *d, const zmq_msg_t *id, const char *why, vt_error *err) {
    Vt__DispatcherMessage m = VT__DISPATCHER_MESSAGE__INIT;
    Vt__Abort ab = VT__ABORT__INIT;
    ab.message = (char *)why;
    m.kind_case = VT__DISPATCHER_MESSAGE__KIND_ABORT;
    m.abort = &ab;
    return vt_send_dispatcher_msg(d->sock, zmq_msg_data((zmq_msg_t *)id), zmq_msg_size(id), &m, err);
}

vt_status vt_dispatcher_run(vt_dispatcher *d, const volatile sig_atomic_t *stop, vt_dispatch_stats *stats,
                            vt_error *err) {
    memset(stats, 0, sizeof *stats);
    stats->planned = d->n;
    stats->already_done = d->done;
    int64_t start = vt_now_ms(), last_msg = start, busy_us = 0;
    char abort_reason[VT_ERROR_MSG_MAX] = "";
    vt_status st = VT_OK;
    for (;;) {
        if (stop && *stop) {
            st = vt_fail(err, VT_ERR_INTERRUPTED, "dispatcher: stopped by a signal with %zu of %zu tasks done",
                         d->done, d->n);
            break;
        }
        int64_t now = vt_now_ms(), idle = now - last_msg;
        if (d->done == d->n) {
            bool all_told = d->o.expect_workers > 0 && d->ntold >= (size_t)d->o.expect_workers;
            if (all_told && idle > 200) break; /* a moment for a late duplicate */
            if (d->o.expect_workers <= 0 && idle > d->o.linger_ms) break;
            if (idle > (d->o.linger_ms > 60000 ? d->o.linger_ms : 60000)) break;
        }
        if (abort_reason[0] && now - last_msg > d->o.linger_ms) break;
        zmq_pollitem_t item = {d->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, 100);
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue;
            st = vt_fail(err, VT_ERR_NET, "dispatcher: poll failed: %s", zmq_strerror(zmq_errno()));
            break;
        }
        expire_leases(d, stats);
        if (rc == 0) continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, d->sock, 0) < 0 || !zmq_msg_more(&id) || zmq_msg_recv(&body, d->sock, 0) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            continue;
        }
        int64_t t0 = vt_now_us();
        last_msg = vt_now_ms();
        stats->messages++;
        while (zmq_msg_more(&body)) { /* drop any extra frames of a malformed sender */
            zmq_msg_close(&body);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&body, d->sock, 0) < 0) break;
        }
        Vt__WorkerMessage *m = vt__worker_message__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
        if (!m) {
            vt_warn("dispatcher: undecodable message (%zu bytes) ignored", zmq_msg_size(&body));
        } else if (abort_reason[0] && m->kind_case != VT__WORKER_MESSAGE__KIND_HEARTBEAT) {
            st = broadcast_abort(d, &id, abort_reason, err);
        } else {
            switch (m->kind_case) {
            case VT__WORKER_MESSAGE__KIND_REQUEST:
                st = answer_request(d, &id, m->request->worker, err);
                break;
            case VT__WORKER_MESSAGE__KIND_HEARTBEAT: {
                slot *s = find_task(d, m->heartbeat->task_id);
                if (s && s->state == TASK_LEASED && s->worker_len == zmq_msg_size(&id) &&
                    !memcmp(s->worker, zmq_msg_data(&id), s->worker_len))
                    s->deadline_ms = vt_now_ms() + d->o.lease_ms;
                break;
            }
            case VT__WORKER_MESSAGE__KIND_RESULT:
                st = handle_result(d, &id, m->result, stats, err);
                break;
            case VT__WORKER_MESSAGE__KIND_FAILED: {
                slot *s = find_task(d, m->failed->task_id);
                stats->failures++;
                vt_warn("dispatcher: %s failed on %s: %s", m->failed->task_id, m->failed->worker, m->failed->message);
                if (s && s->state != TASK_DONE) {
                    s->state = TASK_PENDING;
                    if (++s->failures >= d->o.max_failures)
                        snprintf(abort_reason, sizeof abort_reason, "task %s failed %d times, last: %s",
                                 s->task->task_id, s->failures, m->failed->message);
                }
                Vt__DispatcherMessage ack = VT__DISPATCHER_MESSAGE__INIT;
                Vt__Ack a = VT__ACK__INIT;
                a.task_id = m->failed->task_id;
                ack.kind_case = VT__DISPATCHER_MESSAGE__KIND_ACK;
                ack.ack = &a;
                st = vt_send_dispatcher_msg(d->sock, zmq_msg_data(&id), zmq_msg_size(&id), &ack, err);
                break;
            }
            default:
                vt_warn("dispatcher: message of unknown kind ignored");
            }
        }
        if (m) vt__worker_message__free_unpacked(m, NULL);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        busy_us += vt_now_us() - t0;
        if (st) break;
    }
    stats->seconds = (double)(vt_now_ms() - start) / 1000.0;
    stats->dispatcher_busy_seconds = (double)busy_us / 1e6;
    if (!st && abort_reason[0]) st = vt_fail(err, VT_ERR_STATE, "dispatcher: aborted: %s", abort_reason);
    return st;
}
