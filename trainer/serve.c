/* Server side of the black-box scoring service (trainer/serve.h): one REP
 * socket (plus the ZAP handler under CURVE) polled by one thread; each
 * request is checked completely before the model runs, so a bad one costs
 * an error reply and nothing else. */
#include "trainer/serve.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/fs.h"
#include "common/log.h"
#include "proto/serve.pb-c.h"

struct vt_serve {
    vt_model *m;
    vt_serve_options opt;
    void *zctx, *sock, *zap;
    char endpoint[256];
    char (*clients)[41]; /* allowed client public keys (z85) */
    int nclients;
    vt_batch batch;      /* (max_batch, max_seq) host staging; re-viewed per request */
    void *slab;          /* its memory (re-viewing drops the batch's ownership) */
    float *saved;        /* original embedding rows of the request's ids */
    float *row;          /* one logits row on the host */
    uint64_t queries, requests, rejected, auth_denied;
};

void vt_serve_options_default(vt_serve_options *o, const vt_model_config *mc) {
    memset(o, 0, sizeof *o);
    o->max_batch = 8;
    o->max_seq = mc && mc->max_pos < 256 ? mc->max_pos : 256;
    o->max_sets = 256;
    o->max_ctx = 16;
    o->max_request_bytes = (size_t)64 << 20;
    o->max_logits = (size_t)4 << 20;
}

static vt_status read_clients(vt_serve *s, const char *path, vt_error *err) {
    char *data;
    size_t len;
    vt_status st = vt_read_file(path, 1 << 20, &data, &len, err);
    if (st) return st;
    int cap = 0, line = 0;
    for (char *save = NULL, *tok = strtok_r(data, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == '\r' || tok[n - 1] == ' ' || tok[n - 1] == '\t')) tok[--n] = 0;
        if (n == 0 || tok[0] == '#') continue;
        uint8_t bin[32];
        if (n != 40 || !zmq_z85_decode(bin, tok)) {
            free(data);
            return vt_fail(err, VT_ERR_FORMAT, "%s: line %d: not a z85 public key (40 characters)", path, line);
        }
        if (s->nclients == cap) {
            cap = cap ? 2 * cap : 8;
            void *p = realloc(s->clients, (size_t)cap * sizeof *s->clients);
            if (!p) {
                free(data);
                return vt_fail(err, VT_ERR_NOMEM, "%s: out of memory", path);
            }
            s->clients = p;
        }
        memcpy(s->clients[s->nclients++], tok, 41);
    }
    free(data);
    return VT_OK;
}

static vt_status zfail(vt_error *err, const char *what, const char *ep) {
    return vt_fail(err, VT_ERR_NET, "serve: %s %s: %s", what, ep ? ep : "", zmq_strerror(zmq_errno()));
}

vt_status vt_serve_open(vt_serve **out, vt_model *model, const vt_serve_options *opt, vt_error *err) {
    *out = NULL;
    const vt_model_config *mc = &model->cfg;
    if (!opt->endpoint || !*opt->endpoint) return vt_fail(err, VT_ERR_ARG, "serve: no endpoint to bind");
    if (opt->max_batch < 1 || opt->max_seq < 1 || opt->max_seq > mc->max_pos || opt->max_sets < 1 ||
        opt->max_ctx < 1 || opt->max_request_bytes < 16 || opt->max_logits < 1)
        return vt_fail(err, VT_ERR_ARG,
                       "serve: limits out of range (max_batch %d, max_seq %d of %d positions, max_sets %d, "
                       "max_ctx %d, max_request_bytes %zu)",
                       opt->max_batch, opt->max_seq, mc->max_pos, opt->max_sets, opt->max_ctx,
                       opt->max_request_bytes);
    vt_serve *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "serve: out of memory");
    s->m = model;
    s->opt = *opt;
    vt_status st = VT_OK;
    vt_batch_shape shape = {.batch = (uint32_t)opt->max_batch, .channels = 3, .height = (uint32_t)mc->image_size,
                            .width = (uint32_t)mc->image_size, .seq_len = (uint32_t)opt->max_seq};
    if ((st = vt_batch_alloc(&s->batch, &shape, err))) goto fail;
    s->slab = s->batch.slab;
    s->batch.owns_slab = 0;
    s->saved = malloc((size_t)opt->max_ctx * mc->hidden * sizeof(float));
    s->row = malloc((size_t)mc->vocab * sizeof(float));
    if (!s->saved || !s->row) {
        st = vt_fail(err, VT_ERR_NOMEM, "serve: out of memory");
        goto fail;
    }
    /* Size the activations once for the largest request: the model refuses
     * a later batch larger than its first. Text only, one token each. */
    for (int b = 0; b < opt->max_batch; b++) s->batch.lengths[b] = 1;
    s->batch.shape.channels = 0;
    if ((st = vt_model_forward(model, &s->batch, VT_FORWARD_LOGITS, NULL, err))) {
        vt_error_prefix(err, "serve: sizing the model for batch %d x %d: ", opt->max_batch, opt->max_seq);
        goto fail;
    }
    s->batch.shape.channels = 3;

    s->zctx = zmq_ctx_new();
    if (!s->zctx) {
        st = zfail(err, "zmq_ctx_new", NULL);
        goto fail;
    }
    if (opt->curve_secret_file) {
        char secret[41], public[41];
        if ((st = vt_serve_read_key(opt->curve_secret_file, secret, err))) goto fail;
        if (zmq_curve_public(public, secret)) {
            st = vt_fail(err, VT_ERR_FORMAT, "%s: not a CURVE secret key", opt->curve_secret_file);
            goto fail;
        }
        if (opt->curve_clients_file && (st = read_clients(s, opt->curve_clients_file, err))) goto fail;
        /* The ZAP handler must be bound before the CURVE socket exists. */
        s->zap = zmq_socket(s->zctx, ZMQ_REP);
        int zero = 0;
        if (!s->zap || zmq_setsockopt(s->zap, ZMQ_LINGER, &zero, sizeof zero) ||
            zmq_bind(s->zap, "inproc://zeromq.zap.01")) {
            st = zfail(err, "bind", "inproc://zeromq.zap.01");
            goto fail;
        }
        s->sock = zmq_socket(s->zctx, ZMQ_REP);
        int one = 1;
        if (!s->sock || zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
            zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, secret, 40) ||
            zmq_setsockopt(s->sock, ZMQ_ZAP_DOMAIN, "vistune", 7)) {
            st = zfail(err, "CURVE setup for", opt->endpoint);
            goto fail;
        }
    } else {
        s->sock = zmq_socket(s->zctx, ZMQ_REP);
        if (!s->sock) {
            st = zfail(err, "socket for", opt->endpoint);
            goto fail;
        }
    }
    int zero = 0;
    /* A hard cap far above the reply-with-error limit guards memory against
     * a peer that streams gigabytes; below it we answer with an error. */
    int64_t hard = (int64_t)opt->max_request_bytes * 4 + 4096;
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &hard, sizeof hard) || zmq_bind(s->sock, opt->endpoint)) {
        st = zfail(err, "bind", opt->endpoint);
        goto fail;
    }
    size_t elen = sizeof s->endpoint;
    if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &elen)) {
        st = zfail(err, "endpoint of", opt->endpoint);
        goto fail;
    }
    *out = s;
    return VT_OK;
fail:
    vt_serve_close(s);
    return st;
}

const char *vt_serve_endpoint(const vt_serve *s) { return s->endpoint; }

void vt_serve_get_stats(const vt_serve *s, vt_serve_stats *out) {
    const vt_model_config *mc = &s->m->cfg;
    *out = (vt_serve_stats){.queries = s->queries, .requests = s->requests, .rejected = s->rejected,
                            .max_queries = s->opt.max_queries, .auth_denied = s->auth_denied, .hidden = mc->hidden,
                            .vocab = mc->vocab, .max_batch = s->opt.max_batch, .max_seq = s->opt.max_seq,
                            .image_size = mc->image_size, .image_token_index = mc->image_token_index,
                            .max_sets = s->opt.max_sets, .max_ctx = s->opt.max_ctx,
                            .image_tokens = vt_model_image_tokens(mc), .logits_version = VT_SERVE_LOGITS_V1,
                            .max_logits = s->opt.max_logits};
}

void vt_serve_close(vt_serve *s) {
    if (!s) return;
    if (s->sock) zmq_close(s->sock);
    if (s->zap) zmq_close(s->zap);
    if (s->zctx) zmq_ctx_term(s->zctx);
    free(s->slab);
    free(s->saved);
    free(s->row);
    free(s->clients);
    free(s);
}

/* ---- replies ---- */

static int send_reply(vt_serve *s, Vt__ServeReply *r) {
    size_t n = vt__serve_reply__get_packed_size(r);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return -1;
    vt__serve_reply__pack(r, buf);
    int rc = zmq_send(s->sock, buf, n, 0);
    free(buf);
    return rc < 0 ? -1 : 0;
}

static int send_error(vt_serve *s, vt_status code, const char *msg) {
    s->rejected++;
    vt_debug("serve: rejected a request: %s", msg);
    Vt__ServeError e = VT__SERVE_ERROR__INIT;
    e.code = (uint32_t)code;
    e.message = (char *)msg;
    Vt__ServeReply r = VT__SERVE_REPLY__INIT;
    r.kind_case = VT__SERVE_REPLY__KIND_ERROR;
    r.error = &e;
    return send_reply(s, &r);
}

static int send_stats(vt_serve *s) {
    const vt_model_config *mc = &s->m->cfg;
    Vt__StatsReply st = VT__STATS_REPLY__INIT;
    st.queries = s->queries;
    st.requests = s->requests;
    st.rejected = s->rejected;
    st.max_queries = s->opt.max_queries;
    st.auth_denied = s->auth_denied;
    st.hidden = (uint32_t)mc->hidden;
    st.vocab = (uint32_t)mc->vocab;
    st.max_batch = (uint32_t)s->opt.max_batch;
    st.max_seq = (uint32_t)s->opt.max_seq;
    st.image_size = (uint32_t)mc->image_size;
    st.image_token_index = mc->image_token_index;
    st.max_sets = (uint32_t)s->opt.max_sets;
    st.max_ctx = (uint32_t)s->opt.max_ctx;
    st.image_tokens = (uint32_t)vt_model_image_tokens(mc);
    st.logits_version = VT_SERVE_LOGITS_V1;
    st.max_logits = s->opt.max_logits;
    Vt__ServeReply r = VT__SERVE_REPLY__INIT;
    r.kind_case = VT__SERVE_REPLY__KIND_STATS;
    r.stats = &st;
    return send_reply(s, &r);
}

/* ---- scoring ---- */

/* Every size, range and finiteness check, so the model only sees valid input. */
static vt_status check_score(const vt_serve *s, const Vt__ScoreRequest *q, vt_error *err) {
    const vt_model_config *mc = &s->m->cfg;
    size_t B = q->batch, T = q->seq_len, C = q->ctx_per_set, P = q->n_sets, D = (size_t)mc->hidden;
    if (C < 1 || C > (size_t)s->opt.max_ctx) return vt_fail(err, VT_ERR_RANGE, "n_ctx %zu outside 1..%d", C, s->opt.max_ctx);
    if (P < 1 || P > (size_t)s->opt.max_sets) return vt_fail(err, VT_ERR_RANGE, "n_sets %zu outside 1..%d", P, s->opt.max_sets);
    if (B < 1 || B > (size_t)s->opt.max_batch) return vt_fail(err, VT_ERR_RANGE, "batch %zu outside 1..%d", B, s->opt.max_batch);
    if (T < 1 || T > (size_t)s->opt.max_seq) return vt_fail(err, VT_ERR_RANGE, "seq_len %zu outside 1..%d", T, s->opt.max_seq);
    if (q->n_ctx_token_ids != C) return vt_fail(err, VT_ERR_FORMAT, "ctx_token_ids has %zu ids, n_ctx is %zu", q->n_ctx_token_ids, C);
    for (size_t i = 0; i < C; i++) {
        int32_t id = q->ctx_token_ids[i];
        if (id < 0 || id >= mc->vocab || id == mc->image_token_index)
            return vt_fail(err, VT_ERR_RANGE, "ctx_token_ids[%zu] = %d is not a usable token id (vocab %d, image token %d)",
                           i, id, mc->vocab, mc->image_token_index);
        for (size_t j = 0; j < i; j++)
            if (q->ctx_token_ids[j] == id) return vt_fail(err, VT_ERR_ARG, "ctx_token_ids[%zu] repeats id %d", i, id);
    }
    if (q->n_context != P * C * D) return vt_fail(err, VT_ERR_FORMAT, "context has %zu floats, expected n_sets*n_ctx*hidden = %zu", q->n_context, P * C * D);
    for (size_t i = 0; i < P * C * D; i++)
        if (!isfinite(q->context[i])) return vt_fail(err, VT_ERR_RANGE, "context[%zu] is not finite", i);
    if (q->n_tokens != B * T) return vt_fail(err, VT_ERR_FORMAT, "tokens has %zu ids, expected batch*seq_len = %zu", q->n_tokens, B * T);
    if (q->n_targets != B * T) return vt_fail(err, VT_ERR_FORMAT, "targets has %zu ids, expected %zu", q->n_targets, B * T);
    if (q->loss_mask.len != 0 && q->loss_mask.len != B * T)
        return vt_fail(err, VT_ERR_FORMAT, "loss_mask has %zu bytes, expected 0 or %zu", q->loss_mask.len, B * T);
    if (q->n_lengths != 0 && q->n_lengths != B) return vt_fail(err, VT_ERR_FORMAT, "lengths has %zu entries, expected 0 or %zu", q->n_lengths, B);
    for (size_t b = 0; b < q->n_lengths; b++)
        if (q->lengths[b] < 1 || (size_t)q->lengths[b] > T) return vt_fail(err, VT_ERR_RANGE, "lengths[%zu] = %d outside 1..%zu", b, q->lengths[b], T);
    for (size_t i = 0; i < B * T; i++) {
        if (q->targets[i] < 0 || q->targets[i] >= mc->vocab)
            return vt_fail(err, VT_ERR_RANGE, "targets[%zu] = %d outside 0..%d", i, q->targets[i], mc->vocab - 1);
        if (q->tokens[i] < 0 || q->tokens[i] >= mc->vocab)
            return vt_fail(err, VT_ERR_RANGE, "tokens[%zu] = %d outside 0..%d", i, q->tokens[i], mc->vocab - 1);
    }
    size_t npix = B * 3 * (size_t)mc->image_size * mc->image_size;
    if (q->n_pixels != 0 && q->n_pixels != npix) return vt_fail(err, VT_ERR_FORMAT, "pixels has %zu floats, expected 0 or %zu", q->n_pixels, npix);
    for (size_t i = 0; i < q->n_pixels; i++)
        if (!isfinite(q->pixels[i])) return vt_fail(err, VT_ERR_RANGE, "pixels[%zu] is not finite", i);
    if (q->logits > VT_SERVE_LOGITS_V1)
        return vt_fail(err, VT_ERR_ARG, "logits layout %u is not served (this service returns 0..%d)", q->logits,
                       VT_SERVE_LOGITS_V1);
    if (q->logits) { /* the reply's size: every counted position of every set, a vocab row each */
        size_t counted = 0;
        for (size_t b = 0; b < B; b++) {
            size_t len = q->n_lengths ? (size_t)q->lengths[b] : T;
            for (size_t t = 0; t < len; t++) counted += q->loss_mask.len ? (q->loss_mask.data[b * T + t] != 0) : 1;
        }
        size_t floats = P * counted * (size_t)mc->vocab;
        if (floats > s->opt.max_logits)
            return vt_fail(err, VT_ERR_RANGE,
                           "logits reply of %zu floats (%zu sets x %zu answer positions x vocab %d) exceeds the limit of %zu",
                           floats, P, counted, mc->vocab, s->opt.max_logits);
    }
    if (s->opt.max_queries && s->queries + P > s->opt.max_queries)
        return vt_fail(err, VT_ERR_RANGE, "query budget exhausted: %llu of %llu used, request asks %zu",
                       (unsigned long long)s->queries, (unsigned long long)s->opt.max_queries, P);
    return VT_OK;
}

/* Writes (or restores) the embedding rows of the context ids. */
static vt_status put_rows(vt_serve *s, const int32_t *ids, size_t C, const float *rows, vt_error *err) {
    size_t D = (size_t)s->m->cfg.hidden;
    for (size_t i = 0; i < C; i++)
        if (vt_ctx_memcpy_h2d(s->m->ctx, s->m->w.embed + (size_t)ids[i] * D, rows + i * D, D * sizeof(float)))
            return vt_fail(err, VT_ERR_DEVICE, "serve: writing embedding row %d: %s", ids[i], vt_ctx_error(s->m->ctx)->msg);
    return VT_OK;
}

/* logits (when q->logits) gets [n_sets, sum(count), vocab] rows of the counted positions. */
static vt_status score(vt_serve *s, const Vt__ScoreRequest *q, float *loss, uint32_t *count, float *logits_out,
                       vt_error *err) {
    vt_model *m = s->m;
    size_t B = q->batch, T = q->seq_len, C = q->ctx_per_set, D = (size_t)m->cfg.hidden;
    vt_batch *bt = &s->batch;
    vt_batch_shape shape = {.batch = (uint32_t)B, .channels = q->n_pixels ? 3 : 0,
                            .height = (uint32_t)m->cfg.image_size, .width = (uint32_t)m->cfg.image_size,
                            .seq_len = (uint32_t)T};
    vt_batch_view(bt, &shape, s->slab);
    memcpy(bt->tokens, q->tokens, B * T * sizeof(int32_t));
    memcpy(bt->targets, q->targets, B * T * sizeof(int32_t));
    for (size_t b = 0; b < B; b++) bt->lengths[b] = q->n_lengths ? q->lengths[b] : (int32_t)T;
    if (q->n_pixels) memcpy(bt->pixels, q->pixels, q->n_pixels * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        count[b] = 0;
        for (size_t t = 0; t < (size_t)bt->lengths[b]; t++)
            count[b] += q->loss_mask.len ? (q->loss_mask.data[b * T + t] != 0) : 1;
    }
    for (size_t i = 0; i < C; i++)
        if (vt_ctx_memcpy_d2h(m->ctx, s->saved + i * D, m->w.embed + (size_t)q->ctx_token_ids[i] * D, D * sizeof(float)))
            return vt_fail(err, VT_ERR_DEVICE, "serve: reading embedding rows: %s", vt_ctx_error(m->ctx)->msg);
    vt_status st = VT_OK;
    size_t out_row = 0;
    for (size_t p = 0; p < q->n_sets && !st; p++) {
        if ((st = put_rows(s, q->ctx_token_ids, C, q->context + p * C * D, err))) break;
        if ((st = vt_model_forward(m, bt, VT_FORWARD_LOGITS, NULL, err))) break;
        if ((st = vt_serve_item_losses(m, bt, q->loss_mask.len ? q->loss_mask.data : NULL, count, s->row,
                                       loss + p * B, logits_out, &out_row, err)))
            vt_error_prefix(err, "serve: ");
    }
    vt_error rerr = {0};
    vt_status rst = put_rows(s, q->ctx_token_ids, C, s->saved, &rerr); /* the model stays frozen */
    if (rst && !st) {
        *err = rerr;
        st = rst;
    }
    return st;
}

vt_status vt_serve_item_losses(vt_model *m, const vt_batch *bt, const uint8_t *mask, const uint32_t *count,
                               float *row, float *loss, float *logits_out, size_t *out_row, vt_error *err) {
    size_t B = bt->shape.batch, T = bt->shape.seq_len, V = (size_t)m->cfg.vocab;
    const float *logits = vt_model_logits(m);
    for (size_t b = 0; b < B; b++) {
        double sum = 0;
        for (size_t t = 0; t < (size_t)bt->lengths[b]; t++) {
            if (mask && !mask[b * T + t]) continue;
            if (vt_ctx_memcpy_d2h(m->ctx, row, logits + (b * T + t) * V, V * sizeof(float)))
                return vt_fail(err, VT_ERR_DEVICE, "reading logits: %s", vt_ctx_error(m->ctx)->msg);
            if (logits_out) memcpy(logits_out + (*out_row)++ * V, row, V * sizeof(float));
            double mx = row[0], z = 0;
            for (size_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (size_t v = 0; v < V; v++) z += exp(row[v] - mx);
            sum += mx + log(z) - row[bt->targets[b * T + t]];
        }
        loss[b] = count[b] ? (float)(sum / count[b]) : 0.0f;
    }
    return VT_OK;
}

static int handle_score(vt_serve *s, const Vt__ScoreRequest *q) {
    vt_error err = {0};
    vt_status st = check_score(s, q, &err);
    if (st) return send_error(s, st, err.msg);
    float *loss = malloc(q->n_sets * q->batch * sizeof(float));
    uint32_t *count = malloc(q->batch * sizeof(uint32_t));
    float *logits = NULL;
    size_t n_logits = 0;
    if (q->logits) { /* the size was checked against max_logits */
        size_t B = q->batch, T = q->seq_len, counted = 0;
        for (size_t b = 0; b < B; b++) {
            size_t len = q->n_lengths ? (size_t)q->lengths[b] : T;
            for (size_t t = 0; t < len; t++) counted += q->loss_mask.len ? (q->loss_mask.data[b * T + t] != 0) : 1;
        }
        n_logits = q->n_sets * counted * (size_t)s->m->cfg.vocab;
        logits = malloc(n_logits ? n_logits * sizeof(float) : 1);
    }
    if (!loss || !count || (q->logits && !logits)) {
        free(loss);
        free(count);
        free(logits);
        return send_error(s, VT_ERR_NOMEM, "out of memory");
    }
    st = score(s, q, loss, count, logits, &err);
    int rc;
    if (st) {
        rc = send_error(s, st, err.msg);
    } else {
        s->queries += q->n_sets;
        s->requests++;
        Vt__ScoreReply r = VT__SCORE_REPLY__INIT;
        r.n_sets = q->n_sets;
        r.batch = q->batch;
        r.n_loss = q->n_sets * q->batch;
        r.loss = loss;
        r.n_count = q->batch;
        r.count = count;
        if (q->logits) {
            r.logits_version = q->logits;
            r.vocab = (uint32_t)s->m->cfg.vocab;
            r.n_logits = n_logits;
            r.logits = logits;
        }
        Vt__ServeReply rep = VT__SERVE_REPLY__INIT;
        rep.kind_case = VT__SERVE_REPLY__KIND_SCORE;
        rep.score = &r;
        rc = send_reply(s, &rep);
    }
    free(loss);
    free(count);
    free(logits);
    return rc;
}

/* One request: receive every part, answer exactly once. */
static int handle_request(vt_serve *s) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, s->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -1;
    }
    bool multipart = false;
    while (zmq_msg_more(&msg)) { /* REP hands over all parts; drop the extra ones */
        multipart = true;
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        int rc = zmq_msg_recv(&extra, s->sock, 0);
        zmq_msg_close(&msg);
        msg = extra;
        if (rc < 0) break;
    }
    size_t n = zmq_msg_size(&msg);
    int rc;
    char text[160];
    if (multipart) {
        rc = send_error(s, VT_ERR_FORMAT, "request must be a single message part");
    } else if (n > s->opt.max_request_bytes) {
        snprintf(text, sizeof text, "request of %zu bytes exceeds the limit of %zu bytes", n, s->opt.max_request_bytes);
        rc = send_error(s, VT_ERR_RANGE, text);
    } else {
        Vt__ServeRequest *req = vt__serve_request__unpack(NULL, n, zmq_msg_data(&msg));
        if (!req) {
            snprintf(text, sizeof text, "request of %zu bytes is not a vt.ServeRequest", n);
            rc = send_error(s, VT_ERR_FORMAT, text);
        } else if (req->kind_case == VT__SERVE_REQUEST__KIND_STATS) {
            rc = send_stats(s);
        } else if (req->kind_case == VT__SERVE_REQUEST__KIND_SCORE) {
            rc = handle_score(s, req->score);
        } else {
            rc = send_error(s, VT_ERR_FORMAT, "request names no operation (score or stats)");
        }
        if (req) vt__serve_request__free_unpacked(req, NULL);
    }
    zmq_msg_close(&msg);
    return rc;
}

/* ZAP (RFC 27): allow a CURVE client whose public key is listed (any when no
 * list was given). Frames: version, request id, domain, address, identity,
 * mechanism, credentials. */
static void handle_zap(vt_serve *s) {
    zmq_msg_t f[8];
    int nf = 0, more = 1;
    while (more && nf < 8) {
        zmq_msg_init(&f[nf]);
        if (zmq_msg_recv(&f[nf], s->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[nf]);
            break;
        }
        more = zmq_msg_more(&f[nf]);
        nf++;
    }
    while (more) { /* never leave a REP mid-request */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, s->zap, 0) < 0) more = 0;
        else more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    if (nf < 2) {
        for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
        return;
    }
    bool ok = false;
    if (nf >= 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) && zmq_msg_size(&f[6]) == 32) {
        if (s->nclients == 0) ok = true;
        char key[41];
        if (zmq_z85_encode(key, zmq_msg_data(&f[6]), 32))
            for (int i = 0; i < s->nclients && !ok; i++) ok = !strcmp(key, s->clients[i]);
    }
    if (!ok) {
        s->auth_denied++;
        vt_warn("serve: refused a CURVE client whose key is not listed");
    }
    const char *code = ok ? "200" : "400", *text = ok ? "OK" : "client key not allowed";
    zmq_send(s->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    zmq_send(s->zap, code, 3, ZMQ_SNDMORE);
    zmq_send(s->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(s->zap, "", 0, 0);
    for (int i = 0; i < nf; i++) zmq_msg_close(&f[i]);
}

vt_status vt_serve_run(vt_serve *s, int (*should_stop)(void *arg), void *arg, vt_error *err) {
    zmq_pollitem_t items[2] = {{s->sock, 0, ZMQ_POLLIN, 0}, {s->zap, 0, ZMQ_POLLIN, 0}};
    int nitems = s->zap ? 2 : 1;
    while (!should_stop(arg)) {
        int n = zmq_poll(items, nitems, 100);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            return zfail(err, "poll on", s->endpoint);
        }
        if (nitems == 2 && (items[1].revents & ZMQ_POLLIN)) handle_zap(s);
        if ((items[0].revents & ZMQ_POLLIN) && handle_request(s) < 0)
            return zfail(err, "reply on", s->endpoint);
    }
    return VT_OK;
}
