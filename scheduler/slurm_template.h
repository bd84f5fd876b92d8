/* Rendering of Slurm batch-script templates: "{{name}}" placeholders are
 * replaced by values the caller has already validated or shell-quoted. No
 * value is ever evaluated by a shell during rendering. */
#ifndef VT_SLURM_TEMPLATE_H
#define VT_SLURM_TEMPLATE_H

#include <stddef.h>

#include "common/error.h"

typedef struct vt_template_var {
    const char *name;  /* placeholder name without braces */
    const char *value; /* inserted verbatim */
} vt_template_var;

/* Replaces every {{name}} of tmpl (called `what` in messages) by its value.
 * A placeholder that names no variable, or an unterminated "{{", is an error
 * naming the template and the line. *out is malloc'd, NUL-terminated. */
vt_status vt_template_render(const char *tmpl, const char *what, const vt_template_var *vars,
                             size_t nvars, char **out, vt_error *err);

/* A POSIX-shell single-quoted form of s ('it'\''s'); malloc'd, NULL when out of memory. */
char *vt_shell_quote(const char *s);

/* True when s can stand as one word of an #SBATCH line: non-empty, printable
 * ASCII, no whitespace and no quote or backslash (sbatch would reinterpret
 * those). #SBATCH lines are read by sbatch, never by a shell. */
int vt_sbatch_safe(const char *s);

#endif
