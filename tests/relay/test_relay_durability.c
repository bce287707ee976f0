/* SPDX-License-Identifier: ISC */
/*
 * veil-relay integration tests, durability (SPEC.md 9.12): publish under
 * load, kill -9, restart on the same SQLite file; every acknowledged envelope
 * is there with its sequence number, sequence numbers are contiguous, nothing
 * is duplicated, and clients reconnect and catch up. Also the clean shutdown
 * on SIGTERM, and a store that cannot write (a full disk): the batch is
 * answered VEIL_ESTORE, nothing of it is stored or delivered, and the relay
 * serves on once it can write again.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "relay_harness.h"

#define NPUB 3
#define WINDOW 32
#define MAXMSG 20000

static const uint8_t TAG[] = { 0x7a };

static void cmid_of(uint8_t cmid[16], uint32_t who, uint32_t n)
{
    memset(cmid, 0, 16);
    cmid[0] = 0xd0;
    cmid[1] = (uint8_t)who;
    cmid[12] = (uint8_t)(n >> 24);
    cmid[13] = (uint8_t)(n >> 16);
    cmid[14] = (uint8_t)(n >> 8);
    cmid[15] = (uint8_t)n;
}

static uint32_t cmid_n(const uint8_t *cmid)
{
    return ((uint32_t)cmid[12] << 24) | ((uint32_t)cmid[13] << 16) | ((uint32_t)cmid[14] << 8) | cmid[15];
}

/* What a full replay of the room shows: for each publisher and message number, its seq (0 if absent). */
typedef struct room_view {
    uint64_t head;
    uint64_t seq_of[NPUB][MAXMSG + 1];
} room_view;

/* Joins with since 0 and reads the whole room: seqs contiguous from 1 to head, no (who, n) twice. */
static void collect(const th_relay *r, const tc_id *id, const tc_room *room, room_view *v)
{
    tc *c = tc_connect(r);
    veil_frame f;
    uint64_t last = 0;

    memset(v, 0, sizeof *v);
    tc_auth(c, id);
    tc_join(c, room, TAG, 1, 0, &f);
    v->head = f.head;
    assert_int_equal(f.first, v->head > 0 ? 1 : v->head + 1);
    for (;;) {
        uint32_t who, n;

        assert_int_equal(tc_recv(c, &f, 10000), 1);
        if (f.type == VEIL_FT_CAUGHT_UP) {
            assert_int_equal(f.seq, v->head);
            break;
        }
        assert_int_equal(f.type, VEIL_FT_DELIVER);
        assert_int_equal(f.seq, last + 1);
        last = f.seq;
        assert_int_equal(f.cmid.p[0], 0xd0);
        who = f.cmid.p[1];
        n = cmid_n(f.cmid.p);
        assert_true(who < NPUB && n >= 1 && n <= MAXMSG);
        assert_int_equal(v->seq_of[who][n], 0); /* no duplicate */
        v->seq_of[who][n] = f.seq;
        /* The body is what was published. */
        assert_int_equal(f.env.len, 256);
        assert_int_equal(f.env.p[0], (uint8_t)n);
        assert_int_equal(f.env.p[255], (uint8_t)who);
    }
    assert_int_equal(last, v->head);
    tc_free(c);
}

typedef struct pub {
    tc *c;
    uint32_t sent, acked;
    uint64_t *ack_seq; /* by message number */
} pub;

static void publish_n(pub *p, uint32_t who, const tc_room *room, uint32_t n)
{
    uint8_t cmid[16], env[256];

    cmid_of(cmid, who, n);
    memset(env, 0x33, sizeof env);
    env[0] = (uint8_t)n;
    env[255] = (uint8_t)who;
    tc_publish(p->c, n, room, cmid, env, sizeof env);
}

/* Reads whatever arrived; records ACKs; ignores deliveries and presence of the others. */
static void drain(pub *p, uint32_t who)
{
    veil_frame f;

    while (tc_recv(p->c, &f, 0) > 0) {
        if (f.type == VEIL_FT_ACK) {
            uint32_t n = cmid_n(f.cmid.p);
            assert_int_equal(f.cmid.p[1], who);
            assert_true(n >= 1 && n <= p->sent);
            assert_int_equal(p->ack_seq[n], 0);
            p->ack_seq[n] = f.seq;
            p->acked++;
        } else if (f.type != VEIL_FT_DELIVER && f.type != VEIL_FT_PRESENCE) {
            fail_msg("unexpected frame type 0x%02x (code %d)", f.type, (int)f.code);
        }
    }
}

static void test_kill9_durability(void **state)
{
    static const char *const flags[] = { "--rate", "1000000", "--burst", "1000000", NULL };
    th_relay r;
    tc_id ids[NPUB + 1];
    tc_room room;
    pub p[NPUB];
    room_view *v = malloc(sizeof *v), *v2 = malloc(sizeof *v2);
    uint32_t total = 0, i, n, redone = 0, dups = 0;
    int64_t end;
    veil_frame f;

    (void)state;
    assert_non_null(v);
    assert_non_null(v2);
    th_relay_start(&r, flags);
    tc_room_from_secret(&room, 77);
    for (i = 0; i <= NPUB; i++) {
        tc_id_from_seed(&ids[i], (uint8_t)(i + 1));
    }
    for (i = 0; i < NPUB; i++) {
        p[i].c = tc_connect(&r);
        p[i].sent = p[i].acked = 0;
        p[i].ack_seq = calloc(MAXMSG + 1, sizeof(uint64_t));
        assert_non_null(p[i].ack_seq);
        tc_auth(p[i].c, &ids[i]);
        tc_join(p[i].c, &room, TAG, 1, -1, NULL);
    }
    /* Publish under load with up to WINDOW unacknowledged per publisher, then kill -9 mid-flight. */
    end = th_now_ms() + 5000;
    while (total < 3000 && th_now_ms() < end) {
        for (i = 0; i < NPUB; i++) {
            while (p[i].sent - p[i].acked < WINDOW && p[i].sent < MAXMSG) {
                publish_n(&p[i], i, &room, ++p[i].sent);
            }
        }
        tc_service(1);
        total = 0;
        for (i = 0; i < NPUB; i++) {
            drain(&p[i], i);
            total += p[i].acked;
        }
    }
    assert_true(total >= 300);
    assert_true(WIFSIGNALED(th_relay_signal(&r, SIGKILL)));
    for (i = 0; i < NPUB; i++) {
        tc_wait_closed(p[i].c, 5000);
        drain(&p[i], i);
        tc_free(p[i].c);
    }

    /* Restart on the same store: every ACKed envelope is there, under its seq. */
    th_relay_restart(&r);
    collect(&r, &ids[NPUB], &room, v);
    total = 0;
    for (i = 0; i < NPUB; i++) {
        for (n = 1; n <= p[i].sent; n++) {
            if (p[i].ack_seq[n] != 0) {
                assert_int_equal(v->seq_of[i][n], p[i].ack_seq[n]);
                total++;
            }
        }
    }
    assert_true(v->head >= total);
    print_message("kill -9 after %u acknowledged envelopes; %llu stored\n", total, (unsigned long long)v->head);

    /* Clients retry what was not acknowledged, with the same cmid: stored ones answer dup with their seq. */
    for (i = 0; i < NPUB; i++) {
        p[i].c = tc_connect(&r);
        tc_auth(p[i].c, &ids[i]);
        tc_join(p[i].c, &room, TAG, 1, (int64_t)v->head, NULL);
        tc_expect(p[i].c, VEIL_FT_CAUGHT_UP, &f);
    }
    for (i = 0; i < NPUB; i++) {
        for (n = 1; n <= p[i].sent; n++) {
            if (p[i].ack_seq[n] != 0) {
                continue;
            }
            publish_n(&p[i], i, &room, n);
            /* Skip the deliveries of the other publishers' retries and presence. */
            do {
                assert_int_equal(tc_recv(p[i].c, &f, 5000), 1);
            } while (f.type != VEIL_FT_ACK);
            assert_int_equal(cmid_n(f.cmid.p), n);
            if (v->seq_of[i][n] != 0) {
                assert_true(f.dup);
                assert_int_equal(f.seq, v->seq_of[i][n]);
                dups++;
            } else {
                assert_false(f.dup);
                assert_true(f.seq > v->head);
            }
            redone++;
        }
    }
    print_message("retried %u unacknowledged envelopes, %u of them were already stored\n", redone, dups);
    for (i = 0; i < NPUB; i++) {
        tc_free(p[i].c);
    }
    /* And the room is still one contiguous sequence with every envelope exactly once. */
    collect(&r, &ids[NPUB], &room, v2);
    for (i = 0; i < NPUB; i++) {
        for (n = 1; n <= p[i].sent; n++) {
            assert_true(v2->seq_of[i][n] != 0);
        }
        free(p[i].ack_seq);
    }
    free(v);
    free(v2);
    th_relay_stop(&r);
}

static void test_sigterm_commits_and_closes(void **state)
{
    static const char *const flags[] = { "--rate", "1000000", "--burst", "1000000", NULL };
    th_relay r;
    tc_id id, reader;
    tc_room room;
    pub p;
    room_view *v = malloc(sizeof *v);
    veil_frame f;
    uint32_t n;
    int st, rc, saw_busy = 0;

    (void)state;
    assert_non_null(v);
    th_relay_start(&r, flags);
    tc_id_from_seed(&id, 1);
    tc_id_from_seed(&reader, 9);
    tc_room_from_secret(&room, 78);
    p.c = tc_connect(&r);
    p.sent = p.acked = 0;
    p.ack_seq = calloc(MAXMSG + 1, sizeof(uint64_t));
    assert_non_null(p.ack_seq);
    tc_auth(p.c, &id);
    tc_join(p.c, &room, TAG, 1, -1, NULL);
    for (n = 1; n <= 300; n++) {
        publish_n(&p, 0, &room, ++p.sent);
    }
    tc_service(20);
    st = th_relay_signal(&r, SIGTERM);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The client got its ACKs, then ERROR VEIL_EBUSY and close 1001. */
    for (;;) {
        rc = tc_recv(p.c, &f, 5000);
        if (rc <= 0) {
            break;
        }
        if (f.type == VEIL_FT_ACK) {
            p.ack_seq[cmid_n(f.cmid.p)] = f.seq;
            p.acked++;
            assert_int_equal(saw_busy, 0);
        } else {
            assert_int_equal(f.type, VEIL_FT_ERROR);
            assert_int_equal(f.code, VEIL_EBUSY);
            saw_busy = 1;
        }
    }
    assert_int_equal(rc, -1);
    assert_int_equal(saw_busy, 1);
    assert_int_equal(tc_wait_closed(p.c, 1000), 1001);
    tc_free(p.c);
    th_relay_restart(&r);
    collect(&r, &reader, &room, v);
    for (n = 1; n <= p.sent; n++) {
        if (p.ack_seq[n] != 0) {
            assert_int_equal(v->seq_of[0][n], p.ack_seq[n]);
        }
    }
    assert_true(v->head >= p.acked);
    print_message("SIGTERM after %u acknowledged envelopes; %llu stored\n", p.acked, (unsigned long long)v->head);
    free(p.ack_seq);
    free(v);
    th_relay_stop(&r);
}


/* The relay's file size limit (RLIMIT_FSIZE), as `ulimit -f` or a full disk would leave its writes: EFBIG. */
static void relay_fsize(const th_relay *r, rlim_t max)
{
    struct rlimit lim;

    /* The soft limit only, never above the hard one (raising that takes privilege). */
    assert_int_equal(prlimit(r->pid, RLIMIT_FSIZE, NULL, &lim), 0);
    lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || max < lim.rlim_max ? max : lim.rlim_max;
    assert_int_equal(prlimit(r->pid, RLIMIT_FSIZE, &lim, NULL), 0);
}

static void test_store_cannot_write(void **state)
{
    th_relay r;
    tc *a, *b;
    tc_id ida;
    tc_room room;
    veil_frame f;
    uint8_t cmid[16], env[100];
    uint32_t i;

    (void)state;
    th_relay_start(&r, NULL);
    tc_two_members(&r, 1, 2, 31, &a, &b, &room);
    memset(env, 0x42, sizeof env);
    memset(cmid, 0, sizeof cmid);

    cmid[15] = 1;
    tc_publish(a, 1, &room, cmid, env, sizeof env);
    tc_expect(a, VEIL_FT_ACK, &f);
    assert_int_equal(f.seq, 1);
    tc_expect(b, VEIL_FT_DELIVER, &f);

    /* No write beyond the file's first octet: the WAL cannot take the batch. */
    relay_fsize(&r, 1);
    for (i = 2; i <= 3; i++) {
        cmid[15] = (uint8_t)i;
        tc_publish(a, i, &room, cmid, env, sizeof env);
        tc_expect_error(a, i, VEIL_ESTORE);
    }
    tc_expect_silence(b, 200);
    relay_fsize(&r, RLIM_INFINITY);

    /* Writable again: the failed envelopes took no seq; a retry of one is new. */
    cmid[15] = 2;
    tc_publish(a, 4, &room, cmid, env, sizeof env);
    tc_expect(a, VEIL_FT_ACK, &f);
    assert_int_equal(f.seq, 2);
    assert_false(f.dup);
    tc_expect(b, VEIL_FT_DELIVER, &f);
    assert_int_equal(f.seq, 2);
    assert_memory_equal(f.cmid.p, cmid, 16);
    assert_true(th_metric(&r, "veil_store_commit_failures_total") >= 1);
    tc_free(a);
    tc_free(b);
    /* It still shuts down cleanly, and seq 2 is on file. */
    {
        int st = th_relay_signal(&r, SIGTERM);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    th_relay_restart(&r);
    a = tc_connect(&r);
    tc_id_from_seed(&ida, 1);
    tc_auth(a, &ida);
    tc_join(a, &room, (const uint8_t *)"a", 1, 0, &f);
    assert_int_equal(f.head, 2);
    tc_free(a);
    th_relay_stop(&r);
}

/* A database left by a relay of schema version 1 is migrated in place (to 4) and keeps serving its envelopes. */
static void test_schema_migration_from_v1(void **state)
{
    static const char *const v1 =
        "CREATE TABLE rooms (id BLOB PRIMARY KEY, head INTEGER NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE envelopes (room BLOB NOT NULL, seq INTEGER NOT NULL, cmid BLOB NOT NULL,"
        "  ts INTEGER NOT NULL, env BLOB NOT NULL);"
        "CREATE UNIQUE INDEX envelopes_seq ON envelopes(room, seq);"
        "CREATE UNIQUE INDEX envelopes_cmid ON envelopes(room, cmid);"
        "CREATE INDEX envelopes_ts ON envelopes(ts);"
        "CREATE TABLE inbox (iid INTEGER PRIMARY KEY AUTOINCREMENT, owner BLOB NOT NULL, ts INTEGER NOT NULL,"
        "  env BLOB NOT NULL);"
        "CREATE INDEX inbox_owner ON inbox(owner, iid);"
        "CREATE INDEX inbox_ts ON inbox(ts);"
        "CREATE TABLE spk (ik BLOB PRIMARY KEY, base BLOB NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE opk (ik BLOB NOT NULL, id INTEGER NOT NULL, pk BLOB NOT NULL, PRIMARY KEY (ik, id)) WITHOUT ROWID;"
        "PRAGMA user_version = 1;";
    th_relay r;
    tc_id id;
    tc_room room;
    room_view *v = malloc(sizeof *v);
    sqlite3 *db;
    sqlite3_stmt *st;
    uint32_t n;
    int version = 0;

    (void)state;
    assert_non_null(v);
    tc_id_from_seed(&id, 1);
    tc_room_from_secret(&room, 79);
    /* Start and stop once to get a directory, then replace the store by a v1 one with 3 envelopes. */
    th_relay_start(&r, NULL);
    assert_int_equal(th_relay_signal(&r, SIGTERM), 0);
    unlink(r.db);
    assert_int_equal(sqlite3_open(r.db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO envelopes (room, seq, cmid, ts, env) VALUES (?, ?, ?, 0, ?)",
                                        -1, &st, NULL), SQLITE_OK);
    for (n = 1; n <= 3; n++) {
        uint8_t cmid[16], env[256];
        cmid_of(cmid, 0, n);
        memset(env, 0x33, sizeof env);
        env[0] = (uint8_t)n;
        env[255] = 0;
        sqlite3_bind_blob(st, 1, room.id, 32, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, n);
        sqlite3_bind_blob(st, 3, cmid, 16, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, env, sizeof env, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    /* No rooms row for this room: its head must come from the stored envelopes, so seq 3 is never reused. */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO rooms VALUES (x'00', 0, 0)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    th_relay_restart(&r);
    collect(&r, &id, &room, v);
    assert_int_equal(v->head, 3);
    for (n = 1; n <= 3; n++) {
        assert_int_equal(v->seq_of[0][n], n);
    }
    th_relay_signal(&r, SIGTERM);
    assert_int_equal(sqlite3_open(r.db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = 'envelopes_ts'", -1, &st,
                                        NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    /* v3: the idempotency index is ordered by cmid first. */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(name, ',') FROM pragma_index_info('envelopes_cmid')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "cmid,room");
    sqlite3_finalize(st);
    /* v4: envelopes name their room by its number in rooms; the three kept their rowids. */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), min(e.rowid), max(e.rowid) FROM envelopes e JOIN rooms r"
                                        " ON r.num = e.room WHERE typeof(e.room) = 'integer' AND r.id = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, room.id, 32, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    assert_int_equal(sqlite3_column_int(st, 2), 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(version, 4);
    /* A store from a newer relay is refused at start. */
    assert_int_equal(sqlite3_open(r.db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    {
        pid_t pid = fork();
        int st2 = 0;
        assert_true(pid >= 0);
        if (pid == 0) {
            int fd = open(r.log, O_WRONLY | O_APPEND);
            dup2(fd, 2);
            execl(th_relay_binary(), th_relay_binary(), "--port", "0", "--db", r.db, (char *)NULL);
            _exit(127);
        }
        waitpid(pid, &st2, 0);
        /* Exit status 1, with no crash (a sanitizer would report one as status 1 too, hence the log check). */
        assert_true(WIFEXITED(st2));
        assert_int_equal(WEXITSTATUS(st2), 1);
    }
    {
        FILE *lf = fopen(r.log, "r");
        static char logbuf[1 << 16];
        size_t got;
        assert_non_null(lf);
        got = fread(logbuf, 1, sizeof logbuf - 1, lf);
        fclose(lf);
        logbuf[got] = 0;
        assert_non_null(strstr(logbuf, "database from a newer relay"));
        assert_null(strstr(logbuf, "Sanitizer"));
    }
    th_relay_remove(&r);
    free(v);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        TH_TEST(test_kill9_durability),
        TH_TEST(test_sigterm_commits_and_closes),
        TH_TEST(test_schema_migration_from_v1),
        TH_TEST(test_store_cannot_write),
    };

    th_init(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
