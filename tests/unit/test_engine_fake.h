/* SPDX-License-Identifier: ISC */
/**
 * \file test_engine_fake.h
 * \brief For the engine's unit tests only: several engines wired through an
 *        in-memory relay that implements SPEC.md 9 (authentication, room join
 *        proofs, per-room sequence numbers, idempotent publish, catch-up,
 *        history, presence, inboxes, prekeys), plus hooks with which a test
 *        plays a misbehaving relay: frames to a client can be captured,
 *        inspected, altered, reordered, replayed or injected. The real relay
 *        (relay/) is what the CLI's end-to-end tests use.
 */
#ifndef VEIL_TEST_ENGINE_FAKE_H
#define VEIL_TEST_ENGINE_FAKE_H

#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil_engine.h"
#include "veil_keys.h"
#include "veil_wire.h"

/* Not every test file uses every helper. */
#define FR_FN static __attribute__((unused))

#define FR_CLIENTS 6
#define FR_ROOMS 128
#define FR_ENVS 2048
#define FR_INBOX 1024
#define FR_IDS 8
#define FR_OPKS 1000
#define FR_QUEUE 4096
#define FR_LOG 4096
#define FR_TEXT 200

typedef struct fr_blob {
    size_t len;
    uint8_t *p;
} fr_blob;

typedef struct fr_env {
    int room;
    uint64_t seq;
    uint8_t cmid[16];
    fr_blob env;
} fr_env;

typedef struct fr_room {
    uint8_t id[32];
    uint64_t head;
} fr_room;

typedef struct fr_inbox {
    uint64_t iid, ts;
    uint8_t to[32];
    int deleted;
    fr_blob env;
} fr_inbox;

typedef struct fr_ident {
    int used, has_base;
    uint8_t ik[32];
    uint8_t base[VEIL_WIRE_BASE_BYTES];
    uint32_t nopk;
    uint8_t opk[FR_OPKS][36];
} fr_ident;

/* A logged event (the text shortened). */
typedef struct fr_ev {
    uint32_t type, room, contact, flags, kind;
    int32_t code;
    uint8_t from[32], mid[16], ref[16];
    uint64_t seq, n;
    char text[FR_TEXT + 1];
} fr_ev;

typedef struct fr_queue {
    fr_blob items[FR_QUEUE];
    size_t head, count;
} fr_queue;

typedef struct fr_client {
    veil_engine *e;
    veil_drbg drbg;
    veil_rng rng;
    int online;  /* the test lets it connect */
    int open;    /* a connection is open */
    int authed;
    uint8_t ik[32];
    uint8_t nonce[32];
    int joined[FR_ROOMS];
    uint8_t tag[FR_ROOMS][32];
    size_t tag_len[FR_ROOMS];
    fr_queue to_client; /* frames the relay sent, not yet delivered */
    int capture;        /* frames to the client go to `captured` instead */
    fr_queue captured;
    fr_ev log[FR_LOG];
    size_t nlog;
    uint64_t requests; /* frames received from this client */
} fr_client;

typedef struct fr_relay {
    uint64_t now;
    veil_drbg drbg;
    veil_rng rng;
    fr_client c[FR_CLIENTS];
    int nclients;
    fr_room rooms[FR_ROOMS];
    int nrooms;
    fr_env envs[FR_ENVS];
    int nenvs;
    fr_inbox inbox[FR_INBOX];
    int ninbox;
    uint64_t next_iid;
    fr_ident ids[FR_IDS];
    /* knobs of a misbehaving relay */
    int drop_acks;     /* answer no PUBLISH (the publish is stored) */
    int fail_publish;  /* refuse the next PUBLISH with this error code (0: none) */
    int fail_count;    /* how many more to refuse */
    int serve_bundle_of; /* -1, or the client whose bundle every PREKEY_FETCH gets */
} fr_relay;

FR_FN void fr_blob_set(fr_blob *b, const uint8_t *p, size_t len)
{
    b->p = malloc(len > 0 ? len : 1);
    assert_non_null(b->p);
    memcpy(b->p, p, len);
    b->len = len;
}

FR_FN void fr_blob_free(fr_blob *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

FR_FN void fr_q_push(fr_queue *q, const uint8_t *p, size_t len)
{
    assert_true(q->count < FR_QUEUE);
    fr_blob_set(&q->items[(q->head + q->count) % FR_QUEUE], p, len);
    q->count++;
}

/* Takes the oldest item (the caller frees it). */
FR_FN fr_blob fr_q_pop(fr_queue *q)
{
    fr_blob b = q->items[q->head];
    q->items[q->head].p = NULL;
    q->head = (q->head + 1) % FR_QUEUE;
    q->count--;
    return b;
}

FR_FN void fr_q_clear(fr_queue *q)
{
    while (q->count > 0) {
        fr_blob b = fr_q_pop(q);
        fr_blob_free(&b);
    }
}

/* ---- frames from the relay ---- */

FR_FN void fr_send(fr_relay *R, int ci, veil_frame *f)
{
    uint8_t buf[VEIL_WIRE_FRAME_MAX_BYTES / 8];
    size_t len;
    fr_client *c = &R->c[ci];

    if (!c->open) {
        return;
    }
    if (veil_wire_encode(f, buf, sizeof buf, &len) != 0) {
        fail_msg("fake relay: cannot encode a frame of type 0x%02x (code %lld)", (unsigned)f->type,
                 (long long)f->code);
    }
    fr_q_push(c->capture ? &c->captured : &c->to_client, buf, len);
}

/* Queues a frame straight to the client, past any capture (for a test playing the relay). */
FR_FN void fr_push_frame(fr_relay *R, int ci, const veil_frame *f)
{
    uint8_t buf[VEIL_WIRE_FRAME_MAX_BYTES / 8];
    size_t len;

    assert_int_equal(veil_wire_encode(f, buf, sizeof buf, &len), 0);
    fr_q_push(&R->c[ci].to_client, buf, len);
}

FR_FN void fr_error(fr_relay *R, int ci, uint32_t id, int code, uint32_t rt)
{
    veil_frame f;
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_ERROR;
    f.id = id;
    f.code = code;
    f.present |= VEIL_WF_BIT(VEIL_WF_CODE);
    veil_wire_set_str(&f, VEIL_WF_MSG, veil_strerror(code));
    veil_wire_set_uint(&f, VEIL_WF_RT, rt);
    fr_send(R, ci, &f);
}

FR_FN int fr_room_find(fr_relay *R, const uint8_t id[32], int create)
{
    int i;
    for (i = 0; i < R->nrooms; i++) {
        if (memcmp(R->rooms[i].id, id, 32) == 0) {
            return i;
        }
    }
    if (!create) {
        return -1;
    }
    assert_true(R->nrooms < FR_ROOMS);
    memcpy(R->rooms[R->nrooms].id, id, 32);
    R->rooms[R->nrooms].head = 0;
    return R->nrooms++;
}

FR_FN fr_ident *fr_ident_of(fr_relay *R, const uint8_t ik[32], int create)
{
    int i;
    for (i = 0; i < FR_IDS; i++) {
        if (R->ids[i].used && memcmp(R->ids[i].ik, ik, 32) == 0) {
            return &R->ids[i];
        }
    }
    if (!create) {
        return NULL;
    }
    for (i = 0; i < FR_IDS; i++) {
        if (!R->ids[i].used) {
            memset(&R->ids[i], 0, sizeof R->ids[i]);
            R->ids[i].used = 1;
            memcpy(R->ids[i].ik, ik, 32);
            return &R->ids[i];
        }
    }
    fail_msg("fake relay: too many identities");
    abort();
}

/* Tags present in a room: distinct, counted over joined connections. */
FR_FN int fr_tag_count(fr_relay *R, int room, const uint8_t *tag, size_t len)
{
    int i, n = 0;
    for (i = 0; i < R->nclients; i++) {
        fr_client *c = &R->c[i];
        if (c->open && c->joined[room] && c->tag_len[room] == len && memcmp(c->tag[room], tag, len) == 0) {
            n++;
        }
    }
    return n;
}

FR_FN void fr_presence(fr_relay *R, int room, int except, const uint8_t *tag, size_t len, bool on)
{
    int i;
    veil_frame f;
    for (i = 0; i < R->nclients; i++) {
        if (i == except || !R->c[i].open || !R->c[i].joined[room]) {
            continue;
        }
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_PRESENCE;
        veil_wire_set_bin(&f, VEIL_WF_ROOM, R->rooms[room].id, 32);
        veil_wire_set_bin(&f, VEIL_WF_TAG, tag, len);
        veil_wire_set_bool(&f, VEIL_WF_ON, on);
        fr_send(R, i, &f);
    }
}

FR_FN void fr_deliver(fr_relay *R, int ci, const fr_env *env)
{
    veil_frame f;
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_DELIVER;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, R->rooms[env->room].id, 32);
    veil_wire_set_uint(&f, VEIL_WF_SEQ, env->seq);
    veil_wire_set_bin(&f, VEIL_WF_CMID, env->cmid, 16);
    veil_wire_set_bin(&f, VEIL_WF_ENV, env->env.p, env->env.len);
    fr_send(R, ci, &f);
}

FR_FN void fr_leave_room(fr_relay *R, int ci, int room)
{
    fr_client *c = &R->c[ci];
    c->joined[room] = 0;
    if (fr_tag_count(R, room, c->tag[room], c->tag_len[room]) == 0) {
        fr_presence(R, room, ci, c->tag[room], c->tag_len[room], false);
    }
}

/* ---- requests ---- */

FR_FN void fr_join(fr_relay *R, int ci, const veil_frame *f)
{
    fr_client *c = &R->c[ci];
    uint8_t h[32], msg[17 + 32 + 32];
    crypto_generichash_state st;
    veil_frame o;
    uint8_t list[FR_CLIENTS * 40];
    veil_wire_list_builder lb;
    int room, i, j;
    uint64_t first;

    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"veil-room-id-v1", 15);
    crypto_generichash_update(&st, f->apk.p, 32);
    crypto_generichash_final(&st, h, 32);
    memcpy(msg, "veil-room-join-v1", 17);
    memcpy(msg + 17, c->nonce, 32);
    memcpy(msg + 49, f->room.p, 32);
    if (memcmp(h, f->room.p, 32) != 0 || crypto_sign_verify_detached(f->sig.p, msg, sizeof msg, f->apk.p) != 0) {
        fr_error(R, ci, f->id, VEIL_EAUTH, f->type);
        return;
    }
    room = fr_room_find(R, f->room.p, 1);
    if (c->joined[room]) {
        fr_error(R, ci, f->id, VEIL_ESTATE, f->type);
        return;
    }
    c->joined[room] = 1;
    memcpy(c->tag[room], f->tag.p, f->tag.len);
    c->tag_len[room] = f->tag.len;
    if (fr_tag_count(R, room, f->tag.p, f->tag.len) == 1) {
        fr_presence(R, room, ci, f->tag.p, f->tag.len, true);
    }
    first = R->rooms[room].head + 1;
    for (i = 0; i < R->nenvs; i++) {
        if (R->envs[i].room == room && R->envs[i].seq < first) {
            first = R->envs[i].seq;
        }
    }
    veil_wire_lb_init(&lb, VEIL_WL_TAGS, list, sizeof list);
    for (i = 0; i < R->nclients; i++) {
        int dup = 0;
        if (!R->c[i].open || !R->c[i].joined[room]) {
            continue;
        }
        for (j = 0; j < i; j++) {
            dup |= R->c[j].open && R->c[j].joined[room] && R->c[j].tag_len[room] == R->c[i].tag_len[room] &&
                   memcmp(R->c[j].tag[room], R->c[i].tag[room], R->c[i].tag_len[room]) == 0;
        }
        if (!dup) {
            veil_wire_lb_bin(&lb, R->c[i].tag[room], R->c[i].tag_len[room]);
        }
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_JOINED;
    o.id = f->id;
    veil_wire_set_bin(&o, VEIL_WF_ROOM, f->room.p, 32);
    veil_wire_set_uint(&o, VEIL_WF_HEAD, R->rooms[room].head);
    veil_wire_set_uint(&o, VEIL_WF_FIRST, first);
    assert_int_equal(veil_wire_lb_finish(&lb, &o.list), 0);
    o.present |= VEIL_WF_BIT(VEIL_WF_MEMBERS);
    fr_send(R, ci, &o);
    if (veil_wire_has(f, VEIL_WF_SINCE)) {
        for (i = 0; i < R->nenvs; i++) {
            if (R->envs[i].room == room && R->envs[i].seq > f->since) {
                fr_deliver(R, ci, &R->envs[i]);
            }
        }
        memset(&o, 0, sizeof o);
        o.type = VEIL_FT_CAUGHT_UP;
        veil_wire_set_bin(&o, VEIL_WF_ROOM, f->room.p, 32);
        veil_wire_set_uint(&o, VEIL_WF_SEQ, R->rooms[room].head);
        fr_send(R, ci, &o);
    }
}

FR_FN void fr_publish(fr_relay *R, int ci, const veil_frame *f)
{
    int room = fr_room_find(R, f->room.p, 0), i;
    veil_frame o;
    fr_env *env = NULL;
    bool dup = false;

    if (room < 0 || !R->c[ci].joined[room]) {
        fr_error(R, ci, f->id, VEIL_ENOTJOINED, f->type);
        return;
    }
    if (R->fail_count > 0) {
        R->fail_count--;
        fr_error(R, ci, f->id, R->fail_publish, f->type);
        return;
    }
    for (i = 0; i < R->nenvs; i++) {
        if (R->envs[i].room == room && memcmp(R->envs[i].cmid, f->cmid.p, 16) == 0) {
            env = &R->envs[i];
            dup = true;
        }
    }
    if (env == NULL) {
        assert_true(R->nenvs < FR_ENVS);
        env = &R->envs[R->nenvs++];
        env->room = room;
        env->seq = ++R->rooms[room].head;
        memcpy(env->cmid, f->cmid.p, 16);
        fr_blob_set(&env->env, f->env.p, f->env.len);
        for (i = 0; i < R->nclients; i++) {
            if (i != ci && R->c[i].open && R->c[i].joined[room]) {
                fr_deliver(R, i, env);
            }
        }
    }
    if (R->drop_acks) {
        return;
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_ACK;
    o.id = f->id;
    veil_wire_set_bin(&o, VEIL_WF_ROOM, f->room.p, 32);
    veil_wire_set_bin(&o, VEIL_WF_CMID, f->cmid.p, 16);
    veil_wire_set_uint(&o, VEIL_WF_SEQ, env->seq);
    veil_wire_set_bool(&o, VEIL_WF_DUP, dup);
    fr_send(R, ci, &o);
}

FR_FN void fr_history(fr_relay *R, int ci, const veil_frame *f)
{
    int room = fr_room_find(R, f->room.p, 0), i, idx[100], n = 0, more = 0;
    uint64_t before = veil_wire_has(f, VEIL_WF_BEFORE) && f->before != 0 ? f->before : UINT64_MAX;
    veil_frame o;
    static uint8_t list[1u << 20];
    veil_wire_list_builder lb;

    if (room < 0 || !R->c[ci].joined[room]) {
        fr_error(R, ci, f->id, VEIL_ENOTJOINED, f->type);
        return;
    }
    /* The newest `limit` envelopes below `before`, ascending. */
    for (i = R->nenvs - 1; i >= 0; i--) {
        if (R->envs[i].room != room || R->envs[i].seq >= before) {
            continue;
        }
        if ((uint64_t)n == f->limit) {
            more = 1;
            break;
        }
        idx[n++] = i;
    }
    veil_wire_lb_init(&lb, VEIL_WL_ROOM_ITEMS, list, sizeof list);
    for (i = n - 1; i >= 0; i--) {
        veil_wire_item it;
        memset(&it, 0, sizeof it);
        it.seq = R->envs[idx[i]].seq;
        it.cmid.p = R->envs[idx[i]].cmid;
        it.cmid.len = 16;
        it.env.p = R->envs[idx[i]].env.p;
        it.env.len = R->envs[idx[i]].env.len;
        veil_wire_lb_item(&lb, &it);
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_HISTORY_PAGE;
    o.id = f->id;
    veil_wire_set_bin(&o, VEIL_WF_ROOM, f->room.p, 32);
    assert_int_equal(veil_wire_lb_finish(&lb, &o.list), 0);
    o.present |= VEIL_WF_BIT(VEIL_WF_ITEMS);
    veil_wire_set_bool(&o, VEIL_WF_MORE, more);
    fr_send(R, ci, &o);
}

FR_FN void fr_inbox_post(fr_relay *R, int ci, const veil_frame *f)
{
    fr_inbox *x;
    veil_frame o;
    int i;

    assert_true(R->ninbox < FR_INBOX);
    x = &R->inbox[R->ninbox++];
    x->iid = ++R->next_iid;
    x->ts = R->now / 1000;
    memcpy(x->to, f->to.p, 32);
    x->deleted = 0;
    fr_blob_set(&x->env, f->env.p, f->env.len);
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_INBOX_POSTED;
    o.id = f->id;
    veil_wire_set_uint(&o, VEIL_WF_IID, x->iid);
    fr_send(R, ci, &o);
    for (i = 0; i < R->nclients; i++) {
        if (R->c[i].open && R->c[i].authed && memcmp(R->c[i].ik, x->to, 32) == 0) {
            memset(&o, 0, sizeof o);
            o.type = VEIL_FT_INBOX_NEW;
            veil_wire_set_uint(&o, VEIL_WF_IID, x->iid);
            veil_wire_set_uint(&o, VEIL_WF_TS, x->ts);
            veil_wire_set_bin(&o, VEIL_WF_ENV, x->env.p, x->env.len);
            fr_send(R, i, &o);
        }
    }
}

/* An anonymous INBOX_POST (the relay stores it and tells the owner's connections). */
FR_FN void fr_inbox_inject(fr_relay *R, const uint8_t to[32], const uint8_t *env, size_t len)
{
    fr_inbox *x;
    veil_frame o;
    int i;

    assert_true(R->ninbox < FR_INBOX);
    x = &R->inbox[R->ninbox++];
    x->iid = ++R->next_iid;
    x->ts = R->now / 1000;
    memcpy(x->to, to, 32);
    x->deleted = 0;
    fr_blob_set(&x->env, env, len);
    for (i = 0; i < R->nclients; i++) {
        if (R->c[i].open && R->c[i].authed && memcmp(R->c[i].ik, x->to, 32) == 0) {
            memset(&o, 0, sizeof o);
            o.type = VEIL_FT_INBOX_NEW;
            veil_wire_set_uint(&o, VEIL_WF_IID, x->iid);
            veil_wire_set_uint(&o, VEIL_WF_TS, x->ts);
            veil_wire_set_bin(&o, VEIL_WF_ENV, x->env.p, x->env.len);
            fr_send(R, i, &o);
        }
    }
}

FR_FN void fr_inbox_fetch(fr_relay *R, int ci, const veil_frame *f)
{
    uint64_t after = veil_wire_has(f, VEIL_WF_AFTER) ? f->after : 0;
    static uint8_t list[1u << 20];
    veil_wire_list_builder lb;
    veil_frame o;
    uint64_t n = 0;
    int i, more = 0;

    veil_wire_lb_init(&lb, VEIL_WL_INBOX_ITEMS, list, sizeof list);
    for (i = 0; i < R->ninbox; i++) {
        fr_inbox *x = &R->inbox[i];
        veil_wire_item it;
        if (x->deleted || x->iid <= after || memcmp(x->to, R->c[ci].ik, 32) != 0) {
            continue;
        }
        if (n == f->limit) {
            more = 1;
            break;
        }
        memset(&it, 0, sizeof it);
        it.seq = x->iid;
        it.ts = x->ts;
        it.env.p = x->env.p;
        it.env.len = x->env.len;
        veil_wire_lb_item(&lb, &it);
        n++;
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_INBOX_PAGE;
    o.id = f->id;
    assert_int_equal(veil_wire_lb_finish(&lb, &o.list), 0);
    o.present |= VEIL_WF_BIT(VEIL_WF_ITEMS);
    veil_wire_set_bool(&o, VEIL_WF_MORE, more);
    fr_send(R, ci, &o);
}

FR_FN void fr_inbox_ack(fr_relay *R, int ci, const veil_frame *f)
{
    veil_wire_iter it;
    uint64_t id, n = 0;
    veil_frame o;
    int i;

    veil_wire_iter_init(&it, &f->list);
    while (veil_wire_next_u64(&it, &id)) {
        for (i = 0; i < R->ninbox; i++) {
            if (R->inbox[i].iid == id && !R->inbox[i].deleted && memcmp(R->inbox[i].to, R->c[ci].ik, 32) == 0) {
                R->inbox[i].deleted = 1;
                n++;
            }
        }
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_INBOX_ACKED;
    o.id = f->id;
    veil_wire_set_uint(&o, VEIL_WF_N, n);
    fr_send(R, ci, &o);
}

FR_FN void fr_prekey_upload(fr_relay *R, int ci, const veil_frame *f)
{
    fr_ident *id;
    uint8_t full[VEIL_BUNDLE_BYTES];
    veil_bundle b;
    veil_wire_iter it;
    veil_wire_bin opk;
    veil_frame o;
    uint32_t k;

    memset(full, 0, sizeof full);
    memcpy(full, f->base.p, VEIL_WIRE_BASE_BYTES);
    if (memcmp(f->base.p + 1, R->c[ci].ik, 32) != 0) {
        fr_error(R, ci, f->id, VEIL_EPERM, f->type);
        return;
    }
    if (veil_bundle_decode(&b, full, sizeof full) != 0 || veil_bundle_verify(&b) != 0) {
        fr_error(R, ci, f->id, VEIL_ESIG, f->type);
        return;
    }
    id = fr_ident_of(R, R->c[ci].ik, 1);
    memcpy(id->base, f->base.p, VEIL_WIRE_BASE_BYTES);
    id->has_base = 1;
    if (veil_wire_has(f, VEIL_WF_REPLACE) && f->replace) {
        id->nopk = 0;
    }
    veil_wire_iter_init(&it, &f->list);
    while (veil_wire_next_bin(&it, &opk)) {
        int have = 0;
        for (k = 0; k < id->nopk; k++) {
            have |= memcmp(id->opk[k], opk.p, 4) == 0;
        }
        if (!have) {
            assert_true(id->nopk < FR_OPKS);
            memcpy(id->opk[id->nopk++], opk.p, 36);
        }
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_PREKEY_STORED;
    o.id = f->id;
    veil_wire_set_uint(&o, VEIL_WF_COUNT, id->nopk);
    fr_send(R, ci, &o);
}

FR_FN void fr_prekey_fetch(fr_relay *R, int ci, const veil_frame *f)
{
    fr_ident *id = fr_ident_of(R, f->ik.p, 0);
    uint8_t bundle[VEIL_BUNDLE_BYTES];
    veil_frame o;
    uint32_t k, low = 0;

    if (R->serve_bundle_of >= 0) {
        id = fr_ident_of(R, R->c[R->serve_bundle_of].ik, 0);
    }
    if (id == NULL || !id->has_base) {
        fr_error(R, ci, f->id, VEIL_ENOPREKEY, f->type);
        return;
    }
    memset(bundle, 0, sizeof bundle);
    memcpy(bundle, id->base, VEIL_WIRE_BASE_BYTES);
    if (id->nopk > 0) {
        for (k = 1; k < id->nopk; k++) {
            if (memcmp(id->opk[k], id->opk[low], 4) < 0) {
                low = k;
            }
        }
        bundle[229] = 1;
        memcpy(bundle + 230, id->opk[low], 36);
        memmove(id->opk[low], id->opk[low + 1], (id->nopk - low - 1) * 36);
        id->nopk--;
    }
    memset(&o, 0, sizeof o);
    o.type = VEIL_FT_PREKEY_BUNDLE;
    o.id = f->id;
    veil_wire_set_bin(&o, VEIL_WF_BUNDLE, bundle, sizeof bundle);
    fr_send(R, ci, &o);
}

FR_FN void fr_request(fr_relay *R, int ci, const uint8_t *p, size_t len)
{
    fr_client *c = &R->c[ci];
    veil_frame f, o;
    int room;

    c->requests++;
    if (veil_wire_decode(&f, p, len, NULL) != 0) {
        fail_msg("fake relay: a client sent a frame the codec rejects");
    }
    assert_true(veil_wire_is_request(f.type));
    if (!c->authed && f.type != VEIL_FT_AUTH && f.type != VEIL_FT_INBOX_POST && f.type != VEIL_FT_PREKEY_FETCH) {
        fr_error(R, ci, f.id, VEIL_EPERM, f.type);
        return;
    }
    memset(&o, 0, sizeof o);
    o.id = f.id;
    switch (f.type) {
    case VEIL_FT_AUTH: {
        uint8_t msg[18 + 32 + 32];
        memcpy(msg, "veil-relay-auth-v1", 18);
        memcpy(msg + 18, c->nonce, 32);
        memcpy(msg + 50, f.ik.p, 32);
        if (c->authed) {
            fr_error(R, ci, f.id, VEIL_ESTATE, f.type);
        } else if (crypto_sign_verify_detached(f.sig.p, msg, sizeof msg, f.ik.p) != 0) {
            fr_error(R, ci, f.id, VEIL_EAUTH, f.type);
        } else {
            c->authed = 1;
            memcpy(c->ik, f.ik.p, 32);
            o.type = VEIL_FT_AUTH_OK;
            veil_wire_set_bin(&o, VEIL_WF_IK, c->ik, 32);
            fr_send(R, ci, &o);
        }
        break;
    }
    case VEIL_FT_JOIN:
        fr_join(R, ci, &f);
        break;
    case VEIL_FT_LEAVE:
        room = fr_room_find(R, f.room.p, 0);
        if (room < 0 || !c->joined[room]) {
            fr_error(R, ci, f.id, VEIL_ENOTJOINED, f.type);
        } else {
            fr_leave_room(R, ci, room);
            o.type = VEIL_FT_LEFT;
            veil_wire_set_bin(&o, VEIL_WF_ROOM, f.room.p, 32);
            fr_send(R, ci, &o);
        }
        break;
    case VEIL_FT_PUBLISH:
        fr_publish(R, ci, &f);
        break;
    case VEIL_FT_EPHEMERAL: {
        int i;
        room = fr_room_find(R, f.room.p, 0);
        if (room < 0 || !c->joined[room]) {
            fr_error(R, ci, f.id, VEIL_ENOTJOINED, f.type);
            break;
        }
        for (i = 0; i < R->nclients; i++) {
            if (i != ci && R->c[i].open && R->c[i].joined[room]) {
                veil_frame d;
                memset(&d, 0, sizeof d);
                d.type = VEIL_FT_EPHEMERAL_DELIVER;
                veil_wire_set_bin(&d, VEIL_WF_ROOM, f.room.p, 32);
                veil_wire_set_bin(&d, VEIL_WF_ENV, f.env.p, f.env.len);
                fr_send(R, i, &d);
            }
        }
        o.type = VEIL_FT_EPHEMERAL_OK;
        veil_wire_set_bin(&o, VEIL_WF_ROOM, f.room.p, 32);
        fr_send(R, ci, &o);
        break;
    }
    case VEIL_FT_HISTORY:
        fr_history(R, ci, &f);
        break;
    case VEIL_FT_INBOX_POST:
        fr_inbox_post(R, ci, &f);
        break;
    case VEIL_FT_INBOX_FETCH:
        fr_inbox_fetch(R, ci, &f);
        break;
    case VEIL_FT_INBOX_ACK:
        fr_inbox_ack(R, ci, &f);
        break;
    case VEIL_FT_PREKEY_UPLOAD:
        fr_prekey_upload(R, ci, &f);
        break;
    case VEIL_FT_PREKEY_FETCH:
        fr_prekey_fetch(R, ci, &f);
        break;
    case VEIL_FT_PREKEY_COUNT: {
        fr_ident *id = fr_ident_of(R, c->ik, 0);
        o.type = VEIL_FT_PREKEY_COUNTED;
        veil_wire_set_uint(&o, VEIL_WF_COUNT, id != NULL ? id->nopk : 0);
        if (id != NULL && id->has_base) {
            veil_wire_set_uint(&o, VEIL_WF_SPK_ID, veil__get_u32be(id->base + 129));
        }
        fr_send(R, ci, &o);
        break;
    }
    default:
        fr_error(R, ci, f.id, VEIL_EUNSUPPORTED, f.type);
        break;
    }
}

/* ---- the harness ---- */

FR_FN void fr_log_event(fr_client *c, const veil_event *ev)
{
    fr_ev *l;
    size_t n;

    assert_true(c->nlog < FR_LOG);
    l = &c->log[c->nlog++];
    memset(l, 0, sizeof *l);
    l->type = ev->type;
    l->room = ev->room;
    l->contact = ev->contact;
    l->flags = ev->flags;
    l->kind = ev->kind;
    l->code = ev->code;
    memcpy(l->from, ev->from, 32);
    memcpy(l->mid, ev->mid, 16);
    memcpy(l->ref, ev->ref, 16);
    l->seq = ev->seq;
    l->n = ev->n;
    n = ev->text_len < FR_TEXT ? ev->text_len : FR_TEXT;
    memcpy(l->text, ev->text, n);
    l->text[n] = '\0';
}

FR_FN void fr_close(fr_relay *R, int ci)
{
    fr_client *c = &R->c[ci];
    int room;

    if (!c->open) {
        return;
    }
    for (room = 0; room < R->nrooms; room++) {
        if (c->joined[room]) {
            fr_leave_room(R, ci, room);
        }
    }
    c->open = 0;
    c->authed = 0;
    fr_q_clear(&c->to_client);
    fr_q_clear(&c->captured);
}

FR_FN void fr_open(fr_relay *R, int ci)
{
    fr_client *c = &R->c[ci];
    veil_frame f;

    c->open = 1;
    c->authed = 0;
    memset(c->joined, 0, sizeof c->joined);
    veil_rng_fill(&R->rng, c->nonce, 32);
    veil_engine_connected(c->e, R->now);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_HELLO;
    veil_wire_set_bin(&f, VEIL_WF_NONCE, c->nonce, 32);
    veil_wire_set_uint(&f, VEIL_WF_MAX_FRAME, 70656);
    veil_wire_set_uint(&f, VEIL_WF_MAX_ENV, 69632);
    fr_send(R, ci, &f);
}

/* Drains one client's events and frames; returns how much happened. */
FR_FN int fr_step_client(fr_relay *R, int ci)
{
    fr_client *c = &R->c[ci];
    veil_event *ev = malloc(sizeof *ev);
    const uint8_t *p;
    size_t len;
    int work = 0;

    assert_non_null(ev);
    if (veil_engine_deadline(c->e) != 0 && veil_engine_deadline(c->e) <= R->now) {
        veil_engine_tick(c->e, R->now);
        work++;
    }
    while (veil_engine_next_event(c->e, ev)) {
        fr_log_event(c, ev);
        work++;
        if (ev->type == VEIL_EV_CONNECT && c->online && !c->open) {
            fr_open(R, ci);
        } else if (ev->type == VEIL_EV_CONNECT && !c->online) {
            veil_engine_disconnected(c->e, R->now); /* the connection attempt fails */
        } else if (ev->type == VEIL_EV_CLOSE) {
            fr_close(R, ci);
        }
    }
    while (veil_engine_next_frame(c->e, &p, &len)) {
        work++;
        if (c->open) {
            fr_request(R, ci, p, len);
        }
    }
    if (c->open && c->to_client.count > 0) {
        fr_blob b = fr_q_pop(&c->to_client);
        (void)veil_engine_receive(c->e, R->now, b.p, b.len);
        fr_blob_free(&b);
        work++;
    }
    free(ev);
    return work;
}

/* Runs every client until nothing moves. */
FR_FN void fr_run(fr_relay *R)
{
    int i, work, rounds = 0;

    do {
        work = 0;
        for (i = 0; i < R->nclients; i++) {
            work += fr_step_client(R, i);
        }
        assert_true(++rounds < 200000);
    } while (work > 0);
}

/* Advances the clock in steps, running everything at each step. */
FR_FN void fr_advance(fr_relay *R, uint64_t ms)
{
    uint64_t end = R->now + ms;

    fr_run(R);
    while (R->now < end) {
        uint64_t next = end;
        int i;
        for (i = 0; i < R->nclients; i++) {
            uint64_t d = veil_engine_deadline(R->c[i].e);
            if (d != 0 && d > R->now && d < next) {
                next = d;
            }
        }
        R->now = next;
        fr_run(R);
    }
}

FR_FN fr_relay *fr_new(int nclients, uint8_t seed)
{
    fr_relay *R = calloc(1, sizeof *R);
    int i;

    assert_non_null(R);
    R->now = 1700000000000ULL;
    R->rng = vt_seeded_rng(&R->drbg, seed);
    R->serve_bundle_of = -1;
    R->nclients = nclients;
    for (i = 0; i < nclients; i++) {
        fr_client *c = &R->c[i];
        char name[16];
        c->e = calloc(1, veil_engine_size());
        assert_non_null(c->e);
        c->rng = vt_seeded_rng(&c->drbg, (uint8_t)(seed + 1 + i));
        snprintf(name, sizeof name, "%c", 'A' + i);
        assert_int_equal(veil_engine_create(c->e, &c->rng, R->now, name, strlen(name)), 0);
        veil_engine_identity(c->e, c->ik);
        c->online = 1;
    }
    fr_run(R);
    return R;
}

FR_FN void fr_free(fr_relay *R)
{
    int i;
    for (i = 0; i < R->nclients; i++) {
        fr_q_clear(&R->c[i].to_client);
        fr_q_clear(&R->c[i].captured);
        veil_engine_wipe(R->c[i].e);
        free(R->c[i].e);
    }
    for (i = 0; i < R->nenvs; i++) {
        fr_blob_free(&R->envs[i].env);
    }
    for (i = 0; i < R->ninbox; i++) {
        fr_blob_free(&R->inbox[i].env);
    }
    free(R);
}

/* Takes a client offline (its connection drops) or back online. */
FR_FN void fr_set_online(fr_relay *R, int ci, int online)
{
    R->c[ci].online = online;
    if (!online && R->c[ci].open) {
        fr_close(R, ci);
        veil_engine_disconnected(R->c[ci].e, R->now);
    }
}

/* ---- queries on the logs ---- */

/* With FR_DUMP set in the environment, prints a client's log (for debugging a failing test). */
FR_FN void fr_dump(const fr_client *c, const char *who)
{
    size_t i;
    if (getenv("FR_DUMP") == NULL) {
        return;
    }
    for (i = 0; i < c->nlog; i++) {
        const fr_ev *l = &c->log[i];
        fprintf(stderr, "%s %3zu type %2u room %u contact %u flags %04x code %d kind %u seq %llu n %llu '%s'\n", who,
                i, l->type, l->room, l->contact, l->flags, l->code, l->kind, (unsigned long long)l->seq,
                (unsigned long long)l->n, l->text);
    }
}

FR_FN size_t fr_count(const fr_client *c, size_t from, uint32_t type, int32_t code)
{
    size_t i, n = 0;
    for (i = from; i < c->nlog; i++) {
        n += c->log[i].type == type && (code == 0 || c->log[i].code == code);
    }
    return n;
}

/* The index of the first event of a type (and text, if not NULL) at or after from, or -1. */
FR_FN long fr_find(const fr_client *c, size_t from, uint32_t type, const char *text)
{
    size_t i;
    for (i = from; i < c->nlog; i++) {
        if (c->log[i].type == type && (text == NULL || strcmp(c->log[i].text, text) == 0)) {
            return (long)i;
        }
    }
    return -1;
}

FR_FN uint32_t fr_contact_of(fr_relay *R, int who, int whom)
{
    return veil_engine_contact_find(R->c[who].e, R->c[whom].ik);
}

/* who adds whom through whom's contact code. */
FR_FN uint32_t fr_add_contact(fr_relay *R, int who, int whom)
{
    char code[VEIL_CONTACT_CODE_MAX + 1];
    uint32_t id;
    assert_int_equal(veil_engine_contact_code(R->c[whom].e, code, sizeof code), 0);
    assert_int_equal(veil_engine_contact_add(R->c[who].e, R->now, code, &id), 0);
    assert_true(id != 0);
    return id;
}

#endif
