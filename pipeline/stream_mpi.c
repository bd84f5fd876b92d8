/* Loader/trainer roles under mpirun/srun: split MPI_COMM_WORLD per node,
 * bind each loader's ROUTER socket, and exchange endpoints with one
 * MPI_Allgather. Every failure is agreed on collectively so no rank is left
 * waiting in a collective the others never reach. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "pipeline/stream.h"

typedef struct record {
    int32_t is_loader;
    char host[64];
    char ipc[112];
    char tcp[200];
} record;

/* MIN-reduces ok over world; a rank that failed keeps its own message. */
static vt_status agree(int ok, const char *what, vt_error *err) {
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return vt_fail(err, VT_ERR_MPI, "stream: MPI_Allreduce failed during %s", what);
    if (all) return VT_OK;
    if (ok) return vt_fail(err, VT_ERR_STATE, "stream: another rank failed during %s (see its log)", what);
    return err ? err->code : VT_ERR_STATE;
}

void vt_stream_roles_free(vt_stream_roles *r) {
    if (r->trainer_comm != MPI_COMM_NULL) MPI_Comm_free(&r->trainer_comm);
    vt_loader_close(r->loader);
    for (int i = 0; i < r->n_endpoints; i++) free(r->endpoints[i]);
    free(r->endpoints);
    memset(r, 0, sizeof *r);
    r->trainer_comm = MPI_COMM_NULL;
}

vt_status vt_stream_mpi_roles(vt_stream_roles *r, int loaders_per_node, const char *transport,
                              const vt_loader_config *loader_cfg, vt_error *err) {
    memset(r, 0, sizeof *r);
    r->trainer_comm = MPI_COMM_NULL;
    vt_status st;
    int want_ipc = 1, want_tcp = 1;
    if (!transport || !strcmp(transport, "auto")) {
    } else if (!strcmp(transport, "ipc")) {
        want_tcp = 0;
    } else if (!strcmp(transport, "tcp")) {
        want_ipc = 0;
    } else {
        return vt_fail(err, VT_ERR_ARG, "stream: transport '%s' is not auto, ipc or tcp", transport);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &r->world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r->world_size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r->world_rank, MPI_INFO_NULL, &node);
    int local_rank, local_size;
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    int ok = 1;
    if (loaders_per_node < 0 || loaders_per_node >= local_size)
        ok = !vt_fail(err, VT_ERR_ARG,
                      "stream: %d loader ranks per node leave no trainer among this node's %d ranks",
                      loaders_per_node, local_size);
    if ((st = agree(ok, "role assignment", err))) return st;
    r->is_loader = local_rank >= local_size - loaders_per_node;
    MPI_Comm role;
    MPI_Comm_split(MPI_COMM_WORLD, r->is_loader, r->world_rank, &role);
    int role_rank, role_size;
    MPI_Comm_rank(role, &role_rank);
    MPI_Comm_size(role, &role_size);
    if (r->is_loader) {
        r->loader_index = (uint32_t)role_rank;
        r->loader_count = (uint32_t)role_size;
        MPI_Comm_free(&role);
    } else {
        r->trainer_rank = (uint32_t)role_rank;
        r->trainer_count = (uint32_t)role_size;
        r->trainer_comm = role;
    }
    /* ipc paths are named after world rank 0's pid: short (< 107 chars, see
     * research/hpc.md) and distinct between jobs on one node. */
    int job = (int)getpid();
    MPI_Bcast(&job, 1, MPI_INT, 0, MPI_COMM_WORLD);

    record me;
    memset(&me, 0, sizeof me);
    me.is_loader = r->is_loader;
    gethostname(me.host, sizeof me.host - 1);
    ok = 1;
    if (r->is_loader) {
        char ipc[112];
        snprintf(ipc, sizeof ipc, "ipc:///tmp/vt-%d-%d", job, r->world_rank);
        const char *binds[2];
        int nb = 0;
        if (want_ipc) binds[nb++] = ipc;
        if (want_tcp) binds[nb++] = "tcp://*:*";
        vt_loader_config lc = loader_cfg ? *loader_cfg : (vt_loader_config){0};
        lc.loader_rank = r->loader_index;
        if (vt_loader_open(&r->loader, &lc, binds, nb, err)) {
            ok = 0;
        } else {
            int k = 0;
            if (want_ipc) snprintf(me.ipc, sizeof me.ipc, "%s", vt_loader_endpoint(r->loader, k++));
            if (want_tcp) snprintf(me.tcp, sizeof me.tcp, "%s", vt_loader_endpoint(r->loader, k));
        }
    }
    if ((st = agree(ok, "loader bind", err))) {
        vt_stream_roles_free(r);
        return st;
    }
    record *all = calloc((size_t)r->world_size, sizeof *all);
    ok = all != NULL;
    if ((st = agree(ok, "endpoint exchange", err))) {
        free(all);
        vt_stream_roles_free(r);
        return st;
    }
    MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    int trainers = 0, loaders_here = 0;
    for (int i = 0; i < r->world_size; i++) {
        trainers += !all[i].is_loader;
        loaders_here += all[i].is_loader && !strcmp(all[i].host, me.host);
    }
    if (r->is_loader) {
        r->trainer_count = (uint32_t)trainers;
        /* Loaders return from vt_loader_run once every trainer closed. */
        if (!loader_cfg || !loader_cfg->expect_trainers) vt_loader_expect_trainers(r->loader, r->trainer_count);
    } else {
        r->loader_count = (uint32_t)(r->world_size - trainers);
        /* Same-node loaders over ipc when the node has them; else all over tcp. */
        int use_local = loaders_here > 0 && want_ipc;
        if (!want_tcp && !loaders_here && r->loader_count)
            ok = !vt_fail(err, VT_ERR_ARG, "stream: transport 'ipc' but no loader rank on node %s", me.host);
        r->endpoints = calloc((size_t)r->world_size, sizeof *r->endpoints);
        if (!r->endpoints) ok = !vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
        for (int i = 0; ok && i < r->world_size; i++) {
            if (!all[i].is_loader) continue;
            const char *ep = use_local ? (strcmp(all[i].host, me.host) ? NULL : all[i].ipc) : all[i].tcp;
            if (!ep || !ep[0]) continue;
            if (!(r->endpoints[r->n_endpoints++] = strdup(ep))) ok = !vt_fail(err, VT_ERR_NOMEM, "stream: out of memory");
        }
    }
    free(all);
    if ((st = agree(ok, "endpoint selection", err))) {
        vt_stream_roles_free(r);
        return st;
    }
    vt_debug("stream: %s %u (world rank %d), %d endpoints", r->is_loader ? "loader" : "trainer",
             r->is_loader ? r->loader_index : r->trainer_rank, r->world_rank, r->n_endpoints);
    return VT_OK;
}
