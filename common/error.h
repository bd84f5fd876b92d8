/* One error type for the whole project: a status code plus a message that
 * carries context (file, key, byte offset). Library functions fill it and
 * return the code; only the CLI prints it and chooses an exit status. */
#ifndef VT_ERROR_H
#define VT_ERROR_H

#include <stddef.h>

typedef enum vt_status {
    VT_OK = 0,
    VT_ERR_ARG,         /* bad argument or configuration value */
    VT_ERR_IO,          /* file system or OS call failed */
    VT_ERR_FORMAT,      /* malformed input data (JSON, YAML, protobuf, image, ...) */
    VT_ERR_NOMEM,       /* allocation failed */
    VT_ERR_RANGE,       /* value or size out of the allowed range */
    VT_ERR_STATE,       /* operation not valid in the current state */
    VT_ERR_MPI,         /* MPI call failed */
    VT_ERR_NET,         /* ZeroMQ / transport failure or timeout */
    VT_ERR_DEVICE,      /* CUDA / accelerator failure or no device */
    VT_ERR_INTERRUPTED, /* stopped by a signal at a safe point */
} vt_status;

enum { VT_ERROR_MSG_MAX = 1024 };

typedef struct vt_error {
    vt_status code;
    char msg[VT_ERROR_MSG_MAX];
} vt_error;

/* Fill err (which may be NULL) with a formatted message; returns code so a
 * caller can write `return vt_fail(err, VT_ERR_IO, "%s: ...", path);`. */
vt_status vt_fail(vt_error *err, vt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, and appends ": strerror(errno)" using errno as it was on entry. */
vt_status vt_fail_errno(vt_error *err, vt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Put context in front of an existing message: "ingest: " + msg. */
void vt_error_prefix(vt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vt_error_clear(vt_error *err);
/* Short stable name of a status ("io", "format", ...). */
const char *vt_status_name(vt_status code);

#endif
