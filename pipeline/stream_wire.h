/* Internal to the stream: packing StreamMessages into ZeroMQ frames and a
 * monotonic clock. Shared by the trainer (stream_client.c) and the loader
 * (stream_server.c); not part of the public API. */
#ifndef VT_STREAM_WIRE_H
#define VT_STREAM_WIRE_H

#include <stdint.h>
#include <zmq.h>

#include "proto/stream.pb-c.h"

/* Packs m and sends it as one frame with `flags` (ZMQ_SNDMORE, ZMQ_DONTWAIT).
 * Returns zmq_send's result (-1 with errno on failure). */
int vt_wire_send(void *sock, const Vt__StreamMessage *m, int flags);
/* Unpacks a received frame; NULL when it is not a valid StreamMessage. Free
 * with vt__stream_message__free_unpacked(m, NULL). */
Vt__StreamMessage *vt_wire_unpack(zmq_msg_t *frame);
/* Receives and drops the remaining parts of a multipart message. */
void vt_wire_drain(void *sock);
uint64_t vt_wire_now_ns(void);
/* Sets ZMQ_LINGER; used with 0 on error paths so close never blocks. */
void vt_wire_linger(void *sock, int ms);

#endif
