/* Packing and sending the scheduling protocol's messages (proto/sched.proto)
 * over ZeroMQ; shared by the dispatcher and the worker. Internal. */
#ifndef VT_DISPATCH_WIRE_H
#define VT_DISPATCH_WIRE_H

#include <stdint.h>

#include "common/error.h"
#include "proto/sched.pb-c.h"

/* Monotonic clock in milliseconds and microseconds. */
int64_t vt_now_ms(void);
int64_t vt_now_us(void);
/* Sends [identity frame if id != NULL] + packed message. */
vt_status vt_send_worker_msg(void *sock, const Vt__WorkerMessage *m, vt_error *err);
vt_status vt_send_dispatcher_msg(void *sock, const void *id, size_t id_len, const Vt__DispatcherMessage *m,
                                 vt_error *err);

#endif
