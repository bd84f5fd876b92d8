/* Black-box scoring service (DESIGN.md §4, CBBT/CraFT): a frozen model behind
 * a ZeroMQ REP socket that answers only forward queries (proto/serve.proto):
 * per-item losses of given answers for a batch of inputs under several sets
 * of context vectors, plus its counters. Malformed, oversized or over-budget
 * requests get a ServeError reply and the service carries on. Optional CURVE
 * encryption with a ZAP allow-list of client public keys.
 *
 * Context vectors are injected by overwriting the input-embedding rows of the
 * request's ctx_token_ids for the duration of one forward and restoring them
 * afterwards, so the model never changes between requests. (With tied
 * embeddings the output rows of those ids move too; they are never targets.) */
#ifndef VT_TRAINER_SERVE_H
#define VT_TRAINER_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "trainer/model.h"

/* ---- server ---- */

typedef struct vt_serve_options {
    const char *endpoint;          /* bind address, e.g. tcp://127.0.0.1:5560 or tcp://127.0.0.1:* */
    int max_batch;                 /* B limit (activations are sized for it at open) */
    int max_seq;                   /* T limit (<= max_position_embeddings) */
    int max_sets;                  /* context sets per request */
    int max_ctx;                   /* context vectors per set */
    size_t max_request_bytes;      /* larger requests get an error reply */
    uint64_t max_queries;          /* query budget over the service's life; 0 = none */
    size_t max_logits;             /* floats of answer-position logits one reply may carry */
    const char *curve_secret_file; /* z85 server secret key (40 chars); NULL = no CURVE */
    const char *curve_clients_file;/* z85 client public keys, one a line; NULL = any client
                                      that knows the server key (CURVE only) */
} vt_serve_options;

/* Defaults: max_batch 8, max_seq min(256, max_position_embeddings), max_sets
 * 256, max_ctx 16, max_request_bytes 64 MiB, max_logits 4M floats (16 MiB),
 * no budget, no CURVE. */
void vt_serve_options_default(vt_serve_options *o, const vt_model_config *mc);

typedef struct vt_serve vt_serve;

/* Binds the socket (model is borrowed and must outlive the service; it is
 * only read). Key files are read here; bad keys are VT_ERR_FORMAT naming the
 * file. Runs one forward of (max_batch, max_seq) to size the activations. */
vt_status vt_serve_open(vt_serve **out, vt_model *model, const vt_serve_options *opt, vt_error *err);
/* The bound endpoint (the port resolved when the bind used '*'). */
const char *vt_serve_endpoint(const vt_serve *s);
/* Serves until should_stop(arg) returns non-zero (checked at least every
 * 100 ms). Bad requests are answered and counted, never returned; only a
 * transport failure of the socket itself is an error. */
vt_status vt_serve_run(vt_serve *s, int (*should_stop)(void *arg), void *arg, vt_error *err);
void vt_serve_close(vt_serve *s);

/* The service's score of one forward (VT_FORWARD_LOGITS of bt on m):
 * loss[b] = item b's mean cross-entropy over its counted positions (mask[b,t]
 * set, within lengths[b]; mask NULL = all), in double by log-sum-exp of each
 * logits row read into row [vocab] (host scratch); count[b] its positions
 * (0 gives loss 0). With logits_out, each counted row is also copied to
 * logits_out[*out_row] and *out_row advances. vt_whitebox scores with it too. */
vt_status vt_serve_item_losses(vt_model *m, const vt_batch *bt, const uint8_t *mask, const uint32_t *count,
                               float *row, float *loss, float *logits_out, size_t *out_row, vt_error *err);

/* ---- client ---- */

typedef struct vt_serve_client_options {
    const char *endpoint;
    int timeout_ms;                       /* per reply; default 30000 when 0 */
    const char *server_public_key_file;   /* CURVE: server's z85 public key; NULL = plain */
    const char *client_secret_key_file;   /* CURVE: own z85 secret key; NULL = a fresh keypair */
} vt_serve_client_options;

typedef struct vt_serve_stats {
    uint64_t queries, requests, rejected, max_queries, auth_denied;
    int hidden, vocab, max_batch, max_seq, image_size, image_token_index, max_sets, max_ctx;
    int image_tokens; /* positions one image takes (what a client's data pipeline must expand) */
    int logits_version;  /* highest logits layout the service returns (0: a v1 service, none) */
    uint64_t max_logits; /* floats of logits one reply may carry */
} vt_serve_stats;

/* The logits layout this build serves and asks for (proto/serve.proto). */
#define VT_SERVE_LOGITS_V1 1

/* The service's counters and limits (what a StatsRequest answers). */
void vt_serve_get_stats(const vt_serve *s, vt_serve_stats *out);

/* One batch to score (host memory; shapes as in the ScoreRequest). */
typedef struct vt_serve_query {
    int n_ctx;
    const int32_t *ctx_token_ids; /* [n_ctx] */
    int n_sets;
    const float *ctx;             /* [n_sets, n_ctx, hidden] */
    int batch, seq_len;
    const int32_t *tokens, *targets; /* [B, T] */
    const uint8_t *loss_mask;     /* [B, T] or NULL */
    const int32_t *lengths;       /* [B] or NULL */
    const float *pixels;          /* [B, 3, S, S] or NULL */
    int image_size;               /* S when pixels != NULL */
    int hidden;                   /* length of one context vector */
} vt_serve_query;

typedef struct vt_serve_client vt_serve_client;

vt_status vt_serve_client_open(vt_serve_client **out, const vt_serve_client_options *opt, vt_error *err);
void vt_serve_client_close(vt_serve_client *c);
/* Drops the socket and connects afresh (after a timeout or a service restart). */
vt_status vt_serve_client_reconnect(vt_serve_client *c, vt_error *err);
/* loss gets n_sets*batch floats, count (may be NULL) batch entries. A
 * ServeError reply is returned as its code with the service's message; no
 * reply within the timeout is VT_ERR_NET. */
vt_status vt_serve_client_score(vt_serve_client *c, const vt_serve_query *q, float *loss, uint32_t *count,
                                vt_error *err);
/* As vt_serve_client_score, and also the raw logits at the answer positions
 * (ScoreRequest.logits = VT_SERVE_LOGITS_V1; counts as n_sets queries like
 * any score request): logits gets n_sets * sum(count) * vocab floats, for
 * set s, item b, its counted positions in order. *n_logits gets how many;
 * a reply with more than logits_cap is VT_ERR_RANGE. count must be given. */
vt_status vt_serve_client_score_logits(vt_serve_client *c, const vt_serve_query *q, float *loss, uint32_t *count,
                                       float *logits, size_t logits_cap, size_t *n_logits, vt_error *err);
vt_status vt_serve_client_stats(vt_serve_client *c, vt_serve_stats *out, vt_error *err);
/* Sends raw bytes as one request and returns the reply's error (VT_OK when
 * the reply is not a ServeError). For tests of the service's input checks. */
vt_status vt_serve_client_send_raw(vt_serve_client *c, const void *data, size_t len, vt_error *err);

/* Reads a z85 CURVE key (40 characters, trailing whitespace allowed) from
 * path into out (41 bytes, NUL-terminated); anything else is VT_ERR_FORMAT. */
vt_status vt_serve_read_key(const char *path, char out[41], vt_error *err);
/* Generates a CURVE keypair: path.key (secret, mode 0600) and path.pub. */
vt_status vt_serve_keygen(const char *path, vt_error *err);

/* `vistune serve CHECKPOINT --bind ENDPOINT [...]` */
int vt_cmd_serve(int argc, char **argv);

#endif
