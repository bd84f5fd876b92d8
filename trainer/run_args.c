#include "trainer/run_args.h"

#include <getopt.h>
#include <string.h>

int vt_run_args_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *out), vt_run_args *out) {
    static const struct option opts[] = {{"resume", required_argument, NULL, 'r'},
                                         {"set", required_argument, NULL, 's'},
                                         {"stop-file", required_argument, NULL, 'F'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(out, 0, sizeof *out);
    int c;
    optind = 1;
    opterr = 0; /* one line of our own instead of getopt's */
    while ((c = getopt_long(argc, argv, "r:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': out->resume = optarg; break;
        case 'F': out->stop_file = optarg; break;
        case 's':
            if (out->nsets == VT_RUN_ARGS_MAX_SETS) {
                fprintf(stderr, "vistune %s: too many --set options (max %d)\n", cmd, VT_RUN_ARGS_MAX_SETS);
                return 2;
            }
            out->sets[out->nsets++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "vistune %s: bad option '%s' (see vistune %s --help)\n", cmd, argv[optind - 1], cmd);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "vistune %s: expected exactly one RUN.yaml (see vistune %s --help)\n", cmd, cmd);
        return 2;
    }
    if (out->resume && !out->resume[0]) {
        fprintf(stderr, "vistune %s: --resume needs 'auto' or a checkpoint directory\n", cmd);
        return 2;
    }
    out->run = argv[optind];
    return -1;
}

vt_status vt_run_args_load(const vt_run_args *a, vt_config **cfg, vt_error *err) {
    vt_status st = vt_config_load(a->run, cfg, err);
    for (int i = 0; !st && i < a->nsets; i++) st = vt_config_set(*cfg, a->sets[i], err);
    return st;
}
