/* MPI data-parallel plumbing for trainer ranks: node-local placement and the
 * bucketed, overlapped, in-place gradient allreduce. */
#include "trainer/dist.h"

#include <stdlib.h>
#include <string.h>

#include "ops/elementwise.h"

vt_status vt_dist_node_info(MPI_Comm comm, vt_dist_node *out, vt_error *err) {
    MPI_Comm node;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return vt_fail(err, VT_ERR_MPI, "dist: MPI_Comm_split_type(SHARED) failed");
    MPI_Comm_rank(node, &out->local_rank);
    MPI_Comm_size(node, &out->local_size);
    MPI_Comm_free(&node);
    return VT_OK;
}

int vt_dist_visible_devices(void) {
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    if (!v) return -1;
    /* CUDA stops at the first invalid entry; "-1" or "" hide every device. */
    int n = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p || *p == ',' || *p == '-') break;
        n++;
        while (*p && *p != ',') p++;
        if (*p == ',') p++;
    }
    return n;
}

int vt_dist_pick_device(int local_rank, int detected) {
    int visible = vt_dist_visible_devices();
    int n = visible < 0 ? detected : (detected >= 0 && detected < visible ? detected : visible);
    if (n <= 0 || local_rank < 0) return -1;
    return local_rank % n;
}

struct vt_grad_sync {
    MPI_Comm comm;
    int size;
    vt_ctx *ctx;
    float *grad;   /* where ctx computes */
    float *host;   /* what MPI reduces: grad itself on CPU, a staging copy for device memory */
    size_t n, bucket;
    int nbuckets;   /* bucket b covers [n - (b+1)*bucket, n - b*bucket) clipped at 0 */
    int launched;   /* buckets launched this round, from the end */
    int early;      /* launched before finish */
    MPI_Request *req;
};

vt_status vt_grad_sync_new(MPI_Comm comm, vt_ctx *ctx, float *grad, size_t n, size_t bucket_floats,
                           vt_grad_sync **out, vt_error *err) {
    *out = NULL;
    if (bucket_floats == 0 || bucket_floats > (size_t)1 << 30)
        return vt_fail(err, VT_ERR_ARG, "dist: bucket size %zu floats out of range (1 .. 2^30)", bucket_floats);
    vt_grad_sync *s = calloc(1, sizeof *s);
    if (!s) return vt_fail(err, VT_ERR_NOMEM, "dist: out of memory");
    s->comm = comm;
    MPI_Comm_size(comm, &s->size);
    s->ctx = ctx;
    s->grad = s->host = grad;
    if (vt_ctx_backend(ctx) != VT_BACKEND_CPU && s->size > 1 && !(s->host = malloc((n ? n : 1) * sizeof(float)))) {
        free(s);
        return vt_fail(err, VT_ERR_NOMEM, "dist: no memory to stage %zu gradient floats", n);
    }
    s->n = n;
    s->bucket = bucket_floats;
    s->nbuckets = (int)((n + bucket_floats - 1) / bucket_floats);
    s->req = calloc(s->nbuckets > 0 ? (size_t)s->nbuckets : 1, sizeof *s->req);
    if (!s->req) {
        free(s);
        return vt_fail(err, VT_ERR_NOMEM, "dist: out of memory");
    }
    for (int b = 0; b < s->nbuckets; b++) s->req[b] = MPI_REQUEST_NULL;
    *out = s;
    return VT_OK;
}

void vt_grad_sync_free(vt_grad_sync *s) {
    if (!s) return;
    for (int b = 0; b < s->nbuckets; b++)
        if (s->req[b] != MPI_REQUEST_NULL) MPI_Wait(&s->req[b], MPI_STATUS_IGNORE);
    free(s->req);
    if (s->host != s->grad) free(s->host);
    free(s);
}

void vt_grad_sync_begin(vt_grad_sync *s) {
    s->launched = 0;
    s->early = 0;
}

static size_t bucket_lo(const vt_grad_sync *s, int b) {
    size_t hi_off = (size_t)(b + 1) * s->bucket;
    return hi_off >= s->n ? 0 : s->n - hi_off;
}

static vt_status launch(vt_grad_sync *s, int b, vt_error *err) {
    size_t lo = bucket_lo(s, b), hi = s->n - (size_t)b * s->bucket;
    if (s->size > 1) {
        if (s->host != s->grad && vt_ctx_memcpy_d2h(s->ctx, s->host + lo, s->grad + lo, (hi - lo) * sizeof(float)))
            return vt_fail(err, VT_ERR_DEVICE, "dist: staging gradient bucket %d: %s", b, vt_ctx_error(s->ctx)->msg);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, s->host + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, s->comm,
                                &s->req[b]);
        if (rc != MPI_SUCCESS)
            return vt_fail(err, VT_ERR_MPI, "dist: MPI_Iallreduce of bucket %d [%zu, %zu) failed (%d)", b, lo,
                           hi, rc);
    }
    s->launched = b + 1;
    return VT_OK;
}

vt_status vt_grad_sync_ready(vt_grad_sync *s, size_t ready_from, vt_error *err) {
    while (s->launched < s->nbuckets && bucket_lo(s, s->launched) >= ready_from) {
        vt_status st = launch(s, s->launched, err);
        if (st) return st;
        s->early++;
    }
    return VT_OK;
}

vt_status vt_grad_sync_finish(vt_grad_sync *s, float scale, vt_error *err) {
    while (s->launched < s->nbuckets) {
        vt_status st = launch(s, s->launched, err);
        if (st) return st;
    }
    if (s->size > 1) {
        int rc = MPI_Waitall(s->nbuckets, s->req, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS)
            return vt_fail(err, VT_ERR_MPI, "dist: MPI_Waitall on gradient buckets failed (%d)", rc);
        if (s->host != s->grad && vt_ctx_memcpy_h2d(s->ctx, s->grad, s->host, s->n * sizeof(float)))
            return vt_fail(err, VT_ERR_DEVICE, "dist: copying reduced gradients back: %s", vt_ctx_error(s->ctx)->msg);
    }
    if (scale != 1.0f && vt_scale(s->ctx, s->grad, s->n, scale))
        return vt_fail(err, VT_ERR_DEVICE, "dist: scaling gradients: %s", vt_ctx_error(s->ctx)->msg);
    return VT_OK;
}

int vt_grad_sync_early_buckets(const vt_grad_sync *s) { return s->early; }
