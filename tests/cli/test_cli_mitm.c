/* SPDX-License-Identifier: ISC */
/*
 * The `veil` CLI against a misbehaving relay (SPEC.md 13.8), end to end: real
 * `veil` processes talk to a real veil-relay through veil-mitm-proxy
 * (mitm_proxy.c), a WebSocket man in the middle that decodes the relay's
 * frames and, on the test's command, drops, duplicates, reorders, replays,
 * tampers with and injects envelopes, live and on catch-up, lies about
 * presence and about a room's head, and tries to slip a member in. For every
 * case the test requires both the alert the CLI prints (--json) and that no
 * forged, tampered or replayed text is shown: not in the chat, and not in
 * `history --json` afterwards.
 * The author of an envelope is alerted too when the relay replays it, alters
 * a copy of it or forges one in the author's name (SPEC.md 13.9).
 *
 * argv: veil, veil-relay, the web directory, veil-mitm-proxy.
 */
#include "cli_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *g_proxy_bin;

/* ---- the proxy ---- */

static struct {
    pid_t pid;
    int to, from;
    char in[8192];
    size_t nin;
    char reply[512];
} g_px = {0, -1, -1, "", 0, ""};

static void px_stop(void)
{
    if (g_px.pid > 0) {
        kill(g_px.pid, SIGKILL);
        waitpid(g_px.pid, NULL, 0);
    }
    if (g_px.to >= 0) {
        close(g_px.to);
    }
    if (g_px.from >= 0) {
        close(g_px.from);
    }
    g_px.pid = 0;
    g_px.to = g_px.from = -1;
    g_px.nin = 0;
}

/* One line from the proxy, waiting up to ms. */
static const char *px_read(int ms)
{
    for (;;) {
        char *nl = memchr(g_px.in, '\n', g_px.nin);
        struct pollfd pf = {g_px.from, POLLIN, 0};
        ssize_t r;
        if (nl != NULL) {
            size_t len = (size_t)(nl - g_px.in);
            snprintf(g_px.reply, sizeof g_px.reply, "%.*s", (int)len, g_px.in);
            memmove(g_px.in, nl + 1, g_px.nin - len - 1);
            g_px.nin -= len + 1;
            return g_px.reply;
        }
        if (poll(&pf, 1, ms) <= 0) {
            fail_msg("veil-mitm-proxy did not answer within %d ms (log: %s/proxy.log)", ms, ch_dir());
        }
        r = read(g_px.from, g_px.in + g_px.nin, sizeof g_px.in - g_px.nin - 1);
        if (r <= 0) {
            fail_msg("veil-mitm-proxy exited (log: %s/proxy.log)", ch_dir());
        }
        g_px.nin += (size_t)r;
    }
}

/* Starts the proxy in front of relay r; rp becomes r as the clients see it (the proxy's port). */
static void px_start(const ch_relay *r, ch_relay *rp)
{
    int to[2], from[2];
    char port[16], log[700];
    const char *line;

    assert_int_equal(pipe2(to, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from, O_CLOEXEC), 0);
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/proxy.log", ch_dir());
    g_px.pid = fork();
    assert_true(g_px.pid >= 0);
    if (g_px.pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(to[0], 0);
        dup2(from[1], 1);
        if (fd >= 0) {
            dup2(fd, 2);
        }
        setsid();
        execl(g_proxy_bin, g_proxy_bin, port, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    g_px.to = to[1];
    g_px.from = from[0];
    g_px.nin = 0;
    line = px_read(15000);
    *rp = *r;
    rp->pid = 0; /* not a relay of ours to stop */
    assert_int_equal(sscanf(line, "port %d", &rp->port), 1);
}

/* A command; its answer must begin with "ok". Returns what follows "ok" (a number for most). */
static const char *px(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *px(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    int n;
    const char *rep;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof cmd - 1, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd - 1);
    if (getenv("CH_VERBOSE") != NULL) {
        fprintf(stderr, "[proxy in] %s\n", cmd);
    }
    cmd[n++] = '\n';
    assert_int_equal(write(g_px.to, cmd, (size_t)n), n);
    rep = px_read(45000);
    if (getenv("CH_VERBOSE") != NULL) {
        fprintf(stderr, "[proxy out] %s\n", rep);
    }
    if (strncmp(rep, "ok", 2) != 0) {
        cmd[n - 1] = '\0';
        fail_msg("veil-mitm-proxy: `%s` answered `%s`", cmd, rep);
    }
    return rep[2] == ' ' ? rep + 3 : rep + 2;
}

static long px_num(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long px_num(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return atol(px("%s", cmd));
}

static int mitm_setup(void **state)
{
    return ch_setup(state);
}

static int mitm_teardown(void **state)
{
    px_stop();
    return ch_teardown(state);
}

#define MITM_TEST(fn) cmocka_unit_test_setup_teardown(fn, mitm_setup, mitm_teardown)

/* ---- users, rooms ---- */

typedef struct who {
    ch_user u;
    char ik[65];
    char code[256]; /* contact code */
} who;

static void init_user(const ch_relay *r, who *w, const char *name)
{
    ch_proc *p;
    cJSON *o;

    ch_user_init(&w->u, name);
    p = CH_OK(r, &w->u, "init", "--name", name, "--json");
    o = CH_EXPECT(p, "type", "identity");
    snprintf(w->ik, sizeof w->ik, "%s", ch_str(o, "ik"));
    snprintf(w->code, sizeof w->code, "%s", ch_str(o, "code"));
    assert_true(strncmp(w->code, "veil:", 5) == 0);
    assert_int_equal(strlen(w->ik), 64);
    ch_free(p);
}

/* a adds b's contact code (a direct room follows). */
static void add_contact(const ch_relay *r, const who *a, const who *b)
{
    ch_proc *p = CH_OK(r, &a->u, "add", b->code, "--json");

    CH_EXPECT(p, "type", "contact", "name", b->u.name);
    ch_free(p);
}

/* The relay's id of a room of u (hex), by the name u knows it by. */
static void room_id(const ch_relay *r, const who *w, const char *name, char out[65])
{
    ch_proc *p = CH_OK(r, &w->u, "rooms", "--json", "--offline");
    cJSON *o = CH_EXPECT(p, "type", "room", "room_name", name);

    snprintf(out, 65, "%s", ch_str(o, "room_id"));
    assert_int_equal(strlen(out), 64);
    ch_free(p);
}

/* A line typed in a chat, and the relay's ACK of it; returns its sequence number. */
static long say(ch_proc *p, const char *text)
{
    cJSON *o;
    char mid[40];

    ch_line(p, text);
    o = CH_EXPECT(p, "type", "message", "own", "true", "text", text);
    snprintf(mid, sizeof mid, "%s", ch_str(o, "mid"));
    o = CH_EXPECT(p, "type", "sent", "mid", mid);
    return (long)ch_num(o, "seq");
}

/* How many JSON lines of p are alerts named `name` ("" for any). */
static size_t alerts(ch_proc *p, const char *name)
{
    return name[0] ? CH_COUNT(p, "type", "alert", "alert", name) : CH_COUNT(p, "type", "alert");
}

/* How many messages of p carry `text` (any room). */
static size_t shown(ch_proc *p, const char *text)
{
    return CH_COUNT(p, "type", "message", "text", text);
}

/* Lets p print what it still has to say. */
static void settle(ch_proc *p, int ms)
{
    ch_pump(p, ms);
}

static void history(const ch_relay *r, const who *w, const char *room, char *out, size_t cap)
{
    ch_proc *p = CH_OK(r, &w->u, "history", room, "--json", "--offline", "--limit", "500");

    ch_texts(p, out, cap);
    ch_free(p);
}

/* The alert `name` about sequence number seq (and, n >= 0, with that n), waiting for it. */
static void alert_at(ch_proc *p, const char *name, long seq, long n)
{
    char sq[32], nn[32];

    snprintf(sq, sizeof sq, "%ld", seq);
    snprintf(nn, sizeof nn, "%ld", n);
    if (n >= 0) {
        CH_EXPECT(p, "type", "alert", "alert", name, "seq", sq, "n", nn);
    } else {
        CH_EXPECT(p, "type", "alert", "alert", name, "seq", sq);
    }
}

/* How many alerts p printed about sequence number seq. */
static size_t alerts_at(ch_proc *p, long seq)
{
    char sq[32];

    snprintf(sq, sizeof sq, "%ld", seq);
    return CH_COUNT(p, "type", "alert", "seq", sq);
}

/* A random presence tag (hex), such as no member has. */
static void random_tag(char out[33])
{
    unsigned char rnd[16];
    size_t i;

    assert_int_equal(getrandom(rnd, sizeof rnd, 0), (ssize_t)sizeof rnd);
    for (i = 0; i < sizeof rnd; i++) {
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    }
}

/* ---- tests ---- */

/*
 * A group of three. The relay misbehaves on bob's catch-up, then live while
 * alice and bob chat, then stores envelopes of its own making that every
 * member gets; carol, whose connection it leaves alone, reads everything
 * genuine once.
 */
static void test_group_room(void **state)
{
    ch_relay r, rp;
    who alice, bob, carol;
    ch_proc *a, *b, *p;
    char team[65], got[2048], tag[33];
    long s, c, e1, e2, e3, e4, forged_seq, replay_seq, copy_seq, junk_seq;

    (void)state;
    ch_relay_start(&r);
    px_start(&r, &rp);
    init_user(&rp, &alice, "alice");
    init_user(&rp, &bob, "bob");
    init_user(&rp, &carol, "carol");
    add_contact(&rp, &alice, &bob);
    add_contact(&rp, &alice, &carol);
    /* The invitation alice posts to carol's inbox, kept by the relay for later (case 9). */
    px("pubcap %s 1 to %s", alice.ik, carol.ik);
    p = CH_OK(&rp, &alice.u, "group", "create", "team", "bob", "carol", "--json");
    CH_EXPECT(p, "type", "room", "kind", "group", "room_name", "team", "members", "3");
    ch_free(p);
    px("wait 1");
    p = CH_OK(&rp, &bob.u, "accept", "team", "--json");
    CH_EXPECT(p, "type", "room", "room_name", "team", "state", "active");
    ch_free(p);
    p = CH_OK(&rp, &carol.u, "accept", "team", "--json");
    CH_EXPECT(p, "type", "room", "room_name", "team", "state", "active");
    ch_free(p);
    room_id(&rp, &alice, "team", team);

    a = ch_chat(&rp, &alice.u, "team");

    /* 1. Catch-up (bob offline). Of c1..c4 the relay replays c1 twice, withholds c2 and swaps c3 and
     * c4 between their sequence numbers. Its CAUGHT_UP waits ("hold") until the test re-sent them. */
    s = px_num("capture %s %s 4 steal hold by %s", bob.ik, team, alice.ik);
    say(a, "c1");
    say(a, "c2");
    say(a, "c3");
    say(a, "c4");
    p = ch_start(&rp, &bob.u, NULL, (const char *const[]){"sync", "--json", NULL});
    px("wait %ld", s + 4);
    e1 = px_num("emit %ld", s);                 /* c1 */
    px("emit %ld", s);                          /* c1 again, the same seq */
    e3 = px_num("emit %ld from %ld", s + 2, s + 3); /* c3's seq carries c4 */
    e4 = px_num("emit %ld from %ld", s + 3, s + 2); /* c4's seq carries c3 */
    px("release %s", bob.ik);
    assert_int_equal(ch_wait(p, CH_WAIT_MS), 0);
    alert_at(p, "duplicate", e1, -1);
    alert_at(p, "seq_gap", e3, 1);  /* c2's number */
    alert_at(p, "dropped", e3, 2);  /* alice's counter jumped over c2 and c3 */
    alert_at(p, "reordered", e4, -1);
    assert_int_equal(alerts(p, ""), 4);
    CH_EXPECT(p, "type", "message", "text", "c3", "late", "true");
    assert_int_equal(shown(p, "c1"), 1);
    assert_int_equal(shown(p, "c2"), 0);
    ch_free(p);
    history(&rp, &bob, "team", got, sizeof got);
    assert_string_equal(got, "c1|c4|c3");

    /* 2. A well-formed envelope of the relay's own making: a group message for the group's id and epoch
     * under a sending chain of its own ("the relay's own member"). No member handed that chain out:
     * everyone holds it, then drops it as UNKNOWN_SENDER (30 s; checked at the end). */
    forged_seq = px_num("inject %s %s forge %ld forged by the relay", alice.ik, team, s);

    b = ch_chat(&rp, &bob.u, "team");
    CH_EXPECT(a, "type", "presence", "from", "bob", "on", "true");

    /* 3. Live drop: d2 withheld. */
    s = px_num("capture %s %s 3 steal by %s", bob.ik, team, alice.ik);
    say(a, "d1");
    say(a, "d2");
    say(a, "d3");
    px("wait %ld", s + 3);
    px("emit %ld", s);
    e3 = px_num("emit %ld", s + 2);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "d1");
    alert_at(b, "seq_gap", e3, 1);
    alert_at(b, "dropped", e3, 1);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "d3");

    /* 4. Live duplicate (the same seq again), and a seq that goes backwards (d1's): shown once. */
    c = px_num("capture %s %s 1 steal by %s", bob.ik, team, alice.ik);
    say(a, "u1");
    px("wait %ld", c + 1);
    e1 = px_num("emit %ld", c);
    px("emit %ld", c);
    e2 = px_num("emit %ld", s);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "u1");
    alert_at(b, "duplicate", e1, -1);
    alert_at(b, "duplicate", e2, -1);

    /* 5. Live reorder: r1 and r2 swapped between their sequence numbers. r2 first looks like a drop;
     * r1 then arrives late: both shown, r1 flagged late. */
    c = px_num("capture %s %s 2 steal by %s", bob.ik, team, alice.ik);
    say(a, "r1");
    say(a, "r2");
    px("wait %ld", c + 2);
    e1 = px_num("emit %ld from %ld", c, c + 1);
    e2 = px_num("emit %ld from %ld", c + 1, c);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "r2", "late", "false");
    alert_at(b, "dropped", e1, 1);
    alert_at(b, "reordered", e2, -1);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "r1", "late", "true");

    /* 6. The cmid of a DELIVER changed: the content is genuine (shown once), the relay's field is not. */
    c = px_num("capture %s %s 1 steal by %s", bob.ik, team, alice.ik);
    say(a, "k1");
    px("wait %ld", c + 1);
    e1 = px_num("emit %ld cmid rand", c);
    alert_at(b, "cmid", e1, -1);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "k1");

    /* 7. Tampering in flight: one octet of t1's ciphertext inverted. Rejected and not shown; in effect
     * the relay withheld t1, which alice's next message reveals. */
    c = px_num("capture %s %s 1 steal by %s", bob.ik, team, alice.ik);
    say(a, "t1 genuine");
    px("wait %ld", c + 1);
    e1 = px_num("emit %ld flip 80", c);
    alert_at(b, "forged", e1, -1);
    e2 = say(a, "after t1");
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "after t1");
    alert_at(b, "dropped", e2, 1);

    /* 8. Stored by the relay (every member gets them, now and on catch-up): d1 replayed under a new
     * sequence number and cmid, a copy of d3 with its signature altered, random octets. */
    replay_seq = px_num("inject %s %s slot %ld", alice.ik, team, s);
    alert_at(b, "replay", replay_seq, -1);
    copy_seq = px_num("inject %s %s slot %ld flip -1", alice.ik, team, s + 2);
    alert_at(b, "forged", copy_seq, -1);
    junk_seq = px_num("inject %s %s random 300", alice.ik, team);
    alert_at(b, "malformed", junk_seq, -1);
    alert_at(a, "malformed", junk_seq, -1);

    /* 9. Adding a member. The relay announces a presence tag that is no member's: shown as unknown,
     * and the member list does not change. */
    random_tag(tag);
    px("presence %s %s %s on", bob.ik, team, tag);
    CH_EXPECT(b, "type", "presence", "unknown", "true", "on", "true");
    ch_line(b, "/members");
    CH_EXPECT(b, "type", "member", "member", "me");
    CH_EXPECT(b, "type", "member", "member", "alice");
    CH_EXPECT(b, "type", "member", "member", "carol");
    /* It hands bob the invitation to this group that alice made for carol, as a new entry of his
     * inbox: its X3DH header names a one-time prekey bob never had (SPEC.md 13.5: REPLAY). */
    e1 = px_num("inbox %s %s slot 0", alice.ik, bob.ik);
    alert_at(b, "replay", e1, -1); /* an inbox alert's seq is the entry's iid */
    /* And its own member's message (2.) ends as UNKNOWN_SENDER at alice and bob alike. */
    {
        char sq[32];
        snprintf(sq, sizeof sq, "%ld", forged_seq);
        ch_expect_json(a, 45000, (const char *const[]){"type", "alert", "alert", "unknown_sender", "seq", sq, NULL});
        ch_expect_json(b, 45000, (const char *const[]){"type", "alert", "alert", "unknown_sender", "seq", sq, NULL});
    }

    settle(b, 500);
    settle(a, 100);
    assert_int_equal(CH_COUNT(b, "type", "member"), 3);
    assert_int_equal(shown(b, "d2"), 0);
    assert_int_equal(shown(b, "t1 genuine"), 0);
    assert_int_equal(shown(b, "forged by the relay"), 0);
    assert_int_equal(shown(a, "forged by the relay"), 0);
    assert_int_equal(shown(b, "d1"), 1);
    assert_int_equal(shown(b, "u1"), 1);
    assert_int_equal(shown(b, "k1"), 1);
    /* Nothing else was alerted: each case once, and nothing spurious. */
    assert_int_equal(alerts(b, ""), 14);
    /* The author is told too (SPEC.md 13.9): d1 again carries her current chain's signature, a replay;
     * the altered copy of d3 does not, a forgery. Exactly these and the two alerts above. */
    alert_at(a, "replay", replay_seq, -1);
    alert_at(a, "forged", copy_seq, -1);
    assert_int_equal(alerts_at(a, replay_seq), 1);
    assert_int_equal(alerts_at(a, copy_seq), 1);
    assert_int_equal(alerts(a, ""), 4);
    ch_chat_quit(b);
    ch_chat_quit(a);

    history(&rp, &bob, "team", got, sizeof got);
    assert_string_equal(got, "c1|c4|c3|d1|d3|u1|r2|r1|k1|after t1");
    history(&rp, &alice, "team", got, sizeof got);
    assert_string_equal(got, "c1|c2|c3|c4|d1|d2|d3|u1|r1|r2|k1|t1 genuine|after t1");
    /* Carol reads everything genuine once, and what the relay stored of its own is refused. */
    p = CH_OK(&rp, &carol.u, "sync", "--json");
    alert_at(p, "replay", replay_seq, -1);
    alert_at(p, "forged", copy_seq, -1);
    alert_at(p, "malformed", junk_seq, -1);
    assert_int_equal(shown(p, "forged by the relay"), 0);
    ch_free(p);
    history(&rp, &carol, "team", got, sizeof got);
    assert_string_equal(got, "c1|c2|c3|c4|d1|d2|d3|u1|r1|r2|k1|t1 genuine|after t1");
    ch_relay_stop(&r);
}

/*
 * A direct room of alice and bob (pairwise Double Ratchet envelopes), and a
 * stranger, mallory, whose envelopes the relay tries to pass off as alice's.
 */
static void test_direct_room(void **state)
{
    ch_relay r, rp;
    who alice, bob, mallory;
    ch_proc *a, *b, *p;
    char ab[65], mb[65], got[2048], tag[33];
    long c, e1, e2, replay_seq, forged_seq, junk_seq, stranger_seq, mpub, minv;

    (void)state;
    ch_relay_start(&r);
    px_start(&r, &rp);
    init_user(&rp, &alice, "alice");
    init_user(&rp, &bob, "bob");
    init_user(&rp, &mallory, "mallory");
    add_contact(&rp, &alice, &bob);
    p = CH_OK(&rp, &alice.u, "send", "@bob", "hello bob", "--json");
    CH_EXPECT(p, "type", "sent");
    ch_free(p);
    p = CH_OK(&rp, &bob.u, "send", "@alice", "hi alice", "--json");
    CH_EXPECT(p, "type", "sent");
    ch_free(p);
    room_id(&rp, &alice, "@bob", ab);

    a = ch_chat(&rp, &alice.u, "@bob");
    b = ch_chat(&rp, &bob.u, "@alice");
    CH_EXPECT(a, "type", "message", "from", "bob", "text", "hi alice");
    CH_EXPECT(a, "type", "presence", "from", "bob", "on", "true");
    /* Alice's chat marks "hi alice" read: that receipt is an envelope of hers too, and must be through
     * before the proxy starts taking her next one. */
    CH_EXPECT(b, "type", "receipt", "kind", "read", "from", "alice");

    /* 1. Tampering in flight: the last octet of p1 (its body's tag) inverted. Rejected, not shown; the
     * next message shows p1 missing. p2 is kept for the replay. */
    c = px_num("capture %s %s 1 steal by %s", bob.ik, ab, alice.ik);
    say(a, "p1 genuine");
    px("wait %ld", c + 1);
    e1 = px_num("emit %ld flip -1", c);
    alert_at(b, "forged", e1, -1);
    px("capture %s %s 1 copy by %s", bob.ik, ab, alice.ik);
    e2 = say(a, "p2");
    px("wait %ld", c + 2);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "p2");
    alert_at(b, "dropped", e2, 1);

    /* 2. Stored by the relay: p2 replayed under a new sequence number, a well-formed pairwise envelope
     * that names alice as its sender with contents of the relay's making, random octets. */
    replay_seq = px_num("inject %s %s slot %ld", alice.ik, ab, c + 1);
    alert_at(b, "replay", replay_seq, -1);
    forged_seq = px_num("inject %s %s pairwise %s 300", alice.ik, ab, alice.ik);
    alert_at(b, "forged", forged_seq, -1);
    junk_seq = px_num("inject %s %s random 200", alice.ik, ab);
    alert_at(b, "malformed", junk_seq, -1);
    alert_at(a, "malformed", junk_seq, -1);

    /* 3. A stranger. mallory writes to bob (anyone may: a new contact and room for bob, legitimately).
     * The relay then puts her envelope into alice and bob's room, and posts her first-contact message
     * to bob's inbox a second time. */
    minv = px_num("pubcap %s 1 to %s", mallory.ik, bob.ik); /* her first contact, in bob's inbox */
    add_contact(&rp, &mallory, &bob);
    px("wait %ld", minv + 1);
    CH_EXPECT(b, "type", "new_room", "room_name", "@mallory", "direct", "true");
    room_id(&rp, &mallory, "@bob", mb);
    mpub = px_num("pubcap %s 1 room %s", mallory.ik, mb); /* her message in their direct room */
    p = CH_OK(&rp, &mallory.u, "send", "@bob", "hi bob, mallory here", "--json");
    CH_EXPECT(p, "type", "sent");
    ch_free(p);
    px("wait %ld", mpub + 1);
    stranger_seq = px_num("inject %s %s slot %ld", alice.ik, ab, mpub);
    alert_at(b, "not_member", stranger_seq, -1);
    alert_at(a, "not_member", stranger_seq, -1);
    e1 = px_num("inbox %s %s slot %ld", alice.ik, bob.ik, minv);
    alert_at(b, "replay", e1, -1);

    /* 4. Presence of a tag that is neither alice's nor bob's. */
    random_tag(tag);
    px("presence %s %s %s on", bob.ik, ab, tag);
    CH_EXPECT(b, "type", "presence", "unknown", "true", "on", "true");

    settle(b, 300);
    assert_int_equal(shown(b, "p1 genuine"), 0);
    assert_int_equal(shown(b, "p2"), 1);
    assert_int_equal(shown(b, "hi bob, mallory here"), 0); /* another room: logged there, not shown here */
    assert_int_equal(alerts(b, ""), 7);
    /* The author is told too (SPEC.md 13.9): a pairwise envelope in her name that she did not send at
     * that place, replayed or forged, is one she cannot vouch for. */
    alert_at(a, "forged", replay_seq, -1);
    alert_at(a, "forged", forged_seq, -1);
    assert_int_equal(alerts_at(a, replay_seq), 1);
    assert_int_equal(alerts_at(a, forged_seq), 1);
    assert_int_equal(alerts(a, ""), 4);
    ch_chat_quit(b);
    ch_chat_quit(a);

    /* 5. A rollback: the relay answers bob's JOIN with a head below what bob processed. */
    px("rollback %s %s 3", bob.ik, ab);
    p = CH_OK(&rp, &bob.u, "sync", "--json");
    CH_EXPECT(p, "type", "alert", "alert", "rollback", "room_name", "@alice", "n", "3");
    ch_free(p);

    history(&rp, &bob, "@alice", got, sizeof got);
    assert_string_equal(got, "hello bob|hi alice|p2");
    history(&rp, &bob, "@mallory", got, sizeof got);
    assert_string_equal(got, "hi bob, mallory here");
    history(&rp, &alice, "@bob", got, sizeof got);
    assert_string_equal(got, "hello bob|hi alice|p1 genuine|p2");
    ch_relay_stop(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        MITM_TEST(test_group_room),
        MITM_TEST(test_direct_room),
    };

    if (argc < 5) {
        fprintf(stderr, "usage: %s VEIL VEIL_RELAY WEB_DIR VEIL_MITM_PROXY\n", argv[0]);
        return 2;
    }
    g_proxy_bin = argv[4];
    ch_init(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
