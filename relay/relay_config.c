/* SPDX-License-Identifier: ISC */
/* See relay_config.h. */
#include "relay_config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "veil_wire.h"

typedef enum { O_STR, O_U32, O_U64 } okind;

typedef struct opt {
    const char *name;
    okind kind;
    size_t off;
    size_t size; /* for strings: buffer size */
    uint64_t min, max;
    const char *help;
} opt;

#define S(n, m, h) { n, O_STR, offsetof(veil_relay_config, m), sizeof(((veil_relay_config *)0)->m), 0, 0, h }
#define U(n, m, lo, hi, h) { n, O_U32, offsetof(veil_relay_config, m), 0, lo, hi, h }
#define W(n, m, lo, hi, h) { n, O_U64, offsetof(veil_relay_config, m), 0, lo, hi, h }

static const opt OPTS[] = {
    S("host", host, "address to listen on"),
    U("port", port, 0, 65535, "TCP port (0: any free port, see --port-file)"),
    S("db", db, "SQLite store file (its directory is created)"),
    S("web", web, "directory of static files served at /"),
    S("port-file", port_file, "write the bound port to this file once listening"),
    S("sync", sync, "store durability: normal (survives a relay crash) or full (also a machine crash)"),
    S("log-level", log_level, "error, warn, info or debug"),
    U("max-frame", max_frame, 1024, VEIL_WIRE_ENV_MAX_BYTES + 1024, "largest frame from an authenticated connection (octets)"),
    U("max-frame-anon", max_frame_anon, 512, VEIL_WIRE_ENV_MAX_BYTES + 1024, "largest frame before AUTH (octets)"),
    U("max-env", max_env, 64, VEIL_WIRE_ENV_MAX_BYTES, "largest envelope of PUBLISH and INBOX_POST (octets)"),
    U("max-eph", max_eph, 16, VEIL_WIRE_ENV_MAX_BYTES, "largest envelope of EPHEMERAL (octets)"),
    U("max-rooms", max_rooms, 1, 100000, "rooms one connection may join"),
    U("max-members", max_members, 1, 1000000, "connections joined to one room"),
    U("max-conns", max_conns, 1, 10000000, "WebSocket connections (the fd limit is raised to fit, or this lowered to the limit)"),
    U("rate", rate, 1, 1000000, "requests per second per connection (token bucket refill)"),
    U("burst", burst, 1, 1000000, "token bucket size"),
    U("queue-frames", queue_frames, 8, 1000000, "frames queued to one connection before it is closed as a slow consumer"),
    W("queue-bytes", queue_bytes, 65536, (uint64_t)1 << 32, "octets queued to one connection before it is closed"),
    U("max-errors", max_errors, 1, 1000000, "error answers in a row before a connection is closed"),
    U("idle", idle, 2, 86400, "seconds without a pong or a frame before a connection is closed (ping at half)"),
    U("handshake-timeout", handshake_timeout, 1, 3600, "seconds to complete the WebSocket handshake"),
    U("max-page", max_page, 1024, VEIL_WIRE_ENV_MAX_BYTES, "envelope octets in one HISTORY_PAGE or INBOX_PAGE"),
    U("retain-count", retain_count, 1, 2000000000, "envelopes kept per room (newest)"),
    W("retain-age", retain_age, 1, (uint64_t)1 << 40, "seconds an envelope is kept"),
    U("max-inbox", max_inbox, 1, 10000000, "entries per inbox"),
    W("inbox-ttl", inbox_ttl, 1, (uint64_t)1 << 40, "seconds an inbox entry is kept"),
    U("max-opks", max_opks, 1, 100000, "one-time prekeys stored per identity"),
    U("sweep", sweep, 1, 86400, "seconds between retention sweeps"),
    U("rx-buffer", rx_buffer, 128, 1 << 20, "per-connection receive buffer of libwebsockets (octets)"),
    U("batch-delay", batch_delay, 0, 20000,
      "microseconds a store batch waits for more requests before it commits; the loop sleeps through it (0: the next loop turn)"),
};
#define NOPTS (sizeof OPTS / sizeof OPTS[0])

void veil_relay_config_defaults(veil_relay_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->host, "127.0.0.1");
    c->port = 8080;
    strcpy(c->db, "./veil-data/relay.db");
    strcpy(c->web, "./web");
    strcpy(c->sync, "normal");
    strcpy(c->log_level, "info");
    c->max_frame = 70656;
    c->max_frame_anon = 16384;
    c->max_env = 69632;
    c->max_eph = 1024;
    c->max_rooms = 64;
    c->max_members = 1024;
    c->max_conns = 10000;
    c->rate = 100;
    c->burst = 200;
    c->queue_frames = 1024;
    c->queue_bytes = 2u << 20;
    c->max_errors = 16;
    c->idle = 60;
    c->handshake_timeout = 10;
    c->max_page = 262144;
    c->retain_count = 10000;
    c->retain_age = 30u * 86400u;
    c->max_inbox = 1000;
    c->inbox_ttl = 30u * 86400u;
    c->max_opks = 1000;
    c->sweep = 60;
    c->rx_buffer = 1024;
    c->batch_delay = 500;
}

static int set_opt(veil_relay_config *c, const opt *o, const char *val, const char *from, FILE *err)
{
    uint8_t *base = (uint8_t *)c;

    if (o->kind == O_STR) {
        if (strlen(val) >= o->size) {
            fprintf(err, "veil-relay: %s for %s is too long\n", from, o->name);
            return -1;
        }
        memcpy(base + o->off, val, strlen(val) + 1);
        return 0;
    }
    {
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        if (val[0] == '-' || val[0] == '\0') {
            fprintf(err, "veil-relay: %s for --%s must be a number\n", from, o->name);
            return -1;
        }
        v = strtoull(val, &end, 10);
        if (errno != 0 || end == NULL || *end != '\0' || v < o->min || v > o->max) {
            fprintf(err, "veil-relay: %s for --%s must be a number in %llu..%llu\n", from, o->name,
                    (unsigned long long)o->min, (unsigned long long)o->max);
            return -1;
        }
        if (o->kind == O_U32) {
            uint32_t x = (uint32_t)v;
            memcpy(base + o->off, &x, sizeof x);
        } else {
            uint64_t x = (uint64_t)v;
            memcpy(base + o->off, &x, sizeof x);
        }
    }
    return 0;
}

static void usage(FILE *out)
{
    size_t i;
    veil_relay_config d;

    veil_relay_config_defaults(&d);
    fprintf(out,
            "usage: veil-relay [--flag value]...\n"
            "\n"
            "The veil blind relay (SPEC.md section 9): WebSocket subprotocol %s, plus\n"
            "/healthz, /metrics and the static files of --web on the same port.\n"
            "Every flag can also be set as an environment variable VEIL_RELAY_<FLAG>\n"
            "(upper case, dashes as underscores); flags win over the environment.\n"
            "\n",
            VEIL_WIRE_SUBPROTOCOL);
    for (i = 0; i < NOPTS; i++) {
        const opt *o = &OPTS[i];
        const uint8_t *b = (const uint8_t *)&d + o->off;
        char def[64], range[48];

        if (o->kind == O_STR) {
            snprintf(def, sizeof def, "%s", (const char *)b);
        } else if (o->kind == O_U32) {
            uint32_t x;
            memcpy(&x, b, sizeof x);
            snprintf(def, sizeof def, "%u", x);
        } else {
            uint64_t x;
            memcpy(&x, b, sizeof x);
            snprintf(def, sizeof def, "%llu", (unsigned long long)x);
        }
        range[0] = '\0';
        if (o->kind != O_STR) {
            snprintf(range, sizeof range, "; %llu..%llu", (unsigned long long)o->min, (unsigned long long)o->max);
        }
        fprintf(out, "  --%-18s %s (default: %s%s)\n", o->name, o->help, def[0] ? def : "none", range);
    }
    fprintf(out, "  --%-18s %s\n  --%-18s %s\n", "help", "this text", "version", "the version");
}

static int validate(const veil_relay_config *c, FILE *err)
{
    if (strcmp(c->sync, "normal") != 0 && strcmp(c->sync, "full") != 0) {
        fprintf(err, "veil-relay: --sync must be normal or full\n");
        return -1;
    }
    if (strcmp(c->log_level, "error") != 0 && strcmp(c->log_level, "warn") != 0 &&
        strcmp(c->log_level, "info") != 0 && strcmp(c->log_level, "debug") != 0) {
        fprintf(err, "veil-relay: --log-level must be error, warn, info or debug\n");
        return -1;
    }
    if (c->host[0] == '\0' || c->db[0] == '\0') {
        fprintf(err, "veil-relay: --host and --db must not be empty\n");
        return -1;
    }
    /* A PUBLISH of max_env must fit in a frame: envelope plus at most 256 octets of fields. */
    if ((uint64_t)c->max_frame < (uint64_t)c->max_env + 256) {
        fprintf(err, "veil-relay: --max-frame must be at least --max-env + 256\n");
        return -1;
    }
    if (c->max_frame_anon > c->max_frame) {
        fprintf(err, "veil-relay: --max-frame-anon must not exceed --max-frame\n");
        return -1;
    }
    if (c->max_eph > c->max_env) {
        fprintf(err, "veil-relay: --max-eph must not exceed --max-env\n");
        return -1;
    }
    if (c->queue_bytes < (uint64_t)c->max_page + 65536 || c->queue_bytes < (uint64_t)c->max_env * 2) {
        fprintf(err, "veil-relay: --queue-bytes must hold a page (--max-page + 65536) and two envelopes\n");
        return -1;
    }
    return 0;
}

int veil_relay_config_load(veil_relay_config *c, int argc, char **argv, FILE *out, FILE *err)
{
    size_t i;
    int a;

    for (i = 0; i < NOPTS; i++) {
        char env[64] = "VEIL_RELAY_";
        size_t n = strlen(env), k;
        const char *v;

        for (k = 0; OPTS[i].name[k] != '\0' && n + 1 < sizeof env; k++) {
            char ch = OPTS[i].name[k];
            env[n++] = ch == '-' ? '_' : (char)toupper((unsigned char)ch);
        }
        env[n] = '\0';
        v = getenv(env);
        if (v != NULL && set_opt(c, &OPTS[i], v, env, err) != 0) {
            return -1;
        }
    }
    for (a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = NULL, *eq;
        char name[64];
        size_t nlen;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(out);
            return 1;
        }
        if (strcmp(arg, "--version") == 0) {
            fprintf(out, "veil-relay 0.1.0 (protocol %d, subprotocol %s)\n", VEIL_WIRE_VERSION, VEIL_WIRE_SUBPROTOCOL);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(err, "veil-relay: unexpected argument %s (see --help)\n", arg);
            return -1;
        }
        arg += 2;
        eq = strchr(arg, '=');
        nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name) {
            fprintf(err, "veil-relay: unknown flag --%s (see --help)\n", arg);
            return -1;
        }
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        for (i = 0; i < NOPTS; i++) {
            if (strcmp(OPTS[i].name, name) == 0) {
                break;
            }
        }
        if (i == NOPTS) {
            fprintf(err, "veil-relay: unknown flag --%s (see --help)\n", name);
            return -1;
        }
        if (eq != NULL) {
            val = eq + 1;
        } else if (a + 1 < argc) {
            val = argv[++a];
        } else {
            fprintf(err, "veil-relay: --%s needs a value\n", name);
            return -1;
        }
        if (set_opt(c, &OPTS[i], val, "value", err) != 0) {
            return -1;
        }
    }
    return validate(c, err);
}

void veil_relay_config_describe(const veil_relay_config *c, char *buf, size_t cap)
{
    size_t i, n = 0;

    buf[0] = '\0';
    for (i = 0; i < NOPTS && n < cap; i++) {
        const opt *o = &OPTS[i];
        const uint8_t *b = (const uint8_t *)c + o->off;
        int w;

        if (o->kind == O_STR) {
            w = snprintf(buf + n, cap - n, "%s%s=\"%s\"", n ? " " : "", o->name, (const char *)b);
        } else if (o->kind == O_U32) {
            uint32_t x;
            memcpy(&x, b, sizeof x);
            w = snprintf(buf + n, cap - n, "%s%s=%u", n ? " " : "", o->name, x);
        } else {
            uint64_t x;
            memcpy(&x, b, sizeof x);
            w = snprintf(buf + n, cap - n, "%s%s=%llu", n ? " " : "", o->name, (unsigned long long)x);
        }
        if (w < 0 || (size_t)w >= cap - n) {
            break;
        }
        n += (size_t)w;
    }
}
