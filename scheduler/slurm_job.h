/* A Slurm job of vistune (train, eval or nightly) as described by the run
 * config's `slurm:` section, and its rendering into a batch script from
 * deploy/slurm/<kind>.sbatch (built into the binary; `slurm.template`
 * overrides). Keys and defaults: docs/cluster.md. */
#ifndef VT_SLURM_JOB_H
#define VT_SLURM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"

typedef enum vt_slurm_kind { VT_SLURM_TRAIN, VT_SLURM_EVAL, VT_SLURM_NIGHTLY } vt_slurm_kind;

enum { VT_SLURM_MAX_LIST = 32, VT_SLURM_PATH_MAX = 1024 };

typedef struct vt_slurm_job {
    vt_slurm_kind kind;
    /* Strings point into the config (or into the path buffers below). */
    const char *job_name;
    const char *partition, *account, *qos; /* NULL = site default */
    const char *time;                      /* [D-]HH:MM:SS, MM, ... */
    const char *mem_per_cpu;               /* NULL = site default */
    const char *mpi;                       /* srun --mpi= value */
    const char *begin;                     /* nightly: next start (sbatch --begin) */
    int64_t nodes, gpus_per_node, trainers_per_node, loaders_per_node, cpus_per_task;
    int64_t signal_seconds;
    int64_t eval_array, eval_max_parallel, eval_gpus;
    bool nightly_train, chain;
    const char *modules[VT_SLURM_MAX_LIST];
    int nmodules;
    const char *env_keys[VT_SLURM_MAX_LIST], *env_values[VT_SLURM_MAX_LIST];
    int nenv;
    const char *sbatch_args[VT_SLURM_MAX_LIST];
    int nsbatch_args;
    const char *train_args[VT_SLURM_MAX_LIST];
    int ntrain_args;
    const char *eval_args[VT_SLURM_MAX_LIST];
    int neval_args;
    const char *template_path; /* NULL = built-in */
    /* Absolute paths resolved against the submission directory. */
    char workdir[VT_SLURM_PATH_MAX], log_dir[VT_SLURM_PATH_MAX], run_config[VT_SLURM_PATH_MAX];
    char vistune[VT_SLURM_PATH_MAX], script[VT_SLURM_PATH_MAX], stop_file[VT_SLURM_PATH_MAX];
    char nightly_dir[VT_SLURM_PATH_MAX]; /* one subdirectory per night: results/, report/ */
    char baseline[VT_SLURM_PATH_MAX];    /* pinned baseline result store; "" = none */
} vt_slurm_job;

/* "train" / "eval" / "nightly" -> kind; -1 when unknown. */
int vt_slurm_kind_parse(const char *name);
const char *vt_slurm_kind_name(vt_slurm_kind kind);

/* Reads and validates the slurm: section for a job of `kind`. run_path is the
 * run config's path (passed to the job, made absolute); cwd is the directory
 * relative paths are resolved against; self is the vistune binary used when
 * slurm.vistune is absent. Every key read is marked used; the caller checks for
 * unknown keys. Errors name the file and the key. */
vt_status vt_slurm_job_load(const vt_config *cfg, vt_slurm_kind kind, const char *run_path,
                            const char *cwd, const char *self, vt_slurm_job *job, vt_error *err);

/* The template text built into the binary (deploy/slurm/<kind>.sbatch). */
const char *vt_slurm_builtin_template(vt_slurm_kind kind);

/* Renders job into a complete batch script (*script malloc'd). */
vt_status vt_slurm_render(const vt_slurm_job *job, const char *tmpl, const char *tmpl_name,
                          char **script, vt_error *err);

#endif
