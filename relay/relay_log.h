/* SPDX-License-Identifier: ISC */
/**
 * \file relay_log.h
 * \brief Structured log lines on stderr: `ts=... level=... event=... k=v ...`.
 *        Callers pass only metadata (connection serials, types, codes,
 *        lengths); no envelope, tag, signature or key ever reaches a log.
 */
#ifndef VEIL_RELAY_LOG_H
#define VEIL_RELAY_LOG_H

#include <stdint.h>

typedef enum veil_log_level { VEIL_LOG_ERROR = 0, VEIL_LOG_WARN = 1, VEIL_LOG_INFO = 2, VEIL_LOG_DEBUG = 3 } veil_log_level;

/** Sets the threshold from "error", "warn", "info" or "debug"; also routes libwebsockets' own logs. */
void veil_log_init(const char *level);

/** True when a line at this level would be written. */
int veil_log_enabled(veil_log_level level);

/** Writes one line: the event name and then printf-formatted `k=v` fields. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
void veil_log(veil_log_level level, const char *event, const char *fmt, ...);

#endif
