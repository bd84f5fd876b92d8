/* The command line shared by the commands that run a training-like job from
 * a run file: `vistune CMD RUN.yaml [--resume auto|PATH] [--set K=V]...
 * [--stop-file F] [--help]` (train, bbtune). One parser, so the options and
 * their error lines stay the same across commands. */
#ifndef VT_TRAINER_RUN_ARGS_H
#define VT_TRAINER_RUN_ARGS_H

#include <stdio.h>

#include "common/config.h"
#include "common/error.h"

enum { VT_RUN_ARGS_MAX_SETS = 64 };

typedef struct vt_run_args {
    const char *run;       /* RUN.yaml */
    const char *resume;    /* NULL, "auto" or a checkpoint directory */
    const char *stop_file; /* NULL or a path (signals.h vt_signals_watch_file) */
    const char *sets[VT_RUN_ARGS_MAX_SETS];
    int nsets;
} vt_run_args;

/* Parses argv (argv[0] = the command name). Returns -1 when the command
 * should go on, else its exit status: 0 after printing usage for --help,
 * 2 after one stderr line "vistune CMD: ..." for bad usage. */
int vt_run_args_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *out), vt_run_args *out);

/* Loads the run file and applies the --set overrides in order. */
vt_status vt_run_args_load(const vt_run_args *a, vt_config **cfg, vt_error *err);

#endif
