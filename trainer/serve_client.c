/* Client side of the black-box scoring service (trainer/serve.h): a REQ
 * socket with REQ_RELAXED/REQ_CORRELATE, so after a timeout (service busy or
 * restarted) the next request goes out on the same socket instead of
 * wedging it; CURVE keys come from files. */
#include "trainer/serve.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "common/fs.h"
#include "proto/serve.pb-c.h"

struct vt_serve_client {
    vt_serve_client_options opt;
    char endpoint[256];
    char server_key[41], secret[41], public[41];
    int curve;
    void *zctx, *sock;
};

vt_status vt_serve_read_key(const char *path, char out[41], vt_error *err) {
    char *data;
    size_t len;
    vt_status st = vt_read_file(path, 4096, &data, &len, err);
    if (st) return st;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ')) len--;
    uint8_t bin[32];
    int ok = len == 40;
    if (ok) {
        memcpy(out, data, 40);
        out[40] = 0;
        ok = zmq_z85_decode(bin, out) != NULL;
    }
    free(data);
    return ok ? VT_OK : vt_fail(err, VT_ERR_FORMAT, "%s: not a z85 CURVE key (40 characters)", path);
}

vt_status vt_serve_keygen(const char *path, vt_error *err) {
    char pub[41], sec[41], name[4096];
    if (zmq_curve_keypair(pub, sec))
        return vt_fail(err, VT_ERR_STATE, "keygen: libzmq has no CURVE support (%s)", zmq_strerror(zmq_errno()));
    pub[40] = sec[40] = '\n';
    snprintf(name, sizeof name, "%s.key", path);
    vt_status st = vt_write_file_atomic(name, sec, 41, err);
    if (st) return st;
    if (chmod(name, 0600)) return vt_fail_errno(err, VT_ERR_IO, "%s: chmod", name);
    snprintf(name, sizeof name, "%s.pub", path);
    return vt_write_file_atomic(name, pub, 41, err);
}

static vt_status connect_socket(vt_serve_client *c, vt_error *err) {
    c->sock = zmq_socket(c->zctx, ZMQ_REQ);
    int zero = 0, one = 1, t = c->opt.timeout_ms;
    if (!c->sock || zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(c->sock, ZMQ_REQ_RELAXED, &one, sizeof one) ||
        zmq_setsockopt(c->sock, ZMQ_REQ_CORRELATE, &one, sizeof one) ||
        zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &t, sizeof t) || zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &t, sizeof t))
        return vt_fail(err, VT_ERR_NET, "serve client: socket for %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
    if (c->curve && (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, c->server_key, 40) ||
                     zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, c->public, 40) ||
                     zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, c->secret, 40)))
        return vt_fail(err, VT_ERR_NET, "serve client: CURVE keys for %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
    if (zmq_connect(c->sock, c->endpoint))
        return vt_fail(err, VT_ERR_NET, "serve client: connect %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
    return VT_OK;
}

vt_status vt_serve_client_open(vt_serve_client **out, const vt_serve_client_options *opt, vt_error *err) {
    *out = NULL;
    if (!opt->endpoint || strlen(opt->endpoint) >= 256)
        return vt_fail(err, VT_ERR_ARG, "serve client: endpoint missing or too long");
    vt_serve_client *c = calloc(1, sizeof *c);
    if (!c) return vt_fail(err, VT_ERR_NOMEM, "serve client: out of memory");
    c->opt = *opt;
    if (c->opt.timeout_ms <= 0) c->opt.timeout_ms = 30000;
    strcpy(c->endpoint, opt->endpoint);
    vt_status st = VT_OK;
    if (opt->server_public_key_file) {
        c->curve = 1;
        if ((st = vt_serve_read_key(opt->server_public_key_file, c->server_key, err))) goto fail;
        if (opt->client_secret_key_file) {
            if ((st = vt_serve_read_key(opt->client_secret_key_file, c->secret, err))) goto fail;
            if (zmq_curve_public(c->public, c->secret)) {
                st = vt_fail(err, VT_ERR_FORMAT, "%s: not a CURVE secret key", opt->client_secret_key_file);
                goto fail;
            }
        } else if (zmq_curve_keypair(c->public, c->secret)) {
            st = vt_fail(err, VT_ERR_STATE, "serve client: libzmq has no CURVE support");
            goto fail;
        }
    }
    c->zctx = zmq_ctx_new();
    if (!c->zctx) {
        st = vt_fail(err, VT_ERR_NET, "serve client: zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if ((st = connect_socket(c, err))) goto fail;
    *out = c;
    return VT_OK;
fail:
    vt_serve_client_close(c);
    return st;
}

void vt_serve_client_close(vt_serve_client *c) {
    if (!c) return;
    if (c->sock) zmq_close(c->sock);
    if (c->zctx) zmq_ctx_term(c->zctx);
    free(c);
}

vt_status vt_serve_client_reconnect(vt_serve_client *c, vt_error *err) {
    if (c->sock) zmq_close(c->sock);
    c->sock = NULL;
    return connect_socket(c, err);
}

/* Sends one request and unpacks the reply (caller frees it). */
static vt_status call(vt_serve_client *c, const void *data, size_t len, Vt__ServeReply **out, vt_error *err) {
    *out = NULL;
    /* A signal (a tuner's SIGUSR1/SIGTERM: checkpoint at the next step
     * boundary) interrupts the wait with EINTR; the reply is still coming,
     * so wait on. SIGINT ends the process through its own watchdog. */
    int rc;
    while ((rc = zmq_send(c->sock, data, len, 0)) < 0 && zmq_errno() == EINTR) {}
    if (rc < 0)
        return vt_fail(err, VT_ERR_NET, "serve client: send to %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while ((rc = zmq_msg_recv(&msg, c->sock, 0)) < 0 && zmq_errno() == EINTR) {}
    if (rc < 0) {
        int e = zmq_errno();
        zmq_msg_close(&msg);
        if (e == EAGAIN)
            return vt_fail(err, VT_ERR_NET, "serve client: no reply from %s within %d ms", c->endpoint, c->opt.timeout_ms);
        return vt_fail(err, VT_ERR_NET, "serve client: receive from %s: %s", c->endpoint, zmq_strerror(e));
    }
    *out = vt__serve_reply__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
    size_t n = zmq_msg_size(&msg);
    zmq_msg_close(&msg);
    if (!*out) return vt_fail(err, VT_ERR_FORMAT, "serve client: reply of %zu bytes from %s is not a vt.ServeReply", n, c->endpoint);
    if ((*out)->kind_case == VT__SERVE_REPLY__KIND_ERROR) {
        vt_status code = (*out)->error->code ? (vt_status)(*out)->error->code : VT_ERR_STATE;
        if (code > VT_ERR_INTERRUPTED) code = VT_ERR_STATE;
        vt_fail(err, code, "service %s: %s", c->endpoint, (*out)->error->message);
        vt__serve_reply__free_unpacked(*out, NULL);
        *out = NULL;
        return code;
    }
    return VT_OK;
}

static vt_status call_request(vt_serve_client *c, Vt__ServeRequest *req, Vt__ServeReply **out, vt_error *err) {
    size_t n = vt__serve_request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return vt_fail(err, VT_ERR_NOMEM, "serve client: out of memory for a %zu-byte request", n);
    vt__serve_request__pack(req, buf);
    vt_status st = call(c, buf, n, out, err);
    free(buf);
    return st;
}

static vt_status score_call(vt_serve_client *c, const vt_serve_query *q, float *loss, uint32_t *count, float *logits,
                            size_t logits_cap, size_t *n_logits, vt_error *err) {
    size_t BT = (size_t)q->batch * q->seq_len;
    Vt__ScoreRequest r = VT__SCORE_REQUEST__INIT;
    r.ctx_per_set = (uint32_t)q->n_ctx;
    r.n_ctx_token_ids = (size_t)q->n_ctx;
    r.ctx_token_ids = (int32_t *)q->ctx_token_ids;
    r.n_sets = (uint32_t)q->n_sets;
    r.n_context = (size_t)q->n_sets * q->n_ctx * q->hidden;
    r.context = (float *)q->ctx;
    r.batch = (uint32_t)q->batch;
    r.seq_len = (uint32_t)q->seq_len;
    r.n_tokens = r.n_targets = BT;
    r.tokens = (int32_t *)q->tokens;
    r.targets = (int32_t *)q->targets;
    if (q->loss_mask) {
        r.loss_mask.len = BT;
        r.loss_mask.data = (uint8_t *)q->loss_mask;
    }
    if (q->lengths) {
        r.n_lengths = (size_t)q->batch;
        r.lengths = (int32_t *)q->lengths;
    }
    if (q->pixels) {
        r.n_pixels = (size_t)q->batch * 3 * q->image_size * q->image_size;
        r.pixels = (float *)q->pixels;
    }
    if (logits) r.logits = VT_SERVE_LOGITS_V1;
    Vt__ServeRequest req = VT__SERVE_REQUEST__INIT;
    req.kind_case = VT__SERVE_REQUEST__KIND_SCORE;
    req.score = &r;
    Vt__ServeReply *rep;
    vt_status st = call_request(c, &req, &rep, err);
    if (st) return st;
    size_t want = (size_t)q->n_sets * q->batch;
    if (rep->kind_case != VT__SERVE_REPLY__KIND_SCORE || rep->score->n_loss != want ||
        rep->score->n_count != (size_t)q->batch) {
        vt__serve_reply__free_unpacked(rep, NULL);
        return vt_fail(err, VT_ERR_FORMAT, "serve client: %s answered a score request with a wrong reply", c->endpoint);
    }
    if (logits) {
        const Vt__ScoreReply *sr = rep->score;
        size_t counted = 0;
        for (size_t b = 0; b < sr->n_count; b++) counted += sr->count[b];
        if (sr->logits_version != VT_SERVE_LOGITS_V1 || sr->vocab == 0 ||
            sr->n_logits != (size_t)q->n_sets * counted * sr->vocab) {
            vt__serve_reply__free_unpacked(rep, NULL);
            return vt_fail(err, VT_ERR_FORMAT,
                           "serve client: %s answered a logits request without logits of layout %d (a v1 service?)",
                           c->endpoint, VT_SERVE_LOGITS_V1);
        }
        if (sr->n_logits > logits_cap) {
            vt__serve_reply__free_unpacked(rep, NULL);
            return vt_fail(err, VT_ERR_RANGE, "serve client: %zu logits from %s exceed the %zu-float buffer",
                           sr->n_logits, c->endpoint, logits_cap);
        }
        memcpy(logits, sr->logits, sr->n_logits * sizeof(float));
        *n_logits = sr->n_logits;
    }
    memcpy(loss, rep->score->loss, want * sizeof(float));
    if (count) memcpy(count, rep->score->count, (size_t)q->batch * sizeof(uint32_t));
    vt__serve_reply__free_unpacked(rep, NULL);
    return VT_OK;
}

vt_status vt_serve_client_score(vt_serve_client *c, const vt_serve_query *q, float *loss, uint32_t *count,
                                vt_error *err) {
    return score_call(c, q, loss, count, NULL, 0, NULL, err);
}

vt_status vt_serve_client_score_logits(vt_serve_client *c, const vt_serve_query *q, float *loss, uint32_t *count,
                                       float *logits, size_t logits_cap, size_t *n_logits, vt_error *err) {
    if (!logits || !count || !n_logits) return vt_fail(err, VT_ERR_ARG, "serve client: logits, count and n_logits are needed");
    return score_call(c, q, loss, count, logits, logits_cap, n_logits, err);
}

vt_status vt_serve_client_stats(vt_serve_client *c, vt_serve_stats *out, vt_error *err) {
    Vt__StatsRequest sr = VT__STATS_REQUEST__INIT;
    Vt__ServeRequest req = VT__SERVE_REQUEST__INIT;
    req.kind_case = VT__SERVE_REQUEST__KIND_STATS;
    req.stats = &sr;
    Vt__ServeReply *rep;
    vt_status st = call_request(c, &req, &rep, err);
    if (st) return st;
    if (rep->kind_case != VT__SERVE_REPLY__KIND_STATS) {
        vt__serve_reply__free_unpacked(rep, NULL);
        return vt_fail(err, VT_ERR_FORMAT, "serve client: %s answered a stats request with a wrong reply", c->endpoint);
    }
    const Vt__StatsReply *s = rep->stats;
    *out = (vt_serve_stats){.queries = s->queries, .requests = s->requests, .rejected = s->rejected,
                            .max_queries = s->max_queries, .auth_denied = s->auth_denied, .hidden = (int)s->hidden,
                            .vocab = (int)s->vocab, .max_batch = (int)s->max_batch, .max_seq = (int)s->max_seq,
                            .image_size = (int)s->image_size, .image_token_index = s->image_token_index,
                            .max_sets = (int)s->max_sets, .max_ctx = (int)s->max_ctx,
                            .image_tokens = (int)s->image_tokens, .logits_version = (int)s->logits_version,
                            .max_logits = s->max_logits};
    vt__serve_reply__free_unpacked(rep, NULL);
    return VT_OK;
}

vt_status vt_serve_client_send_raw(vt_serve_client *c, const void *data, size_t len, vt_error *err) {
    Vt__ServeReply *rep;
    vt_status st = call(c, data, len, &rep, err);
    if (!st) vt__serve_reply__free_unpacked(rep, NULL);
    return st;
}
