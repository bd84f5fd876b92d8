/* `vistune train RUN.yaml`: the main job. Reads the strict run config
 * (docs/training.md lists every key), builds the model for the recipe,
 * streams batches in the sampler's global order, and runs AdamW with
 * warmup+cosine, clipping and gradient accumulation derived from the global
 * batch (losses are normalised by the global step's supervised-token count,
 * so results do not depend on the trainer count R), averaging gradients over
 * the trainers' communicator. Checkpoints, signals and metrics as in
 * trainer/checkpoint.h, signals.h, metrics.h.
 *
 * Exit status: 0 done, 1 failure, 2 usage/config error, 3 checkpointed on
 * request (SIGUSR1/SIGTERM) and not done, 130 interrupted (SIGINT). */
#ifndef VT_TRAINER_TRAIN_H
#define VT_TRAINER_TRAIN_H

int vt_cmd_train(int argc, char **argv);

#endif
