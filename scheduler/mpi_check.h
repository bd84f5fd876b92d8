/* `vistune mpi-check`: a launch check for clusters. Every rank reports its MPI
 * rank, node-local rank, host, the launcher's view (SLURM_PROCID, ...) and its
 * GPUs; an allreduce verifies the ranks talk. Run it as the first step of a
 * new site setup: `srun --mpi=pmix -n 4 vistune mpi-check --expect-ranks 4`. */
#ifndef VT_MPI_CHECK_H
#define VT_MPI_CHECK_H

int vt_cmd_mpi_check(int argc, char **argv);

#endif
