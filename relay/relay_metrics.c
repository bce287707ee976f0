/* SPDX-License-Identifier: ISC */
/* See relay_metrics.h. */
#include "relay_metrics.h"

#include <stdarg.h>
#include <stdio.h>

#include "veil_err.h"

typedef struct out {
    char *p;
    size_t cap, len;
} out;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->len + 1 >= o->cap) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    o->len = (size_t)n >= o->cap - o->len ? o->cap - 1 : o->len + (size_t)n;
}

static void metric(out *o, const char *name, const char *type, const char *help, uint64_t v)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)v);
}

size_t veil_metrics_render(const veil_metrics *m, char *buf, size_t cap)
{
    out o = { buf, cap, 0 };
    int code;

    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    metric(&o, "veil_connections", "gauge", "Open WebSocket connections.", m->connections);
    metric(&o, "veil_connections_total", "counter", "WebSocket connections accepted.", m->connections_total);
    metric(&o, "veil_rooms", "gauge", "Rooms held in memory (with members or pending writes).", m->rooms);
    metric(&o, "veil_room_members", "gauge", "Room memberships of open connections.", m->members);
    metric(&o, "veil_frames_in_total", "counter", "Frames received.", m->frames_in);
    metric(&o, "veil_frames_out_total", "counter", "Frames written.", m->frames_out);
    metric(&o, "veil_bytes_in_total", "counter", "Frame octets received.", m->bytes_in);
    metric(&o, "veil_bytes_out_total", "counter", "Octets written to WebSockets (with framing).", m->bytes_out);
    put(&o, "# HELP veil_errors_total Error frames sent, by code (SPEC.md 11).\n# TYPE veil_errors_total counter\n");
    for (code = 1; code <= VEIL_METRICS_MAX_CODE; code++) {
        if (m->errors[code] != 0) {
            put(&o, "veil_errors_total{code=\"%d\",name=\"%s\"} %llu\n", -code, veil_err_name(-code),
                (unsigned long long)m->errors[code]);
        }
    }
    put(&o, "# HELP veil_closes_total Connections the relay closed, by reason.\n# TYPE veil_closes_total counter\n");
    put(&o, "veil_closes_total{reason=\"slow_consumer\"} %llu\n", (unsigned long long)m->close_slow);
    put(&o, "veil_closes_total{reason=\"policy\"} %llu\n", (unsigned long long)m->close_policy);
    put(&o, "veil_closes_total{reason=\"too_big\"} %llu\n", (unsigned long long)m->close_too_big);
    put(&o, "veil_closes_total{reason=\"connection_limit\"} %llu\n", (unsigned long long)m->close_conn_limit);
    put(&o, "veil_closes_total{reason=\"protocol\"} %llu\n", (unsigned long long)m->close_protocol);
    put(&o, "veil_closes_total{reason=\"idle\"} %llu\n", (unsigned long long)m->close_idle);
    metric(&o, "veil_envelopes_stored_total", "counter", "Envelopes made durable.", m->envelopes_stored);
    metric(&o, "veil_envelopes_duplicate_total", "counter", "Re-published envelopes answered from the store.",
           m->envelopes_dup);
    metric(&o, "veil_deliveries_total", "counter", "DELIVER frames queued (live and catch-up).", m->deliveries);
    metric(&o, "veil_ephemeral_total", "counter", "EPHEMERAL_DELIVER frames queued.", m->ephemeral);
    metric(&o, "veil_inbox_posts_total", "counter", "Inbox entries stored.", m->inbox_posts);
    metric(&o, "veil_prekey_fetches_total", "counter", "Prekey bundles handed out.", m->prekey_fetches);
    metric(&o, "veil_opks_handed_total", "counter", "One-time prekeys handed out.", m->opks_handed);
    metric(&o, "veil_store_commits_total", "counter", "Batch transactions committed.", m->commits);
    metric(&o, "veil_store_commit_failures_total", "counter", "Batch transactions that failed.", m->commit_failures);
    metric(&o, "veil_store_batch_items_total", "counter", "Requests answered after a commit.", m->batch_items);
    put(&o,
        "# HELP veil_store_commit_seconds Time spent committing batches.\n# TYPE veil_store_commit_seconds summary\n"
        "veil_store_commit_seconds_sum %.6f\nveil_store_commit_seconds_count %llu\n"
        "# HELP veil_store_commit_seconds_max Longest commit.\n# TYPE veil_store_commit_seconds_max gauge\n"
        "veil_store_commit_seconds_max %.6f\n",
        m->commit_seconds_sum, (unsigned long long)m->commits, m->commit_seconds_max);
    metric(&o, "veil_http_requests_total", "counter", "Plain HTTP requests (healthz, metrics, files).",
           m->http_requests);
    return o.len;
}
