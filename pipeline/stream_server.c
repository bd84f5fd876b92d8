/* Loader end of the stream: one ROUTER socket answering BatchRequests from
 * any number of trainers. Batches are filled into pooled slabs and sent as
 * zero-copy frames (zmq_msg_init_data); the slab returns to the pool when
 * libzmq's I/O thread has sent its last frame, so steady state allocates
 * nothing and resident memory stays flat. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/log.h"
#include "pipeline/stream.h"
#include "pipeline/stream_wire.h"

typedef struct slab_pool slab_pool;
typedef struct slab {
    struct slab *next;
    slab_pool *pool;
    atomic_int refs; /* frames still owned by libzmq */
    size_t bytes;
    void *mem;
} slab;

struct slab_pool {
    pthread_mutex_t mu;
    slab *free_list;
    uint32_t nfree, max_free;
};

struct vt_loader {
    vt_loader_config cfg;
    void *ctx, *sock;
    char **endpoints;
    int n_endpoints;
    slab_pool pool;
    uint32_t shutdowns;
};

static void slab_destroy(slab *sb) {
    free(sb->mem);
    free(sb);
}

static slab *pool_get(slab_pool *p, size_t bytes) {
    pthread_mutex_lock(&p->mu);
    slab *sb = p->free_list;
    if (sb) {
        p->free_list = sb->next;
        p->nfree--;
    }
    pthread_mutex_unlock(&p->mu);
    if (sb && sb->bytes != bytes) { /* another trainer layout: do not keep mismatched slabs */
        slab_destroy(sb);
        sb = NULL;
    }
    if (!sb) {
        sb = calloc(1, sizeof *sb);
        if (!sb) return NULL;
        sb->mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!sb->mem) {
            free(sb);
            return NULL;
        }
        sb->bytes = bytes;
        sb->pool = p;
    }
    return sb;
}

static void pool_put(slab *sb) {
    slab_pool *p = sb->pool;
    pthread_mutex_lock(&p->mu);
    if (p->nfree < p->max_free) {
        sb->next = p->free_list;
        p->free_list = sb;
        p->nfree++;
        sb = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (sb) slab_destroy(sb);
}

/* Called by libzmq (I/O thread or zmq_msg_close) once per frame. */
static void frame_free(void *data, void *hint) {
    (void)data;
    slab *sb = hint;
    if (atomic_fetch_sub(&sb->refs, 1) == 1) pool_put(sb);
}

void vt_loader_close(vt_loader *l) {
    if (!l) return;
    if (l->sock) {
        vt_wire_linger(l->sock, 0);
        zmq_close(l->sock);
    }
    /* Terminating the context releases every frame still queued, so all
     * slabs are back in the pool (or freed) after this. */
    if (l->ctx) zmq_ctx_term(l->ctx);
    while (l->pool.free_list) {
        slab *sb = l->pool.free_list;
        l->pool.free_list = sb->next;
        slab_destroy(sb);
    }
    pthread_mutex_destroy(&l->pool.mu);
    for (int i = 0; i < l->n_endpoints; i++) free(l->endpoints[i]);
    free(l->endpoints);
    free(l);
}

/* "tcp://0.0.0.0:5555" -> "tcp://<hostname>:5555" so peers can connect. */
static char *public_endpoint(const char *last) {
    const char *wild[] = {"tcp://0.0.0.0:", "tcp://[::]:"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(wild[i]);
        if (!strncmp(last, wild[i], n)) {
            char host[256] = "localhost";
            gethostname(host, sizeof host - 1);
            host[sizeof host - 1] = 0;
            size_t len = strlen(host) + strlen(last) + 8;
            char *out = malloc(len);
            if (out) snprintf(out, len, "tcp://%s:%s", host, last + n);
            return out;
        }
    }
    return strdup(last);
}

vt_status vt_loader_open(vt_loader **out, const vt_loader_config *cfg, const char *const *bind, int n_bind,
                         vt_error *err) {
    *out = NULL;
    if (n_bind <= 0) return vt_fail(err, VT_ERR_ARG, "loader: no endpoint to bind");
    vt_loader *l = calloc(1, sizeof *l);
    if (!l) return vt_fail(err, VT_ERR_NOMEM, "loader: out of memory");
    l->cfg = *cfg;
    pthread_mutex_init(&l->pool.mu, NULL);
    l->pool.max_free = cfg->pool_slabs ? cfg->pool_slabs : 8;
    l->ctx = zmq_ctx_new();
    l->sock = l->ctx ? zmq_socket(l->ctx, ZMQ_ROUTER) : NULL;
    l->endpoints = calloc((size_t)n_bind, sizeof *l->endpoints);
    if (!l->sock || !l->endpoints) {
        vt_loader_close(l);
        return vt_fail(err, VT_ERR_NET, "loader: cannot create a ZeroMQ socket");
    }
    int one = 1, sndtimeo = 2000;
    vt_wire_linger(l->sock, 0);
    /* MANDATORY: an answer for a trainer that went away fails visibly
     * (EHOSTUNREACH) instead of being dropped silently; SNDTIMEO bounds the
     * wait when a trainer stops reading. */
    zmq_setsockopt(l->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(l->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    for (int i = 0; i < n_bind; i++) {
        if (!strncmp(bind[i], "ipc://", 6) && strlen(bind[i] + 6) >= 107) {
            vt_loader_close(l);
            return vt_fail(err, VT_ERR_ARG, "loader: ipc path '%s' is %zu characters; the limit is 106",
                           bind[i] + 6, strlen(bind[i] + 6));
        }
        if (zmq_bind(l->sock, bind[i])) {
            int e = zmq_errno();
            vt_loader_close(l);
            return vt_fail(err, VT_ERR_NET, "loader: cannot bind '%s': %s", bind[i], zmq_strerror(e));
        }
        char last[512];
        size_t sz = sizeof last;
        if (zmq_getsockopt(l->sock, ZMQ_LAST_ENDPOINT, last, &sz)) snprintf(last, sizeof last, "%s", bind[i]);
        l->endpoints[i] = public_endpoint(last);
        l->n_endpoints = i + 1;
        if (!l->endpoints[i]) {
            vt_loader_close(l);
            return vt_fail(err, VT_ERR_NOMEM, "loader: out of memory");
        }
    }
    *out = l;
    return VT_OK;
}

void vt_loader_expect_trainers(vt_loader *l, uint32_t n) { l->cfg.expect_trainers = n; }

const char *vt_loader_endpoint(const vt_loader *l, int i) {
    return i >= 0 && i < l->n_endpoints ? l->endpoints[i] : NULL;
}

/* Sends [identity][msg] (a copy of the identity, so it can be reused). */
static void reply(vt_loader *l, zmq_msg_t *id, const Vt__StreamMessage *m) {
    zmq_msg_t idc;
    zmq_msg_init(&idc);
    zmq_msg_copy(&idc, id);
    if (zmq_msg_send(&idc, l->sock, ZMQ_SNDMORE) < 0) {
        zmq_msg_close(&idc);
        return;
    }
    vt_wire_send(l->sock, m, 0);
}

static void reply_error(vt_loader *l, zmq_msg_t *id, uint64_t request_id, const char *msg) {
    Vt__StreamError e = VT__STREAM_ERROR__INIT;
    e.request_id = request_id;
    e.message = (char *)msg;
    Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
    m.kind_case = VT__STREAM_MESSAGE__KIND_ERROR;
    m.error = &e;
    reply(l, id, &m);
}

static Vt__DType wire_dtype(vt_dtype d) {
    return d == VT_DTYPE_F32 ? VT__DTYPE__DTYPE_F32 : d == VT_DTYPE_I32 ? VT__DTYPE__DTYPE_I32 : VT__DTYPE__DTYPE_U8;
}

static void serve(vt_loader *l, zmq_msg_t *id, const Vt__BatchRequest *rq, vt_sampler *sampler,
                  const vt_batch_source *src) {
    vt_error err = {0};
    uint32_t b;
    if (vt_sampler_check_split(sampler, rq->trainer_count, rq->micro_count, &b, &err) ||
        rq->trainer_rank >= rq->trainer_count || rq->micro_index >= rq->micro_count) {
        if (!err.msg[0])
            snprintf(err.msg, sizeof err.msg, "rank %u of %u / micro %u of %u out of range", rq->trainer_rank,
                     rq->trainer_count, rq->micro_index, rq->micro_count);
        reply_error(l, id, rq->request_id, err.msg);
        return;
    }
    if (rq->step >= vt_sampler_steps_per_epoch(sampler)) {
        Vt__EndOfEpoch eoe = VT__END_OF_EPOCH__INIT;
        eoe.epoch = rq->epoch;
        eoe.steps = vt_sampler_steps_per_epoch(sampler);
        Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
        m.kind_case = VT__STREAM_MESSAGE__KIND_END_OF_EPOCH;
        m.end_of_epoch = &eoe;
        reply(l, id, &m);
        return;
    }
    vt_batch_shape shape = src->sample_shape;
    shape.batch = b;
    size_t bytes = vt_batch_bytes(&shape);
    slab *sb = bytes ? pool_get(&l->pool, bytes) : NULL;
    if (!sb) {
        reply_error(l, id, rq->request_id, "loader: cannot allocate the batch");
        return;
    }
    vt_batch batch;
    vt_batch_view(&batch, &shape, sb->mem);
    batch.epoch = rq->epoch;
    batch.step = rq->step;
    batch.micro_index = rq->micro_index;
    batch.trainer_rank = rq->trainer_rank;
    uint64_t t0 = vt_wire_now_ns();
    if (vt_sampler_slice(sampler, rq->epoch, rq->step, rq->trainer_rank, rq->trainer_count, rq->micro_index,
                         rq->micro_count, batch.sample_indices, &err) ||
        src->fill(src->ctx, &batch, &err)) {
        vt_log_error("loader %u: request %llu (epoch %u step %llu): %s", l->cfg.loader_rank,
                     (unsigned long long)rq->request_id, rq->epoch, (unsigned long long)rq->step, err.msg);
        reply_error(l, id, rq->request_id, err.msg);
        pool_put(sb);
        return;
    }
    vt_batch_frame fr[VT_BATCH_NFRAMES];
    vt_batch_frames(&batch, fr);
    Vt__FrameDesc fd[VT_BATCH_NFRAMES], *fdp[VT_BATCH_NFRAMES];
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) {
        vt__frame_desc__init(&fd[f]);
        fd[f].name = (char *)fr[f].name;
        fd[f].dtype = wire_dtype(fr[f].dtype);
        fd[f].n_shape = fr[f].ndim;
        fd[f].shape = fr[f].dims;
        fd[f].nbytes = fr[f].nbytes;
        fdp[f] = &fd[f];
    }
    Vt__BatchHeader h = VT__BATCH_HEADER__INIT;
    h.request_id = rq->request_id;
    h.epoch = rq->epoch;
    h.step = rq->step;
    h.trainer_rank = rq->trainer_rank;
    h.micro_index = rq->micro_index;
    h.batch_size = b;
    h.n_sample_indices = b;
    h.sample_indices = batch.sample_indices;
    h.n_frames = VT_BATCH_NFRAMES;
    h.frames = fdp;
    h.loader_rank = l->cfg.loader_rank;
    h.decode_ns = vt_wire_now_ns() - t0;
    Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
    m.kind_case = VT__STREAM_MESSAGE__KIND_BATCH;
    m.batch = &h;

    /* The header references the slab (sample indices), so it is sent
     * before any frame can release it. */
    atomic_store(&sb->refs, VT_BATCH_NFRAMES + 1);
    zmq_msg_t idc;
    zmq_msg_init(&idc);
    zmq_msg_copy(&idc, id);
    int ok = zmq_msg_send(&idc, l->sock, ZMQ_SNDMORE) >= 0;
    if (!ok) zmq_msg_close(&idc);
    ok = ok && vt_wire_send(l->sock, &m, ZMQ_SNDMORE) >= 0;
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) {
        int flags = f + 1 < VT_BATCH_NFRAMES ? ZMQ_SNDMORE : 0;
        if (!ok) {
            frame_free(NULL, sb);
            continue;
        }
        zmq_msg_t msg;
        zmq_msg_init_data(&msg, fr[f].data, fr[f].nbytes, frame_free, sb);
        if (zmq_msg_send(&msg, l->sock, flags) < 0) {
            zmq_msg_close(&msg); /* calls frame_free */
            ok = 0;
        }
    }
    frame_free(NULL, sb); /* the header's reference */
    if (!ok)
        vt_debug("loader %u: answer to request %llu not sent (%s); the trainer will re-request",
                 l->cfg.loader_rank, (unsigned long long)rq->request_id, zmq_strerror(zmq_errno()));
}

vt_status vt_loader_run(vt_loader *l, vt_sampler *sampler, const vt_batch_source *src, vt_error *err) {
    zmq_pollitem_t item = {.socket = l->sock, .events = ZMQ_POLLIN};
    uint64_t last_msg = 0;
    int seen = 0;
    for (;;) {
        if (l->cfg.stop && *l->cfg.stop) return VT_OK;
        if (l->cfg.expect_trainers && l->shutdowns >= l->cfg.expect_trainers) return VT_OK;
        if (l->cfg.idle_exit_ms && seen && vt_wire_now_ns() - last_msg > (uint64_t)l->cfg.idle_exit_ms * 1000000ull) {
            vt_info("loader %u: no trainer message for %d ms, exiting", l->cfg.loader_rank, l->cfg.idle_exit_ms);
            return VT_OK;
        }
        int rc = zmq_poll(&item, 1, 100);
        if (rc < 0) {
            if (zmq_errno() == EINTR) continue;
            return vt_fail(err, VT_ERR_NET, "loader: zmq_poll: %s", zmq_strerror(zmq_errno()));
        }
        if (!(item.revents & ZMQ_POLLIN)) continue;
        for (;;) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, l->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                break;
            }
            zmq_msg_init(&body);
            int more = 0;
            size_t sz = sizeof more;
            zmq_getsockopt(l->sock, ZMQ_RCVMORE, &more, &sz);
            if (!more || zmq_msg_recv(&body, l->sock, 0) < 0) {
                zmq_msg_close(&id);
                zmq_msg_close(&body);
                continue;
            }
            vt_wire_drain(l->sock);
            Vt__StreamMessage *m = vt_wire_unpack(&body);
            zmq_msg_close(&body);
            last_msg = vt_wire_now_ns();
            seen = 1;
            if (!m) {
                vt_warn("loader %u: ignoring a frame that is not a StreamMessage", l->cfg.loader_rank);
            } else if (m->kind_case == VT__STREAM_MESSAGE__KIND_REQUEST) {
                serve(l, &id, m->request, sampler, src);
            } else if (m->kind_case == VT__STREAM_MESSAGE__KIND_HEARTBEAT) {
                Vt__Heartbeat hb = VT__HEARTBEAT__INIT;
                hb.rank = l->cfg.loader_rank;
                hb.sequence = m->heartbeat->sequence;
                hb.unix_ns = vt_wire_now_ns();
                Vt__StreamMessage r = VT__STREAM_MESSAGE__INIT;
                r.kind_case = VT__STREAM_MESSAGE__KIND_HEARTBEAT;
                r.heartbeat = &hb;
                reply(l, &id, &r);
            } else if (m->kind_case == VT__STREAM_MESSAGE__KIND_SHUTDOWN) {
                /* Acknowledge after every earlier answer to this trainer
                 * (same pipe, so it arrives last): the trainer then closes a
                 * connection with nothing in flight. */
                Vt__Shutdown ack = VT__SHUTDOWN__INIT;
                ack.reason = "ack";
                Vt__StreamMessage r = VT__STREAM_MESSAGE__INIT;
                r.kind_case = VT__STREAM_MESSAGE__KIND_SHUTDOWN;
                r.shutdown = &ack;
                reply(l, &id, &r);
                l->shutdowns++;
                vt_debug("loader %u: shutdown %u of %u (%s)", l->cfg.loader_rank, l->shutdowns,
                         l->cfg.expect_trainers, m->shutdown->reason);
            }
            if (m) vt__stream_message__free_unpacked(m, NULL);
            zmq_msg_close(&id);
        }
    }
}
