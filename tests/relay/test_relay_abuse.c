/* SPDX-License-Identifier: ISC */
/*
 * veil-relay integration tests, bad input and limits (SPEC.md 9.2, 9.11):
 * each gets the right error or close, and the relay keeps serving the others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "relay_harness.h"

/* tc_two_members' tag for its second member, who rejoins here. */
static const uint8_t TAG_B[] = { TC_TAG_B };

/* A bystander that must keep working: publishes and sees its peer's delivery. */
typedef struct bystander {
    tc *a, *b;
    tc_room room;
    uint32_t n;
} bystander;

static void bystander_start(bystander *s, const th_relay *r)
{
    tc_two_members(r, 11, 12, 42, &s->a, &s->b, &s->room);
    s->n = 0;
}

static void bystander_check(bystander *s)
{
    uint8_t cmid[16] = { 0xbb };
    veil_frame f;

    s->n++;
    cmid[15] = (uint8_t)s->n;
    tc_publish(s->a, 9000 + s->n, &s->room, cmid, (const uint8_t *)"still here", 10);
    tc_expect(s->a, VEIL_FT_ACK, &f);
    assert_int_equal(f.seq, s->n);
    tc_expect(s->b, VEIL_FT_DELIVER, &f);
    assert_int_equal(f.seq, s->n);
}

static void bystander_end(bystander *s)
{
    tc_free(s->a);
    tc_free(s->b);
}

/* ------------------------------------------------------------------ malformed frames */

static void test_malformed_frames(void **state)
{
    th_relay r;
    bystander s;
    tc *c;
    veil_frame f;
    uint8_t deep[300];
    size_t i, n;
    static const uint8_t not_msgpack[] = { 0xc1, 0xc1 };
    static const uint8_t truncated[] = { 0x83, 0xa1, 'v', 0x01, 0xa1 };
    /* {v:1, t:0x64, id:7} then an unknown key with a bin32 declaring 4 GiB. */
    static const uint8_t huge[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 7, 0xa1, 'x',
                                    0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
    static const uint8_t huge_array[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 8, 0xa1, 'x',
                                          0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
    /* LEAVE with room as a str, id 9. */
    static const uint8_t wrong_type[] = { 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x22, 0xa2, 'i', 'd', 9, 0xa4, 'r', 'o', 'o',
                                          'm', 0xa3, 'a', 'b', 'c' };
    /* Unknown type 0x7e and a relay-only type (DELIVER), ids 10 and 11. */
    static const uint8_t unknown[] = { 0x83, 0xa1, 'v', 1, 0xa1, 't', 0x7e, 0xa2, 'i', 'd', 10 };
    static const uint8_t server_only[] = { 0x83, 0xa1, 'v', 1, 0xa1, 't', 0x01, 0xa2, 'i', 'd', 11 };
    static const uint8_t version2[] = { 0x83, 0xa1, 'v', 2, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 12 };

    (void)state;
    th_relay_start(&r, NULL);
    bystander_start(&s, &r);
    c = tc_connect(&r);

    tc_send_raw(c, not_msgpack, sizeof not_msgpack, false);
    tc_expect_error(c, 0, VEIL_EINVAL);
    tc_send_raw(c, truncated, sizeof truncated, false);
    tc_expect_error(c, 0, VEIL_EINVAL);
    /* The request id precedes the bad key, so the error can name it. */
    tc_send_raw(c, huge, sizeof huge, false);
    tc_expect_error(c, 7, VEIL_EINVAL);
    tc_send_raw(c, huge_array, sizeof huge_array, false);
    tc_expect_error(c, 8, VEIL_EINVAL);
    tc_send_raw(c, wrong_type, sizeof wrong_type, false);
    tc_expect_error(c, 9, VEIL_EINVAL);
    tc_send_raw(c, unknown, sizeof unknown, false);
    tc_expect(c, VEIL_FT_ERROR, &f);
    assert_int_equal(f.id, 10);
    assert_int_equal(f.code, VEIL_EUNSUPPORTED);
    assert_int_equal(f.rt, 0x7e);
    tc_send_raw(c, server_only, sizeof server_only, false);
    tc_expect_error(c, 11, VEIL_EUNSUPPORTED);
    tc_send_raw(c, version2, sizeof version2, false);
    tc_expect_error(c, 12, VEIL_EVERSION);
    /* Nesting 250 deep inside an unknown key. */
    n = 0;
    memcpy(deep, (const uint8_t[]){ 0x84, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 13, 0xa1, 'x' }, 13);
    n = 13;
    for (i = 0; i < 250; i++) {
        deep[n++] = 0x91;
    }
    deep[n++] = 0xc0;
    tc_send_raw(c, deep, n, false);
    tc_expect_error(c, 13, VEIL_EINVAL);
    /* The connection still works (9 errors so far; a success resets the count). */
    {
        tc_id to;
        tc_id_from_seed(&to, 5);
        memset(&f, 0, sizeof f);
        f.type = VEIL_FT_INBOX_POST;
        f.id = 14;
        veil_wire_set_bin(&f, VEIL_WF_TO, to.pk, 32);
        veil_wire_set_bin(&f, VEIL_WF_ENV, (const uint8_t *)"x", 1);
        tc_send(c, &f);
        tc_expect(c, VEIL_FT_INBOX_POSTED, &f);
        assert_int_equal(f.id, 14);
    }
    bystander_check(&s);
    /* 16 errors in a row: ERROR frames, then close 1008. */
    for (i = 0; i < 16; i++) {
        tc_send_raw(c, not_msgpack, sizeof not_msgpack, false);
    }
    for (i = 0; i < 16 - 1; i++) {
        tc_expect_error(c, 0, VEIL_EINVAL);
    }
    tc_expect_error(c, 0, VEIL_EINVAL);
    assert_int_equal(tc_wait_closed(c, 5000), 1008);
    tc_free(c);
    bystander_check(&s);
    /* A text message: close 1003. */
    c = tc_connect(&r);
    tc_send_raw(c, (const uint8_t *)"hello", 5, true);
    tc_expect_error(c, 0, VEIL_EINVAL);
    assert_int_equal(tc_wait_closed(c, 5000), 1003);
    tc_free(c);
    bystander_check(&s);
    assert_true(th_metric(&r, "veil_closes_total{reason=\"policy\"}") >= 1);
    bystander_end(&s);
    th_relay_stop(&r);
}

static void test_oversized_frames(void **state)
{
    static const char *const flags[] = { "--max-frame", "20000", "--max-env", "16384", "--max-frame-anon", "2048",
                                         "--max-eph", "1024", "--queue-bytes", "1048576", NULL };
    th_relay r;
    bystander s;
    tc *c;
    tc_id id;
    veil_frame f;
    static uint8_t big[100000];
    int fd, st = 0, op;
    uint8_t hdr[2 + 8];
    size_t len;

    (void)state;
    th_relay_start(&r, flags);
    bystander_start(&s, &r);
    tc_id_from_seed(&id, 1);

    /* Anonymous: 3000 octets is over 2048. */
    c = tc_connect(&r);
    tc_send_raw(c, big, 3000, false);
    tc_expect_error(c, 0, VEIL_ETOOBIG);
    assert_int_equal(tc_wait_closed(c, 5000), 1009);
    tc_free(c);
    /* Authenticated: an INBOX_POST with a 17000-octet env is within the frame but over max_env. */
    c = tc_connect(&r);
    tc_auth(c, &id);
    memset(&f, 0, sizeof f);
    f.type = VEIL_FT_INBOX_POST;
    f.id = 5;
    veil_wire_set_bin(&f, VEIL_WF_TO, id.pk, 32);
    veil_wire_set_bin(&f, VEIL_WF_ENV, big, 17000);
    tc_send(c, &f);
    tc_expect(c, VEIL_FT_ERROR, &f);
    assert_int_equal(f.code, VEIL_ETOOBIG);
    /* 100000 octets: over the frame limit: error and close 1009. */
    tc_send_raw(c, big, sizeof big, false);
    tc_expect_error(c, 0, VEIL_ETOOBIG);
    assert_int_equal(tc_wait_closed(c, 5000), 1009);
    tc_free(c);
    bystander_check(&s);

    /* Raw: a frame header declaring 2^40 octets: refused on its first octets, not after buffering. */
    fd = th_tcp(&r, 0);
    assert_true(fd >= 0);
    assert_int_equal(th_ws_handshake(fd, "veil.v1"), 101);
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000); /* HELLO */
    assert_int_equal(op, 2);
    memset(hdr, 0x90, sizeof hdr);
    assert_int_equal(th_ws_send(fd, 2, hdr, sizeof hdr, (uint64_t)1 << 40), 0);
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 2); /* ERROR VEIL_ETOOBIG */
    assert_int_equal(veil_wire_decode(&f, big, len, NULL), 0);
    assert_int_equal(f.code, VEIL_ETOOBIG);
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 8);
    assert_int_equal(st, 1009);
    close(fd);
    /* A message split into many small fragments, over the limit in total. */
    fd = th_tcp(&r, 0);
    assert_int_equal(th_ws_handshake(fd, "veil.v1"), 101);
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 2);
    {
        uint8_t frag[1000];
        int k;
        memset(frag, 0x90, sizeof frag);
        for (k = 0; k < 3; k++) {
            /* opcode binary first, then continuation, never FIN: send raw headers without FIN. */
            uint8_t h[8] = { (uint8_t)(k == 0 ? 0x02 : 0x00), 0x80 | 126, (uint8_t)(sizeof frag >> 8),
                             (uint8_t)(sizeof frag & 0xff), 0, 0, 0, 0 };
            assert_int_equal(send(fd, h, sizeof h, 0), (ssize_t)sizeof h);
            assert_int_equal(send(fd, frag, sizeof frag, 0), (ssize_t)sizeof frag);
        }
    }
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 2);
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 8);
    assert_int_equal(st, 1009);
    close(fd);
    /* Fragmented but within the limit: reassembled and answered. */
    fd = th_tcp(&r, 0);
    assert_int_equal(th_ws_handshake(fd, "veil.v1"), 101);
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 2);
    {
        static const uint8_t count[] = { 0x83, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 77 };
        uint8_t h1[6] = { 0x02, 0x80 | 5, 0, 0, 0, 0 }, h2[6] = { 0x80, 0x80 | 6, 0, 0, 0, 0 };
        assert_int_equal(send(fd, h1, 6, 0), 6);
        assert_int_equal(send(fd, count, 5, 0), 5);
        assert_int_equal(send(fd, h2, 6, 0), 6);
        assert_int_equal(send(fd, count + 5, 6, 0), 6);
    }
    op = th_ws_recv(fd, big, sizeof big, &len, &st, 5000);
    assert_int_equal(op, 2);
    assert_int_equal(veil_wire_decode(&f, big, len, NULL), 0);
    assert_int_equal(f.code, VEIL_EPERM);
    assert_int_equal(f.id, 77);
    close(fd);
    bystander_check(&s);
    assert_true(th_metric(&r, "veil_closes_total{reason=\"too_big\"}") >= 4);
    bystander_end(&s);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ rate limit */

static void test_rate_limit_flood(void **state)
{
    static const char *const flags[] = { "--rate", "20", "--burst", "30", NULL };
    static const uint8_t count[] = { 0x83, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 1 };
    th_relay r;
    bystander s;
    tc *c;
    tc_id id;
    veil_frame f;
    int i, ok = 0, limited = 0, rc;

    (void)state;
    th_relay_start(&r, flags);
    bystander_start(&s, &r);
    tc_id_from_seed(&id, 1);
    c = tc_connect(&r);
    tc_auth(c, &id);
    /* 40 at once: about 29 pass (30 tokens less the AUTH, plus a little refill), the rest get VEIL_ERATE. */
    for (i = 0; i < 40; i++) {
        tc_send_raw(c, count, sizeof count, false);
    }
    for (i = 0; i < 40; i++) {
        assert_int_equal(tc_recv(c, &f, 5000), 1);
        if (f.type == VEIL_FT_PREKEY_COUNTED) {
            ok++;
        } else {
            assert_int_equal(f.type, VEIL_FT_ERROR);
            assert_int_equal(f.code, VEIL_ERATE);
            assert_int_equal(f.rt, VEIL_FT_PREKEY_COUNT);
            limited++;
        }
    }
    assert_true(ok >= 25 && ok <= 35);
    assert_int_equal(ok + limited, 40);
    /* After a pause the bucket refills. */
    tc_service(600);
    tc_send_raw(c, count, sizeof count, false);
    tc_expect(c, VEIL_FT_PREKEY_COUNTED, &f);
    /*
     * A flood: `burst` refusals in a row close the connection with 1008
     * (SPEC.md 9.11), right after the ERROR of the last one. A token refilled
     * during the flood answers one request and starts the count again, so
     * only the refusals after the last success count.
     */
    for (i = 0; i < 200; i++) {
        tc_send_raw(c, count, sizeof count, false);
    }
    limited = 0;
    for (;;) {
        rc = tc_recv(c, &f, 5000);
        if (rc <= 0) {
            break;
        }
        if (f.type == VEIL_FT_PREKEY_COUNTED) {
            limited = 0;
        } else {
            assert_int_equal(f.type, VEIL_FT_ERROR);
            assert_int_equal(f.code, VEIL_ERATE);
            limited++;
        }
    }
    assert_int_equal(rc, -1);
    assert_int_equal(limited, 30);
    assert_int_equal(tc_wait_closed(c, 1000), 1008);
    tc_free(c);
    bystander_check(&s);
    bystander_end(&s);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ slow consumer */

static void test_slow_consumer(void **state)
{
    static const char *const flags[] = { "--queue-frames", "64", "--queue-bytes", "131072", "--max-page", "32768",
                                         "--max-env", "16384", "--max-frame", "20000", "--rate", "100000",
                                         "--burst", "100000", NULL };
    th_relay r;
    tc *a, *b, *b2;
    tc_id idb;
    tc_room room;
    veil_frame f;
    static uint8_t env[8000];
    uint32_t sent = 0, acked = 0;
    uint64_t last = 0, head = 0;
    int64_t end;
    int rc;

    (void)state;
    th_relay_start(&r, flags);
    tc_two_members(&r, 1, 2, 3, &a, &b, &room);
    /* b stops reading; a publishes until the relay gives up on b (at most 4000 x 8000 octets). */
    tc_rx(b, 0);
    end = th_now_ms() + 60000;
    while (sent < 4000 && th_now_ms() < end) {
        while (sent < 4000 && sent - acked < 32) {
            uint8_t cmid[16] = { 0 };
            sent++;
            memcpy(cmid, &sent, sizeof sent);
            tc_publish(a, sent, &room, cmid, env, sizeof env);
        }
        rc = tc_recv(a, &f, 5000);
        assert_int_equal(rc, 1);
        if (f.type == VEIL_FT_PRESENCE) {
            assert_false(f.on);
            break; /* b is gone: presence says so */
        }
        assert_int_equal(f.type, VEIL_FT_ACK);
        acked++;
        head = f.seq;
    }
    while (acked < sent) {
        tc_expect(a, VEIL_FT_ACK, &f);
        acked++;
        head = f.seq;
    }
    assert_int_equal(th_metric(&r, "veil_closes_total{reason=\"slow_consumer\"}"), 1);
    /* b reads what reached it, in order, then finds the connection closed. */
    tc_rx(b, 1);
    for (;;) {
        rc = tc_recv(b, &f, 5000);
        if (rc <= 0) {
            break;
        }
        assert_int_equal(f.type, VEIL_FT_DELIVER);
        assert_int_equal(f.seq, last + 1);
        last = f.seq;
    }
    assert_int_equal(rc, -1);
    assert_true(last < head);
    /* It comes back and catches up by sequence number. */
    b2 = tc_connect(&r);
    tc_id_from_seed(&idb, 2);
    tc_auth(b2, &idb);
    tc_join(b2, &room, TAG_B, 1, (int64_t)last, &f);
    assert_int_equal(f.head, head);
    for (;;) {
        assert_int_equal(tc_recv(b2, &f, 5000), 1);
        if (f.type == VEIL_FT_CAUGHT_UP) {
            assert_int_equal(f.seq, head);
            break;
        }
        assert_int_equal(f.type, VEIL_FT_DELIVER);
        assert_int_equal(f.seq, last + 1);
        last = f.seq;
    }
    assert_int_equal(last, head);
    tc_free(b);
    tc_free(b2);
    tc_free(a);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ silent clients, idle */

static void test_silent_clients(void **state)
{
    static const char *const flags[] = { "--idle", "2", "--handshake-timeout", "2", NULL };
    th_relay r;
    bystander s;
    tc *idle;
    tc_id id;
    veil_frame f;
    int fd, fd2, st;
    int64_t t0;
    uint8_t buf[512];
    size_t len;
    static const uint8_t count[] = { 0x83, 0xa1, 'v', 1, 0xa1, 't', 0x64, 0xa2, 'i', 'd', 3 };

    (void)state;
    th_relay_start(&r, flags);
    bystander_start(&s, &r);
    tc_id_from_seed(&id, 1);
    idle = tc_connect(&r);
    tc_auth(idle, &id);
    /* A TCP connection that never sends a byte, and a WebSocket that never answers a ping. */
    fd = th_tcp(&r, 0);
    assert_true(fd >= 0);
    fd2 = th_tcp(&r, 0);
    assert_int_equal(th_ws_handshake(fd2, "veil.v1"), 101);
    assert_int_equal(th_ws_recv(fd2, buf, sizeof buf, &len, &st, 5000), 2);
    t0 = th_now_ms();
    assert_int_equal(th_wait_eof(fd, 10000), 1);
    assert_true(th_now_ms() - t0 >= 1000);
    assert_int_equal(th_wait_eof(fd2, 10000), 1);
    assert_true(th_now_ms() - t0 >= 1500);
    close(fd);
    close(fd2);
    /* A client that answers pings stays, idle for twice the idle time. */
    tc_service(4000);
    assert_false(tc_is_closed(idle));
    tc_send_raw(idle, count, sizeof count, false);
    tc_expect(idle, VEIL_FT_PREKEY_COUNTED, &f);
    bystander_check(&s);
    tc_free(idle);
    bystander_end(&s);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ connection limit */

static void test_connection_limit(void **state)
{
    static const char *const flags[] = { "--max-conns", "3", NULL };
    th_relay r;
    bystander s;
    tc *c1, *c2, *c3;
    veil_frame f;
    int64_t end;

    (void)state;
    th_relay_start(&r, flags);
    bystander_start(&s, &r);
    c1 = tc_connect(&r);
    c2 = tc_connect_nowait(&r);
    tc_expect(c2, VEIL_FT_ERROR, &f);
    assert_int_equal(f.code, VEIL_EBUSY);
    assert_int_equal(tc_wait_closed(c2, 5000), 4013);
    tc_free(c2);
    bystander_check(&s);
    /* When one leaves, there is room again. */
    tc_free(c1);
    end = th_now_ms() + 5000;
    while (th_metric(&r, "veil_connections") != 2) {
        assert_true(th_now_ms() < end);
        tc_service(20);
    }
    c3 = tc_connect(&r);
    tc_free(c3);
    assert_int_equal(th_metric(&r, "veil_closes_total{reason=\"connection_limit\"}"), 1);
    bystander_end(&s);
    th_relay_stop(&r);
}

/* ------------------------------------------------------------------ subprotocol, HTTP */

static void test_subprotocol_and_http(void **state)
{
    th_relay r;
    int fd, st = 0, op;
    uint8_t buf[512];
    size_t len;
    static char body[65536];

    (void)state;
    th_relay_start(&r, NULL);
    /* No subprotocol: the relay closes with 1002. */
    fd = th_tcp(&r, 0);
    assert_int_equal(th_ws_handshake(fd, NULL), 101);
    op = th_ws_recv(fd, buf, sizeof buf, &len, &st, 5000);
    assert_int_equal(op, 8);
    assert_int_equal(st, 1002);
    close(fd);
    /* Another subprotocol: the handshake is refused. */
    fd = th_tcp(&r, 0);
    assert_int_not_equal(th_ws_handshake(fd, "chat"), 101);
    close(fd);

    assert_int_equal(th_http_get(&r, "/healthz", body, sizeof body), 200);
    assert_string_equal(body, "ok\n");
    assert_int_equal(th_http_get(&r, "/metrics", body, sizeof body), 200);
    assert_non_null(strstr(body, "# TYPE veil_connections gauge\nveil_connections "));
    assert_non_null(strstr(body, "veil_store_commit_seconds_count "));
    assert_int_equal(th_http_get(&r, "/", body, sizeof body), 200);
    assert_non_null(strstr(body, "<h1>veil</h1>"));
    assert_int_equal(th_http_get(&r, "/index.html", body, sizeof body), 200);
    assert_int_equal(th_http_get(&r, "/no-such-file", body, sizeof body), 404);
    assert_int_not_equal(th_http_get(&r, "/../README.md", body, sizeof body), 200);
    assert_true(th_metric(&r, "veil_closes_total{reason=\"protocol\"}") >= 1);
    th_relay_stop(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_malformed_frames),
        TH_TEST(test_oversized_frames),
        TH_TEST(test_rate_limit_flood),
        TH_TEST(test_slow_consumer),
        TH_TEST(test_silent_clients),
        TH_TEST(test_connection_limit),
        TH_TEST(test_subprotocol_and_http),
    };

    th_init(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
