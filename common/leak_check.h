/* LeakSanitizer and OpenMPI (sanitizer builds; no-ops otherwise).
 * OpenMPI's component selection in MPI_Init leaks small blocks from plugins
 * it then unloads, and its runtime keeps allocations until MPI_Finalize: a
 * leak check at exit reports both with stacks no suppression can name. So
 * MPI_Init runs between vt_leak_check_pause/resume (those allocations are
 * never reported), and the process's leak check runs right before
 * MPI_Finalize, after the program has freed its own memory. A leak of
 * vistune's own still fails the process. */
#ifndef VT_LEAK_CHECK_H
#define VT_LEAK_CHECK_H

void vt_leak_check_pause(void);
void vt_leak_check_resume(void);
void vt_leak_check_before_mpi_finalize(void);

#endif
