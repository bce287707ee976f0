/* SPDX-License-Identifier: ISC */
/*
 * Peer of the relay benchmark: the floor for a libwebsockets server. It speaks
 * the protocol of ws_server.mjs (the first text message names the room, every
 * binary message after it goes to the other connections of that room) and does
 * only what fan-out needs, the way veil-relay does it: one reference-counted
 * copy of each message with its unmasked server header built in advance, a
 * bounded queue of references per connection, and every WRITEABLE callback
 * writing all of a connection's queued frames in one LWS_WRITE_RAW. No store,
 * no msgpack, no authentication, lws' own poll() loop.
 *
 * Usage: bench_lws_broadcast [PORT]; prints "listening PORT", stops on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#define ROOMS 1024u
#define QUEUE 1024u
#define SCRATCH_BYTES (64u * 1024u)

typedef struct msg {
    unsigned refs;
    size_t len;          /* header and payload */
    unsigned char data[]; /* LWS_PRE octets, then the frame */
} msg;

typedef struct conn {
    struct lws *wsi;
    long room;
    struct conn *next;
    msg *q[QUEUE];
    unsigned qhead, qlen;
} conn;

static conn *rooms[ROOMS];
static unsigned char scratch[LWS_PRE + SCRATCH_BYTES];
static volatile sig_atomic_t stopping;

static msg *msg_new(unsigned char opcode, const void *payload, size_t n)
{
    msg *m = malloc(sizeof *m + LWS_PRE + 4 + n);
    unsigned char *f;
    size_t h;

    if (m == NULL || n > 65535) {
        free(m);
        return NULL;
    }
    f = m->data + LWS_PRE;
    f[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[1] = (unsigned char)n;
        h = 2;
    } else {
        f[1] = 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
        h = 4;
    }
    memcpy(f + h, payload, n);
    m->refs = 1;
    m->len = h + n;
    return m;
}

static void msg_unref(msg *m)
{
    if (--m->refs == 0) {
        free(m);
    }
}

static void enqueue(conn *c, msg *m)
{
    if (c->qlen == QUEUE) {
        return; /* a slow consumer loses frames here; the benchmark checks delivered_ratio */
    }
    m->refs++;
    c->q[(c->qhead + c->qlen++) % QUEUE] = m;
    lws_callback_on_writable(c->wsi);
}

static int on_writeable(conn *c)
{
    size_t total = 0;
    unsigned n = 0;

    while (n < c->qlen) {
        msg *m = c->q[(c->qhead + n) % QUEUE];
        if (total + m->len > SCRATCH_BYTES) {
            break;
        }
        memcpy(scratch + LWS_PRE + total, m->data + LWS_PRE, m->len);
        total += m->len;
        n++;
    }
    if (n > 0 && lws_write(c->wsi, scratch + LWS_PRE, total, LWS_WRITE_RAW) < 0) {
        return -1;
    }
    while (n-- > 0) {
        msg_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % QUEUE;
        c->qlen--;
    }
    if (c->qlen > 0) {
        lws_callback_on_writable(c->wsi);
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    conn *c = user, **pp, *o;
    msg *m;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        c->room = -1;
        break;
    case LWS_CALLBACK_RECEIVE:
        if (!lws_frame_is_binary(wsi)) {
            /* "room-N" */
            if (c->room >= 0 || len < 6) {
                return -1;
            }
            c->room = strtol((const char *)in + 5, NULL, 10) % (long)ROOMS;
            if (c->room < 0) {
                return -1;
            }
            c->next = rooms[c->room];
            rooms[c->room] = c;
            m = msg_new(1, "joined", 6);
        } else if (c->room >= 0) {
            m = msg_new(2, in, len);
            for (o = rooms[c->room]; m != NULL && o != NULL; o = o->next) {
                if (o != c) {
                    enqueue(o, m);
                }
            }
            if (m != NULL) {
                msg_unref(m);
            }
            break;
        } else {
            return -1;
        }
        if (m == NULL) {
            return -1;
        }
        enqueue(c, m);
        msg_unref(m);
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(c);
    case LWS_CALLBACK_CLOSED:
        if (c->room >= 0) {
            for (pp = &rooms[c->room]; *pp != NULL; pp = &(*pp)->next) {
                if (*pp == c) {
                    *pp = c->next;
                    break;
                }
            }
        }
        while (c->qlen > 0) {
            msg_unref(c->q[c->qhead]);
            c->qhead = (c->qhead + 1) % QUEUE;
            c->qlen--;
        }
        break;
    default:
        break;
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    static struct lws_protocols protocols[2];
    struct lws_context_creation_info info;
    struct lws_context *ctx;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    lws_set_log_level(LLL_ERR, NULL);
    protocols[0].name = "broadcast";
    protocols[0].callback = callback;
    protocols[0].per_session_data_size = sizeof(conn);
    protocols[0].rx_buffer_size = 1024;
    protocols[0].tx_packet_size = SCRATCH_BYTES + 16;
    memset(&info, 0, sizeof info);
    info.port = argc > 1 ? atoi(argv[1]) : 0;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    ctx = lws_create_context(&info);
    if (ctx == NULL) {
        return 1;
    }
    printf("listening %d\n", lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default")));
    fflush(stdout);
    while (!stopping && lws_service(ctx, 0) >= 0) {
    }
    lws_context_destroy(ctx);
    return 0;
}
