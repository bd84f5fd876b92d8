/* The project's error type: formatting helpers around vt_error. */
#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void format_into(vt_error *err, const char *fmt, va_list ap) {
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

vt_status vt_fail(vt_error *err, vt_status code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    format_into(err, fmt, ap);
    va_end(ap);
    return code;
}

vt_status vt_fail_errno(vt_error *err, vt_status code, const char *fmt, ...) {
    int saved = errno;
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    format_into(err, fmt, ap);
    va_end(ap);
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(saved));
    return code;
}

void vt_error_prefix(vt_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[VT_ERROR_MSG_MAX], old[VT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
}

void vt_error_clear(vt_error *err) {
    if (!err) return;
    err->code = VT_OK;
    err->msg[0] = '\0';
}

const char *vt_status_name(vt_status code) {
    switch (code) {
    case VT_OK: return "ok";
    case VT_ERR_ARG: return "argument";
    case VT_ERR_IO: return "io";
    case VT_ERR_FORMAT: return "format";
    case VT_ERR_NOMEM: return "memory";
    case VT_ERR_RANGE: return "range";
    case VT_ERR_STATE: return "state";
    case VT_ERR_MPI: return "mpi";
    case VT_ERR_NET: return "network";
    case VT_ERR_DEVICE: return "device";
    case VT_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}
