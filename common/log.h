/* Rank-prefixed logging: one line per event on stderr,
 * "[r0 12:00:01.234 I] message". The level comes from VT_LOG_LEVEL
 * (debug|info|warn|error) unless set explicitly. Thread-safe: each line is
 * formatted first and written with one call. */
#ifndef VT_LOG_H
#define VT_LOG_H

typedef enum vt_log_level { VT_LOG_DEBUG, VT_LOG_INFO, VT_LOG_WARN, VT_LOG_ERROR } vt_log_level;

/* rank < 0 prints no rank (single-process tools). */
void vt_log_set_rank(int rank);
void vt_log_set_level(vt_log_level level);
vt_log_level vt_log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int vt_log_parse_level(const char *name);
void vt_logf(vt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define vt_debug(...) vt_logf(VT_LOG_DEBUG, __VA_ARGS__)
#define vt_info(...) vt_logf(VT_LOG_INFO, __VA_ARGS__)
#define vt_warn(...) vt_logf(VT_LOG_WARN, __VA_ARGS__)
#define vt_log_error(...) vt_logf(VT_LOG_ERROR, __VA_ARGS__)

#endif
