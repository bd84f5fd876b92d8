/* The worker side of task leasing (see dispatch.h): ask, run, heartbeat,
 * report, repeat until the dispatcher says the schedule is finished. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/log.h"
#include "scheduler/dispatch.h"
#include "scheduler/dispatch_wire.h"

struct vt_lease {
    void *sock;
    const char *worker, *task_id;
    int64_t next_beat_ms;
    int interval_ms;
};

void vt_lease_alive(vt_lease *l) {
    if (!l) return;
    int64_t now = vt_now_ms();
    if (now < l->next_beat_ms) return;
    l->next_beat_ms = now + l->interval_ms;
    Vt__WorkerMessage m = VT__WORKER_MESSAGE__INIT;
    Vt__LeaseHeartbeat hb = VT__LEASE_HEARTBEAT__INIT;
    hb.worker = (char *)l->worker;
    hb.task_id = (char *)l->task_id;
    m.kind_case = VT__WORKER_MESSAGE__KIND_HEARTBEAT;
    m.heartbeat = &hb;
    vt_error ignored;
    vt_send_worker_msg(l->sock, &m, &ignored); /* best effort: a lost beat only shortens the lease */
}

/* Waits for the dispatcher's answer; NULL with err filled on timeout/stop. */
static Vt__DispatcherMessage *receive(void *sock, int timeout_ms, const volatile sig_atomic_t *stop,
                                      const char *endpoint, vt_error *err) {
    int64_t deadline = vt_now_ms() + timeout_ms;
    for (;;) {
        if (stop && *stop) {
            vt_fail(err, VT_ERR_INTERRUPTED, "worker: stopped by a signal");
            return NULL;
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, 100);
        if (rc < 0 && zmq_errno() != EINTR) {
            vt_fail(err, VT_ERR_NET, "worker: poll failed: %s", zmq_strerror(zmq_errno()));
            return NULL;
        }
        if (rc > 0) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, sock, 0) < 0) {
                zmq_msg_close(&msg);
                continue;
            }
            Vt__DispatcherMessage *m =
                vt__dispatcher_message__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
            zmq_msg_close(&msg);
            if (m) return m;
            vt_warn("worker: undecodable message from the dispatcher ignored");
        }
        if (vt_now_ms() > deadline) {
            vt_fail(err, VT_ERR_NET, "worker: no answer from the dispatcher at %s within %d ms", endpoint,
                    timeout_ms);
            return NULL;
        }
    }
}

static vt_status run_lease(void *sock, const char *name, const Vt__Lease *lease, vt_task_executor exec,
                           vt_result_free free_result, void *ctx, int timeout_ms,
                           const volatile sig_atomic_t *stop, const char *endpoint, vt_worker_stats *stats,
                           vt_error *err) {
    vt_lease l = {sock, name, lease->task->task_id, 0, lease->lease_ms / 3 ? (int)lease->lease_ms / 3 : 1};
    l.next_beat_ms = vt_now_ms() + l.interval_ms;
    vt_debug("worker %s: running %s", name, lease->task->task_id);
    Vt__EvalResult *result = NULL;
    vt_error task_err = {0};
    vt_status st = exec(lease->task, ctx, &l, &result, &task_err);
    if (st == VT_ERR_INTERRUPTED) return vt_fail(err, st, "%s", task_err.msg);
    Vt__WorkerMessage m = VT__WORKER_MESSAGE__INIT;
    Vt__TaskResult tr = VT__TASK_RESULT__INIT;
    Vt__TaskFailed tf = VT__TASK_FAILED__INIT;
    if (!st) {
        tr.worker = (char *)name;
        tr.result = result;
        m.kind_case = VT__WORKER_MESSAGE__KIND_RESULT;
        m.result = &tr;
    } else {
        vt_warn("worker %s: task %s failed: %s", name, lease->task->task_id, task_err.msg);
        tf.worker = (char *)name;
        tf.task_id = lease->task->task_id;
        tf.message = task_err.msg;
        m.kind_case = VT__WORKER_MESSAGE__KIND_FAILED;
        m.failed = &tf;
        stats->tasks_failed++;
    }
    vt_status sst = vt_send_worker_msg(sock, &m, err);
    if (result) free_result(result, ctx);
    if (sst) return sst;
    Vt__DispatcherMessage *ack = receive(sock, timeout_ms, stop, endpoint, err);
    if (!ack) return err->code;
    if (ack->kind_case == VT__DISPATCHER_MESSAGE__KIND_ACK && !st) {
        stats->tasks_done++;
        stats->results_duplicate += !ack->ack->stored;
    }
    vt__dispatcher_message__free_unpacked(ack, NULL);
    return VT_OK;
}

vt_status vt_worker_run(const vt_worker_options *o, vt_task_executor exec, vt_result_free free_result,
                        void *ctx, const volatile sig_atomic_t *stop, vt_worker_stats *stats, vt_error *err) {
    memset(stats, 0, sizeof *stats);
    char name[300];
    if (o->name) snprintf(name, sizeof name, "%s", o->name);
    else {
        char host[256] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(name, sizeof name, "%s:%ld", host, (long)getpid());
    }
    int timeout_ms = o->reply_timeout_ms > 0 ? o->reply_timeout_ms : 10000;
    void *zctx = zmq_ctx_new();
    void *sock = zctx ? zmq_socket(zctx, ZMQ_DEALER) : NULL;
    if (!sock) {
        if (zctx) zmq_ctx_term(zctx);
        return vt_fail(err, VT_ERR_NET, "worker: cannot create a socket: %s", zmq_strerror(zmq_errno()));
    }
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    vt_status st = VT_OK;
    if (zmq_connect(sock, o->endpoint) != 0)
        st = vt_fail(err, VT_ERR_NET, "worker: cannot connect to '%s': %s", o->endpoint, zmq_strerror(zmq_errno()));
    while (!st) {
        Vt__WorkerMessage req = VT__WORKER_MESSAGE__INIT;
        Vt__LeaseRequest lr = VT__LEASE_REQUEST__INIT;
        lr.worker = name;
        req.kind_case = VT__WORKER_MESSAGE__KIND_REQUEST;
        req.request = &lr;
        if ((st = vt_send_worker_msg(sock, &req, err))) break;
        Vt__DispatcherMessage *m = receive(sock, timeout_ms, stop, o->endpoint, err);
        if (!m) {
            st = err->code;
            break;
        }
        bool finished = false;
        switch (m->kind_case) {
        case VT__DISPATCHER_MESSAGE__KIND_LEASE:
            st = run_lease(sock, name, m->lease, exec, free_result, ctx, timeout_ms, stop, o->endpoint, stats, err);
            break;
        case VT__DISPATCHER_MESSAGE__KIND_WAIT: {
            int64_t until = vt_now_ms() + m->wait->retry_ms;
            while (vt_now_ms() < until && !(stop && *stop)) usleep(20000);
            break;
        }
        case VT__DISPATCHER_MESSAGE__KIND_FINISHED:
            finished = true;
            break;
        case VT__DISPATCHER_MESSAGE__KIND_ABORT:
            st = vt_fail(err, VT_ERR_STATE, "worker: the dispatcher aborted the schedule: %s", m->abort->message);
            break;
        default: /* a stray ack of an earlier exchange */
            break;
        }
        vt__dispatcher_message__free_unpacked(m, NULL);
        if (finished) break;
    }
    zmq_close(sock);
    zmq_ctx_term(zctx);
    return st;
}
