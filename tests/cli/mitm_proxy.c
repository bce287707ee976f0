/* SPDX-License-Identifier: ISC */
/*
 * veil-mitm-proxy: a misbehaving relay for the end-to-end tests
 * (test_cli_mitm.c). It is a man in the middle on loopback between `veil`
 * processes and a real veil-relay: a TCP proxy that passes the WebSocket
 * handshake through unchanged, then parses the WebSocket frames of both
 * directions itself (RFC 6455; client frames are masked), decodes every
 * relay frame (SPEC.md 9.2, with the project's own codec) and, on command,
 * misbehaves the way a malicious relay can: it withholds, duplicates,
 * reorders and alters DELIVER frames (live and catch-up alike), stores
 * envelopes of its own making (a PUBLISH it slips into a member's
 * connection, so the real relay numbers and stores it and every member
 * receives it, catch-up included), posts to inboxes, lies about presence
 * and about a room's head.
 *
 * Usage: veil-mitm-proxy RELAY_PORT. It listens on a free loopback port and
 * prints "port N". Then it reads one command per line on stdin and answers
 * each with one line on stdout, "ok ..." or "err ...":
 *
 *   capture IK ROOM|* N steal|copy [hold] [by PIK]
 *        the next N DELIVERs to identity IK (of room ROOM, or any; of
 *        envelopes that identity PIK published, or anyone's) become
 *        slots (numbered from 0 in capture order). steal: not forwarded;
 *        copy: forwarded too. hold: from the first stolen one on, every
 *        other frame to that identity waits for `release` (so a catch-up's
 *        CAUGHT_UP cannot overtake what the test re-emits).
 *   pubcap IK N [to TIK | room ROOM]
 *        the next N PUBLISH / INBOX_POST envelopes IK sends (only INBOX_POSTs
 *        to TIK, only PUBLISHes in ROOM) become slots; they are forwarded.
 *   wait N                answers when N slots exist (20 s at most)
 *   slot K                "ok seq S len L room HEX cmid HEX"
 *   emit K [seq S] [cmid HEX|rand] [env K2] [from K2] [flip OFF] [to IK]
 *        sends slot K as a DELIVER to the identity it was captured for (or
 *        IK), with the changes asked: another seq, cmid, the envelope of
 *        slot K2 (from: its envelope and cmid), one octet of the envelope
 *        inverted (OFF < 0 counts from the end). Answers "ok SEQ".
 *   release IK            ends the capture rules of IK; what was held is sent, in order
 *   inject VIK ROOM ENV   PUBLISH ENV into ROOM on VIK's connection with a random cmid; the
 *                         relay's ACK is turned into the DELIVER every other member gets.
 *                         Answers "ok SEQ".
 *   inbox VIK TO ENV      INBOX_POST ENV to TO's inbox on VIK's connection. Answers "ok IID".
 *   presence IK ROOM TAG on|off   a PRESENCE push to IK
 *   rollback IK ROOM K    the next JOINED of ROOM to IK says head - K
 *   quit
 *
 * ENV is one of: slot K [flip OFF] | random LEN | pairwise SENDER_IK LEN
 * (a well-formed pairwise envelope of SENDER_IK without an X3DH header: a
 * version-1 Double Ratchet message of random nonce, header and body) | forge K TEXT... (a
 * well-formed group message for the group and epoch of slot K's envelope,
 * under a sending chain of the proxy's own, carrying a TEXT payload).
 *
 * Identities, rooms, tags and cmids are hex. Diagnostics go to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <sodium.h>

#include "veil_group.h"
#include "veil_payload.h"
#include "veil_rng.h"
#include "veil_wire.h"

#define MAX_CONNS 64
#define MAX_SLOTS 256
#define MAX_RULES 16
#define MAX_ROOMS 32
#define INJECT_ID_BASE 0xF0000000U

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

typedef struct conn {
    bool used, dead;
    int cfd, rfd;
    unsigned serial;
    buf cin, rin;   /* unparsed input from the client, from the relay */
    buf cout, rout; /* pending output to the client, to the relay */
    bool c_hs, r_hs; /* handshake passed, each direction */
    buf cmsg, rmsg;  /* messages being reassembled */
    bool cmsg_on, rmsg_on;
    buf defer;       /* frames of ours for the relay, waiting for the end of a client message */
    bool has_ik;
    uint8_t ik[32];
    uint8_t rooms[MAX_ROOMS][32];
    int nrooms;
    bool holding;
    buf *held;
    size_t nheld, capheld;
} conn;

typedef struct slot {
    uint8_t ik[32];   /* whose delivery it was (or who published it) */
    uint8_t room[32]; /* zero for an inbox post */
    uint8_t cmid[16];
    uint64_t seq;
    uint8_t *env;
    size_t len;
} slot;

typedef enum { R_DELIVER, R_PUB, R_ROLLBACK } rule_kind;

typedef struct rule {
    bool used;
    rule_kind kind;
    uint8_t ik[32];
    uint8_t room[32];
    bool any_room, steal, hold, by_set, to_set;
    uint8_t to[32]; /* pubcap: only INBOX_POSTs to this identity */
    uint8_t by[32]; /* only envelopes published by this identity */
    uint64_t left; /* deliveries to capture; for rollback, the amount */
} rule;

/* The command waiting for something to happen, if any. */
typedef enum { P_NONE, P_WAIT, P_INJECT } pend_kind;

static conn g_conns[MAX_CONNS];
static unsigned g_serial;
static slot g_slots[MAX_SLOTS];
static size_t g_nslots;
static rule g_rules[MAX_RULES];
static struct {
    pend_kind kind;
    size_t want;
    int64_t deadline;
    uint32_t id;
    unsigned serial;
    uint8_t room[32], cmid[16];
    uint8_t *env;
    size_t len;
} g_pend;
static uint32_t g_next_inject;
/* Who published which cmid (the relay knows the connection of every PUBLISH). */
#define MAX_PUBS 4096
static struct {
    uint8_t cmid[16], ik[32];
} g_pubs[MAX_PUBS];
static size_t g_npubs;

static const uint8_t *publisher(const uint8_t cmid[16])
{
    size_t i, n = g_npubs < MAX_PUBS ? g_npubs : MAX_PUBS;

    for (i = 0; i < n; i++) {
        if (memcmp(g_pubs[i].cmid, cmid, 16) == 0) {
            return g_pubs[i].ik;
        }
    }
    return NULL;
}
static int g_relay_port;
static veil_rng g_rng = {veil_rng_system, NULL};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("veil-mitm-proxy: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void reply(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- buffers ---- */

static void buf_add(buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            die("out of memory");
        }
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->n, p, n);
    }
    b->n += n;
}

static void buf_eat(buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
}

static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- hex ---- */

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    size_t bin_len;

    return s != NULL && strlen(s) == 2 * n && sodium_hex2bin(out, n, s, 2 * n, NULL, &bin_len, NULL) == 0 &&
           bin_len == n;
}

static const char *hex(const uint8_t *p, size_t n)
{
    static char out[2][2 * 64 + 1];
    static int k;

    k ^= 1;
    sodium_bin2hex(out[k], sizeof out[k], p, n > 64 ? 64 : n);
    return out[k];
}

/* ---- WebSocket frames (RFC 6455 5.2) ---- */

typedef struct wsf {
    bool fin, masked;
    uint8_t op;
    uint8_t mask[4];
    size_t hdr;
    uint64_t len;
} wsf;

/* Parses a frame header; returns the frame's whole length, or 0 if more octets are needed. */
static size_t ws_header(const uint8_t *p, size_t n, wsf *f)
{
    size_t h = 2;
    uint64_t len;

    if (n < 2) {
        return 0;
    }
    f->fin = (p[0] & 0x80) != 0;
    f->op = p[0] & 0x0f;
    f->masked = (p[1] & 0x80) != 0;
    len = p[1] & 0x7f;
    if (len == 126) {
        if (n < 4) {
            return 0;
        }
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        int i;
        if (n < 10) {
            return 0;
        }
        len = 0;
        for (i = 0; i < 8; i++) {
            len = (len << 8) | p[2 + i];
        }
        h = 10;
    }
    if (f->masked) {
        if (n < h + 4) {
            return 0;
        }
        memcpy(f->mask, p + h, 4);
        h += 4;
    }
    if (len > (uint64_t)VEIL_WIRE_FRAME_MAX_BYTES * 2U) {
        die("a WebSocket frame of %llu octets", (unsigned long long)len);
    }
    f->hdr = h;
    f->len = len;
    if (n < h + (size_t)len) {
        return 0;
    }
    return h + (size_t)len;
}

/* Appends one frame with opcode op (FIN unless a fragment); masked for the relay's direction. */
static void ws_frame(buf *out, uint8_t op, bool fin, const uint8_t *p, size_t n, bool mask)
{
    uint8_t h[14];
    size_t hl = 2, i;
    uint8_t key[4];

    h[0] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        h[1] = (uint8_t)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (i = 0; i < 8; i++) {
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        }
        hl = 10;
    }
    if (mask) {
        h[1] |= 0x80;
        randombytes_buf(key, sizeof key);
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    buf_add(out, h, hl);
    if (mask) {
        size_t at = out->n;
        buf_add(out, p, n);
        for (i = 0; i < n; i++) {
            out->p[at + i] ^= key[i & 3];
        }
    } else {
        buf_add(out, p, n);
    }
}

static void ws_write(buf *out, uint8_t op, const uint8_t *p, size_t n, bool mask)
{
    ws_frame(out, op, true, p, n, mask);
}

/* ---- connections ---- */

static conn *conn_of(const uint8_t ik[32], const uint8_t *room)
{
    conn *best = NULL;
    size_t i;
    int k;

    for (i = 0; i < MAX_CONNS; i++) {
        conn *c = &g_conns[i];
        bool in_room = room == NULL;
        if (!c->used || c->dead || !c->has_ik || memcmp(c->ik, ik, 32) != 0) {
            continue;
        }
        for (k = 0; k < c->nrooms && !in_room; k++) {
            in_room = memcmp(c->rooms[k], room, 32) == 0;
        }
        if (in_room && (best == NULL || c->serial > best->serial)) {
            best = c;
        }
    }
    return best;
}

/* A frame to the client: through the hold queue when the connection holds. */
static void to_client(conn *c, const uint8_t *p, size_t n, bool bypass)
{
    if (c->holding && !bypass) {
        if (c->nheld == c->capheld) {
            c->capheld = c->capheld ? c->capheld * 2 : 16;
            c->held = realloc(c->held, c->capheld * sizeof *c->held);
            if (c->held == NULL) {
                die("out of memory");
            }
        }
        memset(&c->held[c->nheld], 0, sizeof c->held[c->nheld]);
        buf_add(&c->held[c->nheld++], p, n);
        return;
    }
    ws_write(&c->cout, 2, p, n, false);
}

static void send_frame(conn *c, const veil_frame *f, bool bypass)
{
    static uint8_t out[VEIL_WIRE_FRAME_MAX_BYTES];
    size_t n;

    if (veil_wire_encode(f, out, sizeof out, &n) != 0) {
        die("cannot encode a frame of type 0x%02x", f->type);
    }
    to_client(c, out, n, bypass);
}

/* A frame of ours for the relay, on c's connection, between two of the client's messages. */
static void to_relay(conn *c, const veil_frame *f)
{
    static uint8_t out[VEIL_WIRE_FRAME_MAX_BYTES];
    size_t n;

    if (veil_wire_encode(f, out, sizeof out, &n) != 0) {
        die("cannot encode a request of type 0x%02x", f->type);
    }
    ws_write(c->cmsg_on ? &c->defer : &c->rout, 2, out, n, true);
}

static void conn_close(conn *c)
{
    size_t i;

    if (c->cfd >= 0) {
        /* What is still pending for the client is lost with the connection: a relay may do that. */
        close(c->cfd);
    }
    if (c->rfd >= 0) {
        close(c->rfd);
    }
    buf_free(&c->cin);
    buf_free(&c->rin);
    buf_free(&c->cout);
    buf_free(&c->rout);
    buf_free(&c->cmsg);
    buf_free(&c->rmsg);
    buf_free(&c->defer);
    for (i = 0; i < c->nheld; i++) {
        buf_free(&c->held[i]);
    }
    free(c->held);
    memset(c, 0, sizeof *c);
}

/* ---- slots ---- */

static slot *slot_new(const uint8_t ik[32], const uint8_t *room, const uint8_t *cmid, uint64_t seq,
                      const uint8_t *env, size_t len)
{
    slot *s;

    if (g_nslots == MAX_SLOTS) {
        die("too many slots");
    }
    s = &g_slots[g_nslots++];
    memset(s, 0, sizeof *s);
    memcpy(s->ik, ik, 32);
    if (room != NULL) {
        memcpy(s->room, room, 32);
    }
    if (cmid != NULL) {
        memcpy(s->cmid, cmid, 16);
    }
    s->seq = seq;
    s->env = malloc(len);
    if (s->env == NULL) {
        die("out of memory");
    }
    memcpy(s->env, env, len);
    s->len = len;
    return s;
}

/* ---- the relay's frames ---- */

static void from_relay(conn *c, const uint8_t *msg, size_t len)
{
    veil_frame f;
    size_t i;

    if (veil_wire_decode(&f, msg, len, NULL) != 0) {
        to_client(c, msg, len, false);
        return;
    }
    /* The answer to a request of ours. */
    if (f.id >= INJECT_ID_BASE && (f.type == VEIL_FT_ACK || f.type == VEIL_FT_ERROR || f.type == VEIL_FT_INBOX_POSTED)) {
        if (g_pend.kind == P_INJECT && f.id == g_pend.id) {
            if (f.type == VEIL_FT_ACK) {
                veil_frame d;
                /* The publishing connection gets no DELIVER of its own envelope from the relay (9.7):
                 * the relay we play gives it one, as it does to every other member. */
                memset(&d, 0, sizeof d);
                d.type = VEIL_FT_DELIVER;
                veil_wire_set_bin(&d, VEIL_WF_ROOM, g_pend.room, 32);
                veil_wire_set_uint(&d, VEIL_WF_SEQ, f.seq);
                veil_wire_set_bin(&d, VEIL_WF_CMID, g_pend.cmid, 16);
                veil_wire_set_bin(&d, VEIL_WF_ENV, g_pend.env, g_pend.len);
                send_frame(c, &d, false);
                reply("ok %llu", (unsigned long long)f.seq);
            } else if (f.type == VEIL_FT_INBOX_POSTED) {
                reply("ok %llu", (unsigned long long)f.iid);
            } else {
                reply("err relay error %lld", (long long)f.code);
            }
            free(g_pend.env);
            g_pend.env = NULL;
            g_pend.kind = P_NONE;
        }
        return;
    }
    if (f.type == VEIL_FT_DELIVER && c->has_ik) {
        for (i = 0; i < MAX_RULES; i++) {
            rule *r = &g_rules[i];
            if (!r->used || r->kind != R_DELIVER || r->left == 0 || memcmp(r->ik, c->ik, 32) != 0 ||
                (!r->any_room && memcmp(r->room, f.room.p, 32) != 0)) {
                continue;
            }
            if (r->by_set) {
                const uint8_t *pub = publisher(f.cmid.p);
                if (pub == NULL || memcmp(pub, r->by, 32) != 0) {
                    continue;
                }
            }
            (void)slot_new(c->ik, f.room.p, f.cmid.p, f.seq, f.env.p, f.env.len);
            r->left--;
            if (!r->steal) {
                break;
            }
            if (r->hold) {
                c->holding = true;
            }
            return;
        }
    }
    if (f.type == VEIL_FT_JOINED && c->has_ik) {
        for (i = 0; i < MAX_RULES; i++) {
            rule *r = &g_rules[i];
            if (r->used && r->kind == R_ROLLBACK && memcmp(r->ik, c->ik, 32) == 0 &&
                memcmp(r->room, f.room.p, 32) == 0) {
                veil_frame j = f;
                j.head = f.head >= r->left ? f.head - r->left : 0;
                if (j.first > j.head + 1U) {
                    j.first = j.head + 1U;
                }
                r->used = false;
                send_frame(c, &j, false);
                return;
            }
        }
    }
    to_client(c, msg, len, false);
}

/* ---- the client's frames: read to learn who it is and where it is, forwarded as they were ---- */

static void from_client(conn *c, const uint8_t *msg, size_t len)
{
    veil_frame f;
    size_t i;

    if (veil_wire_decode(&f, msg, len, NULL) != 0) {
        return;
    }
    if (f.type == VEIL_FT_AUTH) {
        memcpy(c->ik, f.ik.p, 32);
        c->has_ik = true;
    } else if (f.type == VEIL_FT_JOIN && c->nrooms < MAX_ROOMS) {
        memcpy(c->rooms[c->nrooms++], f.room.p, 32);
    }
    if (f.type == VEIL_FT_PUBLISH && c->has_ik) {
        memcpy(g_pubs[g_npubs % MAX_PUBS].cmid, f.cmid.p, 16);
        memcpy(g_pubs[g_npubs % MAX_PUBS].ik, c->ik, 32);
        g_npubs++;
    }
    if ((f.type == VEIL_FT_PUBLISH || f.type == VEIL_FT_INBOX_POST) && c->has_ik) {
        for (i = 0; i < MAX_RULES; i++) {
            rule *r = &g_rules[i];
            if (r->used && r->kind == R_PUB && r->left > 0 && memcmp(r->ik, c->ik, 32) == 0 &&
                (!r->to_set || (f.type == VEIL_FT_INBOX_POST && memcmp(r->to, f.to.p, 32) == 0)) &&
                (r->any_room || (f.type == VEIL_FT_PUBLISH && memcmp(r->room, f.room.p, 32) == 0))) {
                (void)slot_new(c->ik, f.type == VEIL_FT_PUBLISH ? f.room.p : NULL,
                               f.type == VEIL_FT_PUBLISH ? f.cmid.p : NULL, 0, f.env.p, f.env.len);
                r->left--;
                break;
            }
        }
    }
}

/* Parses what arrived from one side; returns false when the connection must end. */
static bool pump_in(conn *c, bool client_side)
{
    buf *in = client_side ? &c->cin : &c->rin;
    buf *out = client_side ? &c->rout : &c->cout;
    buf *msg = client_side ? &c->cmsg : &c->rmsg;
    bool *on = client_side ? &c->cmsg_on : &c->rmsg_on;
    bool *hs = client_side ? &c->c_hs : &c->r_hs;

    if (!*hs) {
        uint8_t *end = memmem(in->p, in->n, "\r\n\r\n", 4);
        size_t n;
        if (end == NULL) {
            return in->n < 65536;
        }
        n = (size_t)(end - in->p) + 4;
        buf_add(out, in->p, n);
        buf_eat(in, n);
        *hs = true;
    }
    for (;;) {
        wsf f;
        size_t total = ws_header(in->p, in->n, &f), i;
        uint8_t *payload;

        if (total == 0) {
            return true;
        }
        payload = in->p + f.hdr;
        if (f.masked) {
            for (i = 0; i < f.len; i++) {
                payload[i] ^= f.mask[i & 3];
            }
        }
        if (f.op >= 8) {
            /* Control frames (close, ping, pong) pass as they are, at once. */
            ws_write(out, f.op, payload, (size_t)f.len, client_side);
        } else if (client_side) {
            /* The client's data frames are forwarded frame by frame; the message is read as well. */
            ws_frame(out, f.op, f.fin, payload, (size_t)f.len, true);
            if (f.op != 0) {
                msg->n = 0;
            }
            buf_add(msg, payload, (size_t)f.len);
            *on = !f.fin;
            if (f.fin) {
                from_client(c, msg->p, msg->n);
                msg->n = 0;
                if (c->defer.n > 0) {
                    buf_add(&c->rout, c->defer.p, c->defer.n);
                    c->defer.n = 0;
                }
            }
        } else {
            /* The relay's messages are reassembled, judged, and sent on whole. */
            if (f.op != 0) {
                msg->n = 0;
            }
            buf_add(msg, payload, (size_t)f.len);
            *on = !f.fin;
            if (f.fin) {
                from_relay(c, msg->p, msg->n);
                msg->n = 0;
            }
        }
        buf_eat(in, total);
    }
}

static bool flush(int fd, buf *b)
{
    while (b->n > 0) {
        ssize_t w = send(fd, b->p, b->n, MSG_NOSIGNAL);
        if (w < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        buf_eat(b, (size_t)w);
    }
    return true;
}

static void accept_one(int lfd)
{
    struct sockaddr_in sa;
    int cfd = accept(lfd, NULL, NULL), rfd, one = 1;
    size_t i;
    conn *c = NULL;

    if (cfd < 0) {
        return;
    }
    for (i = 0; i < MAX_CONNS; i++) {
        if (!g_conns[i].used) {
            c = &g_conns[i];
            break;
        }
    }
    rfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g_relay_port);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    if (c == NULL || rfd < 0 || connect(rfd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        /* No relay behind us (it was killed): the client sees a refused connection, as it would. */
        close(cfd);
        if (rfd >= 0) {
            close(rfd);
        }
        return;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(rfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
    fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
    memset(c, 0, sizeof *c);
    c->used = true;
    c->cfd = cfd;
    c->rfd = rfd;
    c->serial = ++g_serial;
}

/* ---- commands ---- */

static char *next_tok(char **s)
{
    return strtok_r(NULL, " \t", s);
}

static conn *need_conn(const uint8_t ik[32], const uint8_t *room)
{
    conn *c = conn_of(ik, room);

    if (c == NULL) {
        reply("err no connection of %s%s%s", hex(ik, 32), room ? " in room " : "", room ? hex(room, 32) : "");
    }
    return c;
}

/* Builds an envelope from the words that follow; returns false (and answers) on an error. */
static bool make_env(char **save, uint8_t **env, size_t *len)
{
    char *w = next_tok(save), *a;

    if (w == NULL) {
        reply("err no envelope");
        return false;
    }
    if (strcmp(w, "slot") == 0) {
        a = next_tok(save);
        if (a == NULL || (size_t)atoi(a) >= g_nslots) {
            reply("err no such slot");
            return false;
        }
        *len = g_slots[atoi(a)].len;
        *env = malloc(*len);
        memcpy(*env, g_slots[atoi(a)].env, *len);
        while ((a = next_tok(save)) != NULL) {
            if (strcmp(a, "flip") == 0 && (a = next_tok(save)) != NULL) {
                long off = atol(a);
                size_t at = off < 0 ? *len - (size_t)(-off) : (size_t)off;
                if (at >= *len) {
                    reply("err flip outside the envelope");
                    free(*env);
                    return false;
                }
                (*env)[at] ^= 0xff;
            }
        }
        return true;
    }
    if (strcmp(w, "random") == 0 && (a = next_tok(save)) != NULL) {
        *len = (size_t)atol(a);
        *env = malloc(*len);
        randombytes_buf(*env, *len);
        return true;
    }
    if (strcmp(w, "pairwise") == 0) {
        uint8_t ik[32];
        a = next_tok(save);
        if (!unhex(a, ik, 32) || (a = next_tok(save)) == NULL || (size_t)atol(a) < VEIL_ENV_PAIRWISE_FIXED_BYTES) {
            reply("err pairwise IK LEN");
            return false;
        }
        *len = (size_t)atol(a);
        *env = malloc(*len);
        randombytes_buf(*env, *len);
        (*env)[0] = VEIL_ENV_VERSION;
        (*env)[1] = VEIL_ENV_PAIRWISE;
        memcpy(*env + 2, ik, 32);
        (*env)[34] = 0; /* no X3DH header: a message of an established session */
        if (*len > VEIL_ENV_PAIRWISE_FIXED_BYTES) {
            (*env)[VEIL_ENV_PAIRWISE_FIXED_BYTES] = 1; /* the Double Ratchet message's version (6.4) */
        }
        return true;
    }
    if (strcmp(w, "forge") == 0) {
        static veil_sender_key sk;
        veil_group_header h;
        veil_payload p;
        uint8_t pt[VEIL_PAYLOAD_MAX_BYTES];
        size_t pt_len, n;
        const slot *s;
        char *text;
        a = next_tok(save);
        text = *save;
        if (a == NULL || (size_t)atoi(a) >= g_nslots || text == NULL || *text == '\0') {
            reply("err forge SLOT TEXT");
            return false;
        }
        s = &g_slots[atoi(a)];
        if (s->len < 2 || s->env[1] != VEIL_ENV_GROUP || veil_group_peek(&h, s->env + 2, s->len - 2) != 0) {
            reply("err slot %s is no group envelope", a);
            return false;
        }
        /* The relay's own member: a chain for the group's id and epoch that no member handed out. */
        veil_sender_key_create(&sk, h.group_id, h.epoch, &g_rng);
        memset(&p, 0, sizeof p);
        p.kind = VEIL_PK_TEXT;
        p.present = VEIL_PF_ID | VEIL_PF_N | VEIL_PF_TS | VEIL_PF_BODY;
        randombytes_buf(p.id, sizeof p.id);
        p.n = 1;
        p.ts = (uint64_t)time(NULL) * 1000U;
        p.body = (const uint8_t *)text;
        p.body_len = strlen(text);
        if (veil_payload_encode(&p, pt, sizeof pt, &pt_len) != 0) {
            reply("err payload");
            return false;
        }
        *env = malloc(VEIL_ENV_MAX_BYTES);
        (*env)[0] = VEIL_ENV_VERSION;
        (*env)[1] = VEIL_ENV_GROUP;
        if (veil_group_encrypt(&sk, *env + 2, VEIL_ENV_MAX_BYTES - 2, &n, pt, pt_len, &g_rng) != 0) {
            reply("err group encrypt");
            free(*env);
            return false;
        }
        *len = n + 2;
        return true;
    }
    reply("err unknown envelope %s", w);
    return false;
}

static void command(char *line)
{
    char *save = NULL, *cmd = strtok_r(line, " \t", &save), *a;
    uint8_t ik[32], room[32];
    size_t i;

    if (cmd == NULL) {
        reply("err empty");
        return;
    }
    if (strcmp(cmd, "capture") == 0 || strcmp(cmd, "pubcap") == 0 || strcmp(cmd, "rollback") == 0) {
        rule r;
        memset(&r, 0, sizeof r);
        r.used = true;
        r.any_room = cmd[0] == 'p'; /* pubcap: any room unless one is named */
        r.kind = cmd[0] == 'c' ? R_DELIVER : cmd[0] == 'p' ? R_PUB : R_ROLLBACK;
        if (!unhex(next_tok(&save), r.ik, 32)) {
            reply("err identity");
            return;
        }
        if (r.kind != R_PUB) {
            a = next_tok(&save);
            if (a != NULL && strcmp(a, "*") == 0 && r.kind == R_DELIVER) {
                r.any_room = true;
            } else if (!unhex(a, r.room, 32)) {
                reply("err room");
                return;
            }
        }
        a = next_tok(&save);
        if (a == NULL || atol(a) <= 0) {
            reply("err count");
            return;
        }
        r.left = (uint64_t)atol(a);
        while ((a = next_tok(&save)) != NULL) {
            r.steal |= strcmp(a, "steal") == 0;
            r.hold |= strcmp(a, "hold") == 0;
            if (strcmp(a, "to") == 0 || strcmp(a, "room") == 0) {
                if (r.kind != R_PUB || !unhex(next_tok(&save), a[0] == 't' ? r.to : r.room, 32)) {
                    reply("err pubcap ... to IK | room ROOM");
                    return;
                }
                r.to_set |= a[0] == 't';
                r.any_room = a[0] == 't';
                continue;
            }
            if (strcmp(a, "by") == 0) {
                if (!unhex(next_tok(&save), r.by, 32)) {
                    reply("err by IK");
                    return;
                }
                r.by_set = true;
            }
        }
        for (i = 0; i < MAX_RULES; i++) {
            if (!g_rules[i].used) {
                g_rules[i] = r;
                reply("ok %zu", g_nslots);
                return;
            }
        }
        reply("err too many rules");
    } else if (strcmp(cmd, "wait") == 0) {
        a = next_tok(&save);
        g_pend.kind = P_WAIT;
        g_pend.want = a != NULL ? (size_t)atol(a) : 0;
        g_pend.deadline = now_ms() + 20000;
    } else if (strcmp(cmd, "slot") == 0) {
        const slot *s;
        a = next_tok(&save);
        if (a == NULL || (size_t)atoi(a) >= g_nslots) {
            reply("err no such slot");
            return;
        }
        s = &g_slots[atoi(a)];
        reply("ok seq %llu len %zu room %s cmid %s", (unsigned long long)s->seq, s->len, hex(s->room, 32),
              hex(s->cmid, 16));
    } else if (strcmp(cmd, "emit") == 0) {
        const slot *s;
        veil_frame d;
        uint8_t cmid[16], *env;
        uint64_t seq;
        size_t len;
        conn *c;
        const uint8_t *to;
        a = next_tok(&save);
        if (a == NULL || (size_t)atoi(a) >= g_nslots) {
            reply("err no such slot");
            return;
        }
        s = &g_slots[atoi(a)];
        to = s->ik;
        seq = s->seq;
        memcpy(cmid, s->cmid, 16);
        len = s->len;
        env = malloc(len);
        memcpy(env, s->env, len);
        while ((a = next_tok(&save)) != NULL) {
            char *v = next_tok(&save);
            if (v == NULL) {
                break;
            }
            if (strcmp(a, "seq") == 0) {
                seq = (uint64_t)atoll(v);
            } else if (strcmp(a, "cmid") == 0) {
                if (strcmp(v, "rand") == 0) {
                    randombytes_buf(cmid, sizeof cmid);
                } else if (!unhex(v, cmid, 16)) {
                    break;
                }
            } else if (strcmp(a, "from") == 0 && (size_t)atoi(v) < g_nslots) {
                const slot *o = &g_slots[atoi(v)];
                free(env);
                len = o->len;
                env = malloc(len);
                memcpy(env, o->env, len);
                memcpy(cmid, o->cmid, 16);
            } else if (strcmp(a, "env") == 0 && (size_t)atoi(v) < g_nslots) {
                const slot *o = &g_slots[atoi(v)];
                free(env);
                len = o->len;
                env = malloc(len);
                memcpy(env, o->env, len);
            } else if (strcmp(a, "flip") == 0) {
                long off = atol(v);
                size_t at = off < 0 ? len - (size_t)(-off) : (size_t)off;
                if (at < len) {
                    env[at] ^= 0xff;
                }
            } else if (strcmp(a, "to") == 0 && unhex(v, ik, 32)) {
                to = ik;
            }
        }
        if ((c = need_conn(to, s->room)) == NULL) {
            free(env);
            return;
        }
        memset(&d, 0, sizeof d);
        d.type = VEIL_FT_DELIVER;
        veil_wire_set_bin(&d, VEIL_WF_ROOM, s->room, 32);
        veil_wire_set_uint(&d, VEIL_WF_SEQ, seq);
        veil_wire_set_bin(&d, VEIL_WF_CMID, cmid, 16);
        veil_wire_set_bin(&d, VEIL_WF_ENV, env, len);
        send_frame(c, &d, true);
        free(env);
        reply("ok %llu", (unsigned long long)seq);
    } else if (strcmp(cmd, "release") == 0) {
        if (!unhex(next_tok(&save), ik, 32)) {
            reply("err identity");
            return;
        }
        for (i = 0; i < MAX_RULES; i++) {
            if (g_rules[i].used && g_rules[i].kind != R_ROLLBACK && memcmp(g_rules[i].ik, ik, 32) == 0) {
                g_rules[i].used = false;
            }
        }
        for (i = 0; i < MAX_CONNS; i++) {
            conn *c = &g_conns[i];
            size_t k;
            if (!c->used || !c->has_ik || memcmp(c->ik, ik, 32) != 0) {
                continue;
            }
            c->holding = false;
            for (k = 0; k < c->nheld; k++) {
                ws_write(&c->cout, 2, c->held[k].p, c->held[k].n, false);
                buf_free(&c->held[k]);
            }
            c->nheld = 0;
        }
        reply("ok");
    } else if (strcmp(cmd, "inject") == 0 || strcmp(cmd, "inbox") == 0) {
        bool pub = cmd[1] == 'n' && cmd[2] == 'j';
        uint8_t to[32];
        veil_frame f;
        conn *c;
        if (!unhex(next_tok(&save), ik, 32)) {
            reply("err identity");
            return;
        }
        if (!unhex(next_tok(&save), pub ? room : to, 32)) {
            reply("err %s", pub ? "room" : "recipient");
            return;
        }
        if ((c = need_conn(ik, pub ? room : NULL)) == NULL) {
            return;
        }
        if (!make_env(&save, &g_pend.env, &g_pend.len)) {
            return;
        }
        memset(&f, 0, sizeof f);
        g_pend.kind = P_INJECT;
        g_pend.id = f.id = INJECT_ID_BASE + g_next_inject++;
        g_pend.serial = c->serial;
        if (pub) {
            memcpy(g_pend.room, room, 32);
            randombytes_buf(g_pend.cmid, sizeof g_pend.cmid);
            f.type = VEIL_FT_PUBLISH;
            veil_wire_set_bin(&f, VEIL_WF_ROOM, room, 32);
            veil_wire_set_bin(&f, VEIL_WF_CMID, g_pend.cmid, 16);
        } else {
            f.type = VEIL_FT_INBOX_POST;
            veil_wire_set_bin(&f, VEIL_WF_TO, to, 32);
        }
        veil_wire_set_bin(&f, VEIL_WF_ENV, g_pend.env, g_pend.len);
        g_pend.deadline = now_ms() + 20000;
        to_relay(c, &f);
    } else if (strcmp(cmd, "presence") == 0) {
        uint8_t tag[32];
        size_t tl;
        veil_frame f;
        conn *c;
        if (!unhex(next_tok(&save), ik, 32) || !unhex(next_tok(&save), room, 32)) {
            reply("err presence IK ROOM TAG on|off");
            return;
        }
        a = next_tok(&save);
        tl = a != NULL ? strlen(a) / 2 : 0;
        if (tl == 0 || tl > 32 || !unhex(a, tag, tl) || (a = next_tok(&save)) == NULL) {
            reply("err tag");
            return;
        }
        if ((c = need_conn(ik, room)) == NULL) {
            return;
        }
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_PRESENCE;
        veil_wire_set_bin(&f, VEIL_WF_ROOM, room, 32);
        veil_wire_set_bin(&f, VEIL_WF_TAG, tag, tl);
        veil_wire_set_bool(&f, VEIL_WF_ON, strcmp(a, "on") == 0);
        send_frame(c, &f, true);
        reply("ok");
    } else if (strcmp(cmd, "quit") == 0) {
        reply("ok");
        exit(0);
    } else {
        reply("err unknown command %s", cmd);
    }
}

static void check_pending(void)
{
    if (g_pend.kind == P_WAIT) {
        if (g_nslots >= g_pend.want) {
            g_pend.kind = P_NONE;
            reply("ok %zu", g_nslots);
        } else if (now_ms() > g_pend.deadline) {
            g_pend.kind = P_NONE;
            reply("err timeout with %zu slots", g_nslots);
        }
    } else if (g_pend.kind == P_INJECT && now_ms() > g_pend.deadline) {
        g_pend.kind = P_NONE;
        free(g_pend.env);
        g_pend.env = NULL;
        reply("err timeout waiting for the relay's answer");
    }
}

/* Runs the complete lines of b, one at a time: a command that waits for something holds the next. */
static void run_commands(buf *b)
{
    uint8_t *nl;

    while (g_pend.kind == P_NONE && b->n > 0 && (nl = memchr(b->p, '\n', b->n)) != NULL) {
        size_t len = (size_t)(nl - b->p);
        char *line = malloc(len + 1);
        if (line == NULL) {
            die("out of memory");
        }
        memcpy(line, b->p, len);
        line[len] = '\0';
        buf_eat(b, len + 1);
        command(line);
        free(line);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int lfd, one = 1;
    buf cmdbuf = {0};

    if (argc != 2 || (g_relay_port = atoi(argv[1])) <= 0) {
        fprintf(stderr, "usage: %s RELAY_PORT\n", argv[0]);
        return 2;
    }
    if (sodium_init() < 0) {
        die("sodium_init");
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(0x7f000001);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        die("cannot listen: %s", strerror(errno));
    }
    reply("port %d", ntohs(sa.sin_port));
    for (;;) {
        struct pollfd fds[2 + 2 * MAX_CONNS];
        conn *who[2 + 2 * MAX_CONNS];
        nfds_t n = 0, k;
        size_t i;

        fds[n].fd = 0;
        fds[n].events = POLLIN;
        who[n++] = NULL;
        fds[n].fd = lfd;
        fds[n].events = POLLIN;
        who[n++] = NULL;
        for (i = 0; i < MAX_CONNS; i++) {
            conn *c = &g_conns[i];
            if (!c->used) {
                continue;
            }
            fds[n].fd = c->cfd;
            fds[n].events = (short)(POLLIN | (c->cout.n > 0 ? POLLOUT : 0));
            who[n++] = c;
            fds[n].fd = c->rfd;
            fds[n].events = (short)(POLLIN | (c->rout.n > 0 ? POLLOUT : 0));
            who[n++] = c;
        }
        if (poll(fds, n, 50) < 0 && errno != EINTR) {
            die("poll: %s", strerror(errno));
        }
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char tmp[4096];
            ssize_t r = read(0, tmp, sizeof tmp);
            if (r <= 0) {
                return 0; /* the test is gone */
            }
            buf_add(&cmdbuf, tmp, (size_t)r);
            run_commands(&cmdbuf);
        }
        if (fds[1].revents & POLLIN) {
            accept_one(lfd);
        }
        for (k = 2; k < n; k++) {
            conn *c = who[k];
            bool client_side = fds[k].fd == c->cfd;
            if (!c->used || c->dead) {
                continue;
            }
            if (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                uint8_t tmp[65536];
                ssize_t r = recv(fds[k].fd, tmp, sizeof tmp, 0);
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                        continue;
                    }
                    /* One side closed: pass on what is pending for the other, then close it too. */
                    (void)flush(client_side ? c->rfd : c->cfd, client_side ? &c->rout : &c->cout);
                    c->dead = true;
                    continue;
                }
                buf_add(client_side ? &c->cin : &c->rin, tmp, (size_t)r);
                if (!pump_in(c, client_side)) {
                    c->dead = true;
                    continue;
                }
            }
        }
        for (i = 0; i < MAX_CONNS; i++) {
            conn *c = &g_conns[i];
            if (!c->used) {
                continue;
            }
            if (!c->dead && (!flush(c->cfd, &c->cout) || !flush(c->rfd, &c->rout))) {
                c->dead = true;
            }
            if (c->dead) {
                conn_close(c);
            }
        }
        check_pending();
        /* Commands that arrived while one was pending. */
        run_commands(&cmdbuf);
    }
}
