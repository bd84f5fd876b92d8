// vt-test: np=4
/* Loader/trainer roles under mpirun: 4 ranks split into trainers and
 * loaders (1 loader over ipc, then 2 loaders over tcp); every trainer
 * streams two epochs, checks each batch against its own single-process
 * fill, and the trainers together see every sample exactly once per epoch.
 * Exits non-zero on any failure (ctest reports it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/leak_check.h"
#include "pipeline/stream.h"
#include "pipeline/synthetic.h"

#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "rank %d: check failed at line %d: %s (%s)\n", wr, __LINE__, #c, err.msg); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                        \
        }                                                                        \
    } while (0)

enum { N = 48, G = 12 };

static int run(int loaders_per_node, const char *transport) {
    int wr;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    vt_error err = {0};
    vt_stream_roles roles;
    CHECK(vt_stream_mpi_roles(&roles, loaders_per_node, transport, NULL, &err) == VT_OK);
    vt_sampler s;
    vt_sampler_config sc = {.num_samples = N, .seed = 21, .global_batch = G};
    CHECK(vt_sampler_init(&s, &sc, &err) == VT_OK);
    vt_synthetic_config syn = {.seed = 21, .channels = 3, .height = 4, .width = 4, .seq_len = 8, .vocab = 100};
    vt_batch_source src;
    vt_synthetic_source(&src, &syn);
    if (roles.is_loader) {
        CHECK(vt_loader_run(roles.loader, &s, &src, &err) == VT_OK);
    } else {
        CHECK(roles.trainer_count == (uint32_t)(4 - loaders_per_node));
        CHECK(roles.n_endpoints == loaders_per_node);
        CHECK(!strncmp(roles.endpoints[0], transport[0] == 't' ? "tcp://" : "ipc://", 6));
        vt_sampler s2;
        vt_sampler_init(&s2, &sc, &err);
        vt_stream_config cfg;
        vt_stream_config_default(&cfg);
        cfg.rank = roles.trainer_rank;
        cfg.ranks = roles.trainer_count;
        cfg.micro_count = 2;
        cfg.sample_shape = (vt_batch_shape){0, 3, 4, 4, 8};
        vt_stream *st, *ref;
        CHECK(vt_stream_open(&st, &cfg, &s, (const char *const *)roles.endpoints, roles.n_endpoints, NULL, &err) ==
              VT_OK);
        CHECK(vt_stream_open(&ref, &cfg, &s2, NULL, 0, &src, &err) == VT_OK);
        uint32_t b = vt_stream_batch_size(st);
        vt_batch x, y; /* x: a view of the streamed batch; y: the local one, copied */
        CHECK(vt_batch_alloc(&y, &(vt_batch_shape){b, 3, 4, 4, 8}, &err) == VT_OK);
        int per_epoch = (int)(N / G) * 2;
        uint64_t *mine = calloc((size_t)per_epoch * 2 * b, sizeof *mine);
        for (int i = 0; i < per_epoch * 2; i++) {
            CHECK(vt_stream_next_view(st, &x, &err) == VT_OK);
            CHECK(vt_stream_next(ref, &y, &err) == VT_OK);
            vt_batch_frame fx[VT_BATCH_NFRAMES], fy[VT_BATCH_NFRAMES];
            vt_batch_frames(&x, fx);
            vt_batch_frames(&y, fy);
            for (int f = 0; f < VT_BATCH_NFRAMES; f++) CHECK(!memcmp(fx[f].data, fy[f].data, fx[f].nbytes));
            CHECK(!memcmp(x.sample_indices, y.sample_indices, b * sizeof *y.sample_indices));
            memcpy(mine + (size_t)i * b, x.sample_indices, b * sizeof *mine);
        }
        vt_stream_close(st);
        vt_stream_close(ref);
        /* Coverage across trainers: gather counts per epoch. */
        for (int e = 0; e < 2; e++) {
            int counts[N] = {0}, total[N];
            for (int i = 0; i < per_epoch * (int)b; i++) counts[mine[(size_t)e * per_epoch * b + i]]++;
            MPI_Allreduce(counts, total, N, MPI_INT, MPI_SUM, roles.trainer_comm);
            for (int i = 0; i < N; i++) CHECK(total[i] == 1);
        }
        free(mine);
        vt_batch_free(&y);
        vt_sampler_free(&s2);
    }
    vt_sampler_free(&s);
    vt_stream_roles_free(&roles);
    MPI_Barrier(MPI_COMM_WORLD);
    return 0;
}

int main(int argc, char **argv) {
    vt_leak_check_pause();
    MPI_Init(&argc, &argv);
    vt_leak_check_resume();
    int wr;
    MPI_Comm_rank(MPI_COMM_WORLD, &wr);
    run(1, "auto");
    run(2, "tcp");
    /* A bad split is refused on every rank (collectively), not a hang. */
    vt_error err = {0};
    vt_stream_roles roles;
    CHECK(vt_stream_mpi_roles(&roles, 4, "auto", NULL, &err) == VT_ERR_ARG);
    CHECK(strstr(err.msg, "leave no trainer") != NULL);
    CHECK(vt_stream_mpi_roles(&roles, 1, "udp", NULL, &err) == VT_ERR_ARG);
    if (wr == 0) printf("stream_mpi: ok\n");
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return 0;
}
