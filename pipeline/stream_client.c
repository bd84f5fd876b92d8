/* Trainer end of the stream: keeps `credits` BatchRequests outstanding over
 * the live loaders, re-sends what a dead or slow loader did not answer,
 * drops late duplicates by request_id, and hands batches over strictly in
 * (epoch, step, micro) order. Single-threaded: everything happens inside
 * vt_stream_next_view, so the trainer decides when the stream may use a core.
 *
 * Receive path: a delivered batch's frames move out of their credit slot
 * into a ring of the last `hold` deliveries and are handed out as views; the
 * ring entry is released when it is reused. vt_stream_next copies a view. */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "pipeline/stream.h"
#include "pipeline/stream_wire.h"

typedef struct peer {
    void *sock;
    char *endpoint;
    uint64_t last_hb_ns;
    /* When we first sent (or tried to send) it something it has not
     * answered yet (0: nothing).
     * Silence only counts from there: a trainer busy elsewhere (validation,
     * a checkpoint) sends no heartbeats, and a loader owes it nothing then. */
    uint64_t waiting_since_ns;
    int alive;
    int skip; /* not connected during this send attempt */
    uint32_t outstanding;
} peer;

typedef struct slot {
    uint64_t seq; /* request_id: position in this trainer's stream */
    vt_sampler_cursor pos;
    uint64_t *indices; /* the sampler's answer, checked against the loader's */
    int loader;        /* peer it was last sent to; -1 = must be (re)sent */
    int ever_sent;
    uint64_t sent_ns;
    uint32_t attempt;
    int have;
    zmq_msg_t frames[VT_BATCH_NFRAMES];
} slot;

/* One of the last `hold` deliveries: what its views point into. */
typedef struct held {
    int have;                          /* frames are live messages */
    zmq_msg_t frames[VT_BATCH_NFRAMES];
    uint64_t *indices;                 /* with loaders: its sample indices */
    /* Single-process mode: the batch the source filled. With loaders:
     * allocated on first need for frames received misaligned. */
    vt_batch own;
} held;

struct vt_stream {
    vt_stream_config cfg;
    vt_sampler *sampler;
    vt_batch_source local;
    uint32_t batch;
    vt_batch_shape shape; /* of every delivered batch (B and sample_shape) */
    held *ring;           /* cfg.hold entries; delivery k uses ring[k % hold] */
    uint64_t ring_next;
    void *ctx;
    peer *peers;
    int npeers;
    zmq_pollitem_t *items;
    slot *slots;
    uint64_t deliver_seq, issue_seq;
    vt_sampler_cursor issue_pos, deliver_pos;
    uint64_t rr;
    uint64_t last_progress_ns;
    vt_stream_stats stats;
    int opened; /* fully connected: close says goodbye to loaders */
};

static const uint64_t MS = 1000000ull;

void vt_stream_config_default(vt_stream_config *c) {
    memset(c, 0, sizeof *c);
    c->rank = 0;
    c->ranks = 1;
    c->micro_count = 1;
    c->credits = 4;
    c->request_timeout_ms = 30000;
    c->heartbeat_ms = 500;
    c->dead_after_ms = 3000;
    c->give_up_ms = 60000;
}

uint32_t vt_stream_batch_size(const vt_stream *s) { return s->batch; }

void vt_stream_get_stats(const vt_stream *s, vt_stream_stats *st) { *st = s->stats; }

static void slot_release(slot *sl) {
    if (sl->have)
        for (int f = 0; f < VT_BATCH_NFRAMES; f++) zmq_msg_close(&sl->frames[f]);
    sl->have = 0;
}

static void held_release(held *h) {
    if (h->have)
        for (int f = 0; f < VT_BATCH_NFRAMES; f++) zmq_msg_close(&h->frames[f]);
    h->have = 0;
}

/* Clean close: Shutdown to every loader, then read (and drop) what they
 * still send until each live loader acknowledged, so no connection closes
 * while a multipart batch is half-way through it (libzmq 4.3.4 can abort the
 * sender in that case: session_base.cpp clean_pipes). Bounded by 2 s. */
static void shutdown_loaders(vt_stream *s) {
    Vt__Shutdown sd = VT__SHUTDOWN__INIT;
    sd.reason = "trainer closed the stream";
    Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
    m.kind_case = VT__STREAM_MESSAGE__KIND_SHUTDOWN;
    m.shutdown = &sd;
    /* Every peer gets a Shutdown, presumed-dead ones too (a loader that was
     * only slow must still learn that this trainer is done, or an MPI job
     * would wait for it forever); sends that cannot go out yet are retried
     * until the deadline. pending: 0 done, 1 Shutdown sent, 2 not yet sent. */
    char *pending = calloc((size_t)s->npeers, 1);
    if (!pending) return;
    int waiting = s->npeers;
    for (int i = 0; i < s->npeers; i++) pending[i] = 2;
    uint64_t deadline = vt_wire_now_ns() + 2000 * MS;
    while (waiting > 0 && vt_wire_now_ns() < deadline) {
        for (int i = 0; i < s->npeers; i++)
            if (pending[i] == 2 && vt_wire_send(s->peers[i].sock, &m, ZMQ_DONTWAIT) >= 0) pending[i] = 1;
        if (zmq_poll(s->items, s->npeers, 20) < 0 && zmq_errno() != EINTR) break;
        for (int i = 0; i < s->npeers; i++) {
            if (!(s->items[i].revents & ZMQ_POLLIN)) continue;
            for (;;) {
                zmq_msg_t f;
                zmq_msg_init(&f);
                if (zmq_msg_recv(&f, s->peers[i].sock, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&f);
                    break;
                }
                Vt__StreamMessage *r = vt_wire_unpack(&f);
                zmq_msg_close(&f);
                vt_wire_drain(s->peers[i].sock);
                if (r && r->kind_case == VT__STREAM_MESSAGE__KIND_SHUTDOWN && pending[i] == 1) {
                    pending[i] = 0;
                    waiting--;
                }
                if (r) vt__stream_message__free_unpacked(r, NULL);
            }
        }
        /* A loader presumed dead whose connection is gone (the send keeps
         * failing under ZMQ_IMMEDIATE) will never acknowledge: stop
         * waiting once only such loaders are left. */
        int hope = 0;
        for (int i = 0; i < s->npeers; i++) hope |= pending[i] == 1 || (pending[i] == 2 && s->peers[i].alive);
        if (!hope) break;
    }
    if (waiting)
        for (int i = 0; i < s->npeers; i++)
            if (pending[i]) vt_debug("stream: loader %s did not acknowledge Shutdown", s->peers[i].endpoint);
    free(pending);
}

void vt_stream_close(vt_stream *s) {
    if (!s) return;
    if (s->opened) shutdown_loaders(s);
    for (int i = 0; i < s->npeers; i++) {
        peer *p = &s->peers[i];
        if (!p->sock) continue;
        vt_wire_linger(p->sock, 0);
        zmq_close(p->sock);
        free(p->endpoint);
    }
    if (s->slots)
        for (uint32_t i = 0; i < s->cfg.credits; i++) {
            slot_release(&s->slots[i]);
            free(s->slots[i].indices);
        }
    if (s->ring)
        for (uint32_t i = 0; i < s->cfg.hold; i++) {
            held_release(&s->ring[i]);
            free(s->ring[i].indices);
            vt_batch_free(&s->ring[i].own);
        }
    if (s->ctx) zmq_ctx_term(s->ctx);
    free(s->ring);
    free(s->slots);
    free(s->peers);
    free(s->items);
    free(s);
}

vt_status vt_stream_open(vt_stream **out, const vt_stream_config *cfg, vt_sampler *sampler,
                         const char *const *endpoints, int n_endpoints, const vt_batch_source *local,
                         vt_error *err) {
    *out = NULL;
    vt_status st;
    uint32_t b;
    if ((st = vt_sampler_check_split(sampler, cfg->ranks, cfg->micro_count, &b, err))) return st;
    if (cfg->rank >= cfg->ranks)
        return vt_fail(err, VT_ERR_ARG, "stream: trainer rank %u out of range (%u ranks)", cfg->rank, cfg->ranks);
    if (cfg->start.step >= vt_sampler_steps_per_epoch(sampler) || cfg->start.micro >= cfg->micro_count)
        return vt_fail(err, VT_ERR_ARG, "stream: start position (epoch %llu, step %llu, micro %u) out of range",
                       (unsigned long long)cfg->start.epoch, (unsigned long long)cfg->start.step, cfg->start.micro);
    if (n_endpoints == 0 && (!local || !local->fill))
        return vt_fail(err, VT_ERR_ARG, "stream: no loader endpoints and no local batch source");
    vt_batch_shape shape = cfg->sample_shape;
    if (n_endpoints == 0 && shape.seq_len == 0) shape = local->sample_shape;
    if (n_endpoints > 0 && shape.seq_len == 0)
        return vt_fail(err, VT_ERR_ARG,
                       "stream: sample_shape (the C, H, W, T the trainer expects) must be set to stream from loaders");
    if (n_endpoints == 0 && !vt_batch_shape_compatible(&shape, &local->sample_shape))
        return vt_fail(err, VT_ERR_ARG,
                       "stream: sample_shape %ux%ux%u, T=%u differs from the local source's %ux%ux%u, T=%u",
                       shape.channels, shape.height, shape.width, shape.seq_len, local->sample_shape.channels,
                       local->sample_shape.height, local->sample_shape.width, local->sample_shape.seq_len);
    shape.batch = b;
    uint32_t hold = cfg->hold ? cfg->hold : cfg->micro_count;
    if (hold > 4096) return vt_fail(err, VT_ERR_ARG, "stream: hold must be in 1..4096 (got %u)", hold);
    if (n_endpoints > 0 && (cfg->credits == 0 || cfg->credits > 4096))
        return vt_fail(err, VT_ERR_ARG, "stream: credits must be in 1..4096 (got %u)", cfg->credits);
    if (n_endpoints > 0 && (cfg->request_timeout_ms <= 0 || cfg->heartbeat_ms <= 0 || cfg->dead_after_ms <= 0 ||
                            cfg->give_up_ms <= 0))
        return vt_fail(err, VT_ERR_ARG, "stream: timeouts must be > 0 ms");

    vt_stream *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
    s->cfg = *cfg;
    s->cfg.hold = hold;
    s->sampler = sampler;
    s->batch = b;
    s->shape = shape;
    if (local) s->local = *local;
    s->issue_pos = s->deliver_pos = cfg->start;
    s->last_progress_ns = vt_wire_now_ns();
    s->ring = calloc(hold, sizeof *s->ring);
    if (!s->ring) {
        vt_stream_close(s);
        return vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
    }
    for (uint32_t i = 0; i < hold; i++) {
        st = n_endpoints ? VT_OK : vt_batch_alloc(&s->ring[i].own, &shape, err);
        if (!st && n_endpoints && !(s->ring[i].indices = malloc((size_t)b * sizeof(uint64_t))))
            st = vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
        if (st) {
            vt_stream_close(s);
            return st;
        }
    }
    if (n_endpoints == 0) {
        *out = s;
        return VT_OK;
    }
    s->ctx = zmq_ctx_new();
    s->peers = calloc((size_t)n_endpoints, sizeof *s->peers);
    s->items = calloc((size_t)n_endpoints, sizeof *s->items);
    s->slots = calloc(cfg->credits, sizeof *s->slots);
    if (!s->ctx || !s->peers || !s->items || !s->slots) {
        vt_stream_close(s);
        return vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
    }
    for (uint32_t i = 0; i < cfg->credits; i++) {
        s->slots[i].indices = malloc((size_t)b * sizeof(uint64_t));
        if (!s->slots[i].indices) {
            vt_stream_close(s);
            return vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
        }
    }
    for (int i = 0; i < n_endpoints; i++) {
        peer *p = &s->peers[i];
        s->npeers = i + 1;
        p->sock = zmq_socket(s->ctx, ZMQ_DEALER);
        p->endpoint = strdup(endpoints[i]);
        int one = 1;
        /* IMMEDIATE: a send to a loader that is not (or no longer) connected
         * fails at once instead of queueing for a peer that may never come. */
        if (!p->sock || !p->endpoint || zmq_setsockopt(p->sock, ZMQ_IMMEDIATE, &one, sizeof one)) {
            vt_stream_close(s);
            return vt_fail(err, VT_ERR_NET, "stream: cannot create a socket for %s: %s", endpoints[i],
                           zmq_strerror(zmq_errno()));
        }
        vt_wire_linger(p->sock, 0);
        if (zmq_connect(p->sock, endpoints[i])) {
            int e = zmq_errno();
            vt_stream_close(s);
            return vt_fail(err, VT_ERR_NET, "stream: cannot connect to loader endpoint '%s': %s", endpoints[i],
                           zmq_strerror(e));
        }
        p->alive = 1;
        s->items[i].socket = p->sock;
        s->items[i].events = ZMQ_POLLIN;
    }
    s->opened = 1;
    *out = s;
    return VT_OK;
}

/* Sends slot sl to the least-loaded live loader, preferring one other than
 * the loader that already failed it. Leaves sl->loader = -1 if nobody can
 * take it now (not connected yet, all dead): the caller retries. */
static void send_request(vt_stream *s, slot *sl) {
    int prev = sl->loader;
    if (prev >= 0 && s->peers[prev].outstanding) s->peers[prev].outstanding--;
    sl->loader = -1;
    Vt__BatchRequest rq = VT__BATCH_REQUEST__INIT;
    rq.request_id = sl->seq;
    rq.epoch = (uint32_t)sl->pos.epoch;
    rq.step = sl->pos.step;
    rq.trainer_rank = s->cfg.rank;
    rq.trainer_count = s->cfg.ranks;
    rq.micro_index = sl->pos.micro;
    rq.micro_count = s->cfg.micro_count;
    rq.attempt = sl->ever_sent ? sl->attempt + 1 : 0;
    Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
    m.kind_case = VT__STREAM_MESSAGE__KIND_REQUEST;
    m.request = &rq;
    /* Try live peers in order of load (rotating ties), the previous one last. */
    int n = s->npeers;
    for (int pass = 0; pass < 2; pass++) {
        for (;;) {
            int best = -1;
            for (int k = 0; k < n; k++) {
                int i = (int)((s->rr + (uint64_t)k) % (uint64_t)n);
                peer *p = &s->peers[i];
                if (!p->alive || (pass == 0 && i == prev && n > 1) || p->skip) continue;
                if (best < 0 || p->outstanding < s->peers[best].outstanding) best = i;
            }
            if (best < 0) break;
            if (vt_wire_send(s->peers[best].sock, &m, ZMQ_DONTWAIT) >= 0) {
                if (!s->peers[best].waiting_since_ns) s->peers[best].waiting_since_ns = vt_wire_now_ns();
                s->rr++;
                s->peers[best].outstanding++;
                sl->loader = best;
                sl->sent_ns = vt_wire_now_ns();
                if (sl->ever_sent) {
                    sl->attempt++;
                    s->stats.resent++;
                }
                sl->ever_sent = 1;
                s->stats.requests++;
                break;
            }
            /* Not connected now: skip it for this call only. */
            s->peers[best].skip = 1;
        }
        if (sl->loader >= 0) break;
    }
    for (int i = 0; i < n; i++) s->peers[i].skip = 0;
}

static vt_status fill_window(vt_stream *s, vt_error *err) {
    while (s->issue_seq < s->deliver_seq + s->cfg.credits) {
        slot *sl = &s->slots[s->issue_seq % s->cfg.credits];
        sl->seq = s->issue_seq;
        sl->pos = s->issue_pos;
        sl->loader = -1;
        sl->ever_sent = 0;
        sl->attempt = 0;
        sl->have = 0;
        vt_status st = vt_sampler_slice(s->sampler, sl->pos.epoch, sl->pos.step, s->cfg.rank, s->cfg.ranks,
                                        sl->pos.micro, s->cfg.micro_count, sl->indices, err);
        if (st) return st;
        vt_sampler_cursor_advance(s->sampler, &s->issue_pos, s->cfg.micro_count);
        s->issue_seq++;
        send_request(s, sl);
    }
    return VT_OK;
}

/* Checks a BatchHeader against the slot it answers; on success receives
 * the raw frames into the slot. */
static vt_status take_batch(vt_stream *s, peer *p, slot *sl, const Vt__BatchHeader *h, vt_error *err) {
    const char *ep = p->endpoint;
    if (h->epoch != sl->pos.epoch || h->step != sl->pos.step || h->micro_index != sl->pos.micro)
        return vt_fail(err, VT_ERR_FORMAT,
                       "stream: loader %s answered request %llu with epoch %u step %llu micro %u, "
                       "expected epoch %llu step %llu micro %u",
                       ep, (unsigned long long)h->request_id, h->epoch, (unsigned long long)h->step,
                       h->micro_index, (unsigned long long)sl->pos.epoch, (unsigned long long)sl->pos.step,
                       sl->pos.micro);
    if (h->n_sample_indices != s->batch || h->n_frames != VT_BATCH_NFRAMES)
        return vt_fail(err, VT_ERR_FORMAT, "stream: loader %s sent %zu samples in %zu frames, expected %u in %d", ep,
                       h->n_sample_indices, h->n_frames, s->batch, VT_BATCH_NFRAMES);
    for (uint32_t j = 0; j < s->batch; j++)
        if (h->sample_indices[j] != sl->indices[j])
            return vt_fail(err, VT_ERR_FORMAT,
                           "stream: loader %s sent sample %llu at position %u of epoch %llu step %llu, the "
                           "sampler says %llu (seed, dataset size or global batch differ between loader and trainer)",
                           ep, (unsigned long long)h->sample_indices[j], j, (unsigned long long)sl->pos.epoch,
                           (unsigned long long)sl->pos.step, (unsigned long long)sl->indices[j]);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) zmq_msg_init(&sl->frames[f]);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) {
        int more = 0;
        size_t sz = sizeof more;
        zmq_getsockopt(p->sock, ZMQ_RCVMORE, &more, &sz);
        if (!more || zmq_msg_recv(&sl->frames[f], p->sock, 0) < 0 ||
            zmq_msg_size(&sl->frames[f]) != h->frames[f]->nbytes) {
            for (int k = 0; k < VT_BATCH_NFRAMES; k++) zmq_msg_close(&sl->frames[k]);
            vt_wire_drain(p->sock);
            return vt_fail(err, VT_ERR_FORMAT, "stream: loader %s: frame %d ('%s') of request %llu is missing or not %llu bytes",
                           ep, f + 1, h->frames[f]->name, (unsigned long long)h->request_id,
                           (unsigned long long)h->frames[f]->nbytes);
        }
    }
    vt_wire_drain(p->sock);
    if (sl->loader >= 0 && s->peers[sl->loader].outstanding) s->peers[sl->loader].outstanding--;
    sl->have = 1;
    return VT_OK;
}

/* Reads everything waiting on peer i. */
static vt_status drain_peer(vt_stream *s, int i, vt_error *err) {
    peer *p = &s->peers[i];
    for (;;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, p->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return VT_OK;
        }
        p->waiting_since_ns = 0;
        if (!p->alive) {
            vt_info("stream: loader %s is answering again", p->endpoint);
            p->alive = 1;
        }
        Vt__StreamMessage *m = vt_wire_unpack(&f);
        zmq_msg_close(&f);
        if (!m) {
            vt_wire_drain(p->sock);
            return vt_fail(err, VT_ERR_FORMAT, "stream: loader %s sent a frame that is not a StreamMessage", p->endpoint);
        }
        vt_status st = VT_OK;
        if (m->kind_case == VT__STREAM_MESSAGE__KIND_BATCH) {
            uint64_t id = m->batch->request_id;
            slot *sl = &s->slots[id % s->cfg.credits];
            if (id < s->deliver_seq || id >= s->issue_seq || sl->have || sl->seq != id) {
                s->stats.duplicates++;
                vt_wire_drain(p->sock);
            } else {
                st = take_batch(s, p, sl, m->batch, err);
            }
        } else if (m->kind_case == VT__STREAM_MESSAGE__KIND_ERROR) {
            st = vt_fail(err, VT_ERR_NET, "stream: loader %s failed request %llu: %s", p->endpoint,
                         (unsigned long long)m->error->request_id, m->error->message);
            vt_wire_drain(p->sock);
        } else if (m->kind_case == VT__STREAM_MESSAGE__KIND_END_OF_EPOCH) {
            st = vt_fail(err, VT_ERR_STATE,
                         "stream: loader %s says epoch %u has %llu steps, the trainer's sampler has %llu "
                         "(dataset or global batch differ)",
                         p->endpoint, m->end_of_epoch->epoch, (unsigned long long)m->end_of_epoch->steps,
                         (unsigned long long)vt_sampler_steps_per_epoch(s->sampler));
            vt_wire_drain(p->sock);
        } else {
            vt_wire_drain(p->sock); /* heartbeats: being heard is all they carry */
        }
        vt__stream_message__free_unpacked(m, NULL);
        if (st) return st;
    }
}

/* Sets a delivered batch's position in the stream. */
static void stamp(const vt_stream *s, vt_batch *out, const vt_sampler_cursor *pos) {
    out->epoch = pos->epoch;
    out->step = pos->step;
    out->micro_index = pos->micro;
    out->trainer_rank = s->cfg.rank;
}

static size_t dtype_align(vt_dtype t) {
    return t == VT_DTYPE_F32 ? alignof(float) : t == VT_DTYPE_I32 ? alignof(int32_t) : 1;
}

/* The next ring entry; whatever the delivery `hold` calls ago left there
 * (its views) ends now. */
static held *ring_take(vt_stream *s) {
    held *h = &s->ring[s->ring_next++ % s->cfg.hold];
    held_release(h);
    return h;
}

/* Hands slot sl over as a view: its frames move into the ring, each view
 * points into its message, or into h->own where ZeroMQ's buffer is not
 * aligned for the frame's type (small frames are decoded in place inside a
 * shared receive buffer at any offset). */
static vt_status deliver(vt_stream *s, slot *sl, vt_batch *out, vt_error *err) {
    vt_batch probe = {.shape = s->shape};
    vt_batch_frame want[VT_BATCH_NFRAMES];
    vt_batch_frames(&probe, want);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++)
        if (zmq_msg_size(&sl->frames[f]) != want[f].nbytes)
            return vt_fail(err, VT_ERR_FORMAT,
                           "stream: loader frame '%s' has %zu bytes, the trainer expects %zu for %ux%ux%u, T=%u "
                           "(image size or sequence length differ)",
                           want[f].name, zmq_msg_size(&sl->frames[f]), want[f].nbytes, s->shape.channels,
                           s->shape.height, s->shape.width, s->shape.seq_len);
    held *h = ring_take(s);
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) {
        zmq_msg_init(&h->frames[f]);
        zmq_msg_move(&h->frames[f], &sl->frames[f]);
    }
    h->have = 1;
    slot_release(sl); /* closes the emptied messages */
    /* Data pointers only after the move: tiny messages keep their bytes
     * inside the zmq_msg_t itself. */
    static alignas(64) unsigned char empty[64];
    void *data[VT_BATCH_NFRAMES];
    for (int f = 0; f < VT_BATCH_NFRAMES; f++) {
        data[f] = want[f].nbytes ? zmq_msg_data(&h->frames[f]) : empty;
        if ((uintptr_t)data[f] % dtype_align(want[f].dtype) == 0) continue;
        vt_status st = h->own.slab ? VT_OK : vt_batch_alloc(&h->own, &s->shape, err);
        if (st) return st;
        vt_batch_frame fix[VT_BATCH_NFRAMES];
        vt_batch_frames(&h->own, fix);
        memcpy(fix[f].data, data[f], want[f].nbytes);
        data[f] = fix[f].data;
        s->stats.realigned++;
    }
    memcpy(h->indices, sl->indices, (size_t)s->batch * sizeof(uint64_t));
    vt_batch_view_frames(out, &s->shape, data);
    out->sample_indices = h->indices;
    stamp(s, out, &sl->pos);
    return VT_OK;
}

/* Single-process mode: fills the next ring entry's batch and views it. */
static vt_status next_local(vt_stream *s, vt_batch *out, vt_error *err) {
    vt_batch *b = &ring_take(s)->own;
    vt_sampler_cursor *c = &s->deliver_pos;
    vt_status st = vt_sampler_slice(s->sampler, c->epoch, c->step, s->cfg.rank, s->cfg.ranks, c->micro,
                                    s->cfg.micro_count, b->sample_indices, err);
    if (st) return st;
    stamp(s, b, c);
    if ((st = s->local.fill(s->local.ctx, b, err))) return st;
    *out = *b; /* a view like the streamed ones: the slab stays the stream's */
    out->slab = NULL;
    out->slab_bytes = 0;
    out->owns_slab = 0;
    vt_sampler_cursor_advance(s->sampler, c, s->cfg.micro_count);
    s->stats.delivered++;
    return VT_OK;
}

vt_status vt_stream_next(vt_stream *s, vt_batch *out, vt_error *err) {
    if (out->shape.batch != s->batch)
        return vt_fail(err, VT_ERR_ARG, "stream: output batch holds %u samples, the stream delivers %u",
                       out->shape.batch, s->batch);
    if (!vt_batch_shape_compatible(&out->shape, &s->shape))
        return vt_fail(err, VT_ERR_ARG, "stream: output batch is %ux%ux%u, T=%u, the stream delivers %ux%ux%u, T=%u",
                       out->shape.channels, out->shape.height, out->shape.width, out->shape.seq_len,
                       s->shape.channels, s->shape.height, s->shape.width, s->shape.seq_len);
    vt_batch view;
    vt_status st = vt_stream_next_view(s, &view, err);
    if (st) return st;
    vt_batch_copy(out, &view);
    return VT_OK;
}

vt_status vt_stream_next_view(vt_stream *s, vt_batch *out, vt_error *err) {
    if (s->npeers == 0) return next_local(s, out, err);
    vt_status st;
    uint64_t t0 = vt_wire_now_ns();
    /* Answers that came while the caller was away are read before anyone's
     * silence is judged. */
    if (zmq_poll(s->items, s->npeers, 0) > 0)
        for (int i = 0; i < s->npeers; i++)
            if (s->items[i].revents & ZMQ_POLLIN)
                if ((st = drain_peer(s, i, err))) return st;
    for (;;) {
        if ((st = fill_window(s, err))) return st;
        slot *d = &s->slots[s->deliver_seq % s->cfg.credits];
        if (d->have) {
            if ((st = deliver(s, d, out, err))) return st;
            s->deliver_seq++;
            vt_sampler_cursor_advance(s->sampler, &s->deliver_pos, s->cfg.micro_count);
            s->stats.delivered++;
            uint64_t now = vt_wire_now_ns();
            s->stats.wait_ns += now - t0;
            s->last_progress_ns = now;
            return VT_OK;
        }
        uint64_t now = vt_wire_now_ns();
        int any_alive = 0;
        for (int i = 0; i < s->npeers; i++) {
            peer *p = &s->peers[i];
            if (now - p->last_hb_ns >= (uint64_t)s->cfg.heartbeat_ms * MS) {
                Vt__Heartbeat hb = VT__HEARTBEAT__INIT;
                hb.rank = s->cfg.rank;
                hb.sequence = s->stats.requests;
                Vt__StreamMessage m = VT__STREAM_MESSAGE__INIT;
                m.kind_case = VT__STREAM_MESSAGE__KIND_HEARTBEAT;
                m.heartbeat = &hb;
                vt_wire_send(p->sock, &m, ZMQ_DONTWAIT); /* one that cannot even be queued counts too */
                if (!p->waiting_since_ns) p->waiting_since_ns = now;
                p->last_hb_ns = now;
            }
            if (p->alive && p->waiting_since_ns && now - p->waiting_since_ns > (uint64_t)s->cfg.dead_after_ms * MS) {
                vt_warn("stream: loader %s silent for %d ms, re-sending its requests elsewhere", p->endpoint,
                        (int)((now - p->waiting_since_ns) / MS));
                p->alive = 0;
                p->outstanding = 0;
                s->stats.loaders_lost++;
                for (uint32_t k = 0; k < s->cfg.credits; k++) {
                    slot *sl = &s->slots[k];
                    if (sl->seq >= s->deliver_seq && sl->seq < s->issue_seq && !sl->have && sl->loader == i)
                        sl->loader = -1;
                }
            }
            any_alive |= p->alive;
        }
        int unsent = 0;
        for (uint64_t q = s->deliver_seq; q < s->issue_seq; q++) {
            slot *sl = &s->slots[q % s->cfg.credits];
            if (sl->have) continue;
            if (sl->loader >= 0 && now - sl->sent_ns > (uint64_t)s->cfg.request_timeout_ms * MS) {
                vt_warn("stream: request %llu (epoch %llu step %llu) unanswered by %s for %d ms, re-sending",
                        (unsigned long long)sl->seq, (unsigned long long)sl->pos.epoch,
                        (unsigned long long)sl->pos.step, s->peers[sl->loader].endpoint, s->cfg.request_timeout_ms);
                send_request(s, sl);
            } else if (sl->loader < 0) {
                send_request(s, sl);
            }
            unsent |= sl->loader < 0;
        }
        if (!any_alive && now - s->last_progress_ns > (uint64_t)s->cfg.give_up_ms * MS)
            return vt_fail(err, VT_ERR_NET, "stream: no loader answered for %d ms (first endpoint %s)",
                           (int)((now - s->last_progress_ns) / MS), s->peers[0].endpoint);
        long wait = s->cfg.heartbeat_ms;
        if (unsent && wait > 10) wait = 10;
        if (zmq_poll(s->items, s->npeers, wait) < 0 && zmq_errno() != EINTR)
            return vt_fail(err, VT_ERR_NET, "stream: zmq_poll: %s", zmq_strerror(zmq_errno()));
        for (int i = 0; i < s->npeers; i++)
            if (s->items[i].revents & ZMQ_POLLIN)
                if ((st = drain_peer(s, i, err))) return st;
    }
}
