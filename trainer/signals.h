/* Stop requests from the outside world, turned into decisions every rank
 * takes together. SIGUSR1 and SIGTERM (Slurm's --signal and scancel) ask for
 * "checkpoint at the next step boundary, then exit 3" (so does a watched stop
 * file); SIGINT (Ctrl-C) asks
 * for a prompt clean exit without checkpoint, and a watchdog makes sure the
 * process is gone within 2 s even if a peer or a socket never answers.
 * Handlers only set sig_atomic_t flags; everything else happens at safe
 * points in the training loop. */
#ifndef VT_TRAINER_SIGNALS_H
#define VT_TRAINER_SIGNALS_H

#include <mpi.h>
#include <stdbool.h>

#include "common/error.h"

/* Exit status of a run that checkpointed because it was asked to stop: the
 * Slurm template requeues on it. */
enum { VT_EXIT_CHECKPOINTED = 3, VT_EXIT_INTERRUPTED = 130 };

typedef enum vt_stop {
    VT_STOP_NONE = 0,       /* keep going */
    VT_STOP_CHECKPOINT = 1, /* SIGUSR1/SIGTERM somewhere: checkpoint, exit 3 */
    VT_STOP_INTERRUPT = 2,  /* SIGINT somewhere: exit now, no checkpoint */
} vt_stop;

/* Installs the handlers (without SA_RESTART, so blocking waits such as
 * zmq_poll return EINTR and can look at the flags). Idempotent. */
vt_status vt_signals_install(vt_error *err);
/* Local flags as the handlers left them. */
vt_stop vt_signals_local(void);
/* The flag's address, for lower layers (pipeline streaming) that must abort
 * blocking waits but may not include trainer headers: non-zero = interrupt. */
volatile const int *vt_signals_interrupt_flag(void);
/* A file whose existence asks for "checkpoint, exit 3" like SIGUSR1 (NULL:
 * none), looked at by vt_signals_agree on the ranks that set it. For
 * launchers that cannot signal ranks safely: Slurm's batch shell may hear
 * the time-limit warning while the ranks are still being started, and a
 * signal in that window kills a rank before it has a handler. */
void vt_signals_watch_file(const char *path);
/* Removes the watched file (after the checkpoint it asked for), if any. */
void vt_signals_consume_file(void);
/* All ranks of comm agree: MPI_Allreduce(MAX) of the local vt_stop (and the
 * watched file), so one rank's request stops everybody at the same step.
 * Collective. */
vt_status vt_signals_agree(MPI_Comm comm, vt_stop *out, vt_error *err);
/* Clears the flags and disarms the watchdog (tests). */
void vt_signals_reset(void);

#endif
