/* `vistune sched RUN.yaml`: evaluates a checkpoint with a dispatcher and
 * leasing workers. Under mpirun/srun, rank 0 runs the dispatcher in a thread
 * and every rank (rank 0 included) is a worker; extra workers (e.g. a job
 * array) join with `vistune sched RUN.yaml --worker --connect ENDPOINT`.
 * With --dispatch-only one process only serves (e.g. on a service node while
 * a job array works). A rerun skips every task the result store already holds. */
#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/leak_check.h"
#include "common/log.h"
#include "scheduler/dispatch.h"
#include "scheduler/sched.h"
#include "trainer/eval.h"

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f) {
    fputs("usage: vistune sched RUN.yaml [options]\n"
          "       vistune sched RUN.yaml --worker --connect ENDPOINT|@FILE\n\n"
          "Plans the run's evaluation (eval: section) for a checkpoint and runs it with a\n"
          "dispatcher that leases tasks to workers over ZeroMQ; every MPI rank works.\n\n"
          "  --checkpoint latest|DIR  what to evaluate (default eval.checkpoint, \"latest\")\n"
          "  --results DIR            result store (default eval.results or RUN_DIR/results)\n"
          "  --bind ENDPOINT          dispatcher address (default tcp://*:* — any port)\n"
          "  --endpoint-file FILE     write the dispatcher's address there for extra workers\n"
          "  --dispatch-only          only serve: every task runs on --worker processes\n"
          "                           (one process, no MPI ranks besides it)\n"
          "  --worker                 only work, for a dispatcher at --connect\n"
          "  --connect ENDPOINT|@FILE the dispatcher (with @, read from FILE, waiting for it)\n"
          "  --set KEY=VALUE          override a run-config value (repeatable)\n"
          "  --help                   this text\n",
          f);
}

static void alive(void *lease) { vt_lease_alive(lease); }

static vt_status execute(const Vt__EvalTask *task, void *ctx, vt_lease *lease, Vt__EvalResult **out, vt_error *err) {
    return vt_evaluator_run(ctx, task, alive, lease, out, err);
}

static void free_result(Vt__EvalResult *r, void *ctx) {
    (void)ctx;
    vt_eval_result_free(r);
}

typedef struct {
    vt_dispatcher *d;
    vt_dispatch_stats stats;
    vt_error err;
    vt_status st;
} dispatcher_thread;

static void *run_dispatcher(void *arg) {
    dispatcher_thread *t = arg;
    t->st = vt_dispatcher_run(t->d, &stop_flag, &t->stats, &t->err);
    return NULL;
}

/* "tcp://0.0.0.0:5555" is not an address another node can dial: name this host. */
static void dialable(const char *endpoint, char *out, size_t cap) {
    const char *wild = strstr(endpoint, "0.0.0.0");
    if (!wild) {
        snprintf(out, cap, "%s", endpoint);
        return;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(out, cap, "%.*s%s%s", (int)(wild - endpoint), endpoint, host, wild + 7);
}

static vt_status read_endpoint_file(const char *path, char *out, size_t cap, vt_error *err) {
    for (int i = 0; i < 600 && !vt_path_exists(path) && !stop_flag; i++) usleep(100000);
    char *data = NULL;
    size_t len = 0;
    vt_status st = vt_read_file(path, cap - 1, &data, &len, err);
    if (st) return st;
    while (len && (data[len - 1] == '\n' || data[len - 1] == ' ')) data[--len] = '\0';
    snprintf(out, cap, "%s", data);
    free(data);
    return VT_OK;
}

typedef struct {
    const char *run, *checkpoint, *results, *bind, *endpoint_file, *connect;
    const char *sets[64];
    int nsets, worker_only, dispatch_only;
} sched_args;

static vt_status load_config(const sched_args *a, vt_config **cfg, vt_eval_config *ec, vt_error *err) {
    return vt_eval_config_load(a->run, a->sets, a->nsets, a->checkpoint, a->results, cfg, ec, err);
}

static vt_status work(const vt_eval_config *ec, const char *endpoint, const char *name, vt_worker_stats *ws,
                      vt_error *err) {
    vt_evaluator *ev = NULL;
    vt_status st = vt_evaluator_open(ec, &ev, err);
    vt_worker_options wo = {.endpoint = endpoint, .name = name, .reply_timeout_ms = 30000};
    if (!st) st = vt_worker_run(&wo, execute, free_result, ev, &stop_flag, ws, err);
    vt_evaluator_close(ev);
    return st;
}

/* Standalone worker: no MPI, one process. */
static int worker_main(const sched_args *a) {
    vt_error err = {0};
    vt_config *cfg = NULL;
    vt_eval_config ec;
    char endpoint[512];
    vt_worker_stats ws = {0};
    vt_status st = load_config(a, &cfg, &ec, &err);
    if (!st && a->connect[0] == '@') st = read_endpoint_file(a->connect + 1, endpoint, sizeof endpoint, &err);
    else if (!st) snprintf(endpoint, sizeof endpoint, "%s", a->connect);
    if (!st) st = work(&ec, endpoint, NULL, &ws, &err);
    vt_config_free(cfg);
    if (st) {
        fprintf(stderr, "vistune sched: %s\n", err.msg);
        return st == VT_ERR_ARG ? 2 : 1;
    }
    printf("sched worker: %zu tasks done, %zu failed\n", ws.tasks_done, ws.tasks_failed);
    return 0;
}

/* Collective: rank 0's status and message reach every rank. */
static vt_status agree(vt_status st, vt_error *err, int rank) {
    int code = st;
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (code) {
        MPI_Bcast(err->msg, VT_ERROR_MSG_MAX, MPI_CHAR, 0, MPI_COMM_WORLD);
        if (rank) err->code = (vt_status)code;
    }
    return (vt_status)code;
}

static int mpi_main(const sched_args *a) {
    int provided, rank = 0, size = 1;
    vt_leak_check_pause();
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    vt_leak_check_resume();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    vt_log_set_rank(rank);
    vt_error err = {0};
    vt_config *cfg = NULL;
    vt_eval_config ec;
    vt_eval_plan plan = {0};
    dispatcher_thread dt = {0};
    pthread_t thread;
    bool started = false;
    char ckpt[PATH_MAX], results[PATH_MAX], endpoint[512] = "";
    vt_status st = a->dispatch_only && size > 1
                       ? vt_fail(&err, VT_ERR_ARG, "sched: --dispatch-only runs as one process, not %d ranks", size)
                       : load_config(a, &cfg, &ec, &err);
    if (rank == 0) {
        if (!st) st = vt_eval_resolve_checkpoint(&ec, ckpt, sizeof ckpt, &err);
        if (!st) st = vt_eval_results_dir(&ec, results, sizeof results, &err);
        if (!st) st = vt_eval_plan_make(&ec, ckpt, &plan, &err);
        vt_dispatcher_options o = {.bind = a->bind, .results = results, .lease_ms = (int)ec.lease_seconds * 1000,
                                   .expect_workers = a->dispatch_only ? 0 : size};
        if (!st) st = vt_dispatcher_open(&o, plan.tasks, plan.n, &dt.d, &err);
        if (!st) {
            dialable(vt_dispatcher_endpoint(dt.d), endpoint, sizeof endpoint);
            if (a->endpoint_file) st = vt_write_file_atomic(a->endpoint_file, endpoint, strlen(endpoint), &err);
        }
        if (!st) {
            vt_info("sched: %zu tasks for %s; dispatcher at %s; results in %s", plan.n, ckpt, endpoint, results);
            started = pthread_create(&thread, NULL, run_dispatcher, &dt) == 0;
            if (!started) st = vt_fail(&err, VT_ERR_STATE, "sched: cannot start the dispatcher thread");
        }
    } else if (st) {
        st = VT_OK; /* rank 0 reads the same file and reports the error once */
    }
    st = agree(st, &err, rank);
    if (!st && !a->dispatch_only) {
        MPI_Bcast(endpoint, sizeof endpoint, MPI_CHAR, 0, MPI_COMM_WORLD);
        vt_worker_stats ws = {0};
        char name[64];
        snprintf(name, sizeof name, "rank%d", rank);
        st = work(&ec, endpoint, name, &ws, &err);
        if (st) vt_log_error("sched: worker %s: %s", name, err.msg);
        else vt_info("sched: worker %s finished: %zu tasks done", name, ws.tasks_done);
    }
    if (started) {
        pthread_join(thread, NULL);
        if (dt.st && !st) {
            st = dt.st;
            err = dt.err;
        }
        const vt_dispatch_stats *s = &dt.stats;
        size_t handled = s->stored + s->duplicates;
        if (!dt.st)
            printf("sched: %zu tasks planned, %zu already done, %zu stored, %zu duplicate results, %zu leases "
                   "expired; dispatcher busy %.3f s of %.1f s (%.2f ms per task); results in %s\n",
                   s->planned, s->already_done, s->stored, s->duplicates, s->expired_leases,
                   s->dispatcher_busy_seconds, s->seconds, handled ? 1e3 * s->dispatcher_busy_seconds / (double)handled : 0.0,
                   results);
    }
    int failed = st != VT_OK, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0 && st) fprintf(stderr, "vistune sched: %s\n", err.msg);
    vt_dispatcher_close(dt.d);
    vt_eval_plan_free(&plan);
    vt_config_free(cfg);
    vt_leak_check_before_mpi_finalize();
    MPI_Finalize();
    return any ? (st == VT_ERR_ARG ? 2 : 1) : 0;
}

int vt_cmd_sched(int argc, char **argv) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"results", required_argument, 0, 'r'},
        {"bind", required_argument, 0, 'b'},       {"endpoint-file", required_argument, 0, 'e'},
        {"worker", no_argument, 0, 'w'},           {"connect", required_argument, 0, 'C'},
        {"dispatch-only", no_argument, 0, 'D'},
        {"set", required_argument, 0, 'S'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    sched_args a = {.bind = "tcp://*:*"};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a.checkpoint = optarg; break;
        case 'r': a.results = optarg; break;
        case 'b': a.bind = optarg; break;
        case 'e': a.endpoint_file = optarg; break;
        case 'w': a.worker_only = 1; break;
        case 'D': a.dispatch_only = 1; break;
        case 'C': a.connect = optarg; break;
        case 'S':
            if (a.nsets == 64) {
                fprintf(stderr, "vistune sched: at most 64 --set options\n");
                return 2;
            }
            a.sets[a.nsets++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        case ':': fprintf(stderr, "vistune sched: %s needs a value (see --help)\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "vistune sched: unknown option '%s' (see --help)\n", argv[optind - 1]); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "vistune sched: expected one run config (see --help)\n");
        return 2;
    }
    if (a.worker_only != (a.connect != NULL)) {
        fprintf(stderr, "vistune sched: --worker and --connect go together\n");
        return 2;
    }
    if (a.dispatch_only && a.worker_only) {
        fprintf(stderr, "vistune sched: --dispatch-only and --worker exclude each other\n");
        return 2;
    }
    a.run = argv[optind];
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return a.worker_only ? worker_main(&a) : mpi_main(&a);
}
