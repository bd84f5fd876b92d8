/* trainer/: learning -- the model, tuning methods, optimizer, checkpoints,
 * the train/eval loops and MPI data parallelism. Umbrella header. */
#ifndef VT_TRAINER_H
#define VT_TRAINER_H

#include "trainer/bbtune.h"
#include "trainer/bottleneck.h"
#include "trainer/checkpoint.h"
#include "trainer/cmaes.h"
#include "trainer/dist.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics.h"
#include "trainer/model.h"
#include "trainer/safetensors.h"
#include "trainer/recipe.h"
#include "trainer/serve.h"
#include "trainer/signals.h"
#include "trainer/tensorboard.h"
#include "trainer/train.h"
#include "trainer/vittle.h"
#include "trainer/zeroth_order.h"

#endif
