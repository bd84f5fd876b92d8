/* Black-box tuning loop (DESIGN.md §4): learns n_ctx context vectors through
 * the scoring service only (trainer/serve.h), with CBBT's zeroth-order
 * optimiser (trainer/zeroth_order.h). The query budget is enforced on the
 * client: every query SENT counts (a retried request counts again, since the
 * service may have scored it before the reply was lost), and a step that
 * would pass the budget is not started. Transport failures (timeout, service
 * restart) are retried with a reconnect. */
#ifndef VT_TRAINER_BBTUNE_H
#define VT_TRAINER_BBTUNE_H

#include <stdint.h>

#include "common/error.h"
#include "trainer/serve.h"
#include "trainer/zeroth_order.h"

typedef struct vt_bbtune {
    vt_serve_client *client;  /* borrowed */
    vt_serve_query batch;     /* the items to fit (n_ctx, ctx_token_ids, hidden set; ctx/n_sets ignored) */
    uint64_t budget;          /* queries (context sets) this run may send; 0 = none */
    uint64_t used;            /* queries sent so far (restore it on resume) */
    int retries;              /* attempts after a transport failure */
    int retry_wait_ms;
    int reconnects;           /* reconnects made so far (for reports) */
} vt_bbtune;

/* Mean answer loss (count-weighted over items) of npoints context sets
 * [npoints, n_ctx*hidden] in one request; a vt_zo_objective over a vt_bbtune. */
vt_status vt_bbtune_objective(void *bbtune, const float *points, int npoints, float *values, vt_error *err);

/* Runs ZO steps on ctx (n_ctx*hidden floats, in place) until max_steps or the
 * budget cannot pay for another step (q+1 queries). *steps gets the steps
 * done, *loss the clean loss of the last step. */
vt_status vt_bbtune_zo(vt_bbtune *t, vt_zo *z, float *ctx, int max_steps, int *steps, float *loss, vt_error *err);

/* ---- pieces of `vistune bbtune` (pure functions, unit-tested) ---- */

/* Rank `rank` of `ranks` takes the contiguous units [*lo, *hi) of n: the
 * first n % ranks ranks one more than the others. */
void vt_bbtune_share(int n, int ranks, int rank, int *lo, int *hi);

/* Extra queries a rank may spend on retries within one round of work, so
 * that the ranks together never pass the budget: the slack (queries left
 * after the round's own cost and what is reserved for later) dealt out like
 * vt_bbtune_share, capped at `retries` repeats of the rank's own share. */
uint64_t vt_bbtune_retry_allowance(uint64_t slack, int ranks, int rank, uint64_t share, int retries);

/* The items of step `step`: batch positions into [0, n_items) (each epoch a
 * Philox permutation keyed by (seed, epoch); steps_per_epoch = n_items /
 * batch, the remainder of an epoch is skipped). Needs 1 <= batch <= n_items. */
void vt_bbtune_minibatch(uint64_t seed, uint64_t step, uint32_t n_items, int batch, uint32_t *out);

/* Chooses n distinct context token ids: the largest ids below vocab that
 * are not image_token and occur nowhere in tokens[0..n_tokens) (so writing
 * the context into their embedding rows changes only the prefix). */
vt_status vt_bbtune_pick_ctx_ids(const int32_t *tokens, size_t n_tokens, int vocab, int image_token, int n,
                                 int32_t *out, vt_error *err);

/* Prefixes one row with the context: tokens' = ids ++ tokens, targets
 * shifted alike (the context positions predict the next id, not counted),
 * loss_mask' = 0 ++ mask. The input row has T - n_ctx positions; the output
 * row has T; *len grows by n_ctx. */
void vt_bbtune_prefix_row(const int32_t *ids, int n_ctx, int T, const int32_t *tok, const int32_t *tgt,
                          const uint8_t *mask, int32_t *otok, int32_t *otgt, uint8_t *omask, int32_t *len);

/* Queries a killed run may have sent: ranks write "base B sent S" before
 * every request (B = the global count at the start of the round, S = what
 * that rank sent since). The ledger says max over the files with the largest
 * B of B + the sum of their S; older bases are contained in newer ones. */
uint64_t vt_bbtune_ledger_total(const uint64_t *base, const uint64_t *sent, int n);

/* `vistune bbtune RUN.yaml [--resume auto|PATH] [--set K=V ...]` (docs/blackbox.md). */
int vt_cmd_bbtune(int argc, char **argv);

#endif
