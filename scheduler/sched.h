/* `vistune sched`: evaluation with a dispatcher and leasing workers (see
 * docs/evaluation.md). */
#ifndef VT_SCHED_H
#define VT_SCHED_H

int vt_cmd_sched(int argc, char **argv);

#endif
