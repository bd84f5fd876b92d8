/* Signal flags and the SIGINT watchdog, in forked children so the test
 * process keeps its own dispositions: SIGUSR1/SIGTERM ask for a checkpoint,
 * SIGINT for an interrupt, and a process stuck after SIGINT (a peer or a
 * socket that never answers) is gone with status 130 within 2 s. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "trainer/signals.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Child: install, raise sig, exit with the observed vt_stop (or hang). */
static int child_flag(int sig, int then_block) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (vt_signals_install(NULL) != VT_OK) _exit(50);
        if (vt_signals_local() != VT_STOP_NONE) _exit(51);
        raise(sig);
        int v = (int)vt_signals_local();
        if (sig == SIGINT && !*vt_signals_interrupt_flag()) _exit(52);
        if (then_block)
            for (;;) pause(); /* a wait that never completes */
        vt_signals_reset();
        _exit(v);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_checkpoint_signals(void **state) {
    (void)state;
    assert_int_equal(child_flag(SIGUSR1, 0), VT_STOP_CHECKPOINT);
    assert_int_equal(child_flag(SIGTERM, 0), VT_STOP_CHECKPOINT);
}

static void test_interrupt_flag(void **state) {
    (void)state;
    assert_int_equal(child_flag(SIGINT, 0), VT_STOP_INTERRUPT);
}

static void test_interrupt_watchdog(void **state) {
    (void)state;
    double t0 = now();
    assert_int_equal(child_flag(SIGINT, 1), VT_EXIT_INTERRUPTED);
    double dt = now() - t0;
    assert_true(dt >= 1.0); /* the loop gets its chance to exit cleanly first */
    assert_true(dt < 2.9);  /* alarm(2) fires after 1..2 s */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_signals),
        cmocka_unit_test(test_interrupt_flag),
        cmocka_unit_test(test_interrupt_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
