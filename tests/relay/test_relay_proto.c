/* SPDX-License-Identifier: ISC */
/*
 * veil-relay integration tests, protocol behaviour (SPEC.md 9.5-9.10, 9.12):
 * every request frame against a real relay process and a real SQLite file.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "relay_harness.h"

static const uint8_t TAG_A[] = { 0xa1 }, TAG_B[] = { 0xb2, 0xb2 }, TAG_C[] = { 0xc3 };

static void cmid_of(uint8_t cmid[16], uint32_t who, uint32_t n)
{
    memset(cmid, 0, 16);
    cmid[0] = (uint8_t)(who >> 8);
    cmid[1] = (uint8_t)who;
    cmid[12] = (uint8_t)(n >> 24);
    cmid[13] = (uint8_t)(n >> 16);
    cmid[14] = (uint8_t)(n >> 8);
    cmid[15] = (uint8_t)n;
}

static uint64_t publish_acked(tc *c, const tc_room *room, uint32_t who, uint32_t n, const uint8_t *env, size_t len,
                              bool expect_dup)
{
    uint8_t cmid[16];
    uint32_t id = tc_next_id(c);
    veil_frame f;

    cmid_of(cmid, who, n);
    tc_publish(c, id, room, cmid, env, len);
    tc_expect(c, VEIL_FT_ACK, &f);
    assert_int_equal(f.id, id);
    assert_memory_equal(f.cmid.p, cmid, 16);
    assert_int_equal(f.dup, expect_dup);
    return f.seq;
}

static void simple_request(tc *c, uint32_t type, uint32_t id)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    f.id = id;
    tc_send(c, &f);
}

/* ------------------------------------------------------------------ auth */

static void test_hello_and_auth(void **state)
{
    th_relay r;
    tc *a, *b;
    tc_id ida, idb;
    veil_frame f;
    uint8_t m[82], sig[64];

    (void)state;
    th_relay_start(&r, NULL);
    tc_id_from_seed(&ida, 1);
    tc_id_from_seed(&idb, 2);
    a = tc_connect(&r);
    b = tc_connect(&r);
    /* Fresh nonces per connection. */
    assert_memory_not_equal(tc_nonce(a), tc_nonce(b), 32);
    tc_auth(a, &ida);

    /* A second AUTH: VEIL_ESTATE. */
    memcpy(m, "veil-relay-auth-v1", 18);
    memcpy(m + 18, tc_nonce(a), 32);
    memcpy(m + 50, ida.pk, 32);
    crypto_sign_detached(sig, NULL, m, sizeof m, ida.sk);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_AUTH;
    f.id = 50;
    veil_wire_set_bin(&f, VEIL_WF_IK, ida.pk, 32);
    veil_wire_set_bin(&f, VEIL_WF_SIG, sig, 64);
    tc_send(a, &f);
    tc_expect_error(a, 50, VEIL_ESTATE);

    /* a's proof replayed on b (other nonce): VEIL_EAUTH, b stays anonymous. */
    f.id = 51;
    tc_send(b, &f);
    tc_expect_error(b, 51, VEIL_EAUTH);
    /* A signature by another key: VEIL_EAUTH. */
    memcpy(m + 18, tc_nonce(b), 32);
    crypto_sign_detached(sig, NULL, m, sizeof m, idb.sk);
    f.id = 52;
    tc_send(b, &f);
    tc_expect_error(b, 52, VEIL_EAUTH);
    simple_request(b, VEIL_FT_PREKEY_COUNT, 53);
    tc_expect_error(b, 53, VEIL_EPERM);
    /* And then a good one works. */
    tc_auth(b, &idb);
    simple_request(b, VEIL_FT_PREKEY_COUNT, 54);
    tc_expect(b, VEIL_FT_PREKEY_COUNTED, &f);
    assert_int_equal(f.count, 0);
    assert_false(veil_wire_has(&f, VEIL_WF_SPK_ID));

    tc_free(a);
    tc_free(b);
    th_relay_stop(&r);
}

static void test_anonymous_may_only_post_and_fetch(void **state)
{
    th_relay r;
    tc *c;
    tc_room room;
    tc_id bob;
    veil_frame f;
    uint8_t cmid[16] = { 1 }, env[] = "hello", base[229];
    static const uint32_t denied[] = { VEIL_FT_LEAVE, VEIL_FT_PUBLISH, VEIL_FT_EPHEMERAL, VEIL_FT_HISTORY,
                                       VEIL_FT_INBOX_FETCH, VEIL_FT_INBOX_ACK, VEIL_FT_PREKEY_UPLOAD,
                                       VEIL_FT_PREKEY_COUNT, VEIL_FT_JOIN };
    size_t i;
    uint8_t sig[64] = { 0 }, opk[36] = { 0, 0, 0, 1 };
    veil_wire_list_builder lb;
    uint8_t lbuf[64];

    (void)state;
    th_relay_start(&r, NULL);
    tc_room_from_secret(&room, 9);
    tc_id_from_seed(&bob, 3);
    tc_base(base, &bob, 1);
    c = tc_connect(&r);
    for (i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        memset(&f, 0, sizeof f);
        f.type = denied[i];
        f.id = (uint32_t)(100 + i);
        veil_wire_set_bin(&f, VEIL_WF_ROOM, room.id, 32);
        veil_wire_set_bin(&f, VEIL_WF_APK, room.apk, 32);
        veil_wire_set_bin(&f, VEIL_WF_SIG, sig, 64);
        veil_wire_set_bin(&f, VEIL_WF_TAG, TAG_A, 1);
        veil_wire_set_bin(&f, VEIL_WF_CMID, cmid, 16);
        veil_wire_set_bin(&f, VEIL_WF_ENV, env, 5);
        veil_wire_set_uint(&f, VEIL_WF_LIMIT, 10);
        veil_wire_set_bin(&f, VEIL_WF_BASE, base, 229);
        if (denied[i] == VEIL_FT_INBOX_ACK) {
            veil_wire_lb_init(&lb, VEIL_WL_IDS, lbuf, sizeof lbuf);
            veil_wire_lb_u64(&lb, 1);
            assert_int_equal(veil_wire_lb_finish(&lb, &f.list), 0);
            f.present |= VEIL_WF_BIT(VEIL_WF_IDS);
        }
        if (denied[i] == VEIL_FT_PREKEY_UPLOAD) {
            veil_wire_lb_init(&lb, VEIL_WL_OPKS, lbuf, sizeof lbuf);
            veil_wire_lb_bin(&lb, opk, 36);
            assert_int_equal(veil_wire_lb_finish(&lb, &f.list), 0);
            f.present |= VEIL_WF_BIT(VEIL_WF_OPKS);
        }
        tc_send(c, &f);
        tc_expect_error(c, (uint32_t)(100 + i), VEIL_EPERM);
    }
    /* Allowed: INBOX_POST and PREKEY_FETCH (no bundle yet: VEIL_ENOPREKEY). */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_POST;
    f.id = 200;
    veil_wire_set_bin(&f, VEIL_WF_TO, bob.pk, 32);
    veil_wire_set_bin(&f, VEIL_WF_ENV, env, 5);
    tc_send(c, &f);
    tc_expect(c, VEIL_FT_INBOX_POSTED, &f);
    assert_int_equal(f.id, 200);
    assert_true(f.iid >= 1);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PREKEY_FETCH;
    f.id = 201;
    veil_wire_set_bin(&f, VEIL_WF_IK, bob.pk, 32);
    tc_send(c, &f);
    tc_expect_error(c, 201, VEIL_ENOPREKEY);
    tc_free(c);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ rooms */

static void send_join(tc *c, uint32_t id, const uint8_t room_id[32], const uint8_t apk[32], const uint8_t *ask,
                      const uint8_t nonce[32])
{
    uint8_t m[81], sig[64];
    veil_frame f;

    memcpy(m, "veil-room-join-v1", 17);
    memcpy(m + 17, nonce, 32);
    memcpy(m + 49, room_id, 32);
    crypto_sign_detached(sig, NULL, m, sizeof m, ask);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_JOIN;
    f.id = id;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room_id, 32);
    veil_wire_set_bin(&f, VEIL_WF_APK, apk, 32);
    veil_wire_set_bin(&f, VEIL_WF_SIG, sig, 64);
    veil_wire_set_bin(&f, VEIL_WF_TAG, TAG_A, 1);
    tc_send(c, &f);
}

static void test_join_proof(void **state)
{
    static const char *const flags[] = { "--max-rooms", "2", NULL };
    th_relay r;
    tc *a, *b;
    tc_id id;
    tc_room room, other, third;
    veil_frame f;
    veil_wire_iter it;
    veil_wire_bin tag;
    uint8_t wrong[32];

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&id, 1);
    tc_room_from_secret(&room, 1);
    tc_room_from_secret(&other, 2);
    tc_room_from_secret(&third, 3);
    a = tc_connect(&r);
    b = tc_connect(&r);
    tc_auth(a, &id);
    tc_auth(b, &id);

    /* Room id that does not commit to the access key. */
    memcpy(wrong, room.id, 32);
    wrong[0] ^= 1;
    send_join(a, 10, wrong, room.apk, room.ask, tc_nonce(a));
    tc_expect_error(a, 10, VEIL_EAUTH);
    /* Another room's key for this room id. */
    send_join(a, 11, room.id, other.apk, other.ask, tc_nonce(a));
    tc_expect_error(a, 11, VEIL_EAUTH);
    /* A proof made for b's nonce, replayed on a. */
    send_join(a, 12, room.id, room.apk, room.ask, tc_nonce(b));
    tc_expect_error(a, 12, VEIL_EAUTH);
    /* A proof signed by the wrong key but naming the right apk. */
    send_join(a, 13, room.id, room.apk, other.ask, tc_nonce(a));
    tc_expect_error(a, 13, VEIL_EAUTH);

    /* Valid: a new room is created (head 0, first 1) and lists our tag. */
    send_join(a, 14, room.id, room.apk, room.ask, tc_nonce(a));
    tc_expect(a, VEIL_FT_JOINED, &f);
    assert_int_equal(f.id, 14);
    assert_int_equal(f.head, 0);
    assert_int_equal(f.first, 1);
    assert_int_equal(f.list.count, 1);
    veil_wire_iter_init(&it, &f.list);
    assert_true(veil_wire_next_bin(&it, &tag));
    assert_int_equal(tag.len, 1);
    assert_int_equal(tag.p[0], TAG_A[0]);
    /* Twice: VEIL_ESTATE. */
    send_join(a, 15, room.id, room.apk, room.ask, tc_nonce(a));
    tc_expect_error(a, 15, VEIL_ESTATE);
    /* --max-rooms 2. */
    send_join(a, 16, other.id, other.apk, other.ask, tc_nonce(a));
    tc_expect(a, VEIL_FT_JOINED, &f);
    send_join(a, 17, third.id, third.apk, third.ask, tc_nonce(a));
    tc_expect_error(a, 17, VEIL_EFULL);
    /* LEAVE frees a slot; LEAVE of a room not joined is VEIL_ENOTJOINED. */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_LEAVE;
    f.id = 18;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, other.id, 32);
    tc_send(a, &f);
    tc_expect(a, VEIL_FT_LEFT, &f);
    assert_int_equal(f.id, 18);
    f.type = VEIL_FT_LEAVE;
    f.id = 19;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, third.id, 32);
    tc_send(a, &f);
    tc_expect_error(a, 19, VEIL_ENOTJOINED);
    send_join(a, 20, third.id, third.apk, third.ask, tc_nonce(a));
    tc_expect(a, VEIL_FT_JOINED, &f);

    tc_free(a);
    tc_free(b);
    th_relay_stop(&r);
}

static void expect_presence(tc *c, const tc_room *room, const uint8_t *tag, size_t len, bool on)
{
    veil_frame f;

    tc_expect(c, VEIL_FT_PRESENCE, &f);
    assert_int_equal(f.id, 0);
    assert_memory_equal(f.room.p, room->id, 32);
    assert_int_equal(f.tag.len, len);
    assert_memory_equal(f.tag.p, tag, len);
    assert_int_equal(f.on, on);
}

static void test_presence(void **state)
{
    th_relay r;
    tc *a, *b, *c2;
    tc_id ida, idb;
    tc_room room;
    veil_frame f;
    veil_wire_iter it;
    veil_wire_bin t;
    int seen_a = 0, seen_b = 0;

    (void)state;
    th_relay_start(&r, NULL);
    tc_id_from_seed(&ida, 1);
    tc_id_from_seed(&idb, 2);
    tc_room_from_secret(&room, 7);
    a = tc_connect(&r);
    b = tc_connect(&r);
    c2 = tc_connect(&r);
    tc_auth(a, &ida);
    tc_auth(b, &idb);
    tc_auth(c2, &ida);

    tc_join(a, &room, TAG_A, sizeof TAG_A, -1, NULL);
    tc_join(b, &room, TAG_B, sizeof TAG_B, -1, &f);
    /* b's JOINED lists both tags. */
    assert_int_equal(f.list.count, 2);
    veil_wire_iter_init(&it, &f.list);
    while (veil_wire_next_bin(&it, &t)) {
        seen_a += t.len == 1 && t.p[0] == TAG_A[0];
        seen_b += t.len == 2 && t.p[0] == TAG_B[0];
    }
    assert_int_equal(seen_a, 1);
    assert_int_equal(seen_b, 1);
    expect_presence(a, &room, TAG_B, sizeof TAG_B, true);
    tc_expect_silence(b, 100);

    /* A second connection with tag A (another device of the same member): no new presence. */
    tc_join(c2, &room, TAG_A, sizeof TAG_A, -1, &f);
    assert_int_equal(f.list.count, 2);
    tc_expect_silence(a, 150);
    tc_expect_silence(b, 10);
    /* a leaves: tag A is still held by c2, so no "off". */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_LEAVE;
    f.id = 30;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room.id, 32);
    tc_send(a, &f);
    tc_expect(a, VEIL_FT_LEFT, &f);
    tc_expect_silence(b, 150);
    /* c2 disconnects: tag A is gone. */
    tc_free(c2);
    expect_presence(b, &room, TAG_A, sizeof TAG_A, false);
    /* a rejoins with tag C: b sees it. */
    tc_join(a, &room, TAG_C, sizeof TAG_C, -1, NULL);
    expect_presence(b, &room, TAG_C, sizeof TAG_C, true);
    /* b's connection drops: a sees B go. */
    tc_free(b);
    expect_presence(a, &room, TAG_B, sizeof TAG_B, false);
    tc_free(a);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ publish */

/*
 * PUBLISHes that share a batch (SPEC.md 9.12): a re-publish among them, of an
 * envelope of the same batch or of one stored before, gets the first seq,
 * takes none, and leaves the new envelopes' seqs contiguous.
 */
static void expect_ack(tc *c, uint32_t id, uint64_t seq, bool dup)
{
    veil_frame f;

    tc_expect(c, VEIL_FT_ACK, &f);
    assert_int_equal(f.id, id);
    assert_int_equal(f.seq, seq);
    assert_int_equal(f.dup, dup);
}

static void test_publish_batch_republish(void **state)
{
    /* The loop sleeps until a batch's commit time: frames written together then share a batch. */
    static const char *const flags[] = { "--batch-delay", "20000", NULL };
    static const struct {
        uint32_t n;      /* cmid (1, n) */
        uint64_t seq;    /* in the ACK */
        bool dup;
    } step[2][4] = {
        /* One batch: new, new, the first again, new. */
        { { 1, 1, false }, { 2, 2, false }, { 1, 1, true }, { 3, 3, false } },
        /* The next: an envelope of the batch before again, then a new one. */
        { { 2, 2, true }, { 4, 4, false }, { 0, 0, false }, { 0, 0, false } },
    };
    th_relay r;
    tc *a, *b;
    tc_room room;
    veil_frame f;
    uint8_t env[64], cmid[16];
    long long commits;
    uint32_t i, k;

    (void)state;
    th_relay_start(&r, flags);
    tc_two_members(&r, 1, 2, 7, &a, &b, &room);
    for (k = 0; k < 2; k++) {
        commits = th_metric(&r, "veil_store_commits_total");
        for (i = 0; i < 4 && step[k][i].n != 0; i++) {
            cmid_of(cmid, 1, step[k][i].n);
            memset(env, (int)step[k][i].n, sizeof env);
            tc_publish(a, 100 * k + i + 1, &room, cmid, env, sizeof env);
        }
        for (i = 0; i < 4 && step[k][i].n != 0; i++) {
            expect_ack(a, 100 * k + i + 1, step[k][i].seq, step[k][i].dup);
        }
        /* They were one batch. */
        assert_true(th_metric(&r, "veil_store_commits_total") == commits + 1);
    }
    /* b got each new envelope once, in order, with its own body. */
    for (i = 1; i <= 4; i++) {
        tc_expect(b, VEIL_FT_DELIVER, &f);
        assert_int_equal(f.seq, i);
        cmid_of(cmid, 1, i);
        assert_memory_equal(f.cmid.p, cmid, 16);
        assert_int_equal(f.env.p[0], i);
    }
    tc_expect_silence(b, 100);
    assert_true(th_metric(&r, "veil_envelopes_stored_total") == 4);
    assert_true(th_metric(&r, "veil_envelopes_duplicate_total") == 2);
    tc_free(a);
    tc_free(b);
    th_relay_stop(&r);
}

static void test_publish_ack_deliver_idempotent(void **state)
{
    th_relay r;
    tc *a, *b;
    tc_room room, other;
    veil_frame f;
    uint8_t env[256], cmid[16];
    uint32_t i;

    (void)state;
    th_relay_start(&r, NULL);
    tc_two_members(&r, 1, 2, 7, &a, &b, &room);
    tc_room_from_secret(&other, 8);

    for (i = 1; i <= 3; i++) {
        memset(env, (int)i, sizeof env);
        assert_int_equal(publish_acked(a, &room, 1, i, env, sizeof env, false), i);
    }
    for (i = 1; i <= 3; i++) {
        tc_expect(b, VEIL_FT_DELIVER, &f);
        assert_int_equal(f.id, 0);
        assert_int_equal(f.seq, i);
        assert_memory_equal(f.room.p, room.id, 32);
        cmid_of(cmid, 1, i);
        assert_memory_equal(f.cmid.p, cmid, 16);
        assert_int_equal(f.env.len, sizeof env);
        assert_int_equal(f.env.p[0], i);
    }
    /* The publisher gets no copy of its own envelope. */
    tc_expect_silence(a, 100);

    /* Re-publish of cmid (1,2): the original seq, dup, nothing delivered again. */
    memset(env, 9, sizeof env);
    assert_int_equal(publish_acked(a, &room, 1, 2, env, sizeof env, true), 2);
    /* b may publish too; a receives it live. */
    assert_int_equal(publish_acked(b, &room, 2, 1, env, 10, false), 4);
    tc_expect(a, VEIL_FT_DELIVER, &f);
    assert_int_equal(f.seq, 4);
    tc_expect_silence(b, 100);

    /* PUBLISH to a room not joined. */
    cmid_of(cmid, 1, 99);
    tc_publish(a, 77, &other, cmid, env, 10);
    tc_expect_error(a, 77, VEIL_ENOTJOINED);
    /* EPHEMERAL: delivered, acknowledged, never stored. */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_EPHEMERAL;
    f.id = 78;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room.id, 32);
    veil_wire_set_bin(&f, VEIL_WF_ENV, (const uint8_t *)"typing", 6);
    tc_send(a, &f);
    tc_expect(a, VEIL_FT_EPHEMERAL_OK, &f);
    assert_int_equal(f.id, 78);
    tc_expect(b, VEIL_FT_EPHEMERAL_DELIVER, &f);
    assert_int_equal(f.env.len, 6);
    assert_memory_equal(f.env.p, "typing", 6);
    /* Ephemeral above max_eph (1024): VEIL_ETOOBIG. */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_EPHEMERAL;
    f.id = 79;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room.id, 32);
    {
        static uint8_t big[1025];
        veil_wire_set_bin(&f, VEIL_WF_ENV, big, sizeof big);
        tc_send(a, &f);
    }
    tc_expect_error(a, 79, VEIL_ETOOBIG);
    /* The next publish still gets seq 5: ephemeral took no seq. */
    assert_int_equal(publish_acked(a, &room, 1, 10, env, 10, false), 5);
    tc_expect(b, VEIL_FT_DELIVER, &f);
    assert_int_equal(f.seq, 5);
    assert_true(th_metric(&r, "veil_envelopes_stored_total") == 5);
    assert_true(th_metric(&r, "veil_envelopes_duplicate_total") == 1);
    tc_free(a);
    tc_free(b);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ catch-up */

static void test_catchup_after_reconnect(void **state)
{
    static const char *const flags[] = { "--rate", "100000", "--burst", "100000", NULL };
    th_relay r;
    tc *a, *b;
    tc_id ida, idb;
    tc_room room;
    veil_frame f;
    uint8_t env[100];
    uint32_t i, next, pub_sent, pub_acked;
    uint64_t last = 0;
    int caught = 0;

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&ida, 1);
    tc_id_from_seed(&idb, 2);
    tc_room_from_secret(&room, 5);
    a = tc_connect(&r);
    tc_auth(a, &ida);
    tc_join(a, &room, TAG_A, 1, -1, NULL);
    memset(env, 0x42, sizeof env);
    for (i = 1; i <= 10; i++) {
        publish_acked(a, &room, 1, i, env, sizeof env, false);
    }
    /* b joins from the start: 1..10, then CAUGHT_UP 10. */
    b = tc_connect(&r);
    tc_auth(b, &idb);
    tc_join(b, &room, TAG_B, 2, 0, &f);
    assert_int_equal(f.head, 10);
    assert_int_equal(f.first, 1);
    for (i = 1; i <= 10; i++) {
        tc_expect(b, VEIL_FT_DELIVER, &f);
        assert_int_equal(f.seq, i);
    }
    tc_expect(b, VEIL_FT_CAUGHT_UP, &f);
    assert_int_equal(f.seq, 10);
    tc_free(b);
    expect_presence(a, &room, TAG_B, 2, true);
    expect_presence(a, &room, TAG_B, 2, false);

    /* While b is away: 11..15. b comes back with since 10. */
    for (i = 11; i <= 15; i++) {
        publish_acked(a, &room, 1, i, env, sizeof env, false);
    }
    b = tc_connect(&r);
    tc_auth(b, &idb);
    tc_join(b, &room, TAG_B, 2, 10, &f);
    assert_int_equal(f.head, 15);
    for (i = 11; i <= 15; i++) {
        tc_expect(b, VEIL_FT_DELIVER, &f);
        assert_int_equal(f.seq, i);
    }
    tc_expect(b, VEIL_FT_CAUGHT_UP, &f);
    assert_int_equal(f.seq, 15);
    /* since >= head: CAUGHT_UP at once on another connection. */
    tc_free(b);
    expect_presence(a, &room, TAG_B, 2, true);
    expect_presence(a, &room, TAG_B, 2, false);

    /* 600 stored, then b catches up while a keeps publishing 200 more: every seq once, in order. */
    for (i = 16; i <= 615; i++) {
        tc_publish(a, 1000 + i, &room, (uint8_t[16]){ 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(i >> 24),
                                                     (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i },
                   env, sizeof env);
    }
    for (i = 16; i <= 615; i++) {
        tc_expect(a, VEIL_FT_ACK, &f);
        assert_int_equal(f.seq, i);
    }
    b = tc_connect(&r);
    tc_auth(b, &idb);
    tc_join(b, &room, TAG_B, 2, 15, &f);
    assert_int_equal(f.head, 615);
    expect_presence(a, &room, TAG_B, 2, true);
    next = 616;
    pub_sent = 0;
    pub_acked = 0;
    last = 15;
    while (last < 815) {
        int rc;
        if (pub_sent < 200 && pub_sent - pub_acked < 16) {
            uint32_t n = next + pub_sent;
            uint8_t cm[16];
            cmid_of(cm, 1, n);
            tc_publish(a, 5000 + n, &room, cm, env, sizeof env);
            pub_sent++;
        }
        while (tc_recv(a, &f, 0) > 0) {
            assert_int_equal(f.type, VEIL_FT_ACK);
            pub_acked++;
        }
        rc = tc_recv(b, &f, pub_sent == 200 ? 3000 : 1);
        assert_true(rc >= 0);
        if (rc == 0) {
            if (pub_sent == 200) {
                fail_msg("b stalled at seq %llu", (unsigned long long)last);
            }
            continue;
        }
        if (f.type == VEIL_FT_CAUGHT_UP) {
            assert_int_equal(f.seq, last);
            caught++;
            continue;
        }
        assert_int_equal(f.type, VEIL_FT_DELIVER);
        assert_int_equal(f.seq, last + 1);
        last = f.seq;
    }
    assert_int_equal(caught, 1);
    tc_expect_silence(b, 100);
    while (pub_acked < 200) {
        tc_expect(a, VEIL_FT_ACK, &f);
        pub_acked++;
    }
    tc_free(a);
    tc_free(b);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ history, retention */

static void history(tc *c, uint32_t id, const tc_room *room, uint64_t before, uint32_t limit)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_HISTORY;
    f.id = id;
    veil_wire_set_bin(&f, VEIL_WF_ROOM, room->id, 32);
    if (before != 0) {
        veil_wire_set_uint(&f, VEIL_WF_BEFORE, before);
    }
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, limit);
    tc_send(c, &f);
}

static void expect_page(tc *c, uint32_t id, uint64_t first, uint64_t last, bool more)
{
    veil_frame f;
    veil_wire_iter it;
    veil_wire_item item;
    uint64_t want = first;

    tc_expect(c, VEIL_FT_HISTORY_PAGE, &f);
    assert_int_equal(f.id, id);
    assert_int_equal(f.more, more);
    veil_wire_iter_init(&it, &f.list);
    while (veil_wire_next_item(&it, &item)) {
        assert_int_equal(item.seq, want);
        assert_int_equal(item.cmid.p[15], (uint8_t)want);
        want++;
    }
    assert_int_equal(want, last + 1);
}

static void test_history_paging_and_retention(void **state)
{
    static const char *const flags[] = { "--retain-count", "20", "--max-page", "2048", NULL };
    th_relay r;
    tc *a, *b;
    tc_id ida;
    tc_room room, other;
    veil_frame f;
    uint8_t env[300];
    uint32_t i;

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&ida, 1);
    tc_room_from_secret(&room, 5);
    tc_room_from_secret(&other, 6);
    a = tc_connect(&r);
    tc_auth(a, &ida);
    tc_join(a, &room, TAG_A, 1, -1, NULL);
    memset(env, 1, sizeof env);
    for (i = 1; i <= 25; i++) {
        publish_acked(a, &room, 1, i, env, (i % 2) ? 10 : 20, false);
    }
    /* Newest 10, then back by before. */
    history(a, 1, &room, 0, 10);
    expect_page(a, 1, 16, 25, true);
    history(a, 2, &room, 16, 10);
    expect_page(a, 2, 6, 15, false);
    /* Retention by count (20): 1..5 are gone. */
    history(a, 3, &room, 6, 10);
    expect_page(a, 3, 1, 0, false);
    /* A page is cut by --max-page (2048 octets of envelopes): 300-octet envelopes, 6 fit... */
    for (i = 26; i <= 40; i++) {
        publish_acked(a, &room, 1, i, env, sizeof env, false);
    }
    history(a, 4, &room, 0, 100);
    expect_page(a, 4, 35, 40, true);
    /* ...and one larger than the budget still comes alone. */
    history(a, 5, &room, 0, 1);
    expect_page(a, 5, 40, 40, true);
    /* HISTORY of a room not joined. */
    history(a, 6, &other, 0, 10);
    tc_expect_error(a, 6, VEIL_ENOTJOINED);
    /* A joiner sees first = head - 19 and replays from there when asking since 0. */
    b = tc_connect(&r);
    tc_auth(b, &ida);
    tc_join(b, &room, TAG_B, 2, 0, &f);
    assert_int_equal(f.head, 40);
    assert_int_equal(f.first, 21);
    for (i = 21; i <= 40; i++) {
        tc_expect(b, VEIL_FT_DELIVER, &f);
        assert_int_equal(f.seq, i);
    }
    tc_expect(b, VEIL_FT_CAUGHT_UP, &f);
    tc_free(a);
    tc_free(b);
    th_relay_stop(&r);
}

static void test_retention_by_age_keeps_head(void **state)
{
    static const char *const flags[] = { "--retain-age", "1", "--sweep", "1", NULL };
    th_relay r;
    tc *a;
    tc_id ida;
    tc_room room;
    veil_frame f;
    uint8_t env[10] = { 0 };
    int64_t end;
    uint32_t i;

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&ida, 1);
    tc_room_from_secret(&room, 5);
    a = tc_connect(&r);
    tc_auth(a, &ida);
    tc_join(a, &room, TAG_A, 1, -1, NULL);
    for (i = 1; i <= 3; i++) {
        publish_acked(a, &room, 1, i, env, sizeof env, false);
    }
    /* Within a few seconds the sweep deletes them (they are older than 1 s). */
    end = th_now_ms() + 8000;
    for (;;) {
        history(a, 10, &room, 0, 10);
        tc_expect(a, VEIL_FT_HISTORY_PAGE, &f);
        if (f.list.count == 0) {
            break;
        }
        assert_true(th_now_ms() < end);
        tc_service(200);
    }
    /*
     * The emptied room keeps its head on disk (the sweep records it): after a
     * restart it is still 3. Sequence numbers are never reused, also after a
     * restart: 4, then after another one 5.
     */
    for (i = 3; i <= 4; i++) {
        tc_free(a);
        th_relay_signal(&r, SIGTERM);
        th_relay_restart(&r);
        a = tc_connect(&r);
        tc_auth(a, &ida);
        tc_join(a, &room, TAG_A, 1, -1, &f);
        assert_int_equal(f.head, i);
        assert_int_equal(publish_acked(a, &room, 1, i + 1, env, sizeof env, false), i + 1);
    }
    tc_free(a);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ inbox */

static void inbox_post(tc *c, uint32_t id, const tc_id *to, const char *text)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_POST;
    f.id = id;
    veil_wire_set_bin(&f, VEIL_WF_TO, to->pk, 32);
    veil_wire_set_bin(&f, VEIL_WF_ENV, (const uint8_t *)text, strlen(text));
    tc_send(c, &f);
}

static void test_inbox(void **state)
{
    static const char *const flags[] = { "--max-inbox", "4", NULL };
    th_relay r;
    tc *anon, *bob, *carol;
    tc_id idb, idc;
    veil_frame f;
    veil_wire_iter it;
    veil_wire_item item;
    uint64_t iids[4];
    uint8_t lbuf[64];
    veil_wire_list_builder lb;
    int i;

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&idb, 2);
    tc_id_from_seed(&idc, 3);
    anon = tc_connect(&r);
    bob = tc_connect(&r);
    carol = tc_connect(&r);
    tc_auth(bob, &idb);
    tc_auth(carol, &idc);
    for (i = 0; i < 3; i++) {
        char text[16];
        snprintf(text, sizeof text, "first-%d", i);
        inbox_post(anon, (uint32_t)(10 + i), &idb, text);
        tc_expect(anon, VEIL_FT_INBOX_POSTED, &f);
        assert_int_equal(f.id, 10 + i);
        iids[i] = f.iid;
        if (i > 0) {
            assert_true(iids[i] > iids[i - 1]);
        }
        /* Bob is connected: INBOX_NEW. */
        tc_expect(bob, VEIL_FT_INBOX_NEW, &f);
        assert_int_equal(f.iid, iids[i]);
        assert_int_equal(f.env.len, strlen(text));
        assert_memory_equal(f.env.p, text, strlen(text));
        assert_true(f.ts > 1600000000);
    }
    /* Carol sees nothing of Bob's inbox. */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_FETCH;
    f.id = 20;
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, 100);
    tc_send(carol, &f);
    tc_expect(carol, VEIL_FT_INBOX_PAGE, &f);
    assert_int_equal(f.list.count, 0);
    /* Bob pages: 2, then the rest. */
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_FETCH;
    f.id = 21;
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, 2);
    tc_send(bob, &f);
    tc_expect(bob, VEIL_FT_INBOX_PAGE, &f);
    assert_int_equal(f.list.count, 2);
    assert_true(f.more);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_FETCH;
    f.id = 22;
    veil_wire_set_uint(&f, VEIL_WF_AFTER, iids[1]);
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, 2);
    tc_send(bob, &f);
    tc_expect(bob, VEIL_FT_INBOX_PAGE, &f);
    assert_int_equal(f.list.count, 1);
    assert_false(f.more);
    veil_wire_iter_init(&it, &f.list);
    assert_true(veil_wire_next_item(&it, &item));
    assert_int_equal(item.seq, iids[2]);
    assert_memory_equal(item.env.p, "first-2", 7);
    /* Full at 4 entries. */
    inbox_post(anon, 30, &idb, "fourth");
    tc_expect(anon, VEIL_FT_INBOX_POSTED, &f);
    iids[3] = f.iid;
    tc_expect(bob, VEIL_FT_INBOX_NEW, &f);
    inbox_post(anon, 31, &idb, "fifth");
    tc_expect_error(anon, 31, VEIL_EFULL);
    /* Carol cannot delete Bob's entries; Bob deletes two (plus one unknown id). */
    veil_wire_lb_init(&lb, VEIL_WL_IDS, lbuf, sizeof lbuf);
    veil_wire_lb_u64(&lb, iids[0]);
    veil_wire_lb_u64(&lb, iids[1]);
    veil_wire_lb_u64(&lb, 999999);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_ACK;
    f.id = 40;
    assert_int_equal(veil_wire_lb_finish(&lb, &f.list), 0);
    f.present |= VEIL_WF_BIT(VEIL_WF_IDS);
    tc_send(carol, &f);
    tc_expect(carol, VEIL_FT_INBOX_ACKED, &f);
    assert_int_equal(f.n, 0);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_ACK;
    f.id = 41;
    assert_int_equal(veil_wire_lb_finish(&lb, &f.list), 0);
    f.present |= VEIL_WF_BIT(VEIL_WF_IDS);
    tc_send(bob, &f);
    tc_expect(bob, VEIL_FT_INBOX_ACKED, &f);
    assert_int_equal(f.id, 41);
    assert_int_equal(f.n, 2);
    /* Room again: a post succeeds; the fetch shows 3 entries. */
    inbox_post(anon, 32, &idb, "fifth");
    tc_expect(anon, VEIL_FT_INBOX_POSTED, &f);
    tc_expect(bob, VEIL_FT_INBOX_NEW, &f);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_FETCH;
    f.id = 42;
    veil_wire_set_uint(&f, VEIL_WF_LIMIT, 100);
    tc_send(bob, &f);
    tc_expect(bob, VEIL_FT_INBOX_PAGE, &f);
    assert_int_equal(f.list.count, 3);
    tc_free(anon);
    tc_free(bob);
    tc_free(carol);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ prekeys */

static void upload(tc *c, uint32_t id, const uint8_t base[229], uint32_t first_opk, uint32_t n, int replace)
{
    veil_frame f;
    veil_wire_list_builder lb;
    static uint8_t lbuf[100 * 40];
    uint32_t i;

    veil_wire_lb_init(&lb, VEIL_WL_OPKS, lbuf, sizeof lbuf);
    for (i = 0; i < n; i++) {
        uint8_t o[36];
        uint32_t oid = first_opk + i;
        o[0] = (uint8_t)(oid >> 24);
        o[1] = (uint8_t)(oid >> 16);
        o[2] = (uint8_t)(oid >> 8);
        o[3] = (uint8_t)oid;
        memset(o + 4, (int)(oid & 0xff), 32);
        veil_wire_lb_bin(&lb, o, 36);
    }
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PREKEY_UPLOAD;
    f.id = id;
    veil_wire_set_bin(&f, VEIL_WF_BASE, base, 229);
    assert_int_equal(veil_wire_lb_finish(&lb, &f.list), 0);
    f.present |= VEIL_WF_BIT(VEIL_WF_OPKS);
    if (replace >= 0) {
        veil_wire_set_bool(&f, VEIL_WF_REPLACE, replace != 0);
    }
    tc_send(c, &f);
}

static void fetch(tc *c, uint32_t id, const tc_id *who)
{
    veil_frame f;

    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_PREKEY_FETCH;
    f.id = id;
    veil_wire_set_bin(&f, VEIL_WF_IK, who->pk, 32);
    tc_send(c, &f);
}

/* Returns the opk id of a bundle (0 when it has none) after checking its base. */
static uint32_t bundle_opk(const veil_frame *f, const uint8_t base[229])
{
    const uint8_t *b = f->bundle.p;

    assert_int_equal(f->bundle.len, 266);
    assert_memory_equal(b, base, 229);
    if (b[229] == 0) {
        static const uint8_t zero[36] = { 0 };
        assert_memory_equal(b + 230, zero, 36);
        return 0;
    }
    assert_int_equal(b[229], 1);
    {
        uint32_t id = ((uint32_t)b[230] << 24) | ((uint32_t)b[231] << 16) | ((uint32_t)b[232] << 8) | b[233];
        assert_int_equal(b[234], (uint8_t)(id & 0xff));
        return id;
    }
}

static void test_prekeys(void **state)
{
    static const char *const flags[] = { "--max-opks", "8", NULL };
    th_relay r;
    tc *bob, *anon, *mallory;
    tc_id idb, idm;
    uint8_t base[229], bad[229], base2[229];
    veil_frame f;
    uint32_t i;

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&idb, 2);
    tc_id_from_seed(&idm, 6);
    tc_base(base, &idb, 1);
    bob = tc_connect(&r);
    anon = tc_connect(&r);
    mallory = tc_connect(&r);
    tc_auth(bob, &idb);
    tc_auth(mallory, &idm);

    upload(bob, 1, base, 1, 3, -1);
    tc_expect(bob, VEIL_FT_PREKEY_STORED, &f);
    assert_int_equal(f.id, 1);
    assert_int_equal(f.count, 3);
    /* A retried upload stores nothing twice. */
    upload(bob, 2, base, 1, 3, 0);
    tc_expect(bob, VEIL_FT_PREKEY_STORED, &f);
    assert_int_equal(f.count, 3);
    simple_request(bob, VEIL_FT_PREKEY_COUNT, 3);
    tc_expect(bob, VEIL_FT_PREKEY_COUNTED, &f);
    assert_int_equal(f.count, 3);
    assert_int_equal(f.spk_id, 1);

    /* Refusals: bad signature, someone else's bundle, opk id 0, version, too many. */
    memcpy(bad, base, 229);
    bad[200] ^= 1;
    upload(bob, 4, bad, 10, 1, -1);
    tc_expect_error(bob, 4, VEIL_ESIG);
    memcpy(bad, base, 229);
    bad[40] ^= 1; /* IKd.pk changed: idsig no longer verifies */
    upload(bob, 5, bad, 10, 1, -1);
    tc_expect_error(bob, 5, VEIL_ESIG);
    upload(mallory, 6, base, 10, 1, -1);
    tc_expect_error(mallory, 6, VEIL_EPERM);
    upload(bob, 7, base, 0, 1, -1);
    tc_expect_error(bob, 7, VEIL_EINVAL);
    memcpy(bad, base, 229);
    bad[0] = 2;
    upload(bob, 8, bad, 10, 1, -1);
    tc_expect_error(bob, 8, VEIL_EVERSION);
    upload(bob, 9, base, 100, 6, -1); /* 3 + 6 > 8 */
    tc_expect_error(bob, 9, VEIL_EFULL);
    simple_request(bob, VEIL_FT_PREKEY_COUNT, 10);
    tc_expect(bob, VEIL_FT_PREKEY_COUNTED, &f);
    assert_int_equal(f.count, 3);

    /* Fetches hand out 1, 2, 3 once each, then bundles without a one-time prekey. */
    for (i = 1; i <= 5; i++) {
        fetch(anon, 20 + i, &idb);
        tc_expect(anon, VEIL_FT_PREKEY_BUNDLE, &f);
        assert_int_equal(f.id, 20 + i);
        assert_int_equal(bundle_opk(&f, base), i <= 3 ? i : 0);
    }
    simple_request(bob, VEIL_FT_PREKEY_COUNT, 30);
    tc_expect(bob, VEIL_FT_PREKEY_COUNTED, &f);
    assert_int_equal(f.count, 0);
    /* A rotated signed prekey with replace: the new base is served. */
    tc_base(base2, &idb, 2);
    upload(bob, 31, base2, 50, 2, 1);
    tc_expect(bob, VEIL_FT_PREKEY_STORED, &f);
    assert_int_equal(f.count, 2);
    fetch(anon, 32, &idb);
    tc_expect(anon, VEIL_FT_PREKEY_BUNDLE, &f);
    assert_int_equal(bundle_opk(&f, base2), 50);
    assert_int_equal(th_metric(&r, "veil_opks_handed_total"), 4);
    tc_free(bob);
    tc_free(anon);
    tc_free(mallory);
    th_relay_stop(&r);
}

static void test_prekey_concurrent_fetch(void **state)
{
    static const char *const flags[] = { "--rate", "100000", "--burst", "100000", "--max-opks", "1000", NULL };
    enum { NCONN = 10, PER = 12, NOPK = 100 };
    th_relay r;
    tc *bob, *c[NCONN];
    tc_id idb;
    uint8_t base[229];
    veil_frame f;
    int seen[NOPK + 1] = { 0 };
    int with = 0, without = 0, i, k;

    (void)state;
    th_relay_start(&r, flags);
    tc_id_from_seed(&idb, 2);
    tc_base(base, &idb, 1);
    bob = tc_connect(&r);
    tc_auth(bob, &idb);
    /* 100 one-time prekeys, ids 1..100, in one upload of 100. */
    upload(bob, 1, base, 1, NOPK, -1);
    tc_expect(bob, VEIL_FT_PREKEY_STORED, &f);
    assert_int_equal(f.count, NOPK);
    for (i = 0; i < NCONN; i++) {
        c[i] = tc_connect(&r);
    }
    /* 120 fetches race over 10 connections, all sent before any answer is read. */
    for (k = 0; k < PER; k++) {
        for (i = 0; i < NCONN; i++) {
            fetch(c[i], (uint32_t)(k + 1), &idb);
        }
    }
    for (i = 0; i < NCONN; i++) {
        for (k = 0; k < PER; k++) {
            uint32_t id;
            tc_expect(c[i], VEIL_FT_PREKEY_BUNDLE, &f);
            id = bundle_opk(&f, base);
            if (id == 0) {
                without++;
            } else {
                assert_true(id <= NOPK);
                assert_int_equal(seen[id], 0);
                seen[id] = 1;
                with++;
            }
        }
    }
    assert_int_equal(with, NOPK);
    assert_int_equal(without, NCONN * PER - NOPK);
    for (i = 0; i < NCONN; i++) {
        tc_free(c[i]);
    }
    tc_free(bob);
    th_relay_stop(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_hello_and_auth),
        TH_TEST(test_anonymous_may_only_post_and_fetch),
        TH_TEST(test_join_proof),
        TH_TEST(test_presence),
        TH_TEST(test_publish_ack_deliver_idempotent),
        TH_TEST(test_publish_batch_republish),
        TH_TEST(test_catchup_after_reconnect),
        TH_TEST(test_history_paging_and_retention),
        TH_TEST(test_retention_by_age_keeps_head),
        TH_TEST(test_inbox),
        TH_TEST(test_prekeys),
        TH_TEST(test_prekey_concurrent_fetch),
    };

    th_init(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
