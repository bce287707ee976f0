/* SPDX-License-Identifier: ISC */
/* See relay_log.h. */
#include "relay_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

static veil_log_level g_level = VEIL_LOG_INFO;

static const char *const NAMES[] = { "error", "warn", "info", "debug" };

static void lws_emit(int level, const char *line)
{
    veil_log_level l = (level & LLL_ERR) ? VEIL_LOG_ERROR : (level & LLL_WARN) ? VEIL_LOG_WARN : VEIL_LOG_DEBUG;
    char clean[512];
    size_t n = 0;

    /* lws lines carry their own timestamp prefix and a newline; keep the text, quote it. */
    for (; *line != '\0' && n + 2 < sizeof clean; line++) {
        if (*line == '\n' || *line == '\r') {
            continue;
        }
        clean[n++] = *line == '"' ? '\'' : *line;
    }
    clean[n] = '\0';
    veil_log(l, "lws", "msg=\"%s\"", clean);
}

void veil_log_init(const char *level)
{
    int i, lws_levels = LLL_ERR | LLL_WARN;

    for (i = 0; i < 4; i++) {
        if (strcmp(level, NAMES[i]) == 0) {
            g_level = (veil_log_level)i;
        }
    }
    if (g_level >= VEIL_LOG_DEBUG) {
        lws_levels |= LLL_NOTICE;
    }
    lws_set_log_level(lws_levels, lws_emit);
}

int veil_log_enabled(veil_log_level level)
{
    return level <= g_level;
}

void veil_log(veil_log_level level, const char *event, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    int n, m;
    va_list ap;

    if (level > g_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, NAMES[level],
                 event);
    if (n < 0 || (size_t)n >= sizeof line) {
        return;
    }
    if (fmt != NULL && fmt[0] != '\0') {
        line[n++] = ' ';
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m < 0) {
            return;
        }
        n = (size_t)m >= sizeof line - (size_t)n ? (int)sizeof line - 1 : n + m;
    }
    line[n] = '\n';
    fwrite(line, 1, (size_t)n + 1, stderr);
}
