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

#endif
