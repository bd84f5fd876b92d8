/* StreamMessage framing helpers for both ends of the stream. Control
 * messages are tiny, so they are packed on the stack when they fit. */
#include "pipeline/stream_wire.h"

#include <stdlib.h>
#include <time.h>

int vt_wire_send(void *sock, const Vt__StreamMessage *m, int flags) {
    size_t n = vt__stream_message__get_packed_size(m);
    uint8_t stack[512];
    uint8_t *buf = n <= sizeof stack ? stack : malloc(n);
    if (!buf) return -1;
    vt__stream_message__pack(m, buf);
    int rc = zmq_send(sock, buf, n, flags);
    if (buf != stack) free(buf);
    return rc;
}

Vt__StreamMessage *vt_wire_unpack(zmq_msg_t *frame) {
    return vt__stream_message__unpack(NULL, zmq_msg_size(frame), zmq_msg_data(frame));
}

void vt_wire_drain(void *sock) {
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc = zmq_msg_recv(&m, sock, 0);
        zmq_msg_close(&m);
        if (rc < 0) break;
    }
}

uint64_t vt_wire_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vt_wire_linger(void *sock, int ms) { zmq_setsockopt(sock, ZMQ_LINGER, &ms, sizeof ms); }
