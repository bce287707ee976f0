/* SPDX-License-Identifier: ISC */
/*
 * The transport (cli.h): one lws client context, serviced from the one
 * thread; at most one WebSocket to the relay that the engine knows of; one
 * lws_write per WRITEABLE callback, from a buffer with LWS_PRE octets of
 * headroom; messages reassembled from their fragments up to the largest
 * frame a relay sends (SPEC.md 9.4: 2^21 octets); the engine's timer as an
 * lws sorted-usec-list entry; stdin adopted into the same loop as a raw
 * file descriptor for the chat.
 *
 * A connection the engine declared stale (VEIL_EV_CLOSE) is abandoned: it
 * is closed, and nothing it still reports reaches the engine, which may be
 * connecting anew already. Each connection has its own small record for
 * that reason (lws writes through `pwsi` into it, not into shared state).
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <sodium.h>

#include "veil_wire.h"

#define RX_MAX (VEIL_WIRE_FRAME_MAX_BYTES)
#define TXQ_MAX_BYTES (8U * 1024U * 1024U)

typedef struct txbuf {
    struct txbuf *next;
    size_t len;
    uint8_t data[]; /* LWS_PRE octets, then the frame */
} txbuf;

typedef struct conn {
    struct conn *next;
    struct lws *wsi;
    veil_cli_net *net;
    bool abandoned, established, gone, destroyed;
    int close_status;
} conn;

struct veil_cli_net {
    veil_cli_app *a;
    struct lws_context *ctx;
    struct lws_protocols protocols[3];
    conn *conns; /* every connection record not yet freed */
    conn *cur;   /* the one the engine knows, or NULL */
    uint8_t *rx;
    size_t rxlen;
    bool rx_skip; /* the message being received is too big: dropped */
    txbuf *head, *tail;
    size_t qbytes;
    lws_sorted_usec_list_t sul;
    struct lws *stdin_wsi;
    bool stdin_eof;
};

static volatile sig_atomic_t g_signal;
static struct lws_context *volatile g_ctx_for_signal;

/* ---- URL ---- */

int veil_cli_url_parse(const char *url, char *host, size_t host_cap, int *port, char *path, size_t path_cap,
                       bool *tls)
{
    const char *p, *h, *hend, *colon = NULL;
    size_t hl;
    long v;

    if (strncmp(url, "ws://", 5) == 0) {
        *tls = false;
        p = url + 5;
        *port = 80;
    } else if (strncmp(url, "wss://", 6) == 0) {
        *tls = true;
        p = url + 6;
        *port = 443;
    } else {
        return -1;
    }
    h = p;
    if (*h == '[') { /* [IPv6] */
        hend = strchr(h, ']');
        if (hend == NULL) {
            return -1;
        }
        h++;
        p = hend + 1;
        if (*p == ':') {
            colon = p;
        }
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
        if (*p == ':') {
            colon = p;
        }
    }
    hl = (size_t)(hend - h);
    if (hl == 0 || hl >= host_cap) {
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon != NULL) {
        char *end;
        errno = 0;
        v = strtol(colon + 1, &end, 10);
        if (errno != 0 || end == colon + 1 || v < 1 || v > 65535 || (*end != '\0' && *end != '/')) {
            return -1;
        }
        *port = (int)v;
        p = end;
    }
    if (*p == '\0') {
        p = "/";
    }
    if (*p != '/' || strlen(p) >= path_cap) {
        return -1;
    }
    memcpy(path, p, strlen(p) + 1);
    return 0;
}

/* ---- send queue ---- */

static void txq_clear(veil_cli_net *n)
{
    while (n->head != NULL) {
        txbuf *b = n->head;
        n->head = b->next;
        free(b);
    }
    n->tail = NULL;
    n->qbytes = 0;
}

void veil_cli_net_send(veil_cli_app *a, const uint8_t *p, size_t len)
{
    veil_cli_net *n = a->net;
    txbuf *b;

    if (n == NULL || n->cur == NULL || !n->cur->established) {
        return; /* the engine sends everything again on the next connection */
    }
    if (n->qbytes + len > TXQ_MAX_BYTES) {
        /* The relay stopped reading: give up this connection; the engine reconnects and resends. */
        veil_cli_net_abandon(a);
        veil_engine_disconnected(a->e, veil_cli_now());
        return;
    }
    b = malloc(sizeof *b + LWS_PRE + len);
    if (b == NULL) {
        veil_cli_net_abandon(a);
        veil_engine_disconnected(a->e, veil_cli_now());
        return;
    }
    b->next = NULL;
    b->len = len;
    memcpy(b->data + LWS_PRE, p, len);
    if (n->tail != NULL) {
        n->tail->next = b;
    } else {
        n->head = b;
    }
    n->tail = b;
    n->qbytes += len;
    lws_callback_on_writable(n->cur->wsi);
}

/* ---- connections ---- */

static void reap(veil_cli_net *n)
{
    conn **pp = &n->conns;

    while (*pp != NULL) {
        if ((*pp)->destroyed) {
            conn *c = *pp;
            *pp = c->next;
            free(c);
        } else {
            pp = &(*pp)->next;
        }
    }
}

void veil_cli_net_connect(veil_cli_app *a)
{
    veil_cli_net *n = a->net;
    struct lws_client_connect_info i;
    char host[VEIL_CLI_URL_MAX], path[VEIL_CLI_URL_MAX];
    int port;
    bool tls;
    conn *c;

    reap(n);
    if (n->cur != NULL) {
        veil_cli_net_abandon(a);
    }
    if (veil_cli_url_parse(a->relay_url, host, sizeof host, &port, path, sizeof path, &tls) != 0) {
        /* Checked in main.c; kept as a failure rather than an abort. */
        snprintf(a->conn_err, sizeof a->conn_err, "invalid relay URL");
        veil_cli_on_closed(a, a->conn_err);
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        veil_cli_on_closed(a, "out of memory");
        return;
    }
    c->net = n;
    c->next = n->conns;
    n->conns = c;
    n->cur = c;
    n->rxlen = 0;
    n->rx_skip = false;
    txq_clear(n);
    memset(&i, 0, sizeof i);
    i.context = n->ctx;
    i.address = host;
    i.port = port;
    i.path = path;
    i.host = host;
    i.origin = host;
    i.protocol = VEIL_WIRE_SUBPROTOCOL;
    i.local_protocol_name = VEIL_WIRE_SUBPROTOCOL;
    i.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    i.userdata = c;
    i.pwsi = &c->wsi;
    if (lws_client_connect_via_info(&i) == NULL) {
        /* lws may have reported the failure through the callback already. */
        c->destroyed = true;
        if (n->cur == c) {
            n->cur = NULL;
            veil_cli_on_closed(a, "cannot start the connection");
        }
    }
}

void veil_cli_net_abandon(veil_cli_app *a)
{
    veil_cli_net *n = a->net;
    conn *c = n != NULL ? n->cur : NULL;

    if (c == NULL) {
        return;
    }
    n->cur = NULL;
    c->abandoned = true;
    txq_clear(n);
    n->rxlen = 0;
    if (c->wsi != NULL && !c->gone) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static const char *close_text(int status)
{
    switch (status) {
    case 1001:
        return "the relay is shutting down";
    case 1002:
        return "the relay refused the protocol (no veil.v1)";
    case 1008:
        return "the relay closed the connection (policy: too many errors or refusals)";
    case 1009:
        return "the relay closed the connection (frame too big)";
    case 1011:
        return "the relay failed";
    case 4013:
        return "the relay is full, try again later";
    default:
        return "the relay closed the connection";
    }
}

static int cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    conn *c = user;
    veil_cli_net *n;
    veil_cli_app *a;
    char why[VEIL_CLI_URL_MAX + 256];

    if (c == NULL) {
        return reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED ? 0 : lws_callback_http_dummy(wsi, reason, user, in, len);
    }
    n = c->net;
    a = n->a;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->established = true;
        if (c == n->cur) {
            veil_cli_on_open(a);
        } else {
            return -1;
        }
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c != n->cur) {
            break;
        }
        if (!n->rx_skip) {
            if (len > RX_MAX - n->rxlen) {
                n->rx_skip = true; /* larger than any frame a relay may send */
                n->rxlen = 0;
            } else {
                memcpy(n->rx + n->rxlen, in, len);
                n->rxlen += len;
            }
        }
        if (lws_is_final_fragment(wsi)) {
            size_t got = n->rxlen;
            bool binary = lws_frame_is_binary(wsi) != 0, skipped = n->rx_skip;
            n->rxlen = 0;
            n->rx_skip = false;
            if (!skipped && binary) {
                veil_cli_on_frame(a, n->rx, got);
            } else if (!a->o.quiet) {
                veil_cli_warn(a, "ignored a %s message from the relay", skipped ? "too large" : "text");
            }
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        txbuf *b = n->head;
        if (c != n->cur || b == NULL) {
            break;
        }
        n->head = b->next;
        if (n->head == NULL) {
            n->tail = NULL;
        }
        n->qbytes -= b->len;
        if (lws_write(wsi, b->data + LWS_PRE, b->len, LWS_WRITE_BINARY) < (int)b->len) {
            free(b);
            return -1;
        }
        free(b);
        if (n->head != NULL) {
            lws_callback_on_writable(wsi);
        }
        break;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const uint8_t *p = in;
            c->close_status = (p[0] << 8) | p[1];
        }
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->gone = true;
        c->wsi = NULL;
        if (c == n->cur) {
            n->cur = NULL;
            txq_clear(n);
            if (reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR) {
                snprintf(why, sizeof why, "cannot connect to %s: %.*s", a->relay_url,
                         in != NULL && len > 0 ? (int)(len < 200 ? len : 200) : 17,
                         in != NULL && len > 0 ? (const char *)in : "connection failed");
            } else if (c->close_status != 0) {
                snprintf(why, sizeof why, "%s (status %d)", close_text(c->close_status), c->close_status);
            } else {
                snprintf(why, sizeof why, "the connection to %s was lost", a->relay_url);
            }
            veil_cli_on_closed(a, why);
        }
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        c->gone = true;
        c->destroyed = true;
        c->wsi = NULL;
        if (c == n->cur) {
            n->cur = NULL;
            txq_clear(n);
            veil_cli_on_closed(a, "the connection was lost");
        }
        break;
    default:
        break;
    }
    return 0;
}

/* ---- stdin ---- */

static int cb_stdin(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    veil_cli_app *a = lws_context_user(lws_get_context(wsi));
    veil_cli_net *n = a->net;
    uint8_t buf[4096];
    ssize_t r;

    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        r = read(lws_get_socket_fd(wsi), buf, sizeof buf);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
            return 0;
        }
        if (r > 0) {
            if (a->on_input != NULL) {
                a->on_input(a, buf, (size_t)r);
            }
            sodium_memzero(buf, (size_t)r);
            return 0;
        }
        n->stdin_wsi = NULL;
        if (!n->stdin_eof) {
            n->stdin_eof = true;
            if (a->on_input != NULL) {
                a->on_input(a, NULL, 0);
            }
        }
        return -1;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        n->stdin_wsi = NULL;
        if (!n->stdin_eof) {
            n->stdin_eof = true;
            if (a->on_input != NULL) {
                a->on_input(a, NULL, 0);
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

/* ---- timer ---- */

static void sul_cb(lws_sorted_usec_list_t *sul)
{
    veil_cli_net *n = lws_container_of(sul, veil_cli_net, sul);

    veil_cli_on_timer(n->a);
}

static uint64_t dmin(uint64_t a, uint64_t b)
{
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    return a < b ? a : b;
}

void veil_cli_net_rearm(veil_cli_app *a)
{
    veil_cli_net *n = a->net;
    uint64_t now, at;
    lws_usec_t us;

    if (n == NULL) {
        return;
    }
    at = dmin(veil_engine_deadline(a->e), a->give_up_at);
    at = dmin(at, a->settle_until);
    if (at == 0) {
        lws_sul_cancel(&n->sul);
        return;
    }
    now = veil_cli_now();
    us = at > now ? (lws_usec_t)(at - now) * LWS_US_PER_MS : 0;
    /* At least 1 ms, so a deadline the engine leaves in the past cannot spin the loop. */
    if (us < LWS_US_PER_MS) {
        us = LWS_US_PER_MS;
    }
    lws_sul_schedule(n->ctx, 0, &n->sul, sul_cb, us);
}

/* ---- lifecycle ---- */

/*
 * lws_cancel_service() is a write() to the loop's event pipe (lws 4.1; its
 * debug log line is filtered out before any formatting, and this process
 * never enables LLL_DEBUG): the one call here besides the flag. errno is
 * the interrupted code's.
 */
static void on_signal(int sig)
{
    int saved_errno = errno;
    struct lws_context *ctx = g_ctx_for_signal;

    g_signal = sig;
    if (ctx != NULL) {
        lws_cancel_service(ctx);
    }
    errno = saved_errno;
}

int veil_cli_net_init(veil_cli_app *a, bool with_stdin)
{
    struct lws_context_creation_info info;
    veil_cli_net *n = calloc(1, sizeof *n);
    struct sigaction sa;

    if (n == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    n->a = a;
    n->rx = malloc(RX_MAX);
    if (n->rx == NULL) {
        free(n);
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    a->net = n;
    lws_set_log_level(getenv("VEIL_LWS_DEBUG") != NULL ? LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO : 0, NULL);
    n->protocols[0].name = VEIL_WIRE_SUBPROTOCOL;
    n->protocols[0].callback = cb_ws;
    n->protocols[0].rx_buffer_size = 65536;
    n->protocols[1].name = "veil-stdin";
    n->protocols[1].callback = cb_stdin;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = n->protocols;
    info.user = a;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.fd_limit_per_thread = 64;
    n->ctx = lws_create_context(&info);
    if (n->ctx == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "cannot create the libwebsockets context");
    }
    g_ctx_for_signal = n->ctx;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (with_stdin) {
        lws_sock_file_fd_type fd;
        memset(&fd, 0, sizeof fd);
        fd.filefd = 0;
        n->stdin_wsi = lws_adopt_descriptor_vhost(lws_get_vhost_by_name(n->ctx, "default"), LWS_ADOPT_RAW_FILE_DESC,
                                                  fd, "veil-stdin", NULL);
        if (n->stdin_wsi == NULL) {
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "cannot watch standard input");
        }
    }
    return 0;
}

void veil_cli_net_free(veil_cli_app *a)
{
    veil_cli_net *n = a->net;

    if (n == NULL) {
        return;
    }
    g_ctx_for_signal = NULL;
    if (n->ctx != NULL) {
        lws_sul_cancel(&n->sul);
        lws_context_destroy(n->ctx);
    }
    txq_clear(n);
    while (n->conns != NULL) {
        conn *c = n->conns;
        n->conns = c->next;
        free(c);
    }
    free(n->rx);
    free(n);
    a->net = NULL;
}

void veil_cli_net_wake(veil_cli_app *a)
{
    if (a->net != NULL && a->net->ctx != NULL) {
        lws_cancel_service(a->net->ctx);
    }
}

int veil_cli_net_run(veil_cli_app *a)
{
    veil_cli_after(a);
    while (!a->done) {
        if (lws_service(a->net->ctx, 0) < 0) {
            return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "the event loop failed");
        }
        if (g_signal != 0 && !a->done) {
            g_signal = 0;
            if (a->on_input != NULL && a->persistent) {
                a->on_input(a, NULL, 0); /* the chat leaves as on end of input */
            } else {
                a->rc = veil_cli_fail(a, VEIL_CLI_EINTR, "interrupted; what was done so far is saved");
                a->done = true;
            }
        }
    }
    return a->rc;
}
