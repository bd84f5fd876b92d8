/* Output directories that appear whole or not at all: build in a temporary
 * sibling "<dir>.tmp.XXXXXX", fsync, rename into place. Used by the dataset
 * generators (synth, adapt); the store writer follows the same rule. */
#ifndef VT_PIPELINE_OUTDIR_H
#define VT_PIPELINE_OUTDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* Checks that dir does not exist (unless force) and that its parent is a
 * writable directory, then creates the temporary sibling into tmp. */
vt_status vt_outdir_begin(const char *dir, bool force, char *tmp, size_t cap, vt_error *err);
/* fsyncs tmp, renames it to dir (an existing dir is replaced when force),
 * fsyncs the parent. On failure tmp is removed. */
vt_status vt_outdir_commit(const char *tmp, const char *dir, bool force, vt_error *err);
/* Removes tmp (after a failure). */
void vt_outdir_abort(const char *tmp);

#endif
