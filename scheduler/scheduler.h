/* The scheduler component: orchestration of runs on clusters. */
#ifndef VT_SCHEDULER_H
#define VT_SCHEDULER_H

#include "scheduler/mpi_check.h"
#include "scheduler/report.h"
#include "scheduler/result_store.h"
#include "scheduler/slurm_job.h"
#include "scheduler/slurm_template.h"
#include "scheduler/submit.h"

#endif
