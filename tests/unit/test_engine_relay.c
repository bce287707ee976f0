/* SPDX-License-Identifier: ISC */
/*
 * The engine against a misbehaving relay (SPEC.md 13.8): it drops, duplicates,
 * reorders, replays, tampers with and injects envelopes, lies about presence
 * and prekeys, loses ACKs, rolls its history back and tries to add a member.
 * Every case is detected, reported as an alert, and nothing forged is shown.
 * Malicious peers are played through the engine's internals.
 */
#include "test_engine_fake.h"

#include "veil_engine_int.h"

enum { A, B, C, D };

static uint32_t newest_room(fr_relay *R, int who, uint32_t kind)
{
    uint32_t ids[VEIL_ENGINE_MAX_ROOMS];
    size_t n = veil_engine_rooms(R->c[who].e, ids, VEIL_ENGINE_MAX_ROOMS), i;
    veil_room_info info;

    for (i = n; i > 0; i--) {
        assert_int_equal(veil_engine_room_get(R->c[who].e, ids[i - 1], &info), 0);
        if (info.kind == kind) {
            return ids[i - 1];
        }
    }
    return 0;
}

/* A (admin) with B and C in a group; every room handle in rooms[]. */
static void group3(fr_relay *R, uint32_t *rooms)
{
    int who[2] = { B, C }, k;

    assert_int_equal(veil_engine_group_create(R->c[A].e, R->now, "G", 1, &rooms[A]), 0);
    for (k = 0; k < 2; k++) {
        uint32_t c = fr_add_contact(R, A, who[k]);
        assert_int_equal(veil_engine_group_invite(R->c[A].e, R->now, rooms[A], c), 0);
        fr_run(R);
        rooms[who[k]] = newest_room(R, who[k], VEIL_ROOM_GROUP);
        assert_int_equal(veil_engine_invite_accept(R->c[who[k]].e, R->now, rooms[who[k]]), 0);
        fr_run(R);
    }
    fr_advance(R, 2000);
}

static void say(fr_relay *R, int who, uint32_t room, const char *text, uint8_t mid[16])
{
    uint8_t tmp[16];
    assert_int_equal(veil_engine_send_text(R->c[who].e, R->now, room, text, strlen(text), NULL, mid ? mid : tmp), 0);
}

/* Runs until quiet; frames to `who` pass, except DELIVERs, which are kept in out[] (the caller frees). */
static size_t collect(fr_relay *R, int who, fr_blob *out, size_t cap)
{
    size_t n = 0;
    fr_client *c = &R->c[who];

    c->capture = 1;
    for (;;) {
        fr_run(R);
        if (c->captured.count == 0) {
            break;
        }
        while (c->captured.count > 0) {
            fr_blob b = fr_q_pop(&c->captured);
            veil_frame f;
            assert_int_equal(veil_wire_decode(&f, b.p, b.len, NULL), 0);
            if (f.type == VEIL_FT_DELIVER && n < cap) {
                out[n++] = b;
            } else {
                fr_q_push(&c->to_client, b.p, b.len);
                fr_blob_free(&b);
            }
        }
    }
    c->capture = 0;
    return n;
}

/* Re-encodes a DELIVER with other fields (NULL/0: unchanged) and queues it to `who`. */
static void redeliver(fr_relay *R, int who, const fr_blob *b, uint64_t seq, const uint8_t *cmid, const uint8_t *env,
                      size_t env_len)
{
    veil_frame f;
    assert_int_equal(veil_wire_decode(&f, b->p, b->len, NULL), 0);
    if (seq != 0) {
        f.seq = seq;
    }
    if (cmid != NULL) {
        f.cmid.p = cmid;
    }
    if (env != NULL) {
        f.env.p = env;
        f.env.len = env_len;
    }
    fr_push_frame(R, who, &f);
}

static uint64_t seq_of(const fr_blob *b)
{
    veil_frame f;
    assert_int_equal(veil_wire_decode(&f, b->p, b->len, NULL), 0);
    return f.seq;
}

static void free_all(fr_blob *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        fr_blob_free(&b[i]);
    }
}

static size_t msgs(const fr_client *c, size_t from, const char *text)
{
    size_t i, n = 0;
    for (i = from; i < c->nlog; i++) {
        n += c->log[i].type == VEIL_EV_MESSAGE && (text == NULL || strcmp(c->log[i].text, text) == 0);
    }
    return n;
}

static size_t alerts(const fr_client *c, size_t from, int code)
{
    return fr_count(c, from, VEIL_EV_ALERT, code);
}

/* The relay stores an envelope of its own making in a room and delivers it to everyone joined but `except`. */
static uint64_t inject(fr_relay *R, const uint8_t room_id[32], const uint8_t cmid[16], const uint8_t *env, size_t len,
                       int except)
{
    int room = fr_room_find(R, room_id, 0), i;
    fr_env *x;

    assert_true(room >= 0);
    x = &R->envs[R->nenvs++];
    x->room = room;
    x->seq = ++R->rooms[room].head;
    memcpy(x->cmid, cmid, 16);
    fr_blob_set(&x->env, env, len);
    for (i = 0; i < R->nclients; i++) {
        if (i != except && R->c[i].open && R->c[i].joined[room]) {
            fr_deliver(R, i, x);
        }
    }
    return x->seq;
}

/* A group envelope as `who` would make it, under chain sk, for payload p. */
static size_t group_env(fr_relay *R, int who, veil_sender_key *sk, veil_payload *p, uint8_t *env, size_t cap)
{
    uint8_t pt[VEIL_PAYLOAD_MAX_BYTES];
    size_t pt_len, n;

    assert_int_equal(veil_payload_encode(p, pt, sizeof pt, &pt_len), 0);
    env[0] = VEIL_ENV_VERSION;
    env[1] = VEIL_ENV_GROUP;
    assert_int_equal(veil_group_encrypt(sk, env + 2, cap - 2, &n, pt, pt_len, &R->c[who].rng), 0);
    return n + 2;
}

static void text_payload(veil_payload *p, const char *text, uint64_t n)
{
    memset(p, 0, sizeof *p);
    p->kind = VEIL_PK_TEXT;
    p->present = VEIL_PF_ID | VEIL_PF_N | VEIL_PF_TS | VEIL_PF_BODY;
    memset(p->id, (int)n, 16);
    p->n = n;
    p->ts = 1;
    p->body = (const uint8_t *)text;
    p->body_len = strlen(text);
}

/* Drops, duplicates, reorders and replays of stored envelopes. */
static void test_drop_dup_reorder_replay(void **state)
{
    fr_relay *R = fr_new(3, 70);
    uint32_t rooms[3];
    fr_blob d[16];
    size_t n, mark;
    veil_room_info info;

    (void)state;
    group3(R, rooms);
    assert_int_equal(veil_engine_room_get(R->c[B].e, rooms[B], &info), 0);

    /* Drop: the relay withholds m2; B sees a jump in the room's sequence. */
    mark = R->c[B].nlog;
    say(R, A, rooms[A], "m1", NULL);
    say(R, A, rooms[A], "m2", NULL);
    say(R, A, rooms[A], "m3", NULL);
    n = collect(R, B, d, 16);
    assert_int_equal(n, 3);
    fr_q_push(&R->c[B].to_client, d[0].p, d[0].len);
    fr_q_push(&R->c[B].to_client, d[2].p, d[2].len);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, NULL), 2);
    assert_int_equal(msgs(&R->c[B], mark, "m2"), 0);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_SEQ_GAP), 1);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_DROPPED), 1);

    /* Duplicate, and a sequence number that goes backwards: dropped, reported, shown once. */
    mark = R->c[B].nlog;
    fr_q_push(&R->c[B].to_client, d[2].p, d[2].len);
    fr_q_push(&R->c[B].to_client, d[1].p, d[1].len);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, NULL), 0);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_DUPLICATE), 2);

    /* Replay of m1 under a fresh sequence number: its key is used up. */
    mark = R->c[B].nlog;
    redeliver(R, B, &d[0], seq_of(&d[2]) + 1, NULL, NULL, 0);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, NULL), 0);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_REPLAY), 1);
    free_all(d, n);

    /* Hidden drop: the relay renumbers so the sequence has no hole; the sender's counter shows it. */
    mark = R->c[B].nlog;
    say(R, C, rooms[C], "c1", NULL);
    say(R, C, rooms[C], "c2", NULL);
    say(R, C, rooms[C], "c3", NULL);
    n = collect(R, B, d, 16);
    assert_int_equal(n, 3);
    redeliver(R, B, &d[0], 0, NULL, NULL, 0);
    redeliver(R, B, &d[2], seq_of(&d[1]), NULL, NULL, 0);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, "c2"), 0);
    assert_int_equal(msgs(&R->c[B], mark, "c3"), 1);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_SEQ_GAP), 0);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_DROPPED), 1);
    free_all(d, n);

    /* Reorder: envelopes swapped between sequence numbers; the late one is flagged. */
    mark = R->c[B].nlog;
    say(R, C, rooms[C], "c4", NULL);
    say(R, C, rooms[C], "c5", NULL);
    n = collect(R, B, d, 16);
    assert_int_equal(n, 2);
    {
        veil_frame f0, f1;
        assert_int_equal(veil_wire_decode(&f0, d[0].p, d[0].len, NULL), 0);
        assert_int_equal(veil_wire_decode(&f1, d[1].p, d[1].len, NULL), 0);
        redeliver(R, B, &d[0], 0, f1.cmid.p, f1.env.p, f1.env.len);
        redeliver(R, B, &d[1], 0, f0.cmid.p, f0.env.p, f0.env.len);
    }
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, NULL), 2);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_REORDERED), 1);
    assert_true(R->c[B].log[fr_find(&R->c[B], mark, VEIL_EV_MESSAGE, "c4")].flags & VEIL_EVF_LATE);
    free_all(d, n);

    /* Nothing of this disturbed A and C. */
    assert_int_equal(alerts(&R->c[A], 0, 0), 0);
    assert_int_equal(alerts(&R->c[C], 0, 0), 0);
    fr_free(R);
}

/* A drop next to a number of B's own, acknowledged before the later deliveries arrive: one missing, not two. */
static void test_gap_around_own(void **state)
{
    fr_relay *R = fr_new(3, 79);
    uint32_t rooms[3];
    fr_blob d[8], m3[4];
    size_t n, n3, mark;

    (void)state;
    group3(R, rooms);
    mark = R->c[B].nlog;
    say(R, A, rooms[A], "m1", NULL);
    say(R, A, rooms[A], "m2", NULL);
    n = collect(R, B, d, 8);
    assert_int_equal(n, 2);
    say(R, B, rooms[B], "mine", NULL); /* numbered after m2, ACKed to B at once */
    fr_run(R);
    say(R, A, rooms[A], "m3", NULL);
    n3 = collect(R, B, m3, 4);
    assert_int_equal(n3, 1);
    assert_true(seq_of(&m3[0]) == seq_of(&d[1]) + 2);
    fr_q_push(&R->c[B].to_client, d[0].p, d[0].len);
    fr_q_push(&R->c[B].to_client, m3[0].p, m3[0].len); /* m2 withheld */
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, "m2"), 0);
    assert_int_equal(msgs(&R->c[B], mark, "m3"), 1);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_SEQ_GAP), 1);
    {
        size_t i;
        for (i = mark; i < R->c[B].nlog; i++) {
            if (R->c[B].log[i].type == VEIL_EV_ALERT && R->c[B].log[i].code == VEIL_ALERT_SEQ_GAP) {
                assert_int_equal(R->c[B].log[i].n, 1); /* m2's number only */
            }
        }
    }
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_DROPPED), 1);
    free_all(d, n);
    free_all(m3, n3);
    fr_free(R);
}

/* The relay hands the author envelopes in the author's own name (SPEC.md 13.9): its own message stored
 * again, an altered copy of it, a pairwise one; the original cmid at another number. */
static void test_own_envelopes(void **state)
{
    fr_relay *R = fr_new(3, 78);
    uint32_t rooms[3], ra;
    fr_blob d[4], p[4];
    size_t n, np, mark;
    uint8_t cmid[16], env[VEIL_ENV_MAX_BYTES];
    veil_frame f, g;

    (void)state;
    group3(R, rooms);
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_contact_of(R, A, B), &ra), 0);
    fr_advance(R, 1000);

    mark = R->c[A].nlog;
    say(R, A, rooms[A], "mine", NULL);
    n = collect(R, B, d, 4);
    assert_int_equal(n, 1);
    assert_int_equal(veil_wire_decode(&f, d[0].p, d[0].len, NULL), 0);
    assert_int_equal(alerts(&R->c[A], mark, 0), 0);

    /* Stored again under a new cmid and number: signed by A's current chain, a replay. */
    memset(cmid, 0xa1, sizeof cmid);
    redeliver(R, A, &d[0], f.seq + 1, cmid, NULL, 0);
    fr_run(R);
    assert_int_equal(alerts(&R->c[A], mark, VEIL_ALERT_REPLAY), 1);
    /* An altered copy (its signature no longer A's): forged. */
    memcpy(env, f.env.p, f.env.len);
    env[f.env.len - 1] ^= 0x01;
    memset(cmid, 0xa2, sizeof cmid);
    redeliver(R, A, &d[0], f.seq + 2, cmid, env, f.env.len);
    fr_run(R);
    assert_int_equal(alerts(&R->c[A], mark, VEIL_ALERT_FORGED), 1);
    /* Its own cmid at another number: the relay contradicts its ACK. */
    redeliver(R, A, &d[0], f.seq + 3, NULL, NULL, 0);
    fr_run(R);
    assert_int_equal(alerts(&R->c[A], mark, VEIL_ALERT_PROTOCOL), 1);

    /* A pairwise envelope of A's, stored again: A cannot open it, so cannot vouch for it. */
    say(R, A, ra, "mine too", NULL);
    np = collect(R, B, p, 4);
    assert_int_equal(np, 1);
    assert_int_equal(veil_wire_decode(&g, p[0].p, p[0].len, NULL), 0);
    memset(cmid, 0xa3, sizeof cmid);
    redeliver(R, A, &p[0], g.seq + 1, cmid, NULL, 0);
    fr_run(R);
    assert_int_equal(alerts(&R->c[A], mark, VEIL_ALERT_FORGED), 2);

    /* Exactly these four, and nothing shown. */
    assert_int_equal(alerts(&R->c[A], mark, 0), 4);
    assert_int_equal(msgs(&R->c[A], mark, NULL), 0);
    free_all(d, n);
    free_all(p, np);
    fr_free(R);
}

/* Tampering, injection, a changed cmid, envelopes moved between channels, lies about presence. */
static void test_tamper_inject(void **state)
{
    fr_relay *R = fr_new(3, 71);
    uint32_t rooms[3], ra, rb;
    fr_blob d[8];
    size_t n, mark, i;
    uint8_t junk[300], cmid[16];
    veil_room_info ig, id;
    long k;

    (void)state;
    group3(R, rooms);
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_contact_of(R, A, B), &ra), 0);
    say(R, A, ra, "direct", NULL);
    fr_advance(R, 1000);
    rb = newest_room(R, B, VEIL_ROOM_DIRECT);
    assert_int_equal(veil_engine_room_get(R->c[B].e, rooms[B], &ig), 0);
    assert_int_equal(veil_engine_room_get(R->c[B].e, rb, &id), 0);

    /* Every octet of a group envelope altered in turn: forged, never shown. */
    mark = R->c[B].nlog;
    say(R, A, rooms[A], "genuine", NULL);
    n = collect(R, B, d, 8);
    assert_int_equal(n, 1);
    {
        veil_frame f;
        uint8_t env[VEIL_ENV_MAX_BYTES];
        assert_int_equal(veil_wire_decode(&f, d[0].p, d[0].len, NULL), 0);
        for (i = 2; i < f.env.len; i += 23) {
            memcpy(env, f.env.p, f.env.len);
            env[i] ^= 0x20;
            redeliver(R, B, &d[0], f.seq + i, NULL, env, f.env.len);
            fr_run(R);
        }
        /* The cmid changed: the content is genuine, the relay's field is not. */
        memset(cmid, 0xee, sizeof cmid);
        redeliver(R, B, &d[0], f.seq + f.env.len + 1, cmid, NULL, 0);
        fr_run(R);
    }
    assert_int_equal(msgs(&R->c[B], mark, NULL), 1);
    assert_int_equal(msgs(&R->c[B], mark, "genuine"), 1);
    assert_true(alerts(&R->c[B], mark, VEIL_ALERT_FORGED) + alerts(&R->c[B], mark, VEIL_ALERT_MALFORMED) >= 8);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_CMID), 1);
    free_all(d, n);

    /* Injected junk, in rooms and in the inbox. */
    mark = R->c[B].nlog;
    for (i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 7 + 1);
    }
    junk[0] = 1;
    junk[1] = 2;
    (void)inject(R, ig.room_id, cmid, junk, sizeof junk, -1);
    junk[1] = 1;
    (void)inject(R, id.room_id, cmid, junk, sizeof junk, A);
    {
        veil_frame f;
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_INBOX_NEW;
        veil_wire_set_uint(&f, VEIL_WF_IID, 999);
        veil_wire_set_uint(&f, VEIL_WF_TS, 1);
        veil_wire_set_bin(&f, VEIL_WF_ENV, junk, sizeof junk);
        fr_send(R, B, &f);
    }
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, NULL), 0);
    assert_true(alerts(&R->c[B], mark, 0) >= 3);

    /* A direct-room envelope moved into the group room, and into the inbox. */
    mark = R->c[B].nlog;
    say(R, A, ra, "direct 2", NULL);
    n = collect(R, B, d, 8);
    assert_int_equal(n, 1);
    {
        veil_frame f, g;
        assert_int_equal(veil_wire_decode(&f, d[0].p, d[0].len, NULL), 0);
        memset(&g, 0, sizeof g);
        g.type = VEIL_FT_DELIVER;
        veil_wire_set_bin(&g, VEIL_WF_ROOM, ig.room_id, 32);
        veil_wire_set_uint(&g, VEIL_WF_SEQ, 100000);
        veil_wire_set_bin(&g, VEIL_WF_CMID, f.cmid.p, 16);
        veil_wire_set_bin(&g, VEIL_WF_ENV, f.env.p, f.env.len);
        fr_send(R, B, &g);
        memset(&g, 0, sizeof g);
        g.type = VEIL_FT_INBOX_NEW;
        veil_wire_set_uint(&g, VEIL_WF_IID, 1000);
        veil_wire_set_uint(&g, VEIL_WF_TS, 1);
        veil_wire_set_bin(&g, VEIL_WF_ENV, f.env.p, f.env.len);
        fr_send(R, B, &g);
        fr_run(R);
        assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_MALFORMED), 1);
        assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_BAD_KIND), 1);
        /* The genuine delivery: its key was spent by the moved copy, so it is a replay now. */
        fr_q_push(&R->c[B].to_client, d[0].p, d[0].len);
        fr_run(R);
    }
    assert_int_equal(msgs(&R->c[B], mark, NULL), 0);
    free_all(d, n);

    /* Presence from a tag no member has. */
    mark = R->c[B].nlog;
    {
        veil_frame f;
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_PRESENCE;
        veil_wire_set_bin(&f, VEIL_WF_ROOM, ig.room_id, 32);
        veil_wire_set_bin(&f, VEIL_WF_TAG, junk, 16);
        veil_wire_set_bool(&f, VEIL_WF_ON, true);
        fr_send(R, B, &f);
        fr_run(R);
    }
    k = fr_find(&R->c[B], mark, VEIL_EV_PRESENCE, NULL);
    assert_true(k >= 0);
    assert_true(R->c[B].log[k].flags & VEIL_EVF_UNKNOWN);
    assert_true(sodium_is_zero(R->c[B].log[k].from, 32));

    /* Frames the engine never asked for. */
    mark = R->c[B].nlog;
    {
        veil_frame f;
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_PREKEY_COUNTED;
        f.id = 0x7fffff;
        veil_wire_set_uint(&f, VEIL_WF_COUNT, 0);
        fr_send(R, B, &f);
        fr_q_push(&R->c[B].to_client, junk, 20);
        fr_run(R);
    }
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_PROTOCOL), 1);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_MALFORMED), 1);
    /* A and C only saw the junk injected in the group room. */
    assert_int_equal(alerts(&R->c[A], 0, 0), alerts(&R->c[A], 0, VEIL_ALERT_MALFORMED));
    assert_int_equal(alerts(&R->c[C], 0, 0), alerts(&R->c[C], 0, VEIL_ALERT_MALFORMED));
    assert_int_equal(msgs(&R->c[C], 0, "direct"), 0);
    fr_free(R);
}

/* The relay, and a member who is not an admin, try to add someone; a stranger's key is refused. */
static void test_add_member(void **state)
{
    fr_relay *R = fr_new(4, 72);
    uint32_t rooms[4], rd;
    veil_room_info ig, info;
    veil_engine *ce;
    veil__room *cr;
    veil_payload p;
    static veil_sender_key fake;
    uint8_t env[VEIL_ENV_MAX_BYTES], rec[VEIL_GROUP_ROSTER_MAX_BYTES], cmid[16];
    static veil_roster nr;
    size_t len, rlen, mark[4];
    int k;

    (void)state;
    group3(R, rooms);
    assert_int_equal(veil_engine_room_get(R->c[A].e, rooms[A], &ig), 0);
    for (k = 0; k < 4; k++) {
        mark[k] = R->c[k].nlog;
    }

    /* 1. The relay's own member: a chain nobody in the roster handed out. */
    veil_sender_key_create(&fake, ((veil__room *)veil__room_get(R->c[A].e, rooms[A]))->gid, ig.epoch, &R->rng);
    text_payload(&p, "I am in", 1);
    len = group_env(R, D, &fake, &p, env, sizeof env);
    memset(cmid, 1, sizeof cmid);
    (void)inject(R, ig.room_id, cmid, env, len, -1);
    fr_advance(R, VEIL_ENGINE_HOLD_MS + 1000);
    for (k = 0; k < 3; k++) {
        assert_int_equal(msgs(&R->c[k], mark[k], NULL), 0);
        assert_int_equal(alerts(&R->c[k], mark[k], VEIL_ALERT_UNKNOWN_SENDER), 1);
    }

    /* 2. A stranger D with an identity of its own hands B a sender key for the group. */
    assert_int_equal(veil_engine_direct_open(R->c[D].e, R->now, fr_add_contact(R, D, B), &rd), 0);
    fr_advance(R, 1000);
    {
        veil__contact *cb = veil__contact_by_ik(R->c[D].e, R->c[B].ik);
        uint8_t pt[512];
        size_t pt_len;
        veil_frame f;
        uint8_t fbuf[VEIL_ENGINE_FRAME_MAX_BYTES];
        size_t flen;

        assert_non_null(cb);
        memset(&p, 0, sizeof p);
        p.kind = VEIL_PK_SENDER_KEY;
        p.present = VEIL_PF_ROOM | VEIL_PF_DIST;
        memcpy(p.room, ig.room_id, 32);
        veil_sender_key_distribution(p.dist, &fake);
        assert_int_equal(veil_payload_encode(&p, pt, sizeof pt, &pt_len), 0);
        assert_int_equal(veil__pair_encrypt(R->c[D].e, cb, pt, pt_len, env, sizeof env, &len), 0);
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_INBOX_POST;
        f.id = 0x7ffffff0;
        veil_wire_set_bin(&f, VEIL_WF_TO, R->c[B].ik, 32);
        veil_wire_set_bin(&f, VEIL_WF_ENV, env, len);
        assert_int_equal(veil_wire_encode(&f, fbuf, sizeof fbuf, &flen), 0);
        fr_request(R, D, fbuf, flen);
    }
    text_payload(&p, "now I am in", 2);
    len = group_env(R, D, &fake, &p, env, sizeof env);
    memset(cmid, 2, sizeof cmid);
    (void)inject(R, ig.room_id, cmid, env, len, -1);
    fr_advance(R, VEIL_ENGINE_HOLD_MS + 1000);
    assert_int_equal(msgs(&R->c[B], mark[B], "now I am in"), 0);
    assert_int_equal(alerts(&R->c[B], mark[B], VEIL_ALERT_NOT_MEMBER), 1);
    assert_int_equal(alerts(&R->c[B], mark[B], VEIL_ALERT_UNKNOWN_SENDER), 2);

    /* 3. C, a member but no admin, publishes a roster revision that adds D. */
    ce = R->c[C].e;
    cr = veil__room_get(ce, rooms[C]);
    veil_roster_next(&nr, &cr->roster);
    assert_int_equal(veil_roster_set(&nr, R->c[D].ik, VEIL_ROSTER_ROLE_MEMBER), 0);
    veil_roster_sign(&nr, &cr->roster, &ce->kr.id);
    assert_int_equal(veil_roster_encode(rec, sizeof rec, &rlen, &nr), 0);
    memset(&p, 0, sizeof p);
    p.kind = VEIL_PK_ROSTER;
    p.present = VEIL_PF_ID | VEIL_PF_N | VEIL_PF_TS | VEIL_PF_ROSTER;
    memset(p.id, 3, 16);
    p.n = cr->my_n + 1U;
    cr->my_n++;
    p.roster = rec;
    p.roster_len = rlen;
    len = group_env(R, C, &ce->chains[cr->own_chain].sk, &p, env, sizeof env);
    memset(cmid, 3, sizeof cmid);
    (void)inject(R, ig.room_id, cmid, env, len, C);
    fr_run(R);
    for (k = 0; k < 2; k++) {
        assert_int_equal(alerts(&R->c[k], mark[k], VEIL_ALERT_ROSTER), 1);
        assert_int_equal(veil_engine_room_get(R->c[k].e, rooms[k], &info), 0);
        assert_int_equal(info.members, 3);
        assert_int_equal(info.roster_rev, ig.roster_rev);
    }

    /* Through all this the group still works, for its members only. */
    mark[B] = R->c[B].nlog;
    say(R, A, rooms[A], "still fine", NULL);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark[B], "still fine"), 1);
    assert_int_equal(msgs(&R->c[D], 0, "still fine"), 0);
    fr_free(R);
}

/* Lost ACKs: the publish is retried after a reconnect, with the same cmid; nobody sees it twice. */
static void test_lost_ack_retry(void **state)
{
    fr_relay *R = fr_new(2, 73);
    uint32_t ra, rb;
    uint8_t mid[16];
    size_t mark;
    veil_msg_info mi;

    (void)state;
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_add_contact(R, A, B), &ra), 0);
    say(R, A, ra, "one", NULL);
    fr_advance(R, 2000);
    rb = newest_room(R, B, VEIL_ROOM_DIRECT);
    assert_true(rb != 0);
    mark = R->c[B].nlog;
    R->drop_acks = 1;
    say(R, A, ra, "two", mid);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, "two"), 1);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, mid, &mi), 0);
    assert_int_equal(mi.status, VEIL_MSG_PENDING);
    R->drop_acks = 0;
    fr_advance(R, VEIL_ENGINE_REQUEST_TIMEOUT_MS + VEIL_ENGINE_RECONNECT_MAX_MS);
    assert_true(fr_find(&R->c[A], 0, VEIL_EV_CLOSE, NULL) >= 0);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, mid, &mi), 0);
    assert_int_equal(mi.status >= VEIL_MSG_SENT, 1);
    assert_int_equal(msgs(&R->c[B], mark, "two"), 1);
    say(R, A, ra, "three", NULL);
    fr_run(R);
    assert_int_equal(msgs(&R->c[B], mark, "three"), 1);
    assert_int_equal(alerts(&R->c[A], 0, 0), 0);
    assert_int_equal(alerts(&R->c[B], 0, 0), 0);
    fr_free(R);
}

/* Runs `ms` of time with every frame to `who` passed through fn (which queues what the client gets). */
typedef void (*filter_fn)(fr_relay *R, int who, const fr_blob *b, const veil_frame *f);

static void filter_run(fr_relay *R, int who, filter_fn fn, uint64_t ms)
{
    uint64_t end = R->now + ms;
    fr_client *c = &R->c[who];

    c->capture = 1;
    for (;;) {
        fr_run(R);
        while (c->captured.count > 0) {
            fr_blob b = fr_q_pop(&c->captured);
            veil_frame f;
            assert_int_equal(veil_wire_decode(&f, b.p, b.len, NULL), 0);
            fn(R, who, &b, &f);
            fr_blob_free(&b);
        }
        fr_run(R);
        if (c->captured.count > 0) {
            continue;
        }
        if (R->now >= end) {
            break;
        }
        R->now += 500;
    }
    c->capture = 0;
}

static void forget_history(fr_relay *R, int who, const fr_blob *b, const veil_frame *f)
{
    if (f->type == VEIL_FT_JOINED) {
        veil_frame g = *f;
        g.head = 0;
        g.first = 1;
        fr_push_frame(R, who, &g);
        return;
    }
    fr_q_push(&R->c[who].to_client, b->p, b->len);
}

/* Prekeys: a bundle of the wrong identity; a relay that forgets what was already processed. */
static void test_bundle_and_rollback(void **state)
{
    fr_relay *R = fr_new(3, 74);
    uint32_t ra, rb;
    size_t mark;
    veil_contact_info ci;

    (void)state;
    R->serve_bundle_of = C;
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_add_contact(R, A, B), &ra), 0);
    say(R, A, ra, "to B only", NULL);
    fr_advance(R, 2000);
    assert_true(alerts(&R->c[A], 0, VEIL_ALERT_BUNDLE) >= 1);
    assert_int_equal(veil_engine_contact_get(R->c[A].e, fr_contact_of(R, A, B), &ci), 0);
    assert_int_equal(ci.flags & VEIL_CONTACT_SESSION, 0);
    assert_int_equal(msgs(&R->c[C], 0, NULL), 0);
    assert_int_equal(msgs(&R->c[B], 0, NULL), 0);
    R->serve_bundle_of = -1;
    fr_advance(R, VEIL_ENGINE_RETRY_MAX_MS + 2000);
    assert_int_equal(msgs(&R->c[B], 0, "to B only"), 1);

    /* The relay forgets: on B's next join, head is below what B processed. */
    rb = newest_room(R, B, VEIL_ROOM_DIRECT);
    (void)rb;
    mark = R->c[B].nlog;
    fr_set_online(R, B, 0);
    R->c[B].online = 1;
    filter_run(R, B, forget_history, VEIL_ENGINE_RECONNECT_MAX_MS);
    assert_true(alerts(&R->c[B], mark, VEIL_ALERT_ROLLBACK) >= 1);
    fr_free(R);
}

/* A contact's identity key changes: flagged, nothing accepted or sent until the user accepts it. */
static void test_key_changed(void **state)
{
    fr_relay *R = fr_new(4, 75);
    uint32_t ra, rd, cb;
    veil_identity id;
    uint8_t dh[32], x[16];
    size_t mark, added;
    veil_contact_info ci;
    veil_engine *e;

    (void)state;
    R->c[D].online = 0;
    fr_set_online(R, D, 0);
    cb = fr_add_contact(R, A, B);
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, cb, &ra), 0);
    say(R, A, ra, "hi B", NULL);
    fr_advance(R, 2000);
    assert_int_equal(msgs(&R->c[B], 0, "hi B"), 1);

    /* D: B's signing key with a new identity DH key (what a re-keyed device would present). */
    e = R->c[D].e;
    memset(dh, 0x5a, sizeof dh);
    veil_identity_from_secrets(&id, R->c[B].e->kr.id.seed, dh);
    veil_keyring_wipe(&e->kr);
    veil_keyring_init_with_identity(&e->kr, &id, &R->c[D].rng, R->now / 1000);
    assert_int_equal(veil_keyring_add_opks(&e->kr, 5, &added, &R->c[D].rng), 0);
    e->opk_uploaded_below = 1;
    e->spk_uploaded = 0;
    memcpy(R->c[D].ik, id.pub.sign_pk, 32);
    fr_set_online(R, B, 0);
    R->c[D].online = 1;
    veil_engine_disconnected(e, R->now);
    fr_advance(R, VEIL_ENGINE_RECONNECT_MAX_MS);

    mark = R->c[A].nlog;
    assert_int_equal(veil_engine_direct_open(e, R->now, fr_add_contact(R, D, A), &rd), 0);
    say(R, D, rd, "new device", NULL);
    fr_advance(R, 2000);
    assert_true(alerts(&R->c[A], mark, VEIL_ALERT_KEY_CHANGED) >= 1);
    assert_true(fr_find(&R->c[A], mark, VEIL_EV_CONTACT, NULL) >= 0);
    assert_int_equal(msgs(&R->c[A], mark, NULL), 0);
    assert_int_equal(veil_engine_contact_get(R->c[A].e, cb, &ci), 0);
    assert_true(ci.flags & VEIL_CONTACT_KEY_CHANGED);
    assert_int_equal(veil_engine_send_text(R->c[A].e, R->now, ra, "x", 1, NULL, x), VEIL_ESTATE);

    /* The user accepts the new key: the next message (it repeats its X3DH header) gets through. */
    assert_int_equal(veil_engine_contact_accept_key(R->c[A].e, R->now, cb), 0);
    assert_int_equal(veil_engine_contact_accept_key(R->c[A].e, R->now, cb), VEIL_ESTATE);
    assert_int_equal(veil_engine_contact_get(R->c[A].e, cb, &ci), 0);
    assert_int_equal(ci.flags & (VEIL_CONTACT_KEY_CHANGED | VEIL_CONTACT_VERIFIED), 0);
    say(R, D, rd, "after accept", NULL);
    fr_advance(R, 5000);
    assert_int_equal(msgs(&R->c[A], mark, "after accept"), 1);
    say(R, A, ra, "welcome back", NULL);
    fr_advance(R, 2000);
    assert_int_equal(msgs(&R->c[D], 0, "welcome back"), 1);
    assert_int_equal(fr_count(&R->c[A], 0, VEIL_EV_CLOSE, 0), 0);
    fr_free(R);
}

/*
 * A contact flagged KEY_CHANGED is not heard from on any path (SPEC.md 13.2),
 * also not through a session it started before the change: until B answers,
 * A's messages repeat their X3DH header and go to the responder session that
 * header created at B, which once decrypted them without looking at the flag.
 */
static void test_key_changed_existing_session(void **state)
{
    fr_relay *R = fr_new(2, 77);
    uint32_t ra;
    size_t mark, held;
    veil__contact *c;
    fr_blob kept[16];

    (void)state;
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_add_contact(R, A, B), &ra), 0);
    say(R, A, ra, "hi B", NULL);
    /* B's answers in the room (its PROFILE, receipts) are kept from A: A's session stays unconfirmed. */
    held = collect(R, A, kept, 16);
    assert_int_equal(msgs(&R->c[B], 0, "hi B"), 1);
    c = veil__contact_by_ik(R->c[B].e, R->c[A].ik);
    assert_non_null(c);
    /* What test_key_changed reaches through a re-keyed device, set directly here. */
    c->flags |= VEIL_CONTACT_KEY_CHANGED;
    mark = R->c[B].nlog;
    say(R, A, ra, "after the change", NULL);
    held += collect(R, A, kept + held, 16 - held);
    assert_int_equal(msgs(&R->c[B], mark, "after the change"), 0);
    assert_true(alerts(&R->c[B], mark, VEIL_ALERT_KEY_CHANGED) >= 1);
    while (held > 0) {
        fr_blob_free(&kept[--held]);
    }
    fr_free(R);
}

/* Memory stays bounded under a flood: the event queue reports what it lost; held envelopes are capped. */
static void test_bounded_under_flood(void **state)
{
    fr_relay *R = fr_new(3, 76);
    uint32_t rooms[3];
    veil_room_info ig;
    static veil_sender_key fake;
    veil_payload p;
    uint8_t env[VEIL_ENV_MAX_BYTES], cmid[16];
    size_t len, i, n = 0;
    veil_event *ev = malloc(sizeof *ev);

    (void)state;
    assert_non_null(ev);
    group3(R, rooms);
    assert_int_equal(veil_engine_room_get(R->c[A].e, rooms[A], &ig), 0);
    veil_sender_key_create(&fake, ((veil__room *)veil__room_get(R->c[A].e, rooms[A]))->gid, ig.epoch, &R->rng);
    /* 40 envelopes under unknown keys: 16 are held at most, the others evicted with an alert. */
    for (i = 0; i < 40; i++) {
        text_payload(&p, "flood", i + 1);
        len = group_env(R, C, &fake, &p, env, sizeof env);
        memset(cmid, (int)i, sizeof cmid);
        (void)inject(R, ig.room_id, cmid, env, len, -1);
    }
    fr_run(R);
    for (i = 0; i < VEIL_ENGINE_HELD + 1; i++) {
        n += R->c[B].e->held[i % VEIL_ENGINE_HELD].used && i < VEIL_ENGINE_HELD;
    }
    assert_int_equal(n, VEIL_ENGINE_HELD);
    assert_int_equal(alerts(&R->c[B], 0, VEIL_ALERT_UNKNOWN_SENDER), 40 - VEIL_ENGINE_HELD);

    /* A host that does not drain its events loses them, and is told how many. */
    R->c[A].online = 0;
    for (i = 0; i < VEIL_ENGINE_MAX_EVENTS + 10; i++) {
        uint8_t bad[4] = { 0xc1, 0, 0, 0 };
        (void)veil_engine_receive(R->c[B].e, R->now, bad, sizeof bad);
    }
    n = 0;
    while (veil_engine_next_event(R->c[B].e, ev)) {
        n++;
        if (ev->type == VEIL_EV_ALERT && ev->code == VEIL_ALERT_OVERFLOW) {
            assert_true(ev->n >= 10);
        }
    }
    assert_int_equal(n, VEIL_ENGINE_MAX_EVENTS + 1);
    free(ev);
    fr_free(R);
}

/* A stranger's first message to `to`, made with the crypto layer alone: a fresh identity, X3DH on the
 * relay's bundle, a direct-room invitation. */
static uint8_t first_env[1024];
static size_t first_len;

static void stranger_writes(fr_relay *R, int to, uint8_t seed)
{
    veil_keyring *kr = calloc(1, sizeof *kr);
    veil_session *s = calloc(1, sizeof *s);
    veil_drbg d;
    veil_rng rng = vt_seeded_rng(&d, seed);
    fr_ident *id = fr_ident_of(R, R->c[to].ik, 0);
    uint8_t raw[VEIL_BUNDLE_BYTES], pt[256], env[1024];
    veil_bundle b;
    veil_x3dh_secret xs;
    veil_x3dh_init init;
    veil_payload p;
    size_t pt_len, n;

    assert_non_null(kr);
    assert_non_null(s);
    assert_non_null(id);
    veil_keyring_init(kr, &rng, R->now / 1000);
    memset(raw, 0, sizeof raw);
    memcpy(raw, id->base, VEIL_WIRE_BASE_BYTES); /* without a one-time prekey: the relay ran out */
    assert_int_equal(veil_bundle_decode(&b, raw, sizeof raw), 0);
    assert_int_equal(veil_x3dh_initiate(&xs, &init, &kr->id, &b, &rng), 0);
    assert_int_equal(veil_session_init_initiator(s, &xs, b.spk_pk, &rng), 0);
    memset(&p, 0, sizeof p);
    p.kind = VEIL_PK_INVITE;
    p.present = VEIL_PF_NAME;
    p.name = (const uint8_t *)"stranger";
    p.name_len = 8;
    assert_int_equal(veil_payload_encode(&p, pt, sizeof pt, &pt_len), 0);
    env[0] = 1;
    env[1] = 1;
    memcpy(env + 2, kr->id.pub.sign_pk, 32);
    env[34] = 1;
    veil_x3dh_init_encode(env + 35, &init);
    assert_int_equal(veil_session_encrypt(s, env + 205, sizeof env - 205, &n, pt, pt_len, &rng), 0);
    fr_inbox_inject(R, R->c[to].ik, env, 205 + n);
    if (first_len == 0) {
        memcpy(first_env, env, 205 + n);
        first_len = 205 + n;
    }
    veil_x3dh_secret_wipe(&xs);
    veil_keyring_wipe(kr);
    free(kr);
    free(s);
}

/* Strangers in numbers cannot crowd out the contacts and rooms the user chose. */
static void test_stranger_flood(void **state)
{
    fr_relay *R = fr_new(2, 77);
    uint32_t ra, rb, ids[VEIL_ENGINE_MAX_CONTACTS + 1], rids[VEIL_ENGINE_MAX_ROOMS + 1];
    size_t i, mark, removed;
    char buf[32];

    (void)state;
    first_len = 0;
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_add_contact(R, A, B), &ra), 0);
    say(R, A, ra, "first", NULL);
    fr_advance(R, 2000);
    rb = newest_room(R, B, VEIL_ROOM_DIRECT);
    say(R, B, rb, "reply", NULL); /* B wrote to A: A is no stranger to B any more */
    fr_advance(R, 2000);
    mark = R->c[B].nlog;
    for (i = 0; i < 60; i++) {
        stranger_writes(R, B, (uint8_t)(100 + i));
        fr_run(R);
    }
    fr_advance(R, 1000);
    assert_true(veil_engine_contacts(R->c[B].e, ids, VEIL_ENGINE_MAX_CONTACTS + 1) <= VEIL_ENGINE_MAX_CONTACTS);
    assert_true(veil_engine_rooms(R->c[B].e, rids, VEIL_ENGINE_MAX_ROOMS + 1) == VEIL_ENGINE_MAX_ROOMS);
    assert_true(fr_contact_of(R, B, A) != 0);
    {
        veil_room_info info;
        assert_int_equal(veil_engine_room_get(R->c[B].e, rb, &info), 0);
    }
    removed = 0;
    for (i = mark; i < R->c[B].nlog; i++) {
        removed += R->c[B].log[i].type == VEIL_EV_CONTACT && (R->c[B].log[i].flags & VEIL_EVF_REMOVED);
    }
    assert_int_equal(removed, 60 - (VEIL_ENGINE_MAX_ROOMS - 1));
    assert_int_equal(fr_count(&R->c[B], mark, VEIL_EV_ERROR, 0), 0);
    /* The relay replays the first stranger's initial message: its contact and session are gone,
     * and it came without a one-time prekey, yet it does not open a session again. */
    mark = R->c[B].nlog;
    assert_true(first_len > 0);
    fr_inbox_inject(R, R->c[B].ik, first_env, first_len);
    fr_run(R);
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_REPLAY), 1);
    assert_int_equal(fr_count(&R->c[B], mark, VEIL_EV_CONTACT, 0), 0);
    assert_int_equal(fr_count(&R->c[B], mark, VEIL_EV_ROOM, 0), 0);
    /* And the conversation with A goes on. */
    mark = R->c[B].nlog;
    say(R, A, ra, "still here", NULL);
    fr_advance(R, 1000);
    snprintf(buf, sizeof buf, "still here");
    assert_int_equal(msgs(&R->c[B], mark, buf), 1);
    fr_free(R);
}

/* The relay refuses: a rate limit is waited out, a refused message fails, a missing bundle is retried. */
static void test_relay_errors(void **state)
{
    fr_relay *R = fr_new(3, 78);
    uint32_t ra, rc;
    uint8_t mid[16];
    size_t mark;
    long k;
    veil_msg_info mi;

    (void)state;
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_add_contact(R, A, B), &ra), 0);
    say(R, A, ra, "one", NULL);
    fr_advance(R, 2000);

    /* Rate limited three times: retried after 1, 2, 4 s, then stored once. */
    mark = R->c[B].nlog;
    R->fail_publish = VEIL_ERATE;
    R->fail_count = 3;
    say(R, A, ra, "limited", mid);
    fr_run(R);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, mid, &mi), 0);
    assert_int_equal(mi.status, VEIL_MSG_PENDING);
    fr_advance(R, 8000);
    assert_int_equal(R->fail_count, 0);
    assert_int_equal(msgs(&R->c[B], mark, "limited"), 1);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, mid, &mi), 0);
    assert_true(mi.status >= VEIL_MSG_SENT);

    /* Refused for good: the message fails, the next one goes through. */
    R->fail_publish = VEIL_ETOOBIG;
    R->fail_count = 1;
    say(R, A, ra, "refused", mid);
    say(R, A, ra, "next", NULL);
    fr_advance(R, 2000);
    k = fr_find(&R->c[A], 0, VEIL_EV_FAILED, NULL);
    assert_true(k >= 0);
    assert_int_equal(R->c[A].log[k].code, VEIL_ETOOBIG);
    assert_memory_equal(R->c[A].log[k].mid, mid, 16);
    assert_int_equal(msgs(&R->c[B], mark, "refused"), 0);
    assert_int_equal(msgs(&R->c[B], mark, "next"), 1);
    /* B's counter check sees the gap the failed message left: reported, not hidden. */
    assert_int_equal(alerts(&R->c[B], mark, VEIL_ALERT_DROPPED), 1);

    /* No bundle yet for C (it never connected): an error, retried until C uploads one. */
    fr_set_online(R, C, 0);
    memset(fr_ident_of(R, R->c[C].ik, 0), 0, sizeof(fr_ident));
    mark = R->c[A].nlog;
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, fr_add_contact(R, A, C), &rc), 0);
    say(R, A, rc, "are you there", NULL);
    fr_advance(R, 5000);
    k = fr_find(&R->c[A], mark, VEIL_EV_ERROR, NULL);
    assert_true(k >= 0);
    assert_int_equal(R->c[A].log[k].code, VEIL_ENOPREKEY);
    fr_set_online(R, C, 1);
    fr_advance(R, VEIL_ENGINE_RETRY_MAX_MS * 2);
    assert_int_equal(msgs(&R->c[C], 0, "are you there"), 1);
    fr_free(R);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_dup_reorder_replay),
        cmocka_unit_test(test_tamper_inject),
        cmocka_unit_test(test_own_envelopes),
        cmocka_unit_test(test_gap_around_own),
        cmocka_unit_test(test_add_member),
        cmocka_unit_test(test_lost_ack_retry),
        cmocka_unit_test(test_bundle_and_rollback),
        cmocka_unit_test(test_key_changed),
        cmocka_unit_test(test_key_changed_existing_session),
        cmocka_unit_test(test_bounded_under_flood),
        cmocka_unit_test(test_stranger_flood),
        cmocka_unit_test(test_relay_errors),
    };
    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
