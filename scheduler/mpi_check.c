/* `vistune mpi-check`: verifies an MPI launch the way vistune train will use
 * it (ranks from MPI, local rank from MPI_Comm_split_type) and shows what the
 * launcher set, so a wrong --mpi flag or an mpirun-inside-srun mix-up shows up
 * before a long job does. */
#include "common/leak_check.h"
#include "scheduler/mpi_check.h"

#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LINE = 256 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: vistune mpi-check [--expect-ranks N]\n"
            "Run under srun or mpirun. Each rank reports its MPI rank, node-local rank, host,\n"
            "SLURM_PROCID and CUDA_VISIBLE_DEVICES; an allreduce checks the ranks talk.\n"
            "Exits 1 when the allreduce is wrong or the rank count differs from N.\n");
}

static const char *env_or(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : "-";
}

int vt_cmd_mpi_check(int argc, char **argv) {
    static const struct option opts[] = {
        {"expect-ranks", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'}, {0}};
    long expect = 0;
    int c;
    optind = 1;
    opterr = 0; /* one line of our own instead of getopt's */
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'n') {
            char *end;
            expect = strtol(optarg, &end, 10);
            if (*end || expect < 1) {
                fprintf(stderr, "vistune mpi-check: --expect-ranks '%s': expected a positive integer\n",
                        optarg);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "vistune mpi-check: unknown or incomplete option '%s' (see vistune mpi-check --help)\n",
                argv[optind - 1]);
        return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "vistune mpi-check: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    vt_leak_check_pause();
    int init_rc = MPI_Init(NULL, NULL);
    vt_leak_check_resume();
    if (init_rc != MPI_SUCCESS) {
        fprintf(stderr, "vistune mpi-check: MPI_Init failed\n");
        return 1;
    }
    int rank, size, local, nlocal;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_size(node, &nlocal);
    MPI_Comm_free(&node);

    char host[128] = "?";
    gethostname(host, sizeof host - 1);
    char line[LINE];
    snprintf(line, sizeof line,
             "rank %d/%d local %d/%d host %s slurm_procid %s slurm_localid %s cuda_visible_devices %s",
             rank, size, local, nlocal, host, env_or("SLURM_PROCID"), env_or("SLURM_LOCALID"),
             env_or("CUDA_VISIBLE_DEVICES"));

    /* Under srun every rank's SLURM_PROCID equals its MPI rank; under mpirun
     * inside an allocation all ranks read 0 (research/hpc.md §4). */
    const char *procid = getenv("SLURM_PROCID");
    int mismatch = procid && getenv("SLURM_STEP_ID") && atoi(procid) != rank;
    long long sum = rank, total = 0;
    MPI_Allreduce(&sum, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    int any_mismatch = 0;
    MPI_Allreduce(&mismatch, &any_mismatch, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);

    char *all = rank == 0 ? malloc((size_t)size * LINE) : NULL;
    if (rank == 0 && !all) {
        fprintf(stderr, "vistune mpi-check: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, MPI_COMM_WORLD);
    int rc = 0;
    if (rank == 0) {
        for (int r = 0; r < size; r++) printf("%s\n", all + (size_t)r * LINE);
        long long want = (long long)size * (size - 1) / 2;
        if (total != want) {
            fprintf(stderr, "vistune mpi-check: allreduce of ranks gave %lld, expected %lld\n", total, want);
            rc = 1;
        }
        if (expect && expect != size) {
            fprintf(stderr, "vistune mpi-check: %d ranks, expected %ld (check the launcher's -n / --mpi)\n",
                    size, expect);
            rc = 1;
        }
        if (any_mismatch)
            fprintf(stderr, "vistune mpi-check: warning: SLURM_PROCID differs from the MPI rank; "
                            "vistune takes ranks from MPI\n");
        if (!rc) printf("mpi-check: %d ranks on %s, allreduce ok\n", size, host);
        fflush(stdout);
        free(all);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return rc;
}
