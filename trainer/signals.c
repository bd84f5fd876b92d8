/* Signal handlers that only record what was asked, plus the SIGINT watchdog:
 * a second alarm-driven _exit guarantees Ctrl-C never leaves a rank blocked
 * in a collective or a socket for more than 2 s. */
#include "trainer/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_flag;      /* vt_stop value */
static volatile int interrupt_flag;          /* mirrors SIGINT for lower layers */
static const char *stop_file;                /* vt_signals_watch_file */

static void on_stop(int sig) {
    (void)sig;
    if (stop_flag < VT_STOP_CHECKPOINT) stop_flag = VT_STOP_CHECKPOINT;
}

static void on_watchdog(int sig) {
    (void)sig;
    static const char msg[] = "vistune: interrupted, exiting\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    _exit(VT_EXIT_INTERRUPTED);
}

static void on_interrupt(int sig) {
    (void)sig;
    if (stop_flag == VT_STOP_INTERRUPT) on_watchdog(sig); /* second Ctrl-C: now */
    stop_flag = VT_STOP_INTERRUPT;
    interrupt_flag = 1;
    /* The loop normally exits at its next safe point (well under a second
     * for small steps); the alarm bounds it when a peer never answers. */
    alarm(2);
}

static vt_status install(int sig, void (*fn)(int), vt_error *err) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
    if (sigaction(sig, &sa, NULL) != 0)
        return vt_fail_errno(err, VT_ERR_IO, "sigaction(%s)", strsignal(sig));
    return VT_OK;
}

vt_status vt_signals_install(vt_error *err) {
    vt_status st;
    if ((st = install(SIGUSR1, on_stop, err))) return st;
    if ((st = install(SIGTERM, on_stop, err))) return st;
    if ((st = install(SIGINT, on_interrupt, err))) return st;
    return install(SIGALRM, on_watchdog, err);
}

vt_stop vt_signals_local(void) { return (vt_stop)stop_flag; }

volatile const int *vt_signals_interrupt_flag(void) { return &interrupt_flag; }

void vt_signals_watch_file(const char *path) { stop_file = path; }

void vt_signals_consume_file(void) {
    if (stop_file) unlink(stop_file);
}

vt_status vt_signals_agree(MPI_Comm comm, vt_stop *out, vt_error *err) {
    int local = (int)stop_flag, global = 0;
    if (stop_file && local < VT_STOP_CHECKPOINT && access(stop_file, F_OK) == 0) local = VT_STOP_CHECKPOINT;
    int rc = MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, comm);
    if (rc != MPI_SUCCESS) return vt_fail(err, VT_ERR_MPI, "signals: MPI_Allreduce failed (%d)", rc);
    *out = (vt_stop)global;
    return VT_OK;
}

void vt_signals_reset(void) {
    alarm(0);
    stop_flag = VT_STOP_NONE;
    interrupt_flag = 0;
}
