/* Message framing for the scheduling protocol (see dispatch_wire.h). */
#include "scheduler/dispatch_wire.h"

#include <stdlib.h>
#include <time.h>
#include <zmq.h>

int64_t vt_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t vt_now_ms(void) { return vt_now_us() / 1000; }

static vt_status send_packed(void *sock, const void *id, size_t id_len, uint8_t *buf, size_t n,
                             vt_error *err) {
    if (id && zmq_send(sock, id, id_len, ZMQ_SNDMORE) < 0) {
        free(buf);
        return vt_fail(err, VT_ERR_NET, "scheduler: send failed: %s", zmq_strerror(zmq_errno()));
    }
    int rc = zmq_send(sock, buf, n, 0);
    free(buf);
    if (rc < 0) return vt_fail(err, VT_ERR_NET, "scheduler: send failed: %s", zmq_strerror(zmq_errno()));
    return VT_OK;
}

vt_status vt_send_worker_msg(void *sock, const Vt__WorkerMessage *m, vt_error *err) {
    size_t n = vt__worker_message__get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "scheduler: out of memory");
    vt__worker_message__pack(m, buf);
    return send_packed(sock, NULL, 0, buf, n, err);
}

vt_status vt_send_dispatcher_msg(void *sock, const void *id, size_t id_len, const Vt__DispatcherMessage *m,
                                 vt_error *err) {
    size_t n = vt__dispatcher_message__get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "scheduler: out of memory");
    vt__dispatcher_message__pack(m, buf);
    return send_packed(sock, id, id_len, buf, n, err);
}
