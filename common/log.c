/* The one logger. State is process-global and set once at start-up. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_rank = -1;
static int g_level = -1; /* -1: not yet read from the environment */

void vt_log_set_rank(int rank) { g_rank = rank; }
void vt_log_set_level(vt_log_level level) { g_level = (int)level; }

int vt_log_parse_level(const char *name) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0) return i;
    return -1;
}

vt_log_level vt_log_get_level(void) {
    if (g_level < 0) {
        int env = vt_log_parse_level(getenv("VT_LOG_LEVEL"));
        g_level = env >= 0 ? env : VT_LOG_INFO;
    }
    return (vt_log_level)g_level;
}

void vt_logf(vt_log_level level, const char *fmt, ...) {
    if ((int)level < (int)vt_log_get_level()) return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n;
    if (g_rank >= 0)
        n = snprintf(line, sizeof line, "[r%d %02d:%02d:%02d.%03ld %c] ", g_rank, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, "DIWE"[level]);
    else
        n = snprintf(line, sizeof line, "[%02d:%02d:%02d.%03ld %c] ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, "DIWE"[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    /* One write keeps lines from different ranks/threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
