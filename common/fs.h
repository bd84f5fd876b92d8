/* File-system helpers with the project's durability rules: whole files are
 * written to a temporary name, fsynced, renamed into place and the directory
 * fsynced, so a reader sees the old file or the new one, never a part. */
#ifndef VT_FS_H
#define VT_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* Reads a whole file (at most max_bytes, else VT_ERR_RANGE). *data is
 * NUL-terminated for convenience and must be freed. */
vt_status vt_read_file(const char *path, size_t max_bytes, char **data, size_t *len, vt_error *err);
/* temp + fsync + rename + fsync(dir). */
vt_status vt_write_file_atomic(const char *path, const void *data, size_t len, vt_error *err);
/* fsync a directory so a rename or create inside it is durable. */
vt_status vt_fsync_dir(const char *dir, vt_error *err);
/* fsync an open descriptor's file by path. */
vt_status vt_fsync_path(const char *path, vt_error *err);
/* mkdir -p with mode 0755. */
vt_status vt_mkdir_p(const char *path, vt_error *err);
/* rm -rf that refuses "" and "/"; missing paths are fine. */
vt_status vt_remove_tree(const char *path, vt_error *err);
bool vt_path_exists(const char *path);
bool vt_is_dir(const char *path);
/* Joins a and b with one '/' (an absolute b is used as it is), into out (VT_ERR_RANGE if it does not fit). */
vt_status vt_path_join(char *out, size_t cap, const char *a, const char *b, vt_error *err);
/* Directory part of path into out ("." when there is none). */
void vt_dirname(const char *path, char *out, size_t cap);

#endif
