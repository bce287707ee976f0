/* SPDX-License-Identifier: ISC */
/**
 * \file relay_metrics.h
 * \brief Counters of the relay and their Prometheus text rendering (/metrics).
 */
#ifndef VEIL_RELAY_METRICS_H
#define VEIL_RELAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

/** Error codes counted by /metrics: -1 .. -VEIL_METRICS_MAX_CODE. */
#define VEIL_METRICS_MAX_CODE 64

typedef struct veil_metrics {
    uint64_t connections;       /* gauge: open WebSocket connections */
    uint64_t connections_total; /* accepted since start */
    uint64_t rooms;             /* gauge: rooms with members or pending writes, in memory */
    uint64_t members;           /* gauge: room memberships */
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t errors[VEIL_METRICS_MAX_CODE + 1]; /* by -code */
    uint64_t close_slow, close_policy, close_too_big, close_conn_limit, close_protocol, close_idle;
    uint64_t envelopes_stored, envelopes_dup, deliveries, ephemeral, inbox_posts, prekey_fetches, opks_handed;
    uint64_t commits, commit_failures, batch_items;
    double commit_seconds_sum, commit_seconds_max;
    uint64_t http_requests;
} veil_metrics;

/** Renders the counters as Prometheus text into buf; returns the length (truncated at cap - 1). */
size_t veil_metrics_render(const veil_metrics *m, char *buf, size_t cap);

#endif
