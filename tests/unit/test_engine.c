/* SPDX-License-Identifier: ISC */
/* The engine as a pure state machine (SPEC.md 13): engines wired through the fake relay of test_engine_fake.h. */
#include "test_engine_fake.h"

#include "veil_seal.h"

enum { A, B, C, D };

static uint32_t room_of(fr_relay *R, int who, uint32_t kind)
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

static void send_text(fr_relay *R, int who, uint32_t room, const char *text, uint8_t mid[16])
{
    uint8_t tmp[16];
    assert_int_equal(veil_engine_send_text(R->c[who].e, R->now, room, text, strlen(text), NULL, mid ? mid : tmp), 0);
}

/* The messages (text and replies) a client saw from `from`, in order, joined by '|'. */
static void texts(const fr_client *c, size_t from, char *out, size_t cap)
{
    size_t i, n = 0;
    out[0] = '\0';
    for (i = from; i < c->nlog; i++) {
        if (c->log[i].type == VEIL_EV_MESSAGE) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "|" : "", c->log[i].text);
            assert_true(n < cap);
        }
    }
}

/* No alert, and no connection declared dead, since `from`. */
static size_t no_alerts(const fr_client *c, size_t from)
{
    size_t i;
    assert_int_equal(fr_count(c, from, VEIL_EV_CLOSE, 0), 0);
    for (i = from; i < c->nlog; i++) {
        if (c->log[i].type == VEIL_EV_ALERT) {
            print_message("unexpected alert %d (n %llu seq %llu)\n", c->log[i].code, (unsigned long long)c->log[i].n,
                          (unsigned long long)c->log[i].seq);
        }
    }
    return fr_count(c, from, VEIL_EV_ALERT, 0);
}

/* A and B: A adds B's code and opens a direct room. Returns A's room; *rb receives B's. */
static uint32_t direct_pair(fr_relay *R, int a, int b, uint32_t *rb)
{
    uint32_t cb = fr_add_contact(R, a, b), ra;
    assert_int_equal(veil_engine_direct_open(R->c[a].e, R->now, cb, &ra), 0);
    send_text(R, a, ra, "hello", NULL);
    fr_run(R);
    *rb = veil_engine_direct_open(R->c[b].e, R->now, fr_contact_of(R, b, a), rb) == 0 ? *rb : 0;
    assert_true(*rb != 0);
    return ra;
}

static void test_first_contact(void **state)
{
    fr_relay *R = fr_new(2, 10);
    uint32_t ra, rb, cb;
    uint8_t mid[16];
    veil_contact_info ci;
    veil_msg_info mi;
    char buf[256], sn_a[61], sn_b[61];
    long i;

    (void)state;
    cb = fr_add_contact(R, A, B);
    assert_int_equal(veil_engine_contact_get(R->c[A].e, cb, &ci), 0);
    assert_string_equal(ci.name, "B");
    assert_int_equal(ci.flags & VEIL_CONTACT_SESSION, 0);
    assert_int_equal(veil_engine_direct_open(R->c[A].e, R->now, cb, &ra), 0);
    send_text(R, A, ra, "hello B", mid);
    {
        /* SPEC.md 13.7: id = BE48(ts) || rng(10), ts being the `now` of the send. */
        uint8_t t[6], mid2[16];
        int k;
        for (k = 0; k < 6; k++) {
            t[k] = (uint8_t)(R->now >> (8 * (5 - k)));
        }
        assert_memory_equal(mid, t, 6);
        send_text(R, A, ra, "same ms", mid2);
        assert_memory_equal(mid2, t, 6);
        assert_memory_not_equal(mid + 6, mid2 + 6, 10);
    }
    fr_run(R);

    /* B learned of A from the inbox: a new contact, a direct room, the message. */
    i = fr_find(&R->c[B], 0, VEIL_EV_CONTACT, NULL);
    assert_true(i >= 0);
    assert_true(R->c[B].log[i].flags & VEIL_EVF_NEW);
    assert_true(fr_find(&R->c[B], 0, VEIL_EV_ROOM, NULL) >= 0);
    texts(&R->c[B], 0, buf, sizeof buf);
    assert_string_equal(buf, "hello B|same ms");
    i = fr_find(&R->c[B], 0, VEIL_EV_MESSAGE, NULL);
    assert_memory_equal(R->c[B].log[i].from, R->c[A].ik, 32);
    assert_memory_equal(R->c[B].log[i].mid, mid, 16);
    assert_int_equal(no_alerts(&R->c[A], 0), 0);
    assert_int_equal(no_alerts(&R->c[B], 0), 0);

    /* A: sent, then delivered (B's receipt). */
    assert_true(fr_find(&R->c[A], 0, VEIL_EV_SENT, NULL) >= 0);
    fr_advance(R, 1000);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, mid, &mi), 0);
    assert_int_equal(mi.status, VEIL_MSG_DELIVERED);
    assert_int_equal(mi.delivered, 1);

    /* B answers in the same room; the name B announced reached A. */
    rb = room_of(R, B, VEIL_ROOM_DIRECT);
    assert_true(rb != 0);
    send_text(R, B, rb, "hi A", NULL);
    fr_run(R);
    texts(&R->c[A], 0, buf, sizeof buf);
    assert_string_equal(buf, "hi A");
    assert_true(fr_find(&R->c[A], 0, VEIL_EV_NAME, "B") >= 0);
    assert_true(fr_find(&R->c[B], 0, VEIL_EV_NAME, "A") >= 0);

    /* Both see the same safety number; verification is a user decision. */
    assert_int_equal(veil_engine_safety_number(R->c[A].e, cb, sn_a), 0);
    assert_int_equal(veil_engine_safety_number(R->c[B].e, fr_contact_of(R, B, A), sn_b), 0);
    assert_string_equal(sn_a, sn_b);
    assert_int_equal(veil_engine_contact_verify(R->c[A].e, cb, true), 0);
    assert_int_equal(veil_engine_contact_get(R->c[A].e, cb, &ci), 0);
    assert_true(ci.flags & VEIL_CONTACT_VERIFIED);
    assert_true(ci.flags & VEIL_CONTACT_SESSION);
    fr_dump(&R->c[A], "A");
    fr_dump(&R->c[B], "B");
    assert_int_equal(no_alerts(&R->c[A], 0), 0);
    assert_int_equal(no_alerts(&R->c[B], 0), 0);
    fr_free(R);
}


/* The direct room: replies, edits and deletes by the author only, reactions, typing, read receipts. */
static void test_direct_chat(void **state)
{
    fr_relay *R = fr_new(2, 20);
    uint32_t ra, rb;
    uint8_t m1[16], m2[16], m3[16], x[16];
    size_t mark;
    long i;
    veil_msg_info mi;
    veil_member_info me;

    (void)state;
    ra = direct_pair(R, A, B, &rb);
    mark = R->c[B].nlog;
    send_text(R, A, ra, "first", m1);
    fr_run(R);
    assert_int_equal(veil_engine_send_text(R->c[B].e, R->now, rb, "re: first", 9, m1, m2), 0);
    fr_run(R);
    i = fr_find(&R->c[A], 0, VEIL_EV_MESSAGE, "re: first");
    assert_true(i >= 0);
    assert_int_equal(R->c[A].log[i].kind, VEIL_PK_REPLY);
    assert_memory_equal(R->c[A].log[i].ref, m1, 16);

    /* Only the author edits or deletes: the engine refuses the others' messages. */
    assert_int_equal(veil_engine_edit(R->c[B].e, R->now, rb, m1, "hacked", 6, x), VEIL_EPERM);
    assert_int_equal(veil_engine_delete(R->c[B].e, R->now, rb, m1, x), VEIL_EPERM);
    assert_int_equal(veil_engine_edit(R->c[A].e, R->now, ra, m1, "first!", 6, m3), 0);
    assert_int_equal(veil_engine_delete(R->c[B].e, R->now, rb, m2, x), 0);
    assert_int_equal(veil_engine_react(R->c[B].e, R->now, rb, m1, "\xf0\x9f\x91\x8d", 4, true, x), 0);
    fr_run(R);
    i = fr_find(&R->c[B], mark, VEIL_EV_EDIT, "first!");
    assert_true(i >= 0);
    assert_memory_equal(R->c[B].log[i].ref, m1, 16);
    i = fr_find(&R->c[A], 0, VEIL_EV_DELETE, NULL);
    assert_true(i >= 0);
    assert_memory_equal(R->c[A].log[i].ref, m2, 16);
    i = fr_find(&R->c[A], 0, VEIL_EV_REACTION, "\xf0\x9f\x91\x8d");
    assert_true(i >= 0);
    assert_true(R->c[A].log[i].flags & VEIL_EVF_ON);
    assert_int_equal(veil_engine_message(R->c[B].e, rb, m1, &mi), 0);
    assert_true(mi.edited);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, m2, &mi), 0);
    assert_true(mi.deleted);

    /* Typing: on at once, refreshed at most every 3 s, off after 5 s idle; the receiver expires it. */
    mark = R->c[B].nlog;
    assert_int_equal(veil_engine_typing(R->c[A].e, R->now, ra), 0);
    fr_run(R);
    assert_int_equal(veil_engine_typing(R->c[A].e, R->now + 100, ra), 0);
    fr_run(R);
    i = fr_find(&R->c[B], mark, VEIL_EV_TYPING, NULL);
    assert_true(i >= 0);
    assert_true(R->c[B].log[i].flags & VEIL_EVF_ON);
    assert_int_equal(fr_count(&R->c[B], mark, VEIL_EV_TYPING, 0), 1);
    assert_int_equal(veil_engine_room_member(R->c[B].e, rb, 1, &me), 0);
    assert_true(me.typing);
    fr_advance(R, 5500);
    assert_int_equal(fr_count(&R->c[B], mark, VEIL_EV_TYPING, 0), 2);
    assert_int_equal(R->c[B].log[fr_find(&R->c[B], (size_t)i + 1, VEIL_EV_TYPING, NULL)].flags & VEIL_EVF_ON, 0);

    /* Read receipt. */
    assert_int_equal(veil_engine_mark_read(R->c[B].e, R->now, rb, m1), 0);
    assert_int_equal(veil_engine_mark_read(R->c[B].e, R->now, rb, m2), VEIL_EINVAL); /* B's own */
    fr_advance(R, 1000);
    assert_int_equal(veil_engine_message(R->c[A].e, ra, m1, &mi), 0);
    assert_int_equal(mi.status, VEIL_MSG_READ);
    assert_int_equal(mi.read, 1);
    i = fr_find(&R->c[A], 0, VEIL_EV_RECEIPT, NULL);
    assert_true(i >= 0);
    assert_int_equal(no_alerts(&R->c[A], 0), 0);
    assert_int_equal(no_alerts(&R->c[B], 0), 0);
    fr_free(R);
}

/* Finds the newest room of a kind on `who` and accepts it if it is an invitation. */
static uint32_t accept_group(fr_relay *R, int who)
{
    uint32_t room = room_of(R, who, VEIL_ROOM_GROUP);
    veil_room_info info;
    assert_true(room != 0);
    assert_int_equal(veil_engine_room_get(R->c[who].e, room, &info), 0);
    assert_int_equal(info.state, VEIL_ROOM_INVITED);
    assert_int_equal(veil_engine_invite_accept(R->c[who].e, R->now, room), 0);
    return room;
}

/* `admin` creates a group and invites the others (added by code); every room handle in rooms[]. */
static void make_group(fr_relay *R, int admin, const int *others, int n, uint32_t *rooms)
{
    int k;
    assert_int_equal(veil_engine_group_create(R->c[admin].e, R->now, "G", 1, &rooms[admin]), 0);
    for (k = 0; k < n; k++) {
        uint32_t c = fr_add_contact(R, admin, others[k]);
        assert_int_equal(veil_engine_group_invite(R->c[admin].e, R->now, rooms[admin], c), 0);
        fr_run(R);
        rooms[others[k]] = accept_group(R, others[k]);
        fr_run(R);
    }
    fr_advance(R, 2000);
}

static void assert_all_keys(fr_relay *R, int who, uint32_t room, uint32_t members)
{
    veil_room_info info;
    veil_member_info mi;
    uint32_t i;
    assert_int_equal(veil_engine_room_get(R->c[who].e, room, &info), 0);
    assert_int_equal(info.members, members);
    for (i = 0; i < info.members; i++) {
        assert_int_equal(veil_engine_room_member(R->c[who].e, room, i, &mi), 0);
        assert_true(mi.has_key);
    }
}

static void test_group_of_three(void **state)
{
    fr_relay *R = fr_new(3, 30);
    const int others[] = { B, C };
    uint32_t rooms[3];
    uint8_t m1[16], r1[16], x[16];
    char buf[512];
    size_t mark[3];
    long i;
    int k;
    veil_msg_info mi;
    veil_room_info info;

    (void)state;
    make_group(R, A, others, 2, rooms);
    for (k = 0; k < 3; k++) {
        assert_all_keys(R, k, rooms[k], 3);
        assert_int_equal(veil_engine_room_get(R->c[k].e, rooms[k], &info), 0);
        assert_int_equal(info.roster_rev, 3);
        assert_int_equal(info.epoch, 0);
        assert_int_equal(info.admin, k == A);
        mark[k] = R->c[k].nlog;
    }
    send_text(R, A, rooms[A], "m1", m1);
    fr_run(R);
    assert_int_equal(veil_engine_send_text(R->c[B].e, R->now, rooms[B], "r1", 2, m1, r1), 0);
    fr_run(R);
    send_text(R, C, rooms[C], "c1", NULL);
    fr_run(R);
    assert_int_equal(veil_engine_react(R->c[C].e, R->now, rooms[C], m1, ":)", 2, true, x), 0);
    assert_int_equal(veil_engine_edit(R->c[A].e, R->now, rooms[A], m1, "m1 (edited)", 11, x), 0);
    assert_int_equal(veil_engine_delete(R->c[B].e, R->now, rooms[B], r1, x), 0);
    assert_int_equal(veil_engine_delete(R->c[C].e, R->now, rooms[C], m1, x), VEIL_EPERM);
    fr_run(R);
    texts(&R->c[A], mark[A], buf, sizeof buf);
    assert_string_equal(buf, "r1|c1");
    texts(&R->c[B], mark[B], buf, sizeof buf);
    assert_string_equal(buf, "m1|c1");
    texts(&R->c[C], mark[C], buf, sizeof buf);
    assert_string_equal(buf, "m1|r1");
    for (k = 0; k < 3; k++) {
        if (k != A) {
            i = fr_find(&R->c[k], mark[k], VEIL_EV_EDIT, "m1 (edited)");
            assert_true(i >= 0);
            assert_memory_equal(R->c[k].log[i].from, R->c[A].ik, 32);
        }
        if (k != B) {
            i = fr_find(&R->c[k], mark[k], VEIL_EV_DELETE, NULL);
            assert_true(i >= 0);
            assert_memory_equal(R->c[k].log[i].ref, r1, 16);
        }
        if (k != C) {
            assert_true(fr_find(&R->c[k], mark[k], VEIL_EV_REACTION, ":)") >= 0);
        }
    }
    i = fr_find(&R->c[C], mark[C], VEIL_EV_MESSAGE, "r1");
    assert_int_equal(R->c[C].log[i].kind, VEIL_PK_REPLY);
    assert_memory_equal(R->c[C].log[i].ref, m1, 16);

    /* Typing reaches both others; receipts: delivered by both, read by one. */
    assert_int_equal(veil_engine_typing(R->c[C].e, R->now, rooms[C]), 0);
    fr_run(R);
    assert_true(fr_find(&R->c[A], mark[A], VEIL_EV_TYPING, NULL) >= 0);
    assert_true(fr_find(&R->c[B], mark[B], VEIL_EV_TYPING, NULL) >= 0);
    assert_int_equal(veil_engine_mark_read(R->c[B].e, R->now, rooms[B], m1), 0);
    fr_advance(R, 7000);
    assert_int_equal(veil_engine_message(R->c[A].e, rooms[A], m1, &mi), 0);
    assert_int_equal(mi.delivered, 2);
    assert_int_equal(mi.read, 1);
    assert_int_equal(mi.status, VEIL_MSG_READ);

    /* Presence: each sees the two others, by name. */
    for (k = 0; k < 3; k++) {
        uint32_t j, present = 0;
        veil_member_info me;
        for (j = 0; j < 3; j++) {
            assert_int_equal(veil_engine_room_member(R->c[k].e, rooms[k], j, &me), 0);
            present += me.present;
            assert_true(strlen(me.name) == 1);
        }
        assert_int_equal(present, 2);
        assert_int_equal(no_alerts(&R->c[k], 0), 0);
    }
    fr_free(R);
}

static void test_group_remove(void **state)
{
    fr_relay *R = fr_new(4, 40);
    const int others[] = { B, C };
    uint32_t rooms[4], cc;
    uint64_t removal_seq;
    size_t mark[4], len, i;
    uint8_t *snap;
    char buf[256];
    int k;
    veil_room_info info;

    (void)state;
    R->c[D].online = 0;
    fr_set_online(R, D, 0);
    make_group(R, A, others, 2, rooms);
    /* C's state as it is now, for a C that would keep its keys after its removal. */
    len = veil_engine_state_len(R->c[C].e);
    snap = malloc(len);
    assert_non_null(snap);
    assert_int_equal(veil_engine_serialize(R->c[C].e, snap, len, &len), 0);

    for (k = 0; k < 4; k++) {
        mark[k] = R->c[k].nlog;
    }
    cc = fr_contact_of(R, A, C);
    assert_int_equal(veil_engine_room_get(R->c[A].e, rooms[A], &info), 0);
    removal_seq = R->rooms[fr_room_find(R, info.room_id, 0)].head + 1U;
    assert_int_equal(veil_engine_group_remove(R->c[B].e, R->now, rooms[B], fr_contact_of(R, B, C)), VEIL_EPERM);
    assert_int_equal(veil_engine_group_remove(R->c[A].e, R->now, rooms[A], cc), 0);
    fr_advance(R, 2000);
    assert_true(fr_find(&R->c[C], mark[C], VEIL_EV_REMOVED, NULL) >= 0);
    assert_int_equal(veil_engine_room_get(R->c[C].e, rooms[C], &info), VEIL_EINVAL);
    for (k = 0; k < 2; k++) {
        assert_int_equal(veil_engine_room_get(R->c[k].e, rooms[k], &info), 0);
        assert_int_equal(info.epoch, 1);
        assert_int_equal(info.members, 2);
        assert_all_keys(R, k, rooms[k], 2);
        assert_true(fr_find(&R->c[k], mark[k], VEIL_EV_MEMBER, NULL) >= 0);
    }
    send_text(R, A, rooms[A], "after", NULL);
    send_text(R, B, rooms[B], "after too", NULL);
    fr_advance(R, 1000);
    texts(&R->c[B], mark[B], buf, sizeof buf);
    assert_string_equal(buf, "after");
    texts(&R->c[A], mark[A], buf, sizeof buf);
    assert_string_equal(buf, "after too");
    assert_int_equal(fr_find(&R->c[C], mark[C], VEIL_EV_MESSAGE, NULL), -1);

    /* The old C, with every key it held before, on a relay that hides its removal from it. */
    assert_int_equal(veil_engine_restore(R->c[D].e, &R->c[D].rng, R->now, snap, len), 0);
    R->c[D].nlog = 0;
    R->c[D].capture = 1;
    R->c[D].online = 1;
    veil_engine_tick(R->c[D].e, R->now);
    for (i = 0; i < 40; i++) {
        fr_run(R);
        while (R->c[D].captured.count > 0) {
            fr_blob b = fr_q_pop(&R->c[D].captured);
            veil_frame f;
            assert_int_equal(veil_wire_decode(&f, b.p, b.len, NULL), 0);
            /* The roster record that removes it is withheld; everything else passes. */
            if (!(f.type == VEIL_FT_DELIVER && f.seq == removal_seq)) {
                fr_q_push(&R->c[D].to_client, b.p, b.len);
            }
            fr_blob_free(&b);
        }
    }
    fr_advance(R, VEIL_ENGINE_HOLD_MS + 1000);
    assert_int_equal(fr_find(&R->c[D], 0, VEIL_EV_MESSAGE, NULL), -1);
    assert_true(fr_count(&R->c[D], 0, VEIL_EV_ALERT, VEIL_ALERT_UNKNOWN_SENDER) >= 2);
    fr_dump(&R->c[D], "D");
    for (k = 0; k < 2; k++) {
        assert_int_equal(no_alerts(&R->c[k], 0), 0);
    }
    free(snap);
    fr_free(R);
}

/* A member offline during a conversation catches up in order when it returns. */
static void test_offline_catch_up(void **state)
{
    fr_relay *R = fr_new(3, 50);
    const int others[] = { B, C };
    uint32_t rooms[3];
    size_t mark, mark_a;
    char buf[256], want[256] = "";
    int k;

    (void)state;
    make_group(R, A, others, 2, rooms);
    mark = R->c[C].nlog;
    mark_a = R->c[A].nlog;
    fr_set_online(R, C, 0);
    /* Offline, C knows nobody to be present any more; A and B see C go. */
    {
        size_t i, off = 0;
        for (i = mark; i < R->c[C].nlog; i++) {
            off += R->c[C].log[i].type == VEIL_EV_PRESENCE && !(R->c[C].log[i].flags & VEIL_EVF_ON);
        }
        fr_run(R);
        for (i = mark; i < R->c[C].nlog; i++) {
            off += R->c[C].log[i].type == VEIL_EV_PRESENCE && !(R->c[C].log[i].flags & VEIL_EVF_ON);
        }
        assert_int_equal(off, 2);
        off = 0;
        for (i = mark_a; i < R->c[A].nlog; i++) {
            off += R->c[A].log[i].type == VEIL_EV_PRESENCE && !(R->c[A].log[i].flags & VEIL_EVF_ON) &&
                   memcmp(R->c[A].log[i].from, R->c[C].ik, 32) == 0;
        }
        assert_int_equal(off, 1);
    }
    for (k = 0; k < 6; k++) {
        char t[8];
        snprintf(t, sizeof t, "m%d", k);
        send_text(R, k % 2 == 0 ? A : B, rooms[k % 2 == 0 ? A : B], t, NULL);
        fr_run(R);
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", k ? "|" : "", t);
    }
    fr_advance(R, 60000);
    assert_int_equal(fr_find(&R->c[C], mark, VEIL_EV_MESSAGE, NULL), -1);
    fr_set_online(R, C, 1);
    fr_advance(R, 60000);
    texts(&R->c[C], mark, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_true(fr_find(&R->c[C], mark, VEIL_EV_CAUGHT_UP, NULL) >= 0);
    for (k = 0; k < 3; k++) {
        assert_int_equal(no_alerts(&R->c[k], 0), 0);
    }
    fr_free(R);
}

/* A client restarts from its sealed state and carries on; a wrong key opens nothing. */
static void test_restart_sealed(void **state)
{
    fr_relay *R = fr_new(3, 60);
    const int others[] = { B, C };
    uint32_t rooms[3], ra, rb;
    uint8_t key[32], bad[32], *blob, *copy;
    size_t cap, len, mark;
    char buf[256];
    veil_engine *fresh;

    (void)state;
    make_group(R, A, others, 2, rooms);
    ra = direct_pair(R, A, B, &rb);
    send_text(R, B, rooms[B], "before", NULL);
    fr_run(R);

    memset(key, 7, sizeof key);
    memset(bad, 8, sizeof bad);
    cap = veil_engine_state_len(R->c[B].e) + VEIL_SEAL_OVERHEAD_BYTES;
    blob = malloc(cap);
    copy = malloc(cap);
    assert_non_null(blob);
    assert_non_null(copy);
    assert_true(veil_engine_dirty(R->c[B].e));
    assert_int_equal(veil_engine_save(R->c[B].e, key, blob, cap - 1, &len), VEIL_ENOSPC);
    assert_int_equal(veil_engine_save(R->c[B].e, key, blob, cap, &len), 0);
    assert_int_equal(len, cap);
    assert_false(veil_engine_dirty(R->c[B].e));
    fr_set_online(R, B, 0);

    fresh = calloc(1, veil_engine_size());
    assert_non_null(fresh);
    memcpy(copy, blob, len);
    assert_int_equal(veil_engine_load(fresh, &R->c[B].rng, R->now, bad, copy, len), VEIL_EAUTH);
    memcpy(copy, blob, len);
    copy[len / 2] ^= 1;
    assert_int_equal(veil_engine_load(fresh, &R->c[B].rng, R->now, key, copy, len), VEIL_EAUTH);
    assert_int_equal(veil_engine_load(fresh, &R->c[B].rng, R->now, key, blob, len), 0);
    assert_true(sodium_is_zero(blob, len));
    veil_engine_wipe(R->c[B].e);
    free(R->c[B].e);
    R->c[B].e = fresh;

    /* While B is away, A and C talk; B comes back and reads them, and talks. */
    mark = R->c[B].nlog;
    send_text(R, A, rooms[A], "while away", NULL);
    send_text(R, A, ra, "direct while away", NULL);
    fr_run(R);
    fr_set_online(R, B, 1);
    fr_advance(R, 5000);
    texts(&R->c[B], mark, buf, sizeof buf);
    assert_string_equal(buf, "while away|direct while away");
    mark = R->c[A].nlog;
    send_text(R, B, rooms[B], "back", NULL);
    send_text(R, B, rb, "back direct", NULL);
    fr_advance(R, 2000);
    texts(&R->c[A], mark, buf, sizeof buf);
    assert_string_equal(buf, "back|back direct");
    assert_true(fr_find(&R->c[C], 0, VEIL_EV_MESSAGE, "back") >= 0);
    assert_int_equal(no_alerts(&R->c[A], 0), 0);
    assert_int_equal(no_alerts(&R->c[B], 0), 0);
    assert_int_equal(no_alerts(&R->c[C], 0), 0);

    /* A passphrase blob (low Argon2id cost for the test). */
    cap = veil_engine_state_len(R->c[C].e) + VEIL_SEAL_OVERHEAD_BYTES;
    blob = realloc(blob, cap);
    assert_non_null(blob);
    assert_int_equal(veil_engine_save_passphrase(R->c[C].e, "pw", 2, 1, 8, blob, cap, &len), 0);
    fresh = calloc(1, veil_engine_size());
    assert_non_null(fresh);
    copy = realloc(copy, len);
    assert_non_null(copy);
    memcpy(copy, blob, len);
    assert_int_equal(veil_engine_load_passphrase(fresh, &R->c[C].rng, R->now, "px", 2, copy, len), VEIL_EAUTH);
    assert_int_equal(veil_engine_load_passphrase(fresh, &R->c[C].rng, R->now, "pw", 2, blob, len), 0);
    {
        uint8_t ik[32];
        veil_engine_identity(fresh, ik);
        assert_memory_equal(ik, R->c[C].ik, 32);
    }
    veil_engine_wipe(fresh);
    free(fresh);
    free(blob);
    free(copy);
    fr_free(R);
}

/* The sole admin leaves: it hands the role over first; the others go on in a new epoch. */
static void test_group_leave(void **state)
{
    fr_relay *R = fr_new(3, 80);
    const int others[] = { B, C };
    uint32_t rooms[3];
    size_t mark[3];
    veil_room_info info;
    veil_member_info mi;
    char buf[128];
    int k, heir;
    uint32_t i, admins = 0;

    (void)state;
    make_group(R, A, others, 2, rooms);
    for (k = 0; k < 3; k++) {
        mark[k] = R->c[k].nlog;
    }
    assert_int_equal(veil_engine_group_leave(R->c[A].e, R->now, rooms[A]), 0);
    assert_int_equal(veil_engine_send_text(R->c[A].e, R->now, rooms[A], "x", 1, NULL, (uint8_t[16]){ 0 }),
                     VEIL_ESTATE);
    fr_advance(R, 3000);
    assert_true(fr_find(&R->c[A], mark[A], VEIL_EV_REMOVED, NULL) >= 0);
    assert_true(R->c[A].log[fr_find(&R->c[A], mark[A], VEIL_EV_REMOVED, NULL)].flags & VEIL_EVF_OWN);
    assert_int_equal(veil_engine_room_get(R->c[A].e, rooms[A], &info), VEIL_EINVAL);
    heir = memcmp(R->c[B].ik, R->c[C].ik, 32) < 0 ? B : C;
    for (k = B; k <= C; k++) {
        assert_int_equal(veil_engine_room_get(R->c[k].e, rooms[k], &info), 0);
        assert_int_equal(info.members, 2);
        assert_int_equal(info.epoch, 1);
        assert_int_equal(info.roster_rev, 5);
        assert_int_equal(info.admin, k == heir);
        for (i = 0; i < 2; i++) {
            assert_int_equal(veil_engine_room_member(R->c[k].e, rooms[k], i, &mi), 0);
            admins += mi.role == VEIL_ROSTER_ROLE_ADMIN;
            assert_true(mi.has_key);
        }
        assert_true(fr_find(&R->c[k], mark[k], VEIL_EV_MEMBER, NULL) >= 0);
    }
    assert_int_equal(admins, 2); /* the heir, seen by both */
    send_text(R, B, rooms[B], "bye A", NULL);
    fr_advance(R, 1000);
    texts(&R->c[C], mark[C], buf, sizeof buf);
    assert_string_equal(buf, "bye A");
    assert_int_equal(fr_find(&R->c[A], mark[A], VEIL_EV_MESSAGE, NULL), -1);
    for (k = 0; k < 3; k++) {
        assert_int_equal(no_alerts(&R->c[k], 0), 0);
    }
    /* The heir may now invite. */
    assert_int_equal(veil_engine_group_invite(R->c[heir].e, R->now, rooms[heir], fr_add_contact(R, heir, A)), 0);
    fr_free(R);
}

/* Two changes of one revision at once: every member keeps the same one (SPEC.md 8.2). */
static void test_roster_conflict(void **state)
{
    fr_relay *R = fr_new(4, 81);
    const int others[] = { B, C };
    uint32_t rooms[4];
    veil_room_info ia, ib;

    (void)state;
    make_group(R, A, others, 2, rooms);
    /* A adds D while C leaves: both sign a successor of revision 3. */
    assert_int_equal(veil_engine_group_invite(R->c[A].e, R->now, rooms[A], fr_add_contact(R, A, D)), 0);
    assert_int_equal(veil_engine_group_leave(R->c[C].e, R->now, rooms[C]), 0);
    fr_advance(R, 3000);
    assert_int_equal(veil_engine_room_get(R->c[A].e, rooms[A], &ia), 0);
    assert_int_equal(veil_engine_room_get(R->c[B].e, rooms[B], &ib), 0);
    assert_int_equal(ia.roster_rev, 4);
    assert_int_equal(ib.roster_rev, 4);
    assert_int_equal(ia.members, ib.members);
    assert_int_equal(ia.epoch, ib.epoch);
    /* The loser's author hears of it if it was A. */
    if (ia.epoch == 1) {
        assert_int_equal(fr_count(&R->c[A], 0, VEIL_EV_ALERT, VEIL_ALERT_ROSTER_CONFLICT), 1);
        assert_int_equal(ia.members, 2);
    } else {
        assert_int_equal(ia.members, 4);
    }
    assert_int_equal(fr_count(&R->c[B], 0, VEIL_EV_ALERT, 0), 0);
    fr_free(R);
}

/* History: a page before what the engine processed; what predates our keys is skipped silently. */
static void test_history(void **state)
{
    fr_relay *R = fr_new(3, 82);
    const int first[] = { B };
    uint32_t rooms[3];
    size_t mark;
    long i;
    int k;

    (void)state;
    make_group(R, A, first, 1, rooms);
    for (k = 0; k < 5; k++) {
        send_text(R, A, rooms[A], "old", NULL);
    }
    fr_advance(R, 1000);
    /* C joins late: nothing older than its invitation is readable. */
    assert_int_equal(veil_engine_group_invite(R->c[A].e, R->now, rooms[A], fr_add_contact(R, A, C)), 0);
    fr_run(R);
    rooms[C] = accept_group(R, C);
    fr_advance(R, 2000);
    send_text(R, A, rooms[A], "new", NULL);
    fr_advance(R, 1000);
    mark = R->c[C].nlog;
    assert_int_equal(veil_engine_history(R->c[C].e, R->now, rooms[C], 4), 0);
    assert_int_equal(veil_engine_history(R->c[C].e, R->now, rooms[C], 4), VEIL_ESTATE); /* one at a time */
    fr_run(R);
    i = fr_find(&R->c[C], mark, VEIL_EV_HISTORY, NULL);
    assert_true(i >= 0);
    assert_int_equal(R->c[C].log[i].n, 4);
    assert_true(R->c[C].log[i].flags & VEIL_EVF_MORE);
    assert_int_equal(fr_find(&R->c[C], mark, VEIL_EV_MESSAGE, NULL), -1);
    while (R->c[C].log[R->c[C].nlog - 1].flags & VEIL_EVF_MORE) {
        assert_int_equal(veil_engine_history(R->c[C].e, R->now, rooms[C], 16), 0);
        fr_run(R);
    }
    assert_int_equal(fr_find(&R->c[C], mark, VEIL_EV_MESSAGE, NULL), -1);
    assert_int_equal(no_alerts(&R->c[C], 0), 0);

    /* B, a member since before: history it already processed is not reported again. */
    mark = R->c[B].nlog;
    assert_int_equal(veil_engine_history(R->c[B].e, R->now, rooms[B], 16), 0);
    fr_run(R);
    assert_true(fr_find(&R->c[B], mark, VEIL_EV_HISTORY, NULL) >= 0);
    assert_int_equal(fr_find(&R->c[B], mark, VEIL_EV_MESSAGE, NULL), -1);
    assert_int_equal(no_alerts(&R->c[B], 0), 0);
    fr_free(R);
}

/* Prekeys: the relay runs low and gets more; the signed prekey rotates weekly and old bundles still work. */
static void test_prekey_upkeep(void **state)
{
    fr_relay *R = fr_new(3, 83);
    fr_ident *id;
    uint32_t spk0, k, ra;
    uint8_t old_bundle[VEIL_WIRE_BASE_BYTES];
    char buf[64];

    (void)state;
    id = fr_ident_of(R, R->c[A].ik, 0);
    assert_non_null(id);
    assert_int_equal(id->nopk, VEIL_ENGINE_OPK_TARGET);
    spk0 = veil__get_u32be(id->base + 129);
    /* Someone drains 35 one-time prekeys. */
    id->nopk -= 35;
    memcpy(old_bundle, id->base, sizeof old_bundle);
    fr_set_online(R, A, 0);
    fr_set_online(R, A, 1);
    fr_advance(R, VEIL_ENGINE_RECONNECT_MAX_MS);
    assert_int_equal(id->nopk, VEIL_ENGINE_OPK_TARGET);

    /* A week later the signed prekey rotates and the relay gets the new one. */
    fr_advance(R, VEIL_ENGINE_SPK_ROTATE_MS + 1000);
    assert_true(veil__get_u32be(id->base + 129) == spk0 + 1U);
    /* B fetches the new bundle; C was served the old one (an initial message composed before). */
    assert_int_equal(veil_engine_direct_open(R->c[B].e, R->now, fr_add_contact(R, B, A), &ra), 0);
    send_text(R, B, ra, "new spk", NULL);
    memcpy(id->base, old_bundle, sizeof old_bundle);
    assert_int_equal(veil_engine_direct_open(R->c[C].e, R->now, fr_add_contact(R, C, A), &ra), 0);
    send_text(R, C, ra, "old spk", NULL);
    fr_advance(R, 3000);
    texts(&R->c[A], 0, buf, sizeof buf);
    assert_string_equal(buf, "new spk|old spk");
    for (k = 0; k < 3; k++) {
        assert_int_equal(no_alerts(&R->c[k], 0), 0);
    }
    fr_free(R);
}

/* Reconnect: exponential backoff with jitter, capped; a successful AUTH resets it. */
static void test_reconnect_backoff(void **state)
{
    fr_relay *R = fr_new(1, 84);
    uint64_t last, d = VEIL_ENGINE_RECONNECT_BASE_MS;
    size_t i, mark;

    (void)state;
    /* The engine's deadlines: each wait within [d/2, d], d doubling to its cap. */
    fr_set_online(R, A, 0);
    last = R->now;
    for (i = 0; i < 12; i++) {
        uint64_t when = veil_engine_deadline(R->c[A].e), wait = when - last;
        assert_true(when > last);
        assert_true(wait >= d / 2 && wait <= d);
        R->now = when;
        veil_engine_tick(R->c[A].e, R->now);
        veil_engine_disconnected(R->c[A].e, R->now); /* the host's connect failed */
        last = R->now;
        d = d * 2 > VEIL_ENGINE_RECONNECT_MAX_MS ? VEIL_ENGINE_RECONNECT_MAX_MS : d * 2;
    }
    mark = R->c[A].nlog;
    fr_set_online(R, A, 1);
    fr_advance(R, VEIL_ENGINE_RECONNECT_MAX_MS);
    assert_true(fr_find(&R->c[A], mark, VEIL_EV_READY, NULL) >= 0);
    fr_set_online(R, A, 0);
    assert_true(veil_engine_deadline(R->c[A].e) - R->now <= VEIL_ENGINE_RECONNECT_BASE_MS);
    fr_free(R);
}

/* A damaged state never loads (and never crashes the loader). */
static void test_state_corruption(void **state)
{
    fr_relay *R = fr_new(3, 85);
    const int others[] = { B, C };
    uint32_t rooms[3];
    uint8_t *st, *bad;
    size_t len, i;
    veil_engine *e = calloc(1, veil_engine_size());
    int rc, ok = 0;

    (void)state;
    assert_non_null(e);
    make_group(R, A, others, 2, rooms);
    len = veil_engine_state_len(R->c[B].e);
    st = malloc(len);
    bad = malloc(len);
    assert_non_null(st);
    assert_non_null(bad);
    assert_int_equal(veil_engine_serialize(R->c[B].e, st, len, &len), 0);
    assert_int_equal(veil_engine_restore(e, &R->c[B].rng, R->now, st, len), 0);
    for (i = 0; i < len; i += 1 + len / 400) {
        assert_int_equal(veil_engine_restore(e, &R->c[B].rng, R->now, st, i), VEIL_ECORRUPT);
    }
    memcpy(bad, st, len);
    bad[0] = 2;
    assert_int_equal(veil_engine_restore(e, &R->c[B].rng, R->now, bad, len), VEIL_EVERSION);
    for (i = 1; i < len; i += 1 + len / 300) {
        memcpy(bad, st, len);
        bad[i] ^= 0xff;
        rc = veil_engine_restore(e, &R->c[B].rng, R->now, bad, len);
        assert_true(rc == 0 || rc == VEIL_ECORRUPT);
        ok += rc == 0;
    }
    assert_true(ok < 300);
    veil_engine_wipe(e);
    free(e);
    free(st);
    free(bad);
    fr_free(R);
}

/* An invitation accepted late, after the group changed epoch meanwhile: the invitee catches up. */
static void test_late_accept(void **state)
{
    fr_relay *R = fr_new(3, 86);
    const int first[] = { B };
    uint32_t rooms[3];
    veil_room_info info;
    char buf[128];
    size_t mark;

    (void)state;
    make_group(R, A, first, 1, rooms);
    assert_int_equal(veil_engine_group_invite(R->c[A].e, R->now, rooms[A], fr_add_contact(R, A, C)), 0);
    fr_advance(R, 2000);
    rooms[C] = room_of(R, C, VEIL_ROOM_GROUP);
    assert_int_equal(veil_engine_room_get(R->c[C].e, rooms[C], &info), 0);
    assert_int_equal(info.state, VEIL_ROOM_INVITED);
    /* While C thinks it over, A removes B (a new epoch) and talks. */
    assert_int_equal(veil_engine_group_remove(R->c[A].e, R->now, rooms[A], fr_contact_of(R, A, B)), 0);
    send_text(R, A, rooms[A], "during", NULL);
    fr_advance(R, 60000);
    mark = R->c[C].nlog;
    assert_int_equal(veil_engine_invite_accept(R->c[C].e, R->now, rooms[C]), 0);
    assert_int_equal(veil_engine_invite_accept(R->c[C].e, R->now, rooms[C]), VEIL_ESTATE);
    fr_advance(R, 3000);
    assert_int_equal(veil_engine_room_get(R->c[C].e, rooms[C], &info), 0);
    assert_int_equal(info.epoch, 1);
    assert_int_equal(info.members, 2);
    send_text(R, A, rooms[A], "after", NULL);
    send_text(R, C, rooms[C], "hello A", NULL);
    fr_advance(R, 2000);
    texts(&R->c[C], mark, buf, sizeof buf);
    assert_string_equal(buf, "during|after");
    assert_true(fr_find(&R->c[A], 0, VEIL_EV_MESSAGE, "hello A") >= 0);
    assert_int_equal(fr_find(&R->c[B], 0, VEIL_EV_MESSAGE, "during"), -1);
    assert_int_equal(no_alerts(&R->c[A], 0), 0);
    assert_int_equal(no_alerts(&R->c[C], 0), 0);
    fr_free(R);
}

/* A contact code carries a name of the longest length (64 octets) and still fits VEIL_CONTACT_CODE_MAX. */
static void test_contact_code_bounds(void **state)
{
    fr_relay *R = fr_new(2, 17);
    char name[VEIL_NAME_MAX_BYTES + 1], code[VEIL_CONTACT_CODE_MAX + 1], bad[VEIL_CONTACT_CODE_MAX + 8];
    uint32_t id = 0;
    veil_contact_info ci;

    (void)state;
    memset(name, 'n', VEIL_NAME_MAX_BYTES);
    name[VEIL_NAME_MAX_BYTES] = '\0';
    assert_int_equal(veil_engine_set_name(R->c[B].e, R->now, name, VEIL_NAME_MAX_BYTES), 0);
    assert_int_equal(veil_engine_contact_code(R->c[B].e, code, sizeof code), 0);
    assert_int_equal(strlen(code), VEIL_CONTACT_CODE_MAX);
    assert_int_equal(veil_engine_contact_code(R->c[B].e, code, sizeof code - 1), VEIL_ENOSPC);
    assert_int_equal(veil_engine_contact_code(R->c[B].e, code, sizeof code), 0);
    assert_int_equal(veil_engine_contact_add(R->c[A].e, R->now, code, &id), 0);
    assert_int_equal(veil_engine_contact_get(R->c[A].e, id, &ci), 0);
    assert_string_equal(ci.name, name);
    /* One character more is not a code. */
    snprintf(bad, sizeof bad, "%sA", code);
    assert_int_equal(veil_engine_contact_add(R->c[A].e, R->now, bad, &id), VEIL_EINVAL);
    fr_free(R);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_contact),
        cmocka_unit_test(test_direct_chat),
        cmocka_unit_test(test_group_of_three),
        cmocka_unit_test(test_group_remove),
        cmocka_unit_test(test_offline_catch_up),
        cmocka_unit_test(test_restart_sealed),
        cmocka_unit_test(test_group_leave),
        cmocka_unit_test(test_roster_conflict),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_prekey_upkeep),
        cmocka_unit_test(test_reconnect_backoff),
        cmocka_unit_test(test_state_corruption),
        cmocka_unit_test(test_late_accept),
        cmocka_unit_test(test_contact_code_bounds),
    };
    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
