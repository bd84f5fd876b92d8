/* `vistune submit train|eval|nightly RUN.yaml`: renders the Slurm template for
 * the run config's slurm: section, validates it with `sbatch --test-only`,
 * submits it and prints the job id on stdout (docs/cluster.md). */
#ifndef VT_SUBMIT_H
#define VT_SUBMIT_H

int vt_cmd_submit(int argc, char **argv);

#endif
