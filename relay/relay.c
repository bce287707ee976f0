/* SPDX-License-Identifier: ISC */
/*
 * See relay.h. The structure, following libwebsockets' minimal-ws-server-ring:
 *
 * - Outbound frames are reference-counted buffers (vbuf) built once, with
 *   LWS_PRE octets of headroom in which the WebSocket header is written in
 *   advance (server frames are unmasked, so the header depends only on the
 *   length). A DELIVER to 200 members is one buffer and 200 references.
 * - Each connection has a bounded ring of buffer references. A WRITEABLE
 *   callback does exactly one lws_write: one frame from its own buffer, or
 *   several frames gathered into a scratch buffer and written raw. A
 *   connection whose ring would overflow is closed (slow consumer).
 * - Requests that change the store join the open batch transaction; a
 *   zero-delay timer commits the batch on the next loop turn and only then
 *   are their answers and deliveries queued (SPEC.md 9.12).
 * - Catch-up replays from the store through a per-membership cursor, topped
 *   up whenever the connection's queue runs low, and hands over to live
 *   delivery with no gap: live fan-out skips members still catching up, and
 *   the cursor reads up to the committed head.
 */
#include "relay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ev.h>

#include <libwebsockets.h>
#include <sodium.h>

#include "relay_log.h"
#include "relay_metrics.h"
#include "relay_store.h"
#include "veil_err.h"
#include "veil_wire.h"

#define SCRATCH_BYTES (64u * 1024u)
/*
 * "Try again later" (SPEC.md 9.11). Not IANA's 1013: libwebsockets 4.1's own
 * client treats 1012-1014 as reserved and reports them as 1002, so veil uses
 * an application code from the 4000-4999 range every library accepts.
 */
#define VR_CLOSE_TRY_AGAIN_LATER 4013
#define CATCHUP_ROWS 32u
#define SWEEP_ROWS 5000u
/* vbuf.type of the relay's ping (a WebSocket control frame, not a veil frame). */
#define VB_PING 0x100u

/* ------------------------------------------------------------------ types */

typedef struct vbuf {
    uint32_t refs;
    uint32_t len; /* frame (msgpack) octets */
    uint8_t hlen; /* WebSocket header octets, stored just before the frame */
    uint16_t type; /* veil frame type, or VB_PING */
    uint8_t data[]; /* LWS_PRE octets, then the frame */
} vbuf;

struct vconn;
struct vroom;

typedef struct vmember {
    struct vroom *room;
    struct vconn *conn;
    struct vmember *rprev, *rnext; /* in the room */
    struct vmember *cnext;         /* in the connection */
    uint64_t cursor;               /* catch-up: last seq queued */
    uint8_t catching;
    uint8_t rep; /* this membership stands for its tag in presence */
    uint8_t taglen;
    uint8_t tag[VEIL_WIRE_TAG_MAX_BYTES];
} vmember;

typedef struct vroom {
    uint8_t id[32];
    int64_t num;        /* the store's number for the room; 0 until its first envelope */
    uint8_t num_new;    /* num was given in the open batch (a failed batch takes it back) */
    uint64_t head;      /* last seq assigned (may be uncommitted) */
    uint64_t committed; /* last durable seq */
    vmember *members;
    uint32_t nmembers;
    uint32_t pins; /* pending batch items naming the room */
    uint8_t dirty;
    struct vroom *hnext;
    struct vroom *dnext;
} vroom;

enum { C_AUTHED = 1, C_CLOSING = 2, C_DEAD = 4, C_WANT_WRITE = 8, C_REJECT = 16, C_PINGED = 32 };

typedef struct vconn {
    struct lws *wsi;
    struct veil_relay *relay;
    uint64_t serial;
    uint8_t nonce[32];
    uint8_t ik[32];
    uint8_t flags;
    uint16_t close_status;
    uint16_t nrooms;
    uint32_t errors_row, refusals_row;
    uint32_t catching;
    double tokens;
    lws_usec_t tok_us;
    lws_usec_t last_rx_us, close_deadline_us;
    lws_usec_t alive_us; /* last frame or pong received (idle_cb) */
    vbuf **q;
    uint32_t qcap, qhead, qlen;
    uint64_t qbytes;
    uint8_t *rx;
    size_t rxlen, rxcap;
    vmember *members;
    struct vconn *id_next;
    struct vconn *prev, *next;
} vconn;

/* A request answered after the batch commits, and what it delivers then. */
typedef struct vpend {
    struct vpend *next;
    vconn *conn;
    uint32_t id;
    uint8_t rtype;
    vbuf *reply;
    vroom *room;
    vconn *sender;
    vbuf *deliver;
    vbuf *push; /* INBOX_NEW to the owner's connections */
    uint8_t owner[32];
    uint64_t iid;
} vpend;

typedef struct vhash {
    void **b;
    size_t n, count;
} vhash;

/*
 * The relay's own timers. With libev they are libev watchers: lws 4.1's libev
 * glue re-arms its one timer with ev_timer_set() on an active watcher (a no-op
 * in libev), so an lws timer scheduled earlier than the one armed would wait
 * for it. Under poll() they are lws timers.
 */
typedef struct vtimer {
    lws_sorted_usec_list_t sul;
    ev_timer ev;
    struct veil_relay *r;
    void (*fn)(struct veil_relay *r);
} vtimer;

struct veil_relay {
    veil_relay_config cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    veil_store *store;
    veil_metrics m;
    lws_retry_bo_t retry;
    struct lws_protocols protocols[3];
    struct lws_http_mount mounts[3];
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    vhash rooms;  /* vroom by id */
    vhash idents; /* vconn chains by ik */
    vconn *conns;
    uint64_t next_serial;
    vpend *pend_head, *pend_tail;
    size_t npend;
    vroom *dirty;
    uint64_t inbox_committed;
    uint64_t inbox_pending_max;
    int commit_scheduled;
    int commit_due;          /* libev: the batch commits in the next loop turn's prepare */
    lws_usec_t commit_at;    /* libev: when the open batch commits */
    ev_prepare commit_prep;  /* libev: sleeps until commit_at, then commits (see schedule_commit) */
    ev_idle commit_nowait;   /* libev: keeps the loop from blocking between the two */
    volatile int stop;
    int stopping;
    /* The libev loop (epoll) lws runs on, owned by the relay; NULL when lws fell back to poll(). */
    struct ev_loop *loop;
    lws_sorted_usec_list_t sul_heartbeat;
    vtimer t_commit, t_sweep, t_close, t_tick, t_idle;
    vbuf *ping;
    int close_check_pending;
    uint8_t *scratch;
    char web_abs[VEIL_RELAY_PATH_MAX];
};

static void vtimer_start(vtimer *t, lws_usec_t us);

typedef struct vhttp {
    char *body;
    size_t len;
} vhttp;

/* ------------------------------------------------------------------ buffers */

static vbuf *vbuf_alloc(uint32_t len)
{
    vbuf *b = malloc(sizeof *b + LWS_PRE + (size_t)len);

    if (b == NULL) {
        return NULL;
    }
    b->refs = 1;
    b->len = len;
    b->hlen = 0;
    b->type = 0;
    return b;
}

static uint8_t *vbuf_frame(vbuf *b)
{
    return b->data + LWS_PRE;
}

/* Writes the unmasked, final, binary WebSocket header in front of the frame. */
static void vbuf_header(vbuf *b)
{
    uint8_t *f = vbuf_frame(b);
    uint32_t n = b->len;

    if (n < 126) {
        b->hlen = 2;
        f[-2] = 0x82;
        f[-1] = (uint8_t)n;
    } else if (n < 65536) {
        b->hlen = 4;
        f[-4] = 0x82;
        f[-3] = 126;
        f[-2] = (uint8_t)(n >> 8);
        f[-1] = (uint8_t)n;
    } else {
        int i;
        b->hlen = 10;
        f[-10] = 0x82;
        f[-9] = 127;
        for (i = 0; i < 8; i++) {
            f[-8 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        }
    }
}

static void vbuf_unref(vbuf *b)
{
    if (b != NULL && --b->refs == 0) {
        free(b);
    }
}

/* Encodes a frame into a fresh buffer with its header; NULL on failure (logged). */
static vbuf *frame_buf(const veil_frame *f)
{
    size_t len = 0, got = 0;
    vbuf *b;
    int rc;

    rc = veil_wire_encode(f, NULL, 0, &len);
    if (rc != 0 || len > VEIL_WIRE_FRAME_MAX_BYTES) {
        veil_log(VEIL_LOG_ERROR, "encode_error", "type=0x%02x code=%d", f->type, rc);
        return NULL;
    }
    b = vbuf_alloc((uint32_t)len);
    if (b == NULL) {
        return NULL;
    }
    if (veil_wire_encode(f, vbuf_frame(b), len, &got) != 0 || got != len) {
        free(b);
        return NULL;
    }
    b->type = (uint8_t)f->type;
    vbuf_header(b);
    return b;
}

/* ------------------------------------------------------------------ hashing */

static size_t hkey(const veil_relay *r, const uint8_t k[32], size_t n)
{
    uint8_t h[crypto_shorthash_BYTES];
    uint64_t v = 0;
    int i;

    crypto_shorthash(h, k, 32, r->hkey);
    for (i = 0; i < 8; i++) {
        v = (v << 8) | h[i];
    }
    return (size_t)(v & (n - 1));
}

static int vhash_init(vhash *h, size_t n)
{
    h->n = n;
    h->count = 0;
    h->b = calloc(h->n, sizeof *h->b);
    return h->b != NULL ? 0 : VEIL_ENOMEM;
}

/* ------------------------------------------------------------------ rooms */

static vroom **room_slot(veil_relay *r, const uint8_t id[32])
{
    vroom **p = (vroom **)&r->rooms.b[hkey(r, id, r->rooms.n)];

    while (*p != NULL && memcmp((*p)->id, id, 32) != 0) {
        p = &(*p)->hnext;
    }
    return p;
}

static void rooms_grow(veil_relay *r)
{
    size_t n = r->rooms.n * 2, i;
    void **nb;

    if (r->rooms.count < r->rooms.n || n > ((size_t)1 << 28)) {
        return;
    }
    nb = calloc(n, sizeof *nb);
    if (nb == NULL) {
        return;
    }
    for (i = 0; i < r->rooms.n; i++) {
        vroom *x = r->rooms.b[i];
        while (x != NULL) {
            vroom *next = x->hnext;
            size_t k = hkey(r, x->id, n);
            x->hnext = nb[k];
            nb[k] = x;
            x = next;
        }
    }
    free(r->rooms.b);
    r->rooms.b = nb;
    r->rooms.n = n;
}

/* The in-memory room, loaded from the store on first use. */
static int room_get(veil_relay *r, const uint8_t id[32], vroom **out)
{
    vroom **p = room_slot(r, id), *x;
    uint64_t head;
    int64_t num;

    if (*p != NULL) {
        *out = *p;
        return 0;
    }
    if (veil_store_room_load(r->store, id, &num, &head) != 0) {
        return VEIL_ESTORE;
    }
    x = calloc(1, sizeof *x);
    if (x == NULL) {
        return VEIL_ENOMEM;
    }
    memcpy(x->id, id, 32);
    x->num = num;
    x->head = x->committed = head;
    *p = x;
    r->rooms.count++;
    r->m.rooms++;
    rooms_grow(r);
    *out = x;
    return 0;
}

static void room_maybe_free(veil_relay *r, vroom *x)
{
    vroom **p;

    if (x->nmembers != 0 || x->pins != 0 || x->dirty) {
        return;
    }
    p = room_slot(r, x->id);
    if (*p == x) {
        *p = x->hnext;
    }
    r->rooms.count--;
    r->m.rooms--;
    free(x);
}

/* ------------------------------------------------------------------ identities */

static vconn **ident_slot(veil_relay *r, const uint8_t ik[32])
{
    return (vconn **)&r->idents.b[hkey(r, ik, r->idents.n)];
}

static void ident_add(veil_relay *r, vconn *c)
{
    vconn **p = ident_slot(r, c->ik);

    c->id_next = *p;
    *p = c;
}

static void ident_del(veil_relay *r, vconn *c)
{
    vconn **p = ident_slot(r, c->ik);

    while (*p != NULL && *p != c) {
        p = &(*p)->id_next;
    }
    if (*p == c) {
        *p = c->id_next;
    }
    c->id_next = NULL;
}

/* ------------------------------------------------------------------ queue */

static void want_write(vconn *c)
{
    if (c->wsi != NULL && !(c->flags & C_WANT_WRITE)) {
        c->flags |= C_WANT_WRITE;
        lws_callback_on_writable(c->wsi);
    }
}

/*
 * A connection's send ring grows by doubling while frames wait. A ring of up
 * to RING_KEEP entries stays after a write: a room member gets a burst of
 * frames at every commit, and freeing the ring each time cost three
 * allocations per member per commit (bench/relay.sh). The idle pass frees
 * the ring of a connection that has gone quiet; larger rings go at once.
 */
#define RING_KEEP 32

static void ring_free(vconn *c)
{
    free(c->q);
    c->q = NULL;
    c->qcap = c->qhead = 0;
}

static void queue_clear(vconn *c)
{
    while (c->qlen > 0) {
        vbuf_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    ring_free(c);
    c->qbytes = 0;
}

static void slow_consumer(vconn *c)
{
    veil_relay *r = c->relay;

    if (c->flags & C_DEAD) {
        return;
    }
    c->flags |= C_DEAD;
    r->m.close_slow++;
    veil_log(VEIL_LOG_WARN, "slow_consumer", "conn=%llu queued_frames=%u queued_bytes=%llu",
             (unsigned long long)c->serial, c->qlen, (unsigned long long)c->qbytes);
    queue_clear(c);
    if (c->wsi != NULL) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* Queues a reference to b. Returns false if the connection is gone or was just closed as slow. */
static bool enqueue(vconn *c, vbuf *b)
{
    veil_relay *r = c->relay;

    if (c->flags & C_DEAD) {
        return false;
    }
    if (c->qlen + 1 > r->cfg.queue_frames || c->qbytes + b->len > r->cfg.queue_bytes) {
        slow_consumer(c);
        return false;
    }
    if (c->qlen == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 8, i;
        vbuf **nq;

        if (ncap > r->cfg.queue_frames) {
            ncap = r->cfg.queue_frames;
        }
        nq = malloc(ncap * sizeof *nq);
        if (nq == NULL) {
            slow_consumer(c);
            return false;
        }
        for (i = 0; i < c->qlen; i++) {
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        }
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    b->refs++;
    c->q[(c->qhead + c->qlen) % c->qcap] = b;
    c->qlen++;
    c->qbytes += b->len;
    if (b->type == VEIL_FT_DELIVER) {
        r->m.deliveries++;
    }
    want_write(c);
    return true;
}

/* Queues a buffer we own and drops our reference. */
static void send_buf(vconn *c, vbuf *b)
{
    if (b != NULL) {
        enqueue(c, b);
        vbuf_unref(b);
    }
}

static void send_frame(vconn *c, const veil_frame *f)
{
    send_buf(c, frame_buf(f));
}

/* Starts an orderly close: what is queued is flushed, then the close frame with `status`. */
static void begin_close(vconn *c, uint16_t status, const char *why)
{
    if (c->flags & (C_CLOSING | C_DEAD)) {
        return;
    }
    c->flags |= C_CLOSING;
    c->close_status = status;
    c->close_deadline_us = lws_now_usecs() + 2 * LWS_US_PER_SEC;
    veil_log(VEIL_LOG_INFO, "conn_closing", "conn=%llu status=%u reason=\"%s\"", (unsigned long long)c->serial,
             status, why);
    if (c->wsi != NULL) {
        /* Whatever happens, the connection is gone in 5 s. */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
        c->flags &= (uint8_t)~C_WANT_WRITE;
        want_write(c);
    }
}

static void note_ok(vconn *c)
{
    c->errors_row = 0;
}

static void send_error(vconn *c, uint32_t id, int code, uint32_t rt, const char *msg)
{
    veil_relay *r = c->relay;
    uint8_t tmp[512];
    size_t len;
    vbuf *b;

    if (code >= -VEIL_METRICS_MAX_CODE && code < 0) {
        r->m.errors[-code]++;
    }
    if (veil_wire_encode_error(id, code, rt, msg, tmp, sizeof tmp, &len) != 0) {
        return;
    }
    b = vbuf_alloc((uint32_t)len);
    if (b == NULL) {
        return;
    }
    memcpy(vbuf_frame(b), tmp, len);
    b->type = VEIL_FT_ERROR;
    vbuf_header(b);
    send_buf(c, b);
    if (code != VEIL_ERATE && ++c->errors_row >= r->cfg.max_errors) {
        r->m.close_policy++;
        begin_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many errors");
    }
}

/* ------------------------------------------------------------------ write path */

static int do_write(vconn *c)
{
    veil_relay *r = c->relay;
    vbuf *first;
    uint32_t n = 1;
    size_t total;
    int w;

    first = c->q[c->qhead];
    total = (size_t)first->hlen + first->len;
    if (lws_get_network_wsi(c->wsi) != c->wsi) {
        /* Encapsulated (ws over h2): frames must go through lws' own framing. */
        w = lws_write(c->wsi, vbuf_frame(first), first->len,
                      first->type == VB_PING ? LWS_WRITE_PING : LWS_WRITE_BINARY);
        total = first->len;
    } else if (c->qlen == 1 || total > SCRATCH_BYTES) {
        w = lws_write(c->wsi, vbuf_frame(first) - first->hlen, total, LWS_WRITE_RAW);
    } else {
        uint8_t *s = r->scratch + LWS_PRE;
        total = 0;
        n = 0;
        while (n < c->qlen) {
            vbuf *b = c->q[(c->qhead + n) % c->qcap];
            size_t need = (size_t)b->hlen + b->len;
            if (total + need > SCRATCH_BYTES) {
                break;
            }
            memcpy(s + total, vbuf_frame(b) - b->hlen, need);
            total += need;
            n++;
        }
        w = lws_write(c->wsi, s, total, LWS_WRITE_RAW);
    }
    if (w < 0) {
        return -1;
    }
    r->m.frames_out += n;
    r->m.bytes_out += total;
    while (n-- > 0) {
        vbuf *b = c->q[c->qhead];
        c->qbytes -= b->len;
        vbuf_unref(b);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    if (c->qlen == 0 && c->qcap > RING_KEEP) {
        ring_free(c);
    }
    return 0;
}

static void pump_catchup(vconn *c);

static int on_writeable(vconn *c)
{
    c->flags &= (uint8_t)~C_WANT_WRITE;
    if (c->flags & C_DEAD) {
        return -1;
    }
    if (c->qlen == 0 && c->catching > 0) {
        pump_catchup(c);
        c->flags &= (uint8_t)~C_WANT_WRITE;
    }
    if (c->qlen > 0) {
        if (do_write(c) != 0) {
            return -1;
        }
        if (c->catching > 0) {
            pump_catchup(c);
        }
        if (c->qlen > 0 || c->catching > 0 || (c->flags & C_CLOSING)) {
            c->flags &= (uint8_t)~C_WANT_WRITE;
            want_write(c);
        }
        return 0;
    }
    if (c->flags & C_CLOSING) {
        static const char reason[] = "veil relay closing";
        lws_usec_t now = lws_now_usecs();
        /*
         * Send the close frame only once the peer has stopped sending (100 ms
         * of quiet, 2 s at most): libwebsockets drops a connection that
         * receives data after its close frame, and the kernel then resets it,
         * which can destroy the ERROR and close frames before the peer reads
         * them.
         */
        if (now - c->last_rx_us < 100 * LWS_US_PER_MS && now < c->close_deadline_us) {
            if (!c->relay->close_check_pending) {
                c->relay->close_check_pending = 1;
                vtimer_start(&c->relay->t_close, 50 * LWS_US_PER_MS);
            }
            return 0;
        }
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_status, (unsigned char *)reason, sizeof reason - 1);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ presence and membership */

static vmember *member_of(vconn *c, const uint8_t room[32])
{
    vmember *m;

    for (m = c->members; m != NULL; m = m->cnext) {
        if (memcmp(m->room->id, room, 32) == 0) {
            return m;
        }
    }
    return NULL;
}

static vmember *tag_holder(vroom *x, const vmember *skip, const uint8_t *tag, uint8_t len)
{
    vmember *m;

    for (m = x->members; m != NULL; m = m->rnext) {
        if (m != skip && m->taglen == len && memcmp(m->tag, tag, len) == 0) {
            return m;
        }
    }
    return NULL;
}

static void presence(veil_relay *r, vroom *x, const vmember *subject, bool on)
{
    veil_frame f;
    vbuf *b;
    vmember *m;

    (void)r;
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PRESENCE;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, x->id, 32);
    veil_wire_set_bin(&f, VEIL_WF_TAG, subject->tag, subject->taglen);
    veil_wire_set_bool(&f, VEIL_WF_ON, on);
    b = frame_buf(&f);
    if (b == NULL) {
        return;
    }
    for (m = x->members; m != NULL; m = m->rnext) {
        if (m->conn != subject->conn) {
            enqueue(m->conn, b);
        }
    }
    vbuf_unref(b);
}

static void member_remove(veil_relay *r, vmember *m)
{
    vroom *x = m->room;
    vconn *c = m->conn;
    vmember **pp;

    if (m->rprev != NULL) {
        m->rprev->rnext = m->rnext;
    } else {
        x->members = m->rnext;
    }
    if (m->rnext != NULL) {
        m->rnext->rprev = m->rprev;
    }
    x->nmembers--;
    r->m.members--;
    for (pp = &c->members; *pp != NULL; pp = &(*pp)->cnext) {
        if (*pp == m) {
            *pp = m->cnext;
            break;
        }
    }
    c->nrooms--;
    if (m->catching) {
        c->catching--;
    }
    if (m->rep) {
        vmember *other = tag_holder(x, m, m->tag, m->taglen);
        if (other != NULL) {
            other->rep = 1;
        } else if (!r->stopping) {
            presence(r, x, m, false);
        }
    }
    free(m);
    room_maybe_free(r, x);
}

/* ------------------------------------------------------------------ batch */

static void commit_cb(veil_relay *r);
static int commit_now(veil_relay *r);

/*
 * Group commit: the requests of the next batch_delay microseconds share one
 * transaction.
 *
 * Under libev the loop does not wake for each of those requests: when it is
 * about to wait while a batch is open, it sleeps until the batch's time is up
 * (commit_prepare_cb), then takes everything that arrived meanwhile in one
 * non-blocking turn, and commits in the prepare of the turn after. A burst of
 * publishes from many connections then costs two wake-ups instead of one per
 * frame, which on this machine is most of what the loop spends beyond the
 * sends themselves (bench/relay.sh). Nothing waits longer than with a timer:
 * a frame that arrives during the sleep is read when the batch it joins
 * commits, and the sleep never outlasts the batch.
 */
static void schedule_commit(veil_relay *r)
{
    if (!r->commit_scheduled) {
        r->commit_scheduled = 1;
        if (r->loop != NULL) {
            r->commit_at = lws_now_usecs() + (lws_usec_t)r->cfg.batch_delay;
        } else {
            vtimer_start(&r->t_commit, (lws_usec_t)r->cfg.batch_delay);
        }
    }
}

static void commit_nowait_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static void commit_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    veil_relay *r = lws_container_of(w, veil_relay, commit_prep);
    lws_usec_t now;

    (void)revents;
    if (r->commit_due) {
        /* The turn after the sleep has read what arrived during it. */
        (void)commit_now(r);
        return;
    }
    if (!r->commit_scheduled) {
        return;
    }
    now = lws_now_usecs();
    if (now < r->commit_at) {
        struct timespec ts;
        lws_usec_t us = r->commit_at - now;
        ts.tv_sec = (time_t)(us / LWS_US_PER_SEC);
        ts.tv_nsec = (long)(us % LWS_US_PER_SEC) * 1000L;
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    r->commit_due = 1;
    ev_idle_start(loop, &r->commit_nowait);
}

static vpend *pend_new(veil_relay *r, vconn *c, const veil_frame *req)
{
    vpend *p = calloc(1, sizeof *p);

    if (p == NULL) {
        return NULL;
    }
    p->conn = c;
    p->id = req->id;
    p->rtype = (uint8_t)req->type;
    if (r->pend_tail != NULL) {
        r->pend_tail->next = p;
    } else {
        r->pend_head = p;
    }
    r->pend_tail = p;
    r->npend++;
    schedule_commit(r);
    return p;
}

static void mark_dirty(veil_relay *r, vroom *x)
{
    if (!x->dirty) {
        x->dirty = 1;
        x->dnext = r->dirty;
        r->dirty = x;
    }
}

static void fanout(veil_relay *r, vroom *x, vconn *sender, vbuf *b)
{
    vmember *m, *next;

    (void)r;
    for (m = x->members; m != NULL; m = next) {
        next = m->rnext;
        if (m->conn != sender && !m->catching) {
            enqueue(m->conn, b);
        }
    }
}

static void push_owner(veil_relay *r, const uint8_t owner[32], vbuf *b)
{
    vconn *c;

    for (c = *ident_slot(r, owner); c != NULL; c = c->id_next) {
        if ((c->flags & C_AUTHED) && memcmp(c->ik, owner, 32) == 0) {
            enqueue(c, b);
        }
    }
}

/* Ends the batch: commits, then answers and delivers; or answers VEIL_ESTORE to all of it. */
static int finish_batch(veil_relay *r)
{
    vpend *p, *next;
    vroom *x, *xn;
    int rc = 0;
    struct timespec t0, t1;

    if (r->store == NULL || (!veil_store_in_batch(r->store) && r->pend_head == NULL && r->dirty == NULL)) {
        return 0;
    }
    if (veil_store_in_batch(r->store)) {
        for (x = r->dirty; x != NULL && rc == 0; x = x->dnext) {
            /*
             * Once per room per batch: count retention. It keeps the newest
             * envelope, whose seq is the head; only the age sweep can remove
             * that one, and it records the head first (veil_store_sweep).
             */
            if (x->head > r->cfg.retain_count &&
                veil_store_env_trim(r->store, x->num, x->head - r->cfg.retain_count) != 0) {
                rc = VEIL_ESTORE;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (rc == 0) {
            rc = veil_store_commit(r->store);
        } else {
            veil_store_rollback(r->store);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        {
            double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
            r->m.commit_seconds_sum += s;
            if (s > r->m.commit_seconds_max) {
                r->m.commit_seconds_max = s;
            }
        }
    } else if (r->pend_head != NULL) {
        /* SQLite abandoned the transaction after a failed statement. */
        rc = VEIL_ESTORE;
    }
    if (rc == 0) {
        r->m.commits++;
        if (r->inbox_pending_max > r->inbox_committed) {
            r->inbox_committed = r->inbox_pending_max;
        }
    } else {
        r->m.commit_failures++;
        veil_log(VEIL_LOG_ERROR, "batch_failed", "items=%zu", r->npend);
        r->inbox_pending_max = r->inbox_committed;
    }
    for (x = r->dirty; x != NULL; x = x->dnext) {
        if (rc == 0) {
            x->committed = x->head;
        } else {
            x->head = x->committed;
            if (x->num_new) {
                x->num = 0;
            }
        }
        x->num_new = 0;
    }
    r->m.batch_items += r->npend;
    for (p = r->pend_head; p != NULL; p = next) {
        next = p->next;
        if (rc == 0) {
            if (p->conn != NULL && p->reply != NULL) {
                enqueue(p->conn, p->reply);
                note_ok(p->conn);
            }
            if (p->deliver != NULL && p->room != NULL) {
                fanout(r, p->room, p->sender, p->deliver);
            }
            if (p->push != NULL) {
                push_owner(r, p->owner, p->push);
            }
        } else if (p->conn != NULL) {
            send_error(p->conn, p->id, VEIL_ESTORE, p->rtype, NULL);
        }
        vbuf_unref(p->reply);
        vbuf_unref(p->deliver);
        vbuf_unref(p->push);
        if (p->room != NULL) {
            p->room->pins--;
        }
        free(p);
    }
    r->pend_head = r->pend_tail = NULL;
    r->npend = 0;
    for (x = r->dirty, r->dirty = NULL; x != NULL; x = xn) {
        xn = x->dnext;
        x->dirty = 0;
        x->dnext = NULL;
        room_maybe_free(r, x);
    }
    return rc;
}

/* Commits the open batch now, whichever way it was scheduled. */
static int commit_now(veil_relay *r)
{
    r->commit_scheduled = 0;
    if (r->commit_due) {
        r->commit_due = 0;
        ev_idle_stop(r->loop, &r->commit_nowait);
    }
    return finish_batch(r);
}

static void commit_cb(veil_relay *r)
{
    (void)commit_now(r);
}

/* After a store failure inside a request: if SQLite dropped the transaction, fail the batch now. */
static void store_failed(veil_relay *r)
{
    if (!veil_store_in_batch(r->store)) {
        (void)finish_batch(r);
    }
}

static void sweep_cb(veil_relay *r)
{
    uint64_t now = (uint64_t)time(NULL);
    bool more = false;
    uint64_t env_before = now > r->cfg.retain_age ? now - r->cfg.retain_age : 0;
    uint64_t inbox_before = now > r->cfg.inbox_ttl ? now - r->cfg.inbox_ttl : 0;

    if (veil_store_sweep(r->store, env_before, inbox_before, SWEEP_ROWS, &more) != 0) {
        store_failed(r);
    } else {
        schedule_commit(r);
    }
    vtimer_start(&r->t_sweep, more ? 100 * LWS_US_PER_MS : (lws_usec_t)r->cfg.sweep * LWS_US_PER_SEC);
}

/* ------------------------------------------------------------------ catch-up */

typedef struct catchup_ctx {
    vconn *c;
    vmember *m;
    uint32_t rows;
    bool stopped;
    uint64_t low_bytes;
    uint32_t low_frames;
} catchup_ctx;

static int catchup_row(void *ctx, uint64_t seq, uint64_t ts, const uint8_t *cmid, const uint8_t *env, size_t len)
{
    catchup_ctx *k = ctx;
    veil_frame f;
    vbuf *b;

    (void)ts;
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_DELIVER;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, k->m->room->id, 32);
    veil_wire_set_uint(&f, VEIL_WF_SEQ, seq);
    veil_wire_set_bin(&f, VEIL_WF_CMID, cmid, 16);
    veil_wire_set_bin(&f, VEIL_WF_ENV, env, len);
    b = frame_buf(&f);
    if (b == NULL) {
        return VEIL_ENOMEM;
    }
    if (!enqueue(k->c, b)) {
        vbuf_unref(b);
        return 1;
    }
    vbuf_unref(b);
    k->m->cursor = seq;
    k->rows++;
    if (k->c->qlen >= k->low_frames || k->c->qbytes >= k->low_bytes) {
        k->stopped = true;
        return 1;
    }
    return 0;
}

static void caught_up(vconn *c, vmember *m)
{
    veil_frame f;

    m->cursor = m->room->committed;
    m->catching = 0;
    c->catching--;
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_CAUGHT_UP;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, m->room->id, 32);
    veil_wire_set_uint(&f, VEIL_WF_SEQ, m->room->committed);
    send_frame(c, &f);
}

/* Tops up the queue with replayed envelopes while it is below its low-water marks. */
static void pump_catchup(vconn *c)
{
    veil_relay *r = c->relay;
    vmember *m, *next;
    catchup_ctx k;

    k.c = c;
    k.low_frames = r->cfg.queue_frames / 4 > 64 ? 64 : r->cfg.queue_frames / 4;
    k.low_bytes = r->cfg.queue_bytes / 4;
    for (m = c->members; m != NULL && c->catching > 0; m = next) {
        next = m->cnext;
        if (!m->catching) {
            continue;
        }
        for (;;) {
            if (c->flags & C_DEAD) {
                return;
            }
            if (c->qlen >= k.low_frames || c->qbytes >= k.low_bytes) {
                return;
            }
            k.m = m;
            k.rows = 0;
            k.stopped = false;
            if (m->cursor >= m->room->committed) {
                caught_up(c, m);
                break;
            }
            if (veil_store_env_range(r->store, m->room->num, m->cursor, m->room->committed, CATCHUP_ROWS, catchup_row,
                                     &k) != 0) {
                veil_log(VEIL_LOG_ERROR, "catchup_failed", "conn=%llu", (unsigned long long)c->serial);
                begin_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "store failure");
                return;
            }
            if (k.stopped) {
                return;
            }
            if (k.rows < CATCHUP_ROWS) {
                caught_up(c, m);
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------ request handlers */

static bool need_auth(vconn *c, const veil_frame *f)
{
    if (!(c->flags & C_AUTHED)) {
        send_error(c, f->id, VEIL_EPERM, f->type, "authenticate first");
        return false;
    }
    return true;
}

static void h_auth(veil_relay *r, vconn *c, const veil_frame *f)
{
    uint8_t msg[18 + 32 + 32];
    veil_frame out;

    if (c->flags & C_AUTHED) {
        send_error(c, f->id, VEIL_ESTATE, f->type, "already authenticated");
        return;
    }
    memcpy(msg, "veil-relay-auth-v1", 18);
    memcpy(msg + 18, c->nonce, 32);
    memcpy(msg + 50, f->ik.p, 32);
    if (crypto_sign_verify_detached(f->sig.p, msg, sizeof msg, f->ik.p) != 0) {
        send_error(c, f->id, VEIL_EAUTH, f->type, "bad identity proof");
        return;
    }
    memcpy(c->ik, f->ik.p, 32);
    c->flags |= C_AUTHED;
    ident_add(r, c);
    veil_log(VEIL_LOG_DEBUG, "auth", "conn=%llu", (unsigned long long)c->serial);
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_AUTH_OK;
    out.id = f->id;
    veil_wire_set_bin(&out, VEIL_WF_IK, c->ik, 32);
    send_frame(c, &out);
    note_ok(c);
}

static void h_join(veil_relay *r, vconn *c, const veil_frame *f)
{
    uint8_t h[32], msg[17 + 32 + 32];
    crypto_generichash_state st;
    vroom *x;
    vmember *m, *it;
    veil_frame out;
    veil_wire_list_builder lb;
    uint64_t first = 0;
    uint8_t *members_buf;
    size_t cap;
    int rc;

    if (!need_auth(c, f)) {
        return;
    }
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"veil-room-id-v1", 15);
    crypto_generichash_update(&st, f->apk.p, 32);
    crypto_generichash_final(&st, h, 32);
    if (sodium_memcmp(h, f->room.p, 32) != 0) {
        send_error(c, f->id, VEIL_EAUTH, f->type, "room id does not match the access key");
        return;
    }
    memcpy(msg, "veil-room-join-v1", 17);
    memcpy(msg + 17, c->nonce, 32);
    memcpy(msg + 49, f->room.p, 32);
    if (crypto_sign_verify_detached(f->sig.p, msg, sizeof msg, f->apk.p) != 0) {
        send_error(c, f->id, VEIL_EAUTH, f->type, "bad join proof");
        return;
    }
    if (member_of(c, f->room.p) != NULL) {
        send_error(c, f->id, VEIL_ESTATE, f->type, "already joined");
        return;
    }
    if (c->nrooms >= r->cfg.max_rooms) {
        send_error(c, f->id, VEIL_EFULL, f->type, "too many rooms on this connection");
        return;
    }
    rc = room_get(r, f->room.p, &x);
    if (rc != 0) {
        send_error(c, f->id, rc, f->type, NULL);
        return;
    }
    if (x->nmembers >= r->cfg.max_members) {
        send_error(c, f->id, VEIL_EFULL, f->type, "room is full");
        room_maybe_free(r, x);
        return;
    }
    if (veil_store_room_first(r->store, x->num, &first) != 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        room_maybe_free(r, x);
        return;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        room_maybe_free(r, x);
        return;
    }
    m->room = x;
    m->conn = c;
    m->taglen = (uint8_t)f->tag.len;
    memcpy(m->tag, f->tag.p, f->tag.len);
    m->rep = tag_holder(x, NULL, m->tag, m->taglen) == NULL;
    m->rnext = x->members;
    if (x->members != NULL) {
        x->members->rprev = m;
    }
    x->members = m;
    x->nmembers++;
    m->cnext = c->members;
    c->members = m;
    c->nrooms++;
    r->m.members++;

    /* JOINED: the distinct tags present, our own included. */
    cap = (size_t)x->nmembers * (VEIL_WIRE_TAG_MAX_BYTES + 2) + 1;
    members_buf = malloc(cap);
    if (members_buf == NULL) {
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        member_remove(r, m);
        return;
    }
    veil_wire_lb_init(&lb, VEIL_WL_TAGS, members_buf, cap);
    for (it = x->members; it != NULL; it = it->rnext) {
        if (it->rep) {
            veil_wire_lb_bin(&lb, it->tag, it->taglen);
        }
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_JOINED;
    out.id = f->id;
    veil_wire_set_bin(&out, VEIL_WF_ROOM, x->id, 32);
    veil_wire_set_uint(&out, VEIL_WF_HEAD, x->committed);
    veil_wire_set_uint(&out, VEIL_WF_FIRST, first != 0 ? first : x->committed + 1);
    if (veil_wire_lb_finish(&lb, &out.list) == 0) {
        out.present |= VEIL_WF_BIT(VEIL_WF_MEMBERS);
        send_frame(c, &out);
    }
    free(members_buf);
    note_ok(c);
    if (m->rep) {
        presence(r, x, m, true);
    }
    if (veil_wire_has(f, VEIL_WF_SINCE)) {
        m->catching = 1;
        m->cursor = f->since;
        c->catching++;
        if (f->since >= x->committed) {
            caught_up(c, m);
        } else {
            pump_catchup(c);
        }
    }
}

static void h_leave(veil_relay *r, vconn *c, const veil_frame *f)
{
    vmember *m;
    veil_frame out;

    if (!need_auth(c, f)) {
        return;
    }
    m = member_of(c, f->room.p);
    if (m == NULL) {
        send_error(c, f->id, VEIL_ENOTJOINED, f->type, NULL);
        return;
    }
    member_remove(r, m);
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_LEFT;
    out.id = f->id;
    veil_wire_set_bin(&out, VEIL_WF_ROOM, f->room.p, 32);
    send_frame(c, &out);
    note_ok(c);
}

static void h_publish(veil_relay *r, vconn *c, const veil_frame *f)
{
    vmember *m;
    vroom *x;
    uint64_t seq;
    int stored;
    veil_frame ack, del;
    vpend *p;

    if (!need_auth(c, f)) {
        return;
    }
    m = member_of(c, f->room.p);
    if (m == NULL) {
        send_error(c, f->id, VEIL_ENOTJOINED, f->type, NULL);
        return;
    }
    x = m->room;
    memset(&ack, 0, sizeof ack);
    ack.type = VEIL_FT_ACK;
    ack.id = f->id;
    veil_wire_set_bin(&ack, VEIL_WF_ROOM, x->id, 32);
    veil_wire_set_bin(&ack, VEIL_WF_CMID, f->cmid.p, 16);
    seq = x->head + 1;
    if (x->num == 0) {
        /* The room's first envelope: it gets its number in the store, in this batch. */
        if (veil_store_room_add(r->store, x->id, (uint64_t)time(NULL), &x->num) != 0) {
            send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
            store_failed(r);
            return;
        }
        x->num_new = 1;
        mark_dirty(r, x);
    }
    stored = veil_store_env_put(r->store, x->num, seq, f->cmid.p, f->env.p, f->env.len, (uint64_t)time(NULL));
    if (stored == 1) {
        /* A re-publish: answer with the original seq, once the batch is durable. */
        if (veil_store_env_find(r->store, x->num, f->cmid.p, &seq) != 1) {
            send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
            store_failed(r);
            return;
        }
        r->m.envelopes_dup++;
        veil_wire_set_uint(&ack, VEIL_WF_SEQ, seq);
        veil_wire_set_bool(&ack, VEIL_WF_DUP, true);
        p = pend_new(r, c, f);
        if (p == NULL) {
            send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
            return;
        }
        p->reply = frame_buf(&ack);
        return;
    }
    if (stored != 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        store_failed(r);
        return;
    }
    x->head = seq;
    mark_dirty(r, x);
    r->m.envelopes_stored++;
    veil_wire_set_uint(&ack, VEIL_WF_SEQ, seq);
    veil_wire_set_bool(&ack, VEIL_WF_DUP, false);
    memset(&del, 0, sizeof del);
    del.type = VEIL_FT_DELIVER;
    veil_wire_set_bin(&del, VEIL_WF_ROOM, x->id, 32);
    veil_wire_set_uint(&del, VEIL_WF_SEQ, seq);
    veil_wire_set_bin(&del, VEIL_WF_CMID, f->cmid.p, 16);
    veil_wire_set_bin(&del, VEIL_WF_ENV, f->env.p, f->env.len);
    p = pend_new(r, c, f);
    if (p == NULL) {
        /* The row is in the batch; without a pending item nobody is told: fail the batch. */
        veil_store_rollback(r->store);
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        store_failed(r);
        return;
    }
    p->reply = frame_buf(&ack);
    p->deliver = frame_buf(&del);
    p->room = x;
    p->sender = c;
    x->pins++;
}

static void h_ephemeral(veil_relay *r, vconn *c, const veil_frame *f)
{
    vmember *m, *it;
    veil_frame out;
    vbuf *b;

    if (!need_auth(c, f)) {
        return;
    }
    m = member_of(c, f->room.p);
    if (m == NULL) {
        send_error(c, f->id, VEIL_ENOTJOINED, f->type, NULL);
        return;
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_EPHEMERAL_DELIVER;
    veil_wire_set_bin(&out, VEIL_WF_ROOM, f->room.p, 32);
    veil_wire_set_bin(&out, VEIL_WF_ENV, f->env.p, f->env.len);
    b = frame_buf(&out);
    if (b != NULL) {
        for (it = m->room->members; it != NULL; it = it->rnext) {
            vconn *d = it->conn;
            /* Best effort: never push a recipient towards the slow-consumer limit for a typing hint. */
            if (d != c && d->qlen < r->cfg.queue_frames / 2 && d->qbytes + b->len < r->cfg.queue_bytes / 2) {
                if (enqueue(d, b)) {
                    r->m.ephemeral++;
                }
            }
        }
        vbuf_unref(b);
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_EPHEMERAL_OK;
    out.id = f->id;
    veil_wire_set_bin(&out, VEIL_WF_ROOM, f->room.p, 32);
    send_frame(c, &out);
    note_ok(c);
}

/* A page of items collected from the store (HISTORY_PAGE, INBOX_PAGE). */
typedef struct page {
    veil_wire_list_kind kind;
    uint32_t limit, n;
    size_t budget, used;
    bool more;
    uint64_t key[VEIL_WIRE_PAGE_MAX_ITEMS], ts[VEIL_WIRE_PAGE_MAX_ITEMS];
    size_t off[VEIL_WIRE_PAGE_MAX_ITEMS], len[VEIL_WIRE_PAGE_MAX_ITEMS];
    uint8_t cmid[VEIL_WIRE_PAGE_MAX_ITEMS][16];
    uint8_t *arena;
    size_t cap;
} page;

static int page_row(void *ctx, uint64_t key, uint64_t ts, const uint8_t *cmid, const uint8_t *env, size_t len)
{
    page *pg = ctx;

    if (pg->n == pg->limit || (pg->n > 0 && pg->used + len > pg->budget)) {
        pg->more = true;
        return 1;
    }
    if (pg->used + len > pg->cap) {
        size_t ncap = pg->cap ? pg->cap : 4096;
        uint8_t *na;
        while (ncap < pg->used + len) {
            ncap *= 2;
        }
        na = realloc(pg->arena, ncap);
        if (na == NULL) {
            return VEIL_ENOMEM;
        }
        pg->arena = na;
        pg->cap = ncap;
    }
    memcpy(pg->arena + pg->used, env, len);
    pg->key[pg->n] = key;
    pg->ts[pg->n] = ts;
    pg->off[pg->n] = pg->used;
    pg->len[pg->n] = len;
    if (cmid != NULL) {
        memcpy(pg->cmid[pg->n], cmid, 16);
    }
    pg->used += len;
    pg->n++;
    return 0;
}

/* Encodes the page's items (reversed when collected newest first) into out.list; *buf must be freed. */
static int page_list(page *pg, bool reverse, veil_frame *out, uint8_t **buf)
{
    veil_wire_list_builder lb;
    veil_wire_item it;
    size_t need = 1, i;

    for (i = 0; i < pg->n; i++) {
        memset(&it, 0, sizeof it);
        it.seq = pg->key[i];
        it.ts = pg->ts[i];
        it.cmid.len = 16;
        it.env.len = pg->len[i];
        need += veil_wire_item_size(pg->kind, &it);
    }
    *buf = malloc(need);
    if (*buf == NULL) {
        return VEIL_ENOMEM;
    }
    veil_wire_lb_init(&lb, pg->kind, *buf, need);
    for (i = 0; i < pg->n; i++) {
        size_t k = reverse ? pg->n - 1 - i : i;
        memset(&it, 0, sizeof it);
        it.seq = pg->key[k];
        it.ts = pg->ts[k];
        it.cmid.p = pg->cmid[k];
        it.cmid.len = 16;
        it.env.p = pg->arena + pg->off[k];
        it.env.len = pg->len[k];
        veil_wire_lb_item(&lb, &it);
    }
    if (veil_wire_lb_finish(&lb, &out->list) != 0) {
        return VEIL_ENOMEM;
    }
    out->present |= VEIL_WF_BIT(VEIL_WF_ITEMS);
    return 0;
}

static void h_history(veil_relay *r, vconn *c, const veil_frame *f)
{
    vmember *m;
    page *pg;
    uint64_t before;
    veil_frame out;
    uint8_t *lbuf = NULL;
    int rc;

    if (!need_auth(c, f)) {
        return;
    }
    m = member_of(c, f->room.p);
    if (m == NULL) {
        send_error(c, f->id, VEIL_ENOTJOINED, f->type, NULL);
        return;
    }
    pg = calloc(1, sizeof *pg);
    if (pg == NULL) {
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        return;
    }
    pg->kind = VEIL_WL_ROOM_ITEMS;
    pg->limit = (uint32_t)f->limit;
    pg->budget = r->cfg.max_page;
    before = (veil_wire_has(f, VEIL_WF_BEFORE) && f->before != 0) ? f->before : VEIL_WIRE_U53_MAX;
    rc = veil_store_env_before(r->store, m->room->num, before, m->room->committed, pg->limit + 1, page_row, pg);
    if (rc == 0) {
        memset(&out, 0, sizeof out);
        out.type = VEIL_FT_HISTORY_PAGE;
        out.id = f->id;
        veil_wire_set_bin(&out, VEIL_WF_ROOM, m->room->id, 32);
        veil_wire_set_bool(&out, VEIL_WF_MORE, pg->more);
        rc = page_list(pg, true, &out, &lbuf);
        if (rc == 0) {
            send_frame(c, &out);
            note_ok(c);
        }
    }
    if (rc != 0) {
        send_error(c, f->id, rc == VEIL_ENOMEM ? VEIL_ENOMEM : VEIL_ESTORE, f->type, NULL);
    }
    free(lbuf);
    free(pg->arena);
    free(pg);
}

static void h_inbox_post(veil_relay *r, vconn *c, const veil_frame *f)
{
    uint32_t n;
    uint64_t iid, now = (uint64_t)time(NULL);
    veil_frame out;
    vpend *p;

    if (veil_store_begin(r->store) != 0 || veil_store_inbox_count(r->store, f->to.p, &n) != 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        store_failed(r);
        return;
    }
    if (n >= r->cfg.max_inbox) {
        send_error(c, f->id, VEIL_EFULL, f->type, "inbox full");
        return;
    }
    if (veil_store_inbox_put(r->store, f->to.p, f->env.p, f->env.len, now, &iid) != 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        store_failed(r);
        return;
    }
    if (iid > r->inbox_pending_max) {
        r->inbox_pending_max = iid;
    }
    p = pend_new(r, c, f);
    if (p == NULL) {
        veil_store_rollback(r->store);
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        store_failed(r);
        return;
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_INBOX_POSTED;
    out.id = f->id;
    veil_wire_set_uint(&out, VEIL_WF_IID, iid);
    p->reply = frame_buf(&out);
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_INBOX_NEW;
    veil_wire_set_uint(&out, VEIL_WF_IID, iid);
    veil_wire_set_uint(&out, VEIL_WF_TS, now);
    veil_wire_set_bin(&out, VEIL_WF_ENV, f->env.p, f->env.len);
    p->push = frame_buf(&out);
    memcpy(p->owner, f->to.p, 32);
    r->m.inbox_posts++;
}

static void h_inbox_fetch(veil_relay *r, vconn *c, const veil_frame *f)
{
    page *pg;
    veil_frame out;
    uint8_t *lbuf = NULL;
    int rc;

    if (!need_auth(c, f)) {
        return;
    }
    pg = calloc(1, sizeof *pg);
    if (pg == NULL) {
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        return;
    }
    pg->kind = VEIL_WL_INBOX_ITEMS;
    pg->limit = (uint32_t)f->limit;
    pg->budget = r->cfg.max_page;
    rc = veil_store_inbox_range(r->store, c->ik, veil_wire_has(f, VEIL_WF_AFTER) ? f->after : 0, r->inbox_committed,
                                pg->limit + 1, page_row, pg);
    if (rc == 0) {
        memset(&out, 0, sizeof out);
        out.type = VEIL_FT_INBOX_PAGE;
        out.id = f->id;
        veil_wire_set_bool(&out, VEIL_WF_MORE, pg->more);
        rc = page_list(pg, false, &out, &lbuf);
        if (rc == 0) {
            send_frame(c, &out);
            note_ok(c);
        }
    }
    if (rc != 0) {
        send_error(c, f->id, rc == VEIL_ENOMEM ? VEIL_ENOMEM : VEIL_ESTORE, f->type, NULL);
    }
    free(lbuf);
    free(pg->arena);
    free(pg);
}

static void h_inbox_ack(veil_relay *r, vconn *c, const veil_frame *f)
{
    veil_wire_iter it;
    uint64_t iid;
    uint64_t n = 0;
    veil_frame out;
    vpend *p;

    if (!need_auth(c, f)) {
        return;
    }
    veil_wire_iter_init(&it, &f->list);
    while (veil_wire_next_u64(&it, &iid)) {
        int d = 0;
        if (veil_store_inbox_del(r->store, c->ik, iid, &d) != 0) {
            send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
            store_failed(r);
            return;
        }
        n += (uint64_t)d;
    }
    p = pend_new(r, c, f);
    if (p == NULL) {
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        return;
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_INBOX_ACKED;
    out.id = f->id;
    veil_wire_set_uint(&out, VEIL_WF_N, n);
    p->reply = frame_buf(&out);
}

static void h_prekey_upload(veil_relay *r, vconn *c, const veil_frame *f)
{
    const uint8_t *b = f->base.p;
    uint8_t msg[11 + 4 + 32];
    const uint8_t *opks[VEIL_WIRE_OPKS_MAX];
    size_t n = 0;
    veil_wire_iter it;
    veil_wire_bin o;
    uint32_t count;
    veil_frame out;
    vpend *p;
    int rc;

    if (!need_auth(c, f)) {
        return;
    }
    if (b[0] != 1) {
        send_error(c, f->id, VEIL_EVERSION, f->type, "bundle version");
        return;
    }
    if (sodium_memcmp(b + 1, c->ik, 32) != 0) {
        send_error(c, f->id, VEIL_EPERM, f->type, "bundle of another identity");
        return;
    }
    /* idsig over "veil-idk-v1" || IKd.pk; spk_sig over "veil-spk-v1" || u32(spk_id) || SPK.pk (SPEC.md 5.1, 5.2). */
    memcpy(msg, "veil-idk-v1", 11);
    memcpy(msg + 11, b + 33, 32);
    if (crypto_sign_verify_detached(b + 65, msg, 11 + 32, b + 1) != 0) {
        send_error(c, f->id, VEIL_ESIG, f->type, "identity signature");
        return;
    }
    memcpy(msg, "veil-spk-v1", 11);
    memcpy(msg + 11, b + 129, 4 + 32);
    if (crypto_sign_verify_detached(b + 165, msg, sizeof msg, b + 1) != 0) {
        send_error(c, f->id, VEIL_ESIG, f->type, "signed prekey signature");
        return;
    }
    veil_wire_iter_init(&it, &f->list);
    while (veil_wire_next_bin(&it, &o)) {
        if ((o.p[0] | o.p[1] | o.p[2] | o.p[3]) == 0) {
            send_error(c, f->id, VEIL_EINVAL, f->type, "one-time prekey id 0");
            return;
        }
        opks[n++] = o.p;
    }
    rc = veil_store_prekey_upload(r->store, c->ik, b, opks, n, veil_wire_has(f, VEIL_WF_REPLACE) && f->replace,
                                  r->cfg.max_opks, &count);
    if (rc != 0) {
        send_error(c, f->id, rc == VEIL_EFULL ? VEIL_EFULL : VEIL_ESTORE, f->type,
                   rc == VEIL_EFULL ? "too many one-time prekeys" : NULL);
        if (rc != VEIL_EFULL) {
            store_failed(r);
        }
        return;
    }
    p = pend_new(r, c, f);
    if (p == NULL) {
        veil_store_rollback(r->store);
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        store_failed(r);
        return;
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_PREKEY_STORED;
    out.id = f->id;
    veil_wire_set_uint(&out, VEIL_WF_COUNT, count);
    p->reply = frame_buf(&out);
}

static void h_prekey_fetch(veil_relay *r, vconn *c, const veil_frame *f)
{
    uint8_t bundle[VEIL_WIRE_BUNDLE_BYTES], pk[32];
    uint32_t id = 0;
    int found;
    veil_frame out;
    vpend *p;

    if (veil_store_begin(r->store) != 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        return;
    }
    found = veil_store_spk_get(r->store, f->ik.p, bundle, true);
    if (found < 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        store_failed(r);
        return;
    }
    if (found == 0) {
        send_error(c, f->id, VEIL_ENOPREKEY, f->type, "no bundle for this identity");
        return;
    }
    found = veil_store_opk_take(r->store, f->ik.p, &id, pk);
    if (found < 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        store_failed(r);
        return;
    }
    if (found) {
        bundle[229] = 1;
        bundle[230] = (uint8_t)(id >> 24);
        bundle[231] = (uint8_t)(id >> 16);
        bundle[232] = (uint8_t)(id >> 8);
        bundle[233] = (uint8_t)id;
        memcpy(bundle + 234, pk, 32);
        r->m.opks_handed++;
    } else {
        memset(bundle + 229, 0, VEIL_WIRE_BUNDLE_BYTES - 229);
    }
    p = pend_new(r, c, f);
    if (p == NULL) {
        veil_store_rollback(r->store);
        send_error(c, f->id, VEIL_ENOMEM, f->type, NULL);
        store_failed(r);
        return;
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_PREKEY_BUNDLE;
    out.id = f->id;
    veil_wire_set_bin(&out, VEIL_WF_BUNDLE, bundle, sizeof bundle);
    p->reply = frame_buf(&out);
    r->m.prekey_fetches++;
}

static void h_prekey_count(veil_relay *r, vconn *c, const veil_frame *f)
{
    uint8_t base[VEIL_STORE_BASE_BYTES];
    uint32_t n;
    int found;
    veil_frame out;

    if (!need_auth(c, f)) {
        return;
    }
    found = veil_store_spk_get(r->store, c->ik, base, false);
    if (found < 0 || veil_store_opk_count(r->store, c->ik, &n) != 0) {
        send_error(c, f->id, VEIL_ESTORE, f->type, NULL);
        return;
    }
    memset(&out, 0, sizeof out);
    out.type = VEIL_FT_PREKEY_COUNTED;
    out.id = f->id;
    veil_wire_set_uint(&out, VEIL_WF_COUNT, n);
    if (found) {
        veil_wire_set_uint(&out, VEIL_WF_SPK_ID,
                           ((uint32_t)base[129] << 24) | ((uint32_t)base[130] << 16) | ((uint32_t)base[131] << 8) |
                               base[132]);
    }
    send_frame(c, &out);
    note_ok(c);
}

/* ------------------------------------------------------------------ receive path */

static bool take_token(veil_relay *r, vconn *c)
{
    lws_usec_t now = lws_now_usecs();
    double t = c->tokens + (double)(now - c->tok_us) * (double)r->cfg.rate / 1e6;

    c->tok_us = now;
    c->tokens = t > (double)r->cfg.burst ? (double)r->cfg.burst : t;
    if (c->tokens < 1.0) {
        return false;
    }
    c->tokens -= 1.0;
    return true;
}

static void on_frame(veil_relay *r, vconn *c, const uint8_t *in, size_t len)
{
    veil_frame f;
    veil_wire_limits lim;
    int rc;

    r->m.frames_in++;
    r->m.bytes_in += len;
    /*
     * Liveness is ping/pong alone: lws_validity_confirmed() per frame would
     * re-sort lws 4.1's timer list (O(connections)) on every frame, and an
     * active client answers a ping every idle/2 seconds at negligible cost.
     */
    lim.max_env = r->cfg.max_env;
    lim.max_eph = r->cfg.max_eph;
    rc = veil_wire_decode(&f, in, len, &lim);
    /* A type only the relay sends is refused as such, whatever its fields (SPEC.md 9.3). */
    if ((rc == 0 || rc == VEIL_EINVAL || rc == VEIL_ETOOBIG) && veil_wire_type_name(f.type) != NULL &&
        !veil_wire_is_request(f.type)) {
        rc = VEIL_EUNSUPPORTED;
    }
    if (rc != 0) {
        veil_log(VEIL_LOG_DEBUG, "bad_frame", "conn=%llu code=%d type=0x%02x len=%zu", (unsigned long long)c->serial,
                 rc, f.type, len);
        send_error(c, f.id, rc, f.type <= 255 ? f.type : 0, NULL);
        return;
    }
    if (!take_token(r, c)) {
        send_error(c, f.id, VEIL_ERATE, f.type, NULL);
        if (++c->refusals_row >= r->cfg.burst) {
            r->m.close_policy++;
            begin_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit flood");
        }
        return;
    }
    c->refusals_row = 0;
    switch (f.type) {
    case VEIL_FT_AUTH: h_auth(r, c, &f); break;
    case VEIL_FT_JOIN: h_join(r, c, &f); break;
    case VEIL_FT_LEAVE: h_leave(r, c, &f); break;
    case VEIL_FT_PUBLISH: h_publish(r, c, &f); break;
    case VEIL_FT_EPHEMERAL: h_ephemeral(r, c, &f); break;
    case VEIL_FT_HISTORY: h_history(r, c, &f); break;
    case VEIL_FT_INBOX_POST: h_inbox_post(r, c, &f); break;
    case VEIL_FT_INBOX_FETCH: h_inbox_fetch(r, c, &f); break;
    case VEIL_FT_INBOX_ACK: h_inbox_ack(r, c, &f); break;
    case VEIL_FT_PREKEY_UPLOAD: h_prekey_upload(r, c, &f); break;
    case VEIL_FT_PREKEY_FETCH: h_prekey_fetch(r, c, &f); break;
    case VEIL_FT_PREKEY_COUNT: h_prekey_count(r, c, &f); break;
    default: send_error(c, f.id, VEIL_EUNSUPPORTED, f.type, NULL); break;
    }
}

static void too_big(veil_relay *r, vconn *c)
{
    r->m.close_too_big++;
    free(c->rx);
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
    send_error(c, 0, VEIL_ETOOBIG, 0, "frame too large");
    /*
     * Input keeps being read and dropped (on_receive) until the close is done
     * (at most 5 s): closing a socket with unread input makes the kernel
     * reset it, and the peer could lose the ERROR and the close frame.
     */
    begin_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "frame too large");
}

static void on_receive(veil_relay *r, vconn *c, const uint8_t *in, size_t len)
{
    size_t limit = (c->flags & C_AUTHED) ? r->cfg.max_frame : r->cfg.max_frame_anon;
    size_t remaining;
    bool final;

    c->last_rx_us = c->alive_us = lws_now_usecs();
    c->flags &= (uint8_t)~C_PINGED;
    if (c->flags & (C_CLOSING | C_DEAD)) {
        return; /* read and dropped until the close (on_writeable) */
    }
    if (!lws_frame_is_binary(c->wsi)) {
        r->m.close_protocol++;
        send_error(c, 0, VEIL_EINVAL, 0, "text messages are not frames");
        begin_close(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "text message");
        return;
    }
    final = lws_is_final_fragment(c->wsi) != 0;
    remaining = lws_remaining_packet_payload(c->wsi);
    /* Refuse as soon as the declared length shows the message cannot fit. */
    if (c->rxlen + len > limit || c->rxlen + len + remaining > limit) {
        too_big(r, c);
        return;
    }
    if (final && c->rxlen == 0) {
        on_frame(r, c, in, len);
        return;
    }
    if (c->rxlen + len > c->rxcap) {
        size_t ncap = c->rxcap ? c->rxcap : 4096;
        uint8_t *nb;
        while (ncap < c->rxlen + len + remaining) {
            ncap *= 2;
        }
        if (ncap > limit) {
            ncap = limit;
        }
        nb = realloc(c->rx, ncap);
        if (nb == NULL) {
            too_big(r, c);
            return;
        }
        c->rx = nb;
        c->rxcap = ncap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        on_frame(r, c, c->rx, c->rxlen);
        free(c->rx);
        c->rx = NULL;
        c->rxlen = c->rxcap = 0;
    }
}

/* ------------------------------------------------------------------ connection lifecycle */

static void conn_open(veil_relay *r, vconn *c, struct lws *wsi)
{
    veil_frame f;
    char peer[64] = "";

    memset(c, 0, sizeof *c);
    c->wsi = wsi;
    c->relay = r;
    c->serial = ++r->next_serial;
    c->tokens = (double)r->cfg.burst;
    c->tok_us = c->alive_us = lws_now_usecs();
    c->next = r->conns;
    if (r->conns != NULL) {
        r->conns->prev = c;
    }
    r->conns = c;
    r->m.connections++;
    r->m.connections_total++;
    randombytes_buf(c->nonce, sizeof c->nonce);
    if (veil_log_enabled(VEIL_LOG_DEBUG)) {
        lws_get_peer_simple(wsi, peer, sizeof peer);
    }
    veil_log(VEIL_LOG_INFO, "conn_open", "conn=%llu%s%s", (unsigned long long)c->serial, peer[0] ? " peer=" : "",
             peer);
    if (r->stopping) {
        send_error(c, 0, VEIL_EBUSY, 0, "relay shutting down");
        begin_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "shutting down");
        return;
    }
    if (r->m.connections > r->cfg.max_conns) {
        r->m.close_conn_limit++;
        c->flags |= C_REJECT;
        send_error(c, 0, VEIL_EBUSY, 0, "too many connections");
        begin_close(c, VR_CLOSE_TRY_AGAIN_LATER, "connection limit");
        return;
    }
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_HELLO;
    veil_wire_set_bin(&f, VEIL_WF_NONCE, c->nonce, 32);
    veil_wire_set_uint(&f, VEIL_WF_MAX_FRAME, r->cfg.max_frame);
    veil_wire_set_uint(&f, VEIL_WF_MAX_ENV, r->cfg.max_env);
    veil_wire_set_str(&f, VEIL_WF_SRV, "veil-relay/0.1.0");
    send_frame(c, &f);
}

static void conn_closed(veil_relay *r, vconn *c)
{
    vpend *p;

    if (c->relay == NULL) {
        return; /* never opened */
    }
    while (c->members != NULL) {
        member_remove(r, c->members);
    }
    for (p = r->pend_head; p != NULL; p = p->next) {
        if (p->conn == c) {
            p->conn = NULL;
        }
        if (p->sender == c) {
            p->sender = NULL;
        }
    }
    if (c->flags & C_AUTHED) {
        ident_del(r, c);
    }
    queue_clear(c);
    free(c->rx);
    c->rx = NULL;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        r->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    r->m.connections--;
    veil_log(VEIL_LOG_INFO, "conn_close", "conn=%llu", (unsigned long long)c->serial);
    c->relay = NULL;
    c->wsi = NULL;
}

static int cb_veil(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    veil_relay *r = lws_context_user(lws_get_context(wsi));
    vconn *c = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        conn_open(r, c, wsi);
        break;
    case LWS_CALLBACK_RECEIVE:
        if (c->relay != NULL) {
            on_receive(r, c, in, len);
        }
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (c->relay != NULL) {
            return on_writeable(c);
        }
        break;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c->relay != NULL) {
            c->alive_us = lws_now_usecs();
            c->flags &= (uint8_t)~C_PINGED;
        }
        break;

    case LWS_CALLBACK_CLOSED:
        conn_closed(r, c);
        break;
    default:
        break;
    }
    return 0;
}

/* ------------------------------------------------------------------ HTTP */

static int http_reply(struct lws *wsi, vhttp *h, unsigned status, const char *type, char *body, size_t len)
{
    uint8_t hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;

    h->body = body;
    h->len = len;
    if (lws_add_http_common_headers(wsi, status, type, (lws_filepos_t)len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8, &p,
                                     end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        return 1;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    veil_relay *r = lws_context_user(lws_get_context(wsi));
    vhttp *h = user;
    char uri[64];

    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
        r->m.http_requests++;
        if (n > 0 && strcmp(uri, "/healthz") == 0) {
            char *b = malloc(LWS_PRE + 3);
            if (b == NULL) {
                return 1;
            }
            memcpy(b + LWS_PRE, "ok\n", 3);
            return http_reply(wsi, h, HTTP_STATUS_OK, "text/plain", b, 3);
        }
        if (n > 0 && strcmp(uri, "/metrics") == 0) {
            size_t cap = 16384, l;
            char *b = malloc(LWS_PRE + cap);
            if (b == NULL) {
                return 1;
            }
            l = veil_metrics_render(&r->m, b + LWS_PRE, cap);
            return http_reply(wsi, h, HTTP_STATUS_OK, "text/plain; version=0.0.4", b, l);
        }
        return lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL) ? -1
                                                                         : lws_http_transaction_completed(wsi);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (h == NULL || h->body == NULL) {
            break;
        }
        if (lws_write(wsi, (uint8_t *)h->body + LWS_PRE, h->len, LWS_WRITE_HTTP_FINAL) != (int)h->len) {
            return 1;
        }
        free(h->body);
        h->body = NULL;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (h != NULL) {
            free(h->body);
            h->body = NULL;
        }
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* lws_cancel_service() from veil_relay_stop(): on the loop thread now. */
        if (r != NULL && r->stop && r->loop != NULL) {
            ev_break(r->loop, EVBREAK_ALL);
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED: {
        /* A WebSocket that did not ask for veil.v1 lands on the default protocol. */
        static const char why[] = "subprotocol veil.v1 required";
        r->m.close_protocol++;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)why, sizeof why - 1);
        return -1;
    }
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ------------------------------------------------------------------ timers */

static void vtimer_sul_cb(lws_sorted_usec_list_t *sul)
{
    vtimer *t = lws_container_of(sul, vtimer, sul);

    t->fn(t->r);
}

static void vtimer_ev_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    vtimer *t = lws_container_of(w, vtimer, ev);

    (void)loop;
    (void)revents;
    t->fn(t->r);
}

static void vtimer_init(veil_relay *r, vtimer *t, void (*fn)(veil_relay *r))
{
    t->r = r;
    t->fn = fn;
    ev_timer_init(&t->ev, vtimer_ev_cb, 0., 0.);
}

static void vtimer_start(vtimer *t, lws_usec_t us)
{
    if (t->r->loop != NULL) {
        ev_timer_stop(t->r->loop, &t->ev);
        ev_timer_set(&t->ev, (ev_tstamp)us / 1e6, 0.);
        ev_timer_start(t->r->loop, &t->ev);
    } else {
        lws_sul_schedule(t->r->ctx, 0, &t->sul, vtimer_sul_cb, us);
    }
}

static void vtimer_stop(vtimer *t)
{
    if (t->r == NULL) {
        return;
    }
    if (t->r->loop != NULL) {
        ev_timer_stop(t->r->loop, &t->ev);
    } else {
        lws_sul_cancel(&t->sul);
    }
}

/* Closing connections check again whether their peer has gone quiet (on_writeable). */
static void close_check_cb(veil_relay *r)
{
    vconn *c;

    r->close_check_pending = 0;
    for (c = r->conns; c != NULL; c = c->next) {
        if ((c->flags & C_CLOSING) && !(c->flags & C_DEAD)) {
            c->flags &= (uint8_t)~C_WANT_WRITE;
            want_write(c);
        }
    }
}

/*
 * Idle connections: a ping after idle/2 without a frame or a pong, dropped
 * (without a close frame, SPEC.md 9.11) after idle. libwebsockets 4.1 can do
 * this itself (retry_and_idle_policy), but keeps every connection's timer in
 * one sorted list that each re-arm walks from its head: every pong cost a
 * walk over all connections, and from about 17000 connections the relay spent
 * its whole core on it (bench/relay.sh, scale). One pass over the connections
 * every idle/8 (100 ms to 1 s) costs far less. The ping is a raw control frame
 * in the connection's queue, written with the frames around it.
 */
static lws_usec_t idle_period(const veil_relay *r)
{
    lws_usec_t us = (lws_usec_t)r->cfg.idle * LWS_US_PER_SEC / 8;

    if (us < 100 * LWS_US_PER_MS) {
        return 100 * LWS_US_PER_MS;
    }
    return us > LWS_US_PER_SEC ? LWS_US_PER_SEC : us;
}

static void idle_cb(veil_relay *r)
{
    lws_usec_t now = lws_now_usecs();
    lws_usec_t ping_after = (lws_usec_t)r->cfg.idle * LWS_US_PER_SEC / 2;
    lws_usec_t drop_after = (lws_usec_t)r->cfg.idle * LWS_US_PER_SEC;
    vconn *c;

    for (c = r->conns; c != NULL; c = c->next) {
        if (c->flags & (C_DEAD | C_CLOSING) || c->wsi == NULL) {
            continue; /* closing: lws' close timeout ends it */
        }
        if (now - c->alive_us >= drop_after) {
            c->flags |= C_DEAD;
            r->m.close_idle++;
            veil_log(VEIL_LOG_INFO, "idle_timeout", "conn=%llu", (unsigned long long)c->serial);
            queue_clear(c);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (now - c->alive_us >= ping_after && !(c->flags & C_PINGED) && r->ping != NULL) {
            c->flags |= C_PINGED;
            if (c->qlen == 0) {
                ring_free(c); /* quiet: keeps no ring but the ping's own */
            }
            enqueue(c, r->ping);
        }
    }
    vtimer_start(&r->t_idle, idle_period(r));
}

/*
 * Under libev, an lws timer that fires every HEARTBEAT_MS keeps lws' own
 * timer armed no further than that ahead, so lws' internal timeouts
 * (handshake, close, the asynchronous kill of a slow or idle connection) are
 * late by at most HEARTBEAT_MS despite the re-arm problem above. Each beat
 * wakes an idle loop: 10 ms cost an idle relay 100 wake-ups a second.
 */
#define HEARTBEAT_MS 50
static void heartbeat_cb(lws_sorted_usec_list_t *sul)
{
    veil_relay *r = lws_container_of(sul, veil_relay, sul_heartbeat);

    lws_sul_schedule(r->ctx, 0, &r->sul_heartbeat, heartbeat_cb, HEARTBEAT_MS * LWS_US_PER_MS);
}

/* Nothing to do: its only purpose is to end a loop turn while shutting down. */
static void tick_cb(veil_relay *r)
{
    vtimer_start(&r->t_tick, 20 * LWS_US_PER_MS);
}

/* ------------------------------------------------------------------ lifecycle */

int veil_relay_create(veil_relay **out, const veil_relay_config *cfg)
{
    veil_relay *r;
    struct lws_context_creation_info info;
    struct stat st;
    int rc;

    *out = NULL;
    if (sodium_init() < 0) {
        return VEIL_ENOMEM;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        return VEIL_ENOMEM;
    }
    r->cfg = *cfg;
    randombytes_buf(r->hkey, sizeof r->hkey);
    r->scratch = malloc(LWS_PRE + SCRATCH_BYTES);
    if (r->scratch == NULL || vhash_init(&r->rooms, 256) != 0 || vhash_init(&r->idents, 4096) != 0) {
        veil_relay_destroy(r);
        return VEIL_ENOMEM;
    }
    rc = veil_store_open(&r->store, cfg->db, strcmp(cfg->sync, "full") == 0);
    if (rc != 0) {
        veil_log(VEIL_LOG_ERROR, "store_open_failed", "code=%d", rc);
        veil_relay_destroy(r);
        return rc;
    }
    if (veil_store_inbox_max_iid(r->store, &r->inbox_committed) != 0) {
        veil_relay_destroy(r);
        return VEIL_ESTORE;
    }
    r->inbox_pending_max = r->inbox_committed;

    /* No validity timers in lws (a hangup of 0 turns them off): idle_cb does it. */
    r->retry.secs_since_valid_ping = 0;
    r->retry.secs_since_valid_hangup = 0;
    /* One octet of payload: lws 4.1 passes no empty pong to the callback. */
    r->ping = vbuf_alloc(1);
    if (r->ping == NULL) {
        veil_relay_destroy(r);
        return VEIL_ENOMEM;
    }
    r->ping->type = VB_PING;
    r->ping->hlen = 2;
    vbuf_frame(r->ping)[-2] = 0x89; /* FIN, ping */
    vbuf_frame(r->ping)[-1] = 1;
    vbuf_frame(r->ping)[0] = 'v';

    r->protocols[0].name = "http";
    r->protocols[0].callback = cb_http;
    r->protocols[0].per_session_data_size = sizeof(vhttp);
    r->protocols[1].name = VEIL_WIRE_SUBPROTOCOL;
    r->protocols[1].callback = cb_veil;
    r->protocols[1].per_session_data_size = sizeof(vconn);
    r->protocols[1].rx_buffer_size = cfg->rx_buffer;
    r->protocols[1].tx_packet_size = SCRATCH_BYTES + 16;

    r->mounts[0].mountpoint = "/healthz";
    r->mounts[0].mountpoint_len = 8;
    r->mounts[0].protocol = "http";
    r->mounts[0].origin_protocol = LWSMPRO_CALLBACK;
    r->mounts[1].mountpoint = "/metrics";
    r->mounts[1].mountpoint_len = 8;
    r->mounts[1].protocol = "http";
    r->mounts[1].origin_protocol = LWSMPRO_CALLBACK;
    r->mounts[0].mount_next = &r->mounts[1];
    if (stat(cfg->web, &st) == 0 && S_ISDIR(st.st_mode) && realpath(cfg->web, r->web_abs) != NULL) {
        r->mounts[2].mountpoint = "/";
        r->mounts[2].mountpoint_len = 1;
        r->mounts[2].origin = r->web_abs;
        r->mounts[2].def = "index.html";
        r->mounts[2].origin_protocol = LWSMPRO_FILE;
        r->mounts[1].mount_next = &r->mounts[2];
    } else {
        veil_log(VEIL_LOG_WARN, "no_web_dir", "web=\"%s\"", cfg->web);
    }

    memset(&info, 0, sizeof info);
    info.port = (int)cfg->port;
    info.iface = cfg->host;
    info.protocols = r->protocols;
    info.mounts = &r->mounts[0];
    info.user = r;
    /*
     * libev (epoll) rather than lws' default poll(): poll() scans every
     * descriptor on each loop turn, which dominated the relay's CPU with a
     * few hundred connections (bench/relay). The loop is the relay's own
     * (a "foreign" loop to lws), so it can stop and step it. Falls back to
     * poll() if the libev plugin of libwebsockets is missing.
     */
    info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE | LWS_SERVER_OPTION_LIBEV;
    info.retry_and_idle_policy = &r->retry;
    info.timeout_secs = cfg->handshake_timeout;
    info.timeout_secs_ah_idle = cfg->handshake_timeout;
    /*
     * No fd_limit_per_thread: below the process's descriptor limit it makes
     * lws 4.1 find the connection of every socket event by a linear scan of
     * its whole table (unix-fds.c, "slow fds handling"); at the limit it
     * indexes the table by descriptor. main.c sets the soft limit to
     * max_conns plus a reserve, which bounds that table.
     */
    info.pt_serv_buf_size = 65536;
    info.count_threads = 1;
    info.vhost_name = "veil";
    r->loop = ev_loop_new(EVFLAG_AUTO);
    if (r->loop != NULL) {
        void *loops[1] = { r->loop };
        info.foreign_loops = loops;
        r->ctx = lws_create_context(&info);
        info.foreign_loops = NULL;
        if (r->ctx == NULL) {
            ev_loop_destroy(r->loop);
            r->loop = NULL;
        }
    }
    if (r->ctx == NULL) {
        veil_log(VEIL_LOG_WARN, "no_libev", "msg=\"libev event loop unavailable, using poll()\"");
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        r->ctx = lws_create_context(&info);
    }
    if (r->ctx == NULL) {
        veil_log(VEIL_LOG_ERROR, "listen_failed", "host=\"%s\" port=%u", cfg->host, cfg->port);
        veil_relay_destroy(r);
        return VEIL_EBUSY;
    }
    r->vh = lws_get_vhost_by_name(r->ctx, "veil");
    vtimer_init(r, &r->t_commit, commit_cb);
    vtimer_init(r, &r->t_sweep, sweep_cb);
    vtimer_init(r, &r->t_close, close_check_cb);
    vtimer_init(r, &r->t_tick, tick_cb);
    vtimer_init(r, &r->t_idle, idle_cb);
    vtimer_start(&r->t_idle, idle_period(r));
    vtimer_start(&r->t_sweep, LWS_US_PER_SEC);
    if (r->loop != NULL) {
        heartbeat_cb(&r->sul_heartbeat);
        ev_prepare_init(&r->commit_prep, commit_prepare_cb);
        ev_prepare_start(r->loop, &r->commit_prep);
        ev_idle_init(&r->commit_nowait, commit_nowait_cb);
        /* Lowest priority: the idle watcher only keeps the poll from blocking. */
        ev_set_priority(&r->commit_nowait, EV_MINPRI);
    }
    *out = r;
    return 0;
}

int veil_relay_port(const veil_relay *r)
{
    return r->vh != NULL ? lws_get_vhost_listen_port(r->vh) : -1;
}

void veil_relay_stop(veil_relay *r)
{
    r->stop = 1;
    if (r->ctx != NULL) {
        lws_cancel_service(r->ctx);
    }
}

/* One turn of the event loop (a 20 ms tick runs while shutting down). */
static int serve_once(veil_relay *r)
{
    if (r->loop != NULL) {
        ev_run(r->loop, EVRUN_ONCE);
        return 0;
    }
    return lws_service(r->ctx, 0);
}

int veil_relay_run(veil_relay *r)
{
    int rc = 0, n = 0;
    vconn *c;
    lws_usec_t deadline;

    if (r->loop != NULL) {
        /* Runs until the EVENT_WAIT_CANCELLED callback breaks it (veil_relay_stop). */
        if (!r->stop) {
            ev_run(r->loop, 0);
        }
    } else {
        while (!r->stop && n >= 0) {
            n = lws_service(r->ctx, 0);
        }
    }
    veil_log(VEIL_LOG_INFO, "shutdown", "connections=%llu", (unsigned long long)r->m.connections);
    r->stopping = 1;
    /* Nothing acknowledged is lost: commit what is pending before anyone is told to go. */
    rc = commit_now(r);
    vtimer_stop(&r->t_commit);
    vtimer_stop(&r->t_sweep);
    vtimer_stop(&r->t_idle);
    for (c = r->conns; c != NULL; c = c->next) {
        send_error(c, 0, VEIL_EBUSY, 0, "relay shutting down");
        begin_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "shutting down");
    }
    vtimer_start(&r->t_tick, 20 * LWS_US_PER_MS);
    deadline = lws_now_usecs() + 2 * LWS_US_PER_SEC;
    while (r->conns != NULL && lws_now_usecs() < deadline && n >= 0) {
        n = serve_once(r);
    }
    vtimer_stop(&r->t_tick);
    vtimer_stop(&r->t_close);
    if (finish_batch(r) != 0) {
        rc = VEIL_ESTORE;
    }
    return rc;
}

void veil_relay_destroy(veil_relay *r)
{
    if (r == NULL) {
        return;
    }
    if (r->ctx != NULL) {
        if (r->loop != NULL) {
            lws_sul_cancel(&r->sul_heartbeat);
        }
        lws_context_destroy(r->ctx);
        r->ctx = NULL;
    }
    if (r->loop != NULL) {
        /* lws stops its watchers on this loop during destruction; let it finish, then drop the loop. */
        ev_prepare_stop(r->loop, &r->commit_prep);
        ev_idle_stop(r->loop, &r->commit_nowait);
        ev_run(r->loop, EVRUN_NOWAIT);
        ev_loop_destroy(r->loop);
        r->loop = NULL;
    }

    /* Context destruction closed every connection (and released its rooms). */
    (void)finish_batch(r);
    veil_store_close(r->store);
    if (r->rooms.b != NULL) {
        size_t i;
        for (i = 0; i < r->rooms.n; i++) {
            vroom *x = r->rooms.b[i];
            while (x != NULL) {
                vroom *next = x->hnext;
                free(x);
                x = next;
            }
        }
    }
    free(r->rooms.b);
    free(r->idents.b);
    free(r->scratch);
    vbuf_unref(r->ping);
    free(r);
}
