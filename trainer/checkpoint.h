/* Training checkpoints: a directory ROOT/ckpt-<step, 9 digits>/ holding the
 * files the caller puts there (model.safetensors + config.json from the
 * model, optimizer.safetensors, ...) plus
 *   meta.pb   vt.CheckpointMeta: step, sampler cursor, RNG states, resolved
 *             config text and its SHA-256, and the SHA-256 of every file;
 *   COMPLETE  written last (by rank 0, after a barrier): the hex SHA-256 of
 *             meta.pb.
 * It is built as ckpt-<step>.tmp/, every file fsynced, then renamed into
 * place and the parent fsynced, so a crash leaves either a .tmp directory
 * (never picked) or a whole checkpoint. A checkpoint is "complete" when
 * COMPLETE matches meta.pb and every listed file matches its hash; resume
 * picks the newest complete one and warns about every newer one it skips.
 *
 * Retention (vt_ckpt_prune): the newest keep_last (pinned ones count), every
 * step that is a multiple of pin_every, and any checkpoint holding a PINNED file are kept.
 *
 * MPI: vt_ckpt_begin / vt_ckpt_commit / vt_ckpt_abort are collective over the
 * given communicator; only rank 0 touches the file system unless the caller
 * puts per-rank files into vt_ckpt_writer_dir() between begin and commit. */
#ifndef VT_TRAINER_CHECKPOINT_H
#define VT_TRAINER_CHECKPOINT_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/rng.h"

enum { VT_CKPT_MAX_RNG = 16 };

/* What a checkpoint records besides its files. Strings are borrowed. */
typedef struct vt_ckpt_info {
    const char *recipe;
    uint64_t step;          /* optimizer steps completed */
    uint64_t epoch;         /* sampler cursor: next (epoch, step_in_epoch) to run */
    uint64_t step_in_epoch;
    uint64_t global_batch;
    uint64_t seed;
    uint64_t samples_seen;
    uint32_t trainer_count; /* informational: resume may use another count */
    const char *config_yaml;
    size_t config_len;
    char config_sha256[65]; /* filled by vt_ckpt_commit / on load */
    int n_rng;
    const char *rng_names[VT_CKPT_MAX_RNG];
    vt_rng rng[VT_CKPT_MAX_RNG];
} vt_ckpt_info;

/* "ckpt-000000123" for step 123. */
void vt_ckpt_dirname(uint64_t step, char out[32]);

typedef struct vt_ckpt_writer vt_ckpt_writer;

/* Collective. Rank 0 removes a stale ROOT/ckpt-<step>.tmp, creates it fresh
 * and shares the outcome, so all ranks fail or succeed together. */
vt_status vt_ckpt_begin(const char *root, uint64_t step, MPI_Comm comm, vt_ckpt_writer **out,
                        vt_error *err);
/* The .tmp directory, for writers that create their own files there. */
const char *vt_ckpt_writer_dir(const vt_ckpt_writer *w);
/* This process's rank in the writer's communicator (rank 0 writes replicated state). */
int vt_ckpt_writer_rank(const vt_ckpt_writer *w);
/* Writes ROOT/ckpt-<step>.tmp/name (temp + fsync + rename). Any rank. */
vt_status vt_ckpt_put(vt_ckpt_writer *w, const char *name, const void *data, size_t len, vt_error *err);
/* Collective. Barrier; rank 0 hashes every file in the directory, writes
 * meta.pb and then COMPLETE, fsyncs, renames .tmp to the final name and
 * fsyncs ROOT. On success *path_out (if not NULL, PATH_MAX bytes) is the
 * final directory. The writer is freed either way. */
vt_status vt_ckpt_commit(vt_ckpt_writer *w, vt_ckpt_info *info, char *path_out, vt_error *err);
/* Collective. Removes the .tmp directory; frees the writer. */
void vt_ckpt_abort(vt_ckpt_writer *w);

/* Rank 0 only. Marks a checkpoint as pinned (never pruned). */
vt_status vt_ckpt_pin(const char *ckpt_dir, vt_error *err);
/* Rank 0 only. Applies the retention rule above (keep_last >= 1) and
 * removes leftover ckpt-*.tmp directories of crashed runs. */
vt_status vt_ckpt_prune(const char *root, int keep_last, uint64_t pin_every, vt_error *err);

/* Newest complete checkpoint under root. *found = false (and VT_OK) when
 * root is missing or holds none; incomplete or corrupt ones are skipped with
 * a warning naming them and why. path_out has PATH_MAX bytes. */
vt_status vt_ckpt_find_latest(const char *root, char *path_out, size_t cap, bool *found, vt_error *err);

typedef struct vt_ckpt vt_ckpt;

/* Opens exactly ckpt_dir and verifies it (COMPLETE, meta.pb, file hashes);
 * any defect is an error naming the file. */
vt_status vt_ckpt_open(const char *ckpt_dir, vt_ckpt **out, vt_error *err);
void vt_ckpt_close(vt_ckpt *c);
/* Recorded info; strings point into c (valid until vt_ckpt_close). */
const vt_ckpt_info *vt_ckpt_get_info(const vt_ckpt *c);
const char *vt_ckpt_path(const vt_ckpt *c);
/* Full path of a file inside the checkpoint (for mmap readers such as
 * safetensors). VT_ERR_STATE if meta.pb does not list it. */
vt_status vt_ckpt_file(const vt_ckpt *c, const char *name, char *out, size_t cap, vt_error *err);
/* Reads a listed file whole (malloc'd, NUL-terminated). */
vt_status vt_ckpt_read(const vt_ckpt *c, const char *name, char **data, size_t *len, vt_error *err);

#endif
