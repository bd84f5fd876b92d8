/* Task leasing under failure: several worker processes, one killed with
 * SIGKILL in the middle of a task. Every planned task must end with exactly
 * one stored result, equal to what a single worker computes, and a rerun of
 * the schedule must find nothing to do. The workload is a deterministic
 * computation per task (the scheduler does not care what a task computes). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fs.h"
#include "common/rng.h"
#include "scheduler/dispatch.h"
#include "scheduler/result_store.h"

enum { NTASKS = 12, ITEMS = 5 };
static char ids[NTASKS][64];
static Vt__EvalTask task_storage[NTASKS];
static Vt__EvalTask *tasks[NTASKS];
static char marker_dir[512];

static const char *scratch(void) {
    const char *t = getenv("VT_TEST_TMP");
    return t ? t : "/tmp";
}

static void plan(void) {
    for (int i = 0; i < NTASKS; i++) {
        snprintf(ids[i], sizeof ids[i], "ck/bench/shift%d/%d/0", i % 4, 1 + i / 4);
        vt__eval_task__init(&task_storage[i]);
        task_storage[i].task_id = ids[i];
        task_storage[i].checkpoint = "ck";
        task_storage[i].benchmark = "bench";
        task_storage[i].severity = (uint32_t)(1 + i / 4);
        task_storage[i].seed = (uint64_t)i;
        tasks[i] = &task_storage[i];
    }
}

/* The workload: ITEMS items scored from a hash of the task, 60 ms each,
 * renewing the lease after each. Writes a marker when it starts a task so the
 * test knows when a worker is mid-task. */
static vt_status execute(const Vt__EvalTask *t, void *ctx, vt_lease *lease, Vt__EvalResult **out, vt_error *err) {
    (void)ctx;
    (void)err;
    char marker[700];
    snprintf(marker, sizeof marker, "%s/started.%ld", marker_dir, (long)getpid());
    FILE *f = fopen(marker, "a");
    if (f) fclose(f);
    Vt__EvalResult *r = calloc(1, sizeof *r);
    vt__eval_result__init(r);
    r->task = calloc(1, sizeof *r->task);
    vt__eval_task__init(r->task);
    r->task->task_id = strdup(t->task_id);
    r->n_items = ITEMS;
    r->items = calloc(ITEMS, sizeof *r->items);
    for (int i = 0; i < ITEMS; i++) {
        r->items[i] = calloc(1, sizeof *r->items[i]);
        vt__item_result__init(r->items[i]);
        r->items[i]->index = (uint64_t)i;
        r->items[i]->score = (float)(vt_hash4(t->seed, (uint64_t)i, 0, 0) % 2);
        usleep(60000);
        vt_lease_alive(lease);
    }
    *out = r;
    return VT_OK;
}

static void free_result(Vt__EvalResult *r, void *ctx) {
    (void)ctx;
    for (size_t i = 0; i < r->n_items; i++) free(r->items[i]);
    free(r->items);
    free(r->task->task_id);
    free(r->task);
    free(r);
}

static pid_t spawn_worker(const char *endpoint, int n) {
    pid_t pid = fork();
    if (pid == 0) {
        char name[32];
        snprintf(name, sizeof name, "w%d", n);
        vt_worker_options wo = {.endpoint = endpoint, .name = name, .reply_timeout_ms = 8000};
        vt_worker_stats ws;
        vt_error err = {0};
        vt_status st = vt_worker_run(&wo, execute, free_result, NULL, NULL, &ws, &err);
        if (st) fprintf(stderr, "worker %s: %s\n", name, err.msg);
        _exit(st ? 1 : 0);
    }
    return pid;
}

static size_t count_markers(void) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c started || true", marker_dir);
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (p && fscanf(p, "%zu", &n) != 1) n = 0;
    if (p) pclose(p);
    return n;
}

/* Runs the dispatcher in a child process so the parent can kill workers. */
static pid_t spawn_dispatcher(const char *results, const char *endpoint_file, int lease_ms) {
    pid_t pid = fork();
    if (pid == 0) {
        vt_dispatcher_options o = {.bind = "tcp://127.0.0.1:*", .results = results, .lease_ms = lease_ms,
                                   .linger_ms = 3000};
        vt_dispatcher *d;
        vt_error err = {0};
        if (vt_dispatcher_open(&o, tasks, NTASKS, &d, &err)) {
            fprintf(stderr, "dispatcher: %s\n", err.msg);
            _exit(1);
        }
        vt_write_file_atomic(endpoint_file, vt_dispatcher_endpoint(d), strlen(vt_dispatcher_endpoint(d)), &err);
        vt_dispatch_stats st;
        vt_status rc = vt_dispatcher_run(d, NULL, &st, &err);
        printf("dispatcher: planned %zu, already done %zu, stored %zu, duplicates %zu, expired %zu, "
               "busy %.4f s of %.2f s for %zu messages\n",
               st.planned, st.already_done, st.stored, st.duplicates, st.expired_leases,
               st.dispatcher_busy_seconds, st.seconds, st.messages);
        fflush(stdout);
        vt_dispatcher_close(d);
        _exit(rc ? 1 : (int)(st.already_done == NTASKS ? 42 : 0));
    }
    return pid;
}

static void wait_file(const char *path, char *buf, size_t cap) {
    for (int i = 0; i < 500 && !vt_path_exists(path); i++) usleep(10000);
    char *data = NULL;
    size_t len = 0;
    vt_error err;
    assert_int_equal(vt_read_file(path, cap - 1, &data, &len, &err), VT_OK);
    memcpy(buf, data, len + 1);
    free(data);
}

static void read_scores(const char *results, float scores[NTASKS][ITEMS]) {
    vt_result_store *s;
    vt_error err = {0};
    assert_int_equal(vt_result_store_open(results, false, &s, &err), VT_OK);
    size_t n = 0;
    assert_int_equal(vt_result_store_count(s, &n, &err), VT_OK);
    assert_int_equal(n, NTASKS);
    for (int i = 0; i < NTASKS; i++) {
        Vt__EvalResult *r = NULL;
        assert_int_equal(vt_result_store_get(s, ids[i], &r, &err), VT_OK);
        assert_non_null(r);
        assert_int_equal(r->n_items, ITEMS);
        for (int k = 0; k < ITEMS; k++) scores[i][k] = r->items[k]->score;
        vt__eval_result__free_unpacked(r, NULL);
    }
    vt_result_store_close(s);
}

static int run_schedule(const char *name, int nworkers, int kill_one, float scores[NTASKS][ITEMS]) {
    char results[600], epfile[600], endpoint[256];
    snprintf(results, sizeof results, "%s/%s.results", scratch(), name);
    snprintf(epfile, sizeof epfile, "%s/%s.endpoint", scratch(), name);
    snprintf(marker_dir, sizeof marker_dir, "%s/%s.markers", scratch(), name);
    vt_error err;
    vt_remove_tree(results, &err);
    vt_remove_tree(epfile, &err);
    vt_remove_tree(marker_dir, &err);
    vt_mkdir_p(marker_dir, &err);
    pid_t disp = spawn_dispatcher(results, epfile, 600);
    wait_file(epfile, endpoint, sizeof endpoint);
    pid_t workers[8];
    for (int i = 0; i < nworkers; i++) workers[i] = spawn_worker(endpoint, i);
    if (kill_one) {
        /* Kill worker 0 once it has started its second task (mid-task). */
        char marker[700];
        snprintf(marker, sizeof marker, "%s/started.%ld", marker_dir, (long)workers[0]);
        for (int i = 0; i < 1000 && !vt_path_exists(marker); i++) usleep(5000);
        usleep(100000);
        kill(workers[0], SIGKILL);
    }
    int status, failures = 0;
    for (int i = 0; i < nworkers; i++) {
        waitpid(workers[i], &status, 0);
        if (!(kill_one && i == 0)) failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    waitpid(disp, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(failures, 0);
    read_scores(results, scores);
    /* A rerun finds everything done and leases nothing. */
    snprintf(marker_dir, sizeof marker_dir, "%s/%s.markers2", scratch(), name);
    vt_remove_tree(marker_dir, &err);
    vt_mkdir_p(marker_dir, &err);
    vt_remove_tree(epfile, &err);
    disp = spawn_dispatcher(results, epfile, 600);
    wait_file(epfile, endpoint, sizeof endpoint);
    pid_t w = spawn_worker(endpoint, 9);
    waitpid(w, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    waitpid(disp, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 42); /* all already done */
    assert_int_equal(count_markers(), 0);
    return 0;
}

static void test_kill_worker_mid_task(void **state) {
    (void)state;
    plan();
    float single[NTASKS][ITEMS], killed[NTASKS][ITEMS];
    run_schedule("single", 1, 0, single);
    run_schedule("killed", 3, 1, killed);
    assert_memory_equal(single, killed, sizeof single);
}

static void test_bad_endpoint_and_silent_dispatcher(void **state) {
    (void)state;
    vt_error err = {0};
    vt_dispatcher_options o = {.bind = "nonsense://x", .results = "/nonexistent-dir/results"};
    vt_dispatcher *d = NULL;
    assert_int_not_equal(vt_dispatcher_open(&o, tasks, NTASKS, &d, &err), VT_OK);
    assert_null(d);
    /* A worker whose dispatcher never answers gives up with a clear error. */
    vt_worker_options wo = {.endpoint = "tcp://127.0.0.1:1", .reply_timeout_ms = 300};
    vt_worker_stats ws;
    assert_int_equal(vt_worker_run(&wo, execute, free_result, NULL, NULL, &ws, &err), VT_ERR_NET);
    assert_non_null(strstr(err.msg, "no answer from the dispatcher at tcp://127.0.0.1:1"));
}

int main(void) {
    const struct CMUnitTest tests_[] = {
        cmocka_unit_test(test_kill_worker_mid_task),
        cmocka_unit_test(test_bad_endpoint_and_silent_dispatcher),
    };
    return cmocka_run_group_tests(tests_, NULL, NULL);
}
