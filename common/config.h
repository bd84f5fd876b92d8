/* Strict run-config reader over YAML. Values are addressed by path
 * ("train.lr", "eval.shifts[2].name"). Every value a caller reads is marked as
 * used; vt_config_check_unused() then reports the first key nobody read, so a
 * misspelt key is an error naming the file, line and key instead of a silently
 * ignored setting. Wrong types are errors naming the same.
 *
 * Getters return VT_OK and leave *out untouched when the path is absent, so a
 * caller presets the default: `int64_t steps = 100; vt_config_int(c, "train.steps", &steps, err);`
 * The vt_config_require_* forms make absence an error. */
#ifndef VT_CONFIG_H
#define VT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct vt_config vt_config;

vt_status vt_config_load(const char *path, vt_config **out, vt_error *err);
/* name is used in messages ("run.yaml"). */
vt_status vt_config_parse(const char *text, size_t len, const char *name, vt_config **out,
                          vt_error *err);
void vt_config_free(vt_config *cfg);

/* The source file name and the raw text (for hashing / storing in checkpoints). */
const char *vt_config_name(const vt_config *cfg);
const char *vt_config_text(const vt_config *cfg, size_t *len);

bool vt_config_has(const vt_config *cfg, const char *path);
/* Number of items of a sequence, or of keys of a mapping; -1 when absent.
 * A scalar is an error (returns -2 and fills err). */
int vt_config_len(const vt_config *cfg, const char *path, vt_error *err);
/* Key name of the i-th entry of the mapping at path (NULL if out of range). */
const char *vt_config_key_at(const vt_config *cfg, const char *path, int i);

vt_status vt_config_int(const vt_config *cfg, const char *path, int64_t *out, vt_error *err);
vt_status vt_config_double(const vt_config *cfg, const char *path, double *out, vt_error *err);
vt_status vt_config_bool(const vt_config *cfg, const char *path, bool *out, vt_error *err);
/* The string stays owned by cfg. */
vt_status vt_config_string(const vt_config *cfg, const char *path, const char **out, vt_error *err);
/* One of names[0..n-1]; *out is the index. */
vt_status vt_config_enum(const vt_config *cfg, const char *path, const char *const *names, int n,
                         int *out, vt_error *err);
/* Integer within [lo, hi]. */
vt_status vt_config_int_range(const vt_config *cfg, const char *path, int64_t lo, int64_t hi,
                              int64_t *out, vt_error *err);

/* Readers for "PREFIX.KEY" in a method's section; an absent key leaves *v
 * as it is. An int within [lo, hi]; a float that is finite and >= 0 (> 0
 * when positive). */
vt_status vt_config_section_int(const vt_config *cfg, const char *prefix, const char *key, int lo, int hi, int *v,
                                vt_error *err);
vt_status vt_config_section_float(const vt_config *cfg, const char *prefix, const char *key, float *v,
                                  bool positive, vt_error *err);

vt_status vt_config_require_int(const vt_config *cfg, const char *path, int64_t *out, vt_error *err);
vt_status vt_config_require_string(const vt_config *cfg, const char *path, const char **out,
                                   vt_error *err);

/* Marks a whole subtree as read (for sections handed to another component). */
void vt_config_mark_used(const vt_config *cfg, const char *path);
/* Fails on the first key (in file order) that no getter read. */
vt_status vt_config_check_unused(const vt_config *cfg, vt_error *err);

/* Override a scalar from the command line: "train.lr=3e-4". The path must
 * already exist or its parent mapping must exist. */
vt_status vt_config_set(vt_config *cfg, const char *assignment, vt_error *err);

#endif
