/* The `vistune` command: one binary, one subcommand per job. Each
 * subcommand's code lives in its component; this file only dispatches. */
#include <stdio.h>
#include <string.h>

#include "common/version.h"
#include "pipeline/shift.h"
#include "pipeline/stream.h"
#include "pipeline/adapt.h"
#include "pipeline/ingest.h"
#include "pipeline/inspect.h"
#include "pipeline/synth.h"
#include "pipeline/tokenizer.h"
#include "scheduler/report.h"
#include "scheduler/sched.h"
#include "trainer/bbtune.h"
#include "trainer/eval.h"
#include "scheduler/scheduler.h"
#include "trainer/serve.h"
#include "trainer/train.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
} command;

/* One line per subcommand, in the order `vistune --help` lists them. */
static const command commands[] = {
    {"synth", vt_cmd_synth, "write the built-in shapes visual-question set (LLaVA JSON + PNG)"},
    {"ingest", vt_cmd_ingest, "LLaVA JSON + images -> sample store (LMDB of WebP records)"},
    {"inspect", vt_cmd_inspect, "show a sample store's counts and one record"},
    {"adapt", vt_cmd_adapt, "turn installed real data (tuxpaint stamps, MNIST) into LLaVA JSON"},
    {"loader", vt_cmd_loader, "serve batches to trainers over ZeroMQ (standalone loader process)"},
    {"shift", vt_cmd_shift, "list the shift catalog; apply a shift to an image or instruction"},
    {"eval", vt_cmd_eval, "evaluate a checkpoint under distribution shifts into a result store"},
    {"sched", vt_cmd_sched, "evaluate with a dispatcher leasing tasks to MPI ranks and extra workers"},
    {"report", vt_cmd_report, "build the robustness report (JSON, Markdown, HTML) and gate on regressions"},
    {"train", vt_cmd_train, "train a model (stage1/stage2 recipes) with checkpoints and resume"},
    {"serve", vt_cmd_serve, "serve a frozen model for black-box tuning (scoring queries over ZeroMQ)"},
    {"bbtune", vt_cmd_bbtune, "black-box tuning of context vectors through a running `vistune serve`"},
    {"tokenize", vt_cmd_tokenize, "encode text with a tokenizer (JSON lines in, id arrays out)"},
    {"submit", vt_cmd_submit, "render a Slurm job (train, eval, nightly) from a run config and submit it"},
    {"mpi-check", vt_cmd_mpi_check, "check an MPI launch (srun/mpirun): ranks, local ranks, GPUs, allreduce"},
    {NULL, NULL, NULL},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] - 1 };

static void print_version(void) {
    printf("vistune %s\nbackends: cpu (OpenBLAS)%s\n", VT_VERSION,
           VT_HAVE_CUDA ? ", cuda (cuBLAS)" : "");
}

static void print_help(FILE *out) {
    fprintf(out,
            "usage: vistune <command> [options]\n"
            "       vistune <command> --help\n"
            "       vistune --version\n\n"
            "Visual instruction tuning of multimodal models on HPC clusters.\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        print_version();
        return 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vistune: unknown command '%s' (see vistune --help)\n", argv[1]);
    return 2;
}
