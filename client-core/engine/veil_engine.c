/* SPDX-License-Identifier: ISC */
/*
 * See veil_engine.h. This file holds the plumbing: creation, the connection
 * state machine (SPEC.md 13.10), frame dispatch, the request table, the frame
 * and event queues, timers. Pairwise work is in veil_engine_pair.c, rooms and
 * chat in veil_engine_room.c, persistence in veil_engine_store.c.
 */
#include "veil_engine_int.h"

#include <string.h>

#include "veil_err.h"
#include "veil_safety.h"
#include "veil_seal.h"

static const uint8_t AUTH_LABEL[] = "veil-relay-auth-v1";

size_t veil_engine_size(void)
{
    return sizeof(veil_engine);
}

void veil__mark(veil_engine *e)
{
    e->dirty = 1;
}

bool veil_engine_dirty(const veil_engine *e)
{
    return e->dirty != 0;
}

uint32_t veil__handle(veil_engine *e)
{
    uint32_t h = e->next_handle++;

    if (e->next_handle == 0) {
        e->next_handle = 1;
    }
    return h == 0 ? veil__handle(e) : h;
}

void veil__new_mid(veil_engine *e, uint64_t now, uint8_t mid[VEIL_MID_BYTES])
{
    int i;

    /*
     * SPEC.md 9.7: the time first, so that a room's ids reach the relay in
     * nearly ascending order and its cmid index grows at one end; 80 random
     * bits keep it unguessable.
     */
    for (i = 0; i < VEIL_MID_TIME_BYTES; i++) {
        mid[i] = (uint8_t)(now >> (8 * (VEIL_MID_TIME_BYTES - 1 - i)));
    }
    veil_rng_fill(&e->rng, mid + VEIL_MID_TIME_BYTES, VEIL_MID_BYTES - VEIL_MID_TIME_BYTES);
}

bool veil__ready(const veil_engine *e)
{
    return e->conn == VEIL__C_READY;
}

/* ---- events ---- */

veil_event *veil__ev(veil_engine *e, uint32_t type, uint32_t room)
{
    veil_event *ev;

    if (e->ecount == VEIL_ENGINE_MAX_EVENTS) {
        e->elost++;
        ev = &e->ev_sink; /* written, never read */
    } else {
        ev = &e->events[(e->ehead + e->ecount) % VEIL_ENGINE_MAX_EVENTS];
        e->ecount++;
    }
    memset(ev, 0, offsetof(veil_event, text) + 1);
    ev->type = type;
    ev->room = room;
    return ev;
}

void veil__ev_text(veil_event *ev, const uint8_t *s, size_t len)
{
    if (len > VEIL_TEXT_MAX_BYTES) {
        len = VEIL_TEXT_MAX_BYTES;
    }
    if (len > 0) {
        memcpy(ev->text, s, len);
    }
    ev->text[len] = '\0';
    ev->text_len = len;
}

void veil__alert(veil_engine *e, int code, uint32_t room, const uint8_t *from, uint64_t seq, uint64_t n)
{
    veil_event *ev = veil__ev(e, VEIL_EV_ALERT, room);

    ev->code = code;
    ev->seq = seq;
    ev->n = n;
    if (from != NULL) {
        memcpy(ev->from, from, VEIL_SIGN_PK_BYTES);
        {
            veil__contact *c = veil__contact_by_ik(e, from);
            ev->contact = c != NULL ? c->id : 0;
        }
    }
}

int veil_engine_next_event(veil_engine *e, veil_event *ev)
{
    if (e->ecount == 0) {
        if (e->elost == 0) {
            return 0;
        }
        memset(ev, 0, sizeof *ev);
        ev->type = VEIL_EV_ALERT;
        ev->code = VEIL_ALERT_OVERFLOW;
        ev->n = e->elost;
        e->elost = 0;
        return 1;
    }
    *ev = e->events[e->ehead];
    sodium_memzero(e->events[e->ehead].text, sizeof e->events[e->ehead].text);
    e->ehead = (e->ehead + 1U) % VEIL_ENGINE_MAX_EVENTS;
    e->ecount--;
    return 1;
}

/* ---- frames and requests ---- */

int veil_engine_next_frame(veil_engine *e, const uint8_t **frame, size_t *len)
{
    if (e->popped_frame) {
        e->popped_frame = 0;
        e->fhead = (e->fhead + 1U) % VEIL_ENGINE_MAX_FRAMES;
        e->fcount--;
    }
    if (e->fcount == 0) {
        *frame = NULL;
        *len = 0;
        return 0;
    }
    *frame = e->frames[e->fhead].data;
    *len = e->frames[e->fhead].len;
    e->popped_frame = 1;
    return 1;
}

veil__req *veil__req_find(veil_engine *e, uint32_t id)
{
    size_t i;

    if (id == 0) {
        return NULL;
    }
    for (i = 0; i < VEIL_ENGINE_INFLIGHT; i++) {
        if (e->reqs[i].id == id) {
            return &e->reqs[i];
        }
    }
    return NULL;
}

void veil__req_free(veil__req *r)
{
    memset(r, 0, sizeof *r);
}

static uint8_t reply_type(uint8_t rq)
{
    static const uint8_t map[] = {
        0,
        VEIL_FT_AUTH_OK,
        VEIL_FT_JOINED,
        VEIL_FT_LEFT,
        VEIL_FT_ACK,
        VEIL_FT_EPHEMERAL_OK,
        VEIL_FT_HISTORY_PAGE,
        VEIL_FT_INBOX_POSTED,
        VEIL_FT_INBOX_PAGE,
        VEIL_FT_INBOX_ACKED,
        VEIL_FT_PREKEY_STORED,
        VEIL_FT_PREKEY_BUNDLE,
        VEIL_FT_PREKEY_COUNTED,
    };
    return rq < sizeof map ? map[rq] : 0;
}

/*
 * Encodes f into the frame queue. With rq != NONE the frame is a request:
 * it gets a fresh id and an entry in the request table (returned in req_out).
 * Nothing is queued when either is full (VEIL_EFULL): the caller's work stays
 * pending and the pump retries it later.
 */
int veil__send(veil_engine *e, veil_frame *f, uint8_t rq, uint64_t now, veil__req **req_out)
{
    veil__req *slot = NULL;
    veil__frame_slot *fs;
    size_t i, len;
    int rc;

    if (req_out != NULL) {
        *req_out = NULL;
    }
    if (e->fcount >= VEIL_ENGINE_MAX_FRAMES) {
        return VEIL_EFULL;
    }
    if (rq != VEIL__RQ_NONE) {
        for (i = 0; i < VEIL_ENGINE_INFLIGHT; i++) {
            if (e->reqs[i].id == 0) {
                slot = &e->reqs[i];
                break;
            }
        }
        if (slot == NULL) {
            return VEIL_EFULL;
        }
        if (e->next_req == 0) {
            e->next_req = 1;
        }
        f->id = e->next_req++;
    }
    fs = &e->frames[(e->fhead + e->fcount) % VEIL_ENGINE_MAX_FRAMES];
    rc = veil_wire_encode(f, fs->data, sizeof fs->data, &len);
    if (rc != 0) {
        return rc;
    }
    fs->len = (uint32_t)len;
    e->fcount++;
    if (slot != NULL) {
        memset(slot, 0, sizeof *slot);
        slot->id = f->id;
        slot->type = rq;
        slot->deadline = now + VEIL_ENGINE_REQUEST_TIMEOUT_MS;
        slot->out_slot = VEIL__NONE;
        if (req_out != NULL) {
            *req_out = slot;
        }
    }
    return 0;
}

/* ---- lifecycle ---- */

static bool name_ok(const char *s, size_t len)
{
    return len <= VEIL_NAME_MAX_BYTES && (len == 0 || s != NULL) && veil_wire_utf8_valid((const uint8_t *)s, len);
}

/* Asks the host for a connection. */
static void want_connection(veil_engine *e, uint64_t now)
{
    e->conn = VEIL__C_WAIT_OPEN;
    e->reconnect_at = 0;
    e->conn_deadline = now + VEIL_ENGINE_REQUEST_TIMEOUT_MS;
    (void)veil__ev(e, VEIL_EV_CONNECT, 0);
}

void veil__engine_started(veil_engine *e, const veil_rng *rng, uint64_t now)
{
    e->magic = VEIL__ENGINE_MAGIC;
    e->rng = *rng;
    want_connection(e, now);
}

int veil_engine_create(veil_engine *e, const veil_rng *rng, uint64_t now, const char *name, size_t name_len)
{
    size_t i;

    if (!name_ok(name, name_len)) {
        return VEIL_EINVAL;
    }
    sodium_memzero(e, sizeof *e);
    veil_keyring_init(&e->kr, rng, now / 1000U);
    if (name_len > 0) {
        memcpy(e->name, name, name_len);
    }
    e->name_len = (uint8_t)name_len;
    e->next_handle = 1;
    e->opk_uploaded_below = e->kr.next_opk_id;
    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        e->rooms[i].own_chain = VEIL__NONE;
    }
    veil__engine_started(e, rng, now);
    e->need_count = 1;
    veil__mark(e);
    return 0;
}

void veil_engine_wipe(veil_engine *e)
{
    sodium_memzero(e, sizeof *e);
}

/* ---- connection (SPEC.md 13.10) ---- */

/* Forgets everything that lived on the connection; stored work stays pending. */
static void conn_reset(veil_engine *e)
{
    size_t i;

    memset(e->reqs, 0, sizeof e->reqs);
    for (i = 0; i < VEIL_ENGINE_OUTBOX; i++) {
        e->outbox[i].req = 0;
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        e->contacts[i].fetching = 0;
        e->contacts[i].posting = 0;
    }
    veil__rooms_offline(e);
    e->uploading = 0;
    e->counting = 0;
    e->inbox_fetching = 0;
    e->inbox_again = 0;
    e->conn_deadline = 0;
}

/* Exponential backoff with jitter: a delay drawn uniformly in [d/2, d], d = min(max, base * 2^attempt). */
static void schedule_reconnect(veil_engine *e, uint64_t now)
{
    uint64_t d = VEIL_ENGINE_RECONNECT_BASE_MS;
    uint8_t r[4];
    uint32_t x, k;

    for (k = 0; k < e->reconnect_attempt && d < VEIL_ENGINE_RECONNECT_MAX_MS; k++) {
        d *= 2U;
    }
    if (d > VEIL_ENGINE_RECONNECT_MAX_MS) {
        d = VEIL_ENGINE_RECONNECT_MAX_MS;
    }
    veil_rng_fill(&e->rng, r, sizeof r);
    x = veil__get_u32be(r);
    e->reconnect_attempt++;
    e->reconnect_at = now + d / 2U + (uint64_t)x % (d / 2U + 1U);
    e->conn = VEIL__C_OFFLINE;
}

void veil_engine_connected(veil_engine *e, uint64_t now)
{
    conn_reset(e);
    e->conn = VEIL__C_WAIT_HELLO;
    e->reconnect_at = 0;
    e->conn_deadline = now + VEIL_ENGINE_REQUEST_TIMEOUT_MS;
}

void veil_engine_disconnected(veil_engine *e, uint64_t now)
{
    if (e->conn == VEIL__C_OFFLINE) {
        return;
    }
    conn_reset(e);
    schedule_reconnect(e, now);
}

/* The connection stopped answering, or lied: ask the host to close it and reconnect later. */
static void conn_stale(veil_engine *e, uint64_t now)
{
    (void)veil__ev(e, VEIL_EV_CLOSE, 0);
    veil_engine_disconnected(e, now);
}

static void on_hello(veil_engine *e, uint64_t now, const veil_frame *f)
{
    veil_frame a;
    uint8_t msg[sizeof AUTH_LABEL - 1 + VEIL_WIRE_NONCE_BYTES + VEIL_SIGN_PK_BYTES];
    uint8_t sig[VEIL_SIG_BYTES];
    veil__req *rq;

    if (e->conn != VEIL__C_WAIT_HELLO) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f->type);
        return;
    }
    memcpy(e->nonce, f->nonce.p, VEIL_WIRE_NONCE_BYTES);
    e->max_env = f->max_env;
    memcpy(msg, AUTH_LABEL, sizeof AUTH_LABEL - 1);
    memcpy(msg + sizeof AUTH_LABEL - 1, e->nonce, VEIL_WIRE_NONCE_BYTES);
    memcpy(msg + sizeof AUTH_LABEL - 1 + VEIL_WIRE_NONCE_BYTES, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, e->kr.id.sign_sk);
    memset(&a, 0, sizeof a);
    a.type = VEIL_FT_AUTH;
    veil_wire_set_bin(&a, VEIL_WF_IK, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES);
    veil_wire_set_bin(&a, VEIL_WF_SIG, sig, VEIL_SIG_BYTES);
    if (veil__send(e, &a, VEIL__RQ_AUTH, now, &rq) != 0) {
        conn_stale(e, now);
        return;
    }
    e->conn = VEIL__C_AUTHING;
}

static void on_auth_reply(veil_engine *e, uint64_t now, veil__req *rq, const veil_frame *f)
{
    veil__req_free(rq);
    if (f->type == VEIL_FT_ERROR) {
        veil_event *ev = veil__ev(e, VEIL_EV_ERROR, 0);
        ev->code = (int32_t)f->code;
        ev->kind = VEIL_FT_AUTH;
        conn_stale(e, now);
        return;
    }
    if (f->ik.len != VEIL_SIGN_PK_BYTES || memcmp(f->ik.p, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) != 0) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f->type);
        conn_stale(e, now);
        return;
    }
    e->conn = VEIL__C_READY;
    e->conn_deadline = 0;
    e->reconnect_attempt = 0;
    (void)veil__ev(e, VEIL_EV_READY, 0);
    veil__on_ready_prekeys(e, now);
    e->inbox_again = 1;
}

/* The answer to a request: its reply type, or ERROR. */
static void on_reply(veil_engine *e, uint64_t now, const veil_frame *f)
{
    veil__req *rq = veil__req_find(e, f->id);
    veil_frame err;

    if (rq == NULL) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f->type);
        return;
    }
    if (f->type != VEIL_FT_ERROR && f->type != reply_type(rq->type)) {
        /* An answer of the wrong type: the request failed, as far as we can tell. */
        veil__alert(e, VEIL_ALERT_PROTOCOL, rq->room, NULL, 0, f->type);
        memset(&err, 0, sizeof err);
        err.type = VEIL_FT_ERROR;
        err.id = f->id;
        err.code = VEIL_EINVAL;
        f = &err;
    }
    switch (rq->type) {
    case VEIL__RQ_AUTH:
        on_auth_reply(e, now, rq, f);
        break;
    case VEIL__RQ_JOIN:
    case VEIL__RQ_LEAVE:
    case VEIL__RQ_PUBLISH:
    case VEIL__RQ_EPHEMERAL:
    case VEIL__RQ_HISTORY:
        veil__handle_room_reply(e, now, rq, f);
        break;
    default:
        veil__handle_pair_reply(e, now, rq, f);
        break;
    }
}

static bool is_reply(uint32_t t)
{
    switch (t) {
    case VEIL_FT_ERROR:
    case VEIL_FT_AUTH_OK:
    case VEIL_FT_JOINED:
    case VEIL_FT_LEFT:
    case VEIL_FT_ACK:
    case VEIL_FT_EPHEMERAL_OK:
    case VEIL_FT_HISTORY_PAGE:
    case VEIL_FT_INBOX_POSTED:
    case VEIL_FT_INBOX_PAGE:
    case VEIL_FT_INBOX_ACKED:
    case VEIL_FT_PREKEY_STORED:
    case VEIL_FT_PREKEY_BUNDLE:
    case VEIL_FT_PREKEY_COUNTED:
        return true;
    default:
        return false;
    }
}

/* A joined room named by a push, or NULL (and an alert). */
static veil__room *push_room(veil_engine *e, const veil_frame *f)
{
    veil__room *r = veil__room_by_rid(e, f->room.p);

    if (r == NULL || !r->joined) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, r != NULL ? r->id : 0, NULL, 0, f->type);
        return NULL;
    }
    return r;
}

int veil_engine_receive(veil_engine *e, uint64_t now, const uint8_t *frame, size_t len)
{
    veil_frame f;
    veil__room *r;
    int rc;

    if (e->conn < VEIL__C_WAIT_HELLO) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, 0);
        return VEIL_ESTATE;
    }
    if (len > VEIL_WIRE_FRAME_MAX_BYTES) {
        veil__alert(e, VEIL_ALERT_MALFORMED, 0, NULL, 0, 0);
        return VEIL_ETOOBIG;
    }
    rc = veil_wire_decode(&f, frame, len, NULL);
    if (rc != 0) {
        veil__alert(e, VEIL_ALERT_MALFORMED, 0, NULL, 0, f.type);
        return rc;
    }
    if (veil_wire_is_request(f.type)) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f.type);
        return VEIL_EUNSUPPORTED;
    }
    if (f.type != VEIL_FT_HELLO && e->conn == VEIL__C_WAIT_HELLO) {
        veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f.type);
        return VEIL_ESTATE;
    }
    if (is_reply(f.type)) {
        on_reply(e, now, &f);
    } else {
        switch (f.type) {
        case VEIL_FT_HELLO:
            on_hello(e, now, &f);
            break;
        case VEIL_FT_PRESENCE:
            if ((r = push_room(e, &f)) != NULL) {
                veil__on_presence(e, r, f.tag.p, f.tag.len, f.on);
            }
            break;
        case VEIL_FT_CAUGHT_UP:
            if ((r = push_room(e, &f)) != NULL) {
                veil_event *ev;
                if (f.seq > r->last_seq) {
                    /* The relay says it replayed up to a seq we never saw. */
                    veil__alert(e, VEIL_ALERT_SEQ_GAP, r->id, NULL, f.seq, f.seq - r->last_seq);
                    r->last_seq = f.seq;
                    veil__mark(e);
                }
                r->caught_up = 1;
                ev = veil__ev(e, VEIL_EV_CAUGHT_UP, r->id);
                ev->seq = r->last_seq;
            }
            break;
        case VEIL_FT_DELIVER:
            if ((r = push_room(e, &f)) != NULL) {
                if (f.env.len > VEIL_ENV_MAX_BYTES) {
                    veil__alert(e, VEIL_ALERT_MALFORMED, r->id, NULL, f.seq, 0);
                    if (f.seq > r->last_seq) {
                        r->last_seq = f.seq;
                        veil__mark(e);
                    }
                } else {
                    veil__on_deliver(e, now, r, f.seq, f.cmid.p, f.env.p, f.env.len, 0);
                }
            }
            break;
        case VEIL_FT_EPHEMERAL_DELIVER:
            if ((r = push_room(e, &f)) != NULL) {
                veil__on_ephemeral(e, now, r, f.env.p, f.env.len);
            }
            break;
        case VEIL_FT_INBOX_NEW:
            if (!veil__ready(e)) {
                veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f.type);
            } else if (e->inbox_fetching) {
                e->inbox_again = 1; /* the running fetch, or the next one, returns it in iid order */
            } else if (f.iid > e->last_iid) {
                veil__inbox_process(e, now, f.iid, f.env.p, f.env.len);
            }
            break;
        default:
            veil__alert(e, VEIL_ALERT_PROTOCOL, 0, NULL, 0, f.type);
            break;
        }
    }
    veil__pump(e, now);
    return 0;
}

/* ---- timers ---- */

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    return a < b ? a : b;
}

uint64_t veil_engine_deadline(const veil_engine *e)
{
    uint64_t d = 0;
    size_t i;

    if (e->conn == VEIL__C_OFFLINE) {
        d = e->reconnect_at;
    } else if (e->conn != VEIL__C_READY) {
        d = e->conn_deadline;
    }
    for (i = 0; i < VEIL_ENGINE_INFLIGHT; i++) {
        if (e->reqs[i].id != 0) {
            d = min_deadline(d, e->reqs[i].deadline);
        }
    }
    if (e->conn == VEIL__C_READY) {
        for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
            if (e->contacts[i].id != 0 && e->contacts[i].retry_at != 0) {
                d = min_deadline(d, e->contacts[i].retry_at);
            }
        }
        d = min_deadline(d, e->prekey_retry_at);
        d = min_deadline(d, e->kr.spk.created * 1000U + VEIL_ENGINE_SPK_ROTATE_MS);
    }
    return min_deadline(d, veil__rooms_deadline(e));
}

void veil_engine_tick(veil_engine *e, uint64_t now)
{
    size_t i;

    if (e->conn == VEIL__C_OFFLINE) {
        if (e->reconnect_at != 0 && now >= e->reconnect_at) {
            want_connection(e, now);
        }
    } else if (e->conn != VEIL__C_READY && e->conn_deadline != 0 && now >= e->conn_deadline) {
        conn_stale(e, now);
    }
    for (i = 0; i < VEIL_ENGINE_INFLIGHT; i++) {
        if (e->reqs[i].id != 0 && now >= e->reqs[i].deadline) {
            conn_stale(e, now);
            break;
        }
    }
    for (i = 0; i < VEIL_ENGINE_MAX_CONTACTS; i++) {
        if (e->contacts[i].retry_at != 0 && now >= e->contacts[i].retry_at) {
            e->contacts[i].retry_at = 0;
        }
    }
    if (e->prekey_retry_at != 0 && now >= e->prekey_retry_at) {
        e->prekey_retry_at = 0;
        e->need_count = 1;
    }
    veil__rooms_tick(e, now);
    veil__pump(e, now);
}

void veil__pump(veil_engine *e, uint64_t now)
{
    veil__rooms_release(e, now);
    if (!veil__ready(e)) {
        return;
    }
    veil__prekeys_pump(e, now);
    veil__rooms_pump(e, now);
    veil__pair_pump(e, now);
}

/* ---- identity ---- */

void veil_engine_identity(const veil_engine *e, uint8_t ik[VEIL_SIGN_PK_BYTES])
{
    memcpy(ik, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES);
}

void veil_engine_fingerprint(const veil_engine *e, char out[VEIL_FINGERPRINT_DIGITS + 1])
{
    veil_fingerprint(out, e->kr.id.pub.sign_pk);
}

/*
 * Contact code (SPEC.md 13.2): "veil:" || base64url without padding of
 * u8(1) || IKs.pk || u8(len) || name.
 */
int veil_engine_contact_code(const veil_engine *e, char *out, size_t cap)
{
    uint8_t raw[2U + VEIL_SIGN_PK_BYTES + VEIL_NAME_MAX_BYTES];
    size_t n = 0, need, prefix = sizeof VEIL_CONTACT_CODE_PREFIX - 1U;

    raw[n++] = 1;
    memcpy(raw + n, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES);
    n += VEIL_SIGN_PK_BYTES;
    raw[n++] = e->name_len;
    memcpy(raw + n, e->name, e->name_len);
    n += e->name_len;
    need = prefix + sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (cap < need) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return VEIL_ENOSPC;
    }
    memcpy(out, VEIL_CONTACT_CODE_PREFIX, prefix);
    sodium_bin2base64(out + prefix, cap - prefix, raw, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

int veil_engine_contact_add(veil_engine *e, uint64_t now, const char *code, uint32_t *contact)
{
    uint8_t raw[2U + VEIL_SIGN_PK_BYTES + VEIL_NAME_MAX_BYTES + 8U];
    size_t prefix = sizeof VEIL_CONTACT_CODE_PREFIX - 1U, len, clen;
    const char *end;

    *contact = 0;
    if (code == NULL) {
        return VEIL_EINVAL;
    }
    clen = strlen(code);
    if (clen < prefix || clen > VEIL_CONTACT_CODE_MAX || memcmp(code, VEIL_CONTACT_CODE_PREFIX, prefix) != 0) {
        return VEIL_EINVAL;
    }
    if (sodium_base642bin(raw, sizeof raw, code + prefix, clen - prefix, NULL, &len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != code + clen || len < 2U + VEIL_SIGN_PK_BYTES || raw[0] != 1 ||
        len != 2U + VEIL_SIGN_PK_BYTES + raw[1 + VEIL_SIGN_PK_BYTES]) {
        return VEIL_EINVAL;
    }
    return veil_engine_contact_add_key(e, now, raw + 1, (const char *)raw + 2 + VEIL_SIGN_PK_BYTES,
                                       raw[1 + VEIL_SIGN_PK_BYTES], contact);
}

int veil_engine_contact_add_key(veil_engine *e, uint64_t now, const uint8_t ik[VEIL_SIGN_PK_BYTES],
                                const char *name, size_t name_len, uint32_t *contact)
{
    veil__contact *c;
    int rc;

    (void)now;
    *contact = 0;
    if (!name_ok(name, name_len) || sodium_memcmp(ik, e->kr.id.pub.sign_pk, VEIL_SIGN_PK_BYTES) == 0) {
        return VEIL_EINVAL;
    }
    rc = veil__contact_ensure(e, ik, VEIL_CONTACT_ADDED, &c);
    if (rc != 0) {
        return rc;
    }
    c->flags |= VEIL_CONTACT_ADDED;
    if (name_len > 0) {
        memcpy(c->name, name, name_len);
        c->name[name_len] = '\0';
        c->name_len = (uint8_t)name_len;
    }
    veil__mark(e);
    *contact = c->id;
    return 0;
}
