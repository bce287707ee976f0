/* SPDX-License-Identifier: ISC */
/*
 * The `veil` CLI end to end: real relays, real CLI processes (cli_harness.h).
 * Scripts drive it as a script would: with --json, one object per line.
 */
#include "cli_harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Exit codes (cli/cli.h; `veil --help` lists them). */
enum { OK = 0, EUSAGE = 2, ENOIDENT = 3, EPASS = 4, ESTATE = 5, EBUSY = 6, EUNREACH = 7, EUNKNOWN = 9 };

/* ---- helpers ---- */

static void init_user(const ch_relay *r, ch_user *u, const char *name)
{
    ch_proc *p;

    ch_user_init(u, name);
    p = CH_OK(r, u, "init", "--name", name, "--json");
    CH_EXPECT(p, "type", "identity");
    ch_free(p);
}

/* a adds b's contact code (a direct room follows). */
static void add_contact(const ch_relay *r, const ch_user *a, const ch_user *b)
{
    ch_proc *p = CH_OK(r, b, "invite", "--json");
    char code[256];
    cJSON *o = CH_EXPECT(p, "type", "code");

    snprintf(code, sizeof code, "%s", ch_str(o, "code"));
    ch_free(p);
    p = CH_OK(r, a, "add", code, "--json");
    CH_EXPECT(p, "type", "contact", "name", b->name);
    CH_EXPECT(p, "type", "room", "kind", "direct");
    ch_free(p);
}

static void send_ok(const ch_relay *r, const ch_user *u, const char *room, const char *text)
{
    ch_proc *p = CH_OK(r, u, "send", room, text, "--json");

    CH_EXPECT(p, "type", "sent");
    ch_free(p);
}

/* alice, bob and carol in the group "team" that alice created; bob and carol accepted. */
static void team_of_three(const ch_relay *r, ch_user *alice, ch_user *bob, ch_user *carol)
{
    ch_proc *p;

    init_user(r, alice, "alice");
    init_user(r, bob, "bob");
    init_user(r, carol, "carol");
    add_contact(r, alice, bob);
    add_contact(r, alice, carol);
    p = CH_OK(r, alice, "group", "create", "team", "bob", "carol", "--json");
    CH_EXPECT(p, "type", "room", "kind", "group", "room_name", "team", "members", "3", "admin", "true");
    ch_free(p);
    /* The invitation comes through the inbox; `accept` syncs when it does not know the room yet. */
    p = CH_OK(r, bob, "accept", "team", "--json");
    CH_EXPECT(p, "type", "room", "room_name", "team", "state", "active");
    ch_free(p);
    p = CH_OK(r, carol, "accept", "team", "--json");
    CH_EXPECT(p, "type", "room", "room_name", "team", "state", "active");
    ch_free(p);
}

/* ---- tests ---- */

static void test_usage_and_local_errors(void **state)
{
    ch_relay r;
    ch_user alice, nobody;
    ch_proc *p, *c;

    (void)state;
    ch_relay_start(&r);
    ch_user_init(&nobody, "nobody");

    p = CH_OK(&r, &nobody, "--help");
    ch_expect_text(p, 0, "Exit codes:");
    ch_expect_text(p, 0, "relay unreachable");
    ch_expect_text(p, 0, "wrong passphrase");
    ch_free(p);
    ch_free(CH_FAILS(EUSAGE, &r, &nobody, "frobnicate"));
    ch_free(CH_FAILS(EUSAGE, &r, &nobody, "whoami", "--bogus"));
    p = CH_FAILS(ENOIDENT, &r, &nobody, "whoami");
    ch_expect_text(p, 0, "veil init");
    ch_free(p);

    init_user(&r, &alice, "alice");
    p = CH_FAILS(ENOIDENT, &r, &alice, "init");
    ch_expect_text(p, 0, "already holds an identity");
    ch_free(p);
    ch_free(CH_FAILS(EUSAGE, &r, &alice, "whoami", "--relay", "http://example.org"));
    p = CH_FAILS(EUSAGE, &r, &alice, "add", "veil:not-a-code", "--json");
    CH_EXPECT(p, "type", "error", "exit", "2");
    ch_free(p);
    p = CH_OK(&r, &alice, "invite");
    {
        char code[256];
        snprintf(code, sizeof code, "%s", ch_stdout(p));
        code[strcspn(code, "\n")] = '\0';
        ch_free(p);
        p = CH_FAILS(EUSAGE, &r, &alice, "add", code);
        ch_expect_text(p, 0, "your own contact code");
        ch_free(p);
    }
    p = CH_FAILS(EUNKNOWN, &r, &alice, "send", "nowhere", "hello");
    ch_expect_text(p, 0, "unknown room");
    ch_free(p);
    ch_free(CH_FAILS(EUNKNOWN, &r, &alice, "verify", "nobody"));

    /* One process per data directory at a time. */
    ch_free(CH_OK(&r, &alice, "group", "create", "solo"));
    c = ch_chat(&r, &alice, "solo");
    p = CH_FAILS(EBUSY, &r, &alice, "whoami");
    ch_expect_text(p, 0, "in use by another veil process");
    ch_free(p);
    ch_chat_quit(c);
    ch_relay_stop(&r);
}

static void test_first_contact(void **state)
{
    ch_relay r;
    ch_user alice, bob;
    ch_proc *p;
    cJSON *o, *hello;
    char sn_a[80], sn_b[80], mid[40];

    (void)state;
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    init_user(&r, &bob, "bob");
    add_contact(&r, &alice, &bob);
    send_ok(&r, &alice, "@bob", "hello bob");

    /* Bob learns of alice through his inbox: a new contact and a direct room. */
    p = CH_OK(&r, &bob, "rooms", "--json");
    CH_EXPECT(p, "type", "contact_update", "from", "alice", "new", "true");
    CH_EXPECT(p, "type", "room", "kind", "direct", "room_name", "@alice", "unread", "1");
    ch_free(p);
    p = CH_OK(&r, &bob, "history", "@alice", "--json");
    hello = CH_EXPECT(p, "type", "message", "text", "hello bob", "from", "alice", "own", "false", "kind", "text");
    snprintf(mid, sizeof mid, "%s", ch_str(hello, "mid"));
    ch_free(p);
    p = CH_OK(&r, &bob, "send", "alice", "hi alice", "--reply", mid, "--json");
    CH_EXPECT(p, "type", "sent");
    ch_free(p);

    /* Alice sees the reply, and her message read by bob. */
    p = CH_OK(&r, &alice, "history", "bob", "--json");
    CH_EXPECT(p, "type", "message", "text", "hello bob", "own", "true", "status", "read", "read", "1");
    o = CH_EXPECT(p, "type", "message", "text", "hi alice", "kind", "reply", "reply_to", mid, "from", "bob");
    assert_true(ch_num(o, "reply_to_num") == 1);
    ch_free(p);

    /* Safety numbers agree; verification is recorded. */
    p = CH_OK(&r, &alice, "verify", "bob", "--json");
    o = CH_EXPECT(p, "type", "safety_number", "verified", "false");
    snprintf(sn_a, sizeof sn_a, "%s", ch_str(o, "safety_number"));
    ch_free(p);
    p = CH_OK(&r, &bob, "verify", "alice", "--json");
    o = CH_EXPECT(p, "type", "safety_number");
    snprintf(sn_b, sizeof sn_b, "%s", ch_str(o, "safety_number"));
    ch_free(p);
    assert_int_equal(strlen(sn_a), 60);
    assert_string_equal(sn_a, sn_b);
    ch_free(CH_OK(&r, &alice, "verify", "bob", "--yes"));
    p = CH_OK(&r, &alice, "contacts", "--json");
    CH_EXPECT(p, "type", "contact", "name", "bob", "verified", "true", "session", "true");
    ch_free(p);
    ch_relay_stop(&r);
}

/* A contact added by identity key (64 hex digits) rather than by code; the name is the adder's choice. */
static void test_add_by_key(void **state)
{
    ch_relay r;
    ch_user alice, dave;
    ch_proc *p;
    cJSON *o;
    char ik[80];

    (void)state;
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    init_user(&r, &dave, "dave");
    p = CH_OK(&r, &alice, "whoami", "--json", "--offline");
    o = CH_EXPECT(p, "type", "identity");
    snprintf(ik, sizeof ik, "%s", ch_str(o, "ik"));
    ch_free(p);
    assert_int_equal(strlen(ik), 64);
    ch_free(CH_FAILS(EUSAGE, &r, &dave, "add", "00112233", "--json"));
    p = CH_OK(&r, &dave, "add", ik, "--name", "al", "--json");
    CH_EXPECT(p, "type", "contact", "name", "al");
    CH_EXPECT(p, "type", "room", "kind", "direct");
    ch_free(p);
    send_ok(&r, &dave, "al", "added by key");
    p = CH_OK(&r, &alice, "history", "@dave", "--json");
    CH_EXPECT(p, "type", "message", "text", "added by key", "from", "dave");
    ch_free(p);
    ch_relay_stop(&r);
}

static void test_group_of_three(void **state)
{
    ch_relay r;
    ch_user alice, bob, carol;
    ch_proc *a, *b, *c, *p;
    cJSON *o;
    char hello[40], reply[40];

    (void)state;
    ch_relay_start(&r);
    team_of_three(&r, &alice, &bob, &carol);

    a = ch_chat(&r, &alice, "team");
    b = ch_chat(&r, &bob, "team");
    c = ch_chat(&r, &carol, "team");
    /* Presence: each sees the others arrive (mapped from the relay's opaque tags to members). */
    CH_EXPECT(a, "type", "presence", "from", "bob", "on", "true");
    CH_EXPECT(a, "type", "presence", "from", "carol", "on", "true");
    CH_EXPECT(b, "type", "presence", "from", "carol", "on", "true");

    /* A message, with its receipts: delivered, then read (the chats show it). */
    ch_line(a, "hello team");
    o = CH_EXPECT(a, "type", "message", "own", "true", "text", "hello team", "status", "pending");
    snprintf(hello, sizeof hello, "%s", ch_str(o, "mid"));
    CH_EXPECT(a, "type", "sent", "mid", hello);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "hello team", "mid", hello);
    CH_EXPECT(c, "type", "message", "from", "alice", "text", "hello team", "mid", hello);
    CH_EXPECT(a, "type", "receipt", "kind", "delivered", "from", "bob", "mid", hello);
    CH_EXPECT(a, "type", "receipt", "kind", "delivered", "from", "carol", "mid", hello);
    CH_EXPECT(a, "type", "receipt", "kind", "read", "from", "bob", "mid", hello);
    CH_EXPECT(a, "type", "receipt", "kind", "read", "from", "carol", "mid", hello);

    /* Typing: part of a line is keystrokes. */
    ch_write(c, "typ");
    CH_EXPECT(a, "type", "typing", "from", "carol", "on", "true");
    CH_EXPECT(b, "type", "typing", "from", "carol", "on", "true");
    ch_write(c, "ing done\n");
    CH_EXPECT(a, "type", "message", "from", "carol", "text", "typing done");
    CH_EXPECT(b, "type", "message", "from", "carol", "text", "typing done");

    /* A reply. */
    {
        char line[128];
        snprintf(line, sizeof line, "/reply %s yes, hello", hello);
        ch_line(b, line);
    }
    o = CH_EXPECT(b, "type", "message", "own", "true", "kind", "reply", "reply_to", hello);
    snprintf(reply, sizeof reply, "%s", ch_str(o, "mid"));
    CH_EXPECT(a, "type", "message", "from", "bob", "kind", "reply", "reply_to", hello, "text", "yes, hello");
    CH_EXPECT(c, "type", "message", "from", "bob", "kind", "reply", "reply_to", hello, "text", "yes, hello");

    /* An edit by its author. */
    {
        char line[128];
        snprintf(line, sizeof line, "/edit %s hello team (edited)", hello);
        ch_line(a, line);
    }
    CH_EXPECT(a, "type", "ok", "command", "edit", "mid", hello);
    CH_EXPECT(b, "type", "edit", "from", "alice", "mid", hello, "text", "hello team (edited)");
    CH_EXPECT(c, "type", "edit", "from", "alice", "mid", hello, "text", "hello team (edited)");

    /* Someone else's message cannot be edited. */
    {
        char line[128];
        snprintf(line, sizeof line, "/edit %s not mine", hello);
        ch_line(c, line);
    }
    CH_EXPECT(c, "type", "error", "exit", "11");

    /* A reaction. */
    {
        char line[128];
        snprintf(line, sizeof line, "/react %s \xf0\x9f\x91\x8d", hello);
        ch_line(c, line);
    }
    CH_EXPECT(a, "type", "reaction", "from", "carol", "mid", hello, "emoji", "\xf0\x9f\x91\x8d", "on", "true");
    CH_EXPECT(b, "type", "reaction", "from", "carol", "mid", hello, "emoji", "\xf0\x9f\x91\x8d", "on", "true");

    /* A deletion by its author. */
    ch_line(b, "/delete");
    CH_EXPECT(b, "type", "ok", "command", "delete", "mid", reply);
    CH_EXPECT(a, "type", "delete", "from", "bob", "mid", reply);
    CH_EXPECT(c, "type", "delete", "from", "bob", "mid", reply);

    /* Members, all present. */
    ch_line(a, "/members");
    CH_EXPECT(a, "type", "member", "member", "me", "role", "admin", "present", "true");
    CH_EXPECT(a, "type", "member", "member", "bob", "role", "member", "present", "true");
    CH_EXPECT(a, "type", "member", "member", "carol", "role", "member", "present", "true");

    /* Leaving the chat ends the presence. */
    ch_chat_quit(c);
    CH_EXPECT(a, "type", "presence", "from", "carol", "on", "false");
    CH_EXPECT(b, "type", "presence", "from", "carol", "on", "false");
    ch_chat_quit(b);
    ch_chat_quit(a);

    /* What the log kept. */
    p = CH_OK(&r, &carol, "history", "team", "--json", "--offline");
    o = CH_EXPECT(p, "type", "message", "mid", hello, "text", "hello team (edited)", "edited", "true");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "reactions")), 1);
    CH_EXPECT(p, "type", "message", "mid", reply, "deleted", "true", "text", "");
    ch_free(p);
    ch_relay_stop(&r);
}

static void test_member_removed(void **state)
{
    ch_relay r;
    ch_user alice, bob, carol, old;
    ch_proc *p;
    char snap[700];

    (void)state;
    ch_relay_start(&r);
    team_of_three(&r, &alice, &bob, &carol);
    send_ok(&r, &alice, "team", "before the removal");
    p = CH_OK(&r, &carol, "history", "team", "--json");
    CH_EXPECT(p, "type", "message", "text", "before the removal");
    ch_free(p);

    /* Carol's state as it was while she was a member, kept aside. */
    snprintf(snap, sizeof snap, "%s/carol-before", ch_dir());
    ch_copy_dir(carol.dir, snap);
    ch_user_init(&old, "carol-before");

    p = CH_OK(&r, &alice, "group", "remove", "team", "carol", "--json");
    CH_EXPECT(p, "type", "room", "room_name", "team", "members", "2");
    ch_free(p);
    send_ok(&r, &alice, "team", "after the removal");
    send_ok(&r, &bob, "team", "bob after the removal");

    /* The remaining members read on. */
    p = CH_OK(&r, &bob, "history", "team", "--json");
    CH_EXPECT(p, "type", "message", "text", "after the removal", "from", "alice");
    ch_free(p);
    p = CH_OK(&r, &alice, "history", "team", "--json");
    CH_EXPECT(p, "type", "message", "text", "bob after the removal", "from", "bob");
    ch_free(p);

    /* Carol is told, and reads nothing new: the room is gone from her client. */
    p = CH_OK(&r, &carol, "sync", "--json");
    CH_EXPECT(p, "type", "removed", "room_name", "team");
    assert_null(CH_FIND(p, "type", "message", "text", "after the removal"));
    assert_null(CH_FIND(p, "type", "message", "text", "bob after the removal"));
    ch_free(p);
    ch_free(CH_FAILS(EUNKNOWN, &r, &carol, "history", "team"));

    /* Her earlier state still holds the room secret (it can join the relay's room and fetch every envelope)
     * but no key of the new epoch: nothing after the removal is shown. */
    p = CH_OK(&r, &old, "sync", "--json");
    assert_null(CH_FIND(p, "type", "message", "text", "after the removal"));
    assert_null(CH_FIND(p, "type", "message", "text", "bob after the removal"));
    ch_free(p);
    assert_false(ch_dir_contains(old.dir, "after the removal"));
    ch_relay_stop(&r);
}

static void test_offline_catch_up(void **state)
{
    ch_relay r;
    ch_user alice, bob, carol;
    ch_proc *p;
    char got[512];
    cJSON *lines, *o;
    double last = 0;

    (void)state;
    ch_relay_start(&r);
    team_of_three(&r, &alice, &bob, &carol);
    /* Carol is offline while alice and bob talk. */
    send_ok(&r, &alice, "team", "m1");
    send_ok(&r, &bob, "team", "m2");
    send_ok(&r, &alice, "team", "m3");
    send_ok(&r, &bob, "team", "m4");
    send_ok(&r, &alice, "team", "m5");
    send_ok(&r, &bob, "team", "m6");
    p = CH_OK(&r, &carol, "history", "team", "--json");
    ch_texts(p, got, sizeof got);
    assert_string_equal(got, "m1|m2|m3|m4|m5|m6");
    lines = ch_json_lines(p);
    cJSON_ArrayForEach(o, lines)
    {
        if (strcmp(ch_str(o, "type"), "message") == 0) {
            assert_true(ch_num(o, "seq") > last); /* in the relay's order */
            last = ch_num(o, "seq");
        }
    }
    ch_free(p);
    /* And a chat started later shows them too, in order, as its backlog. */
    p = ch_chat(&r, &carol, "team");
    ch_texts(p, got, sizeof got);
    assert_string_equal(got, "m1|m2|m3|m4|m5|m6");
    ch_chat_quit(p);
    ch_relay_stop(&r);
}

static void test_relay_restart(void **state)
{
    ch_relay r;
    ch_user alice, bob;
    ch_proc *a, *b;
    cJSON *o;
    char mid[40];

    (void)state;
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    init_user(&r, &bob, "bob");
    add_contact(&r, &alice, &bob);
    send_ok(&r, &alice, "@bob", "first");
    a = ch_chat(&r, &alice, "@bob");
    b = ch_chat(&r, &bob, "@alice");
    CH_EXPECT(b, "type", "message", "text", "first");

    /* The relay dies (kill -9) mid-conversation. */
    ch_relay_kill(&r);
    CH_EXPECT(a, "type", "connection", "up", "false");
    CH_EXPECT(b, "type", "connection", "up", "false");
    ch_line(a, "while the relay is down");
    o = CH_EXPECT(a, "type", "message", "own", "true", "text", "while the relay is down", "status", "pending");
    snprintf(mid, sizeof mid, "%s", ch_str(o, "mid"));
    ch_sleep(500);

    /* Back on the same port and store: both reconnect, catch up, and the queued message goes out. */
    ch_relay_restart(&r);
    CH_EXPECT(a, "type", "connection", "up", "true");
    CH_EXPECT(b, "type", "connection", "up", "true");
    CH_EXPECT(a, "type", "sent", "mid", mid);
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "while the relay is down", "mid", mid);
    ch_line(b, "after the restart");
    CH_EXPECT(a, "type", "message", "from", "bob", "text", "after the restart");

    /* And once more through a clean shutdown (close 1001). */
    ch_relay_stop(&r);
    CH_EXPECT(a, "type", "connection", "up", "false");
    ch_relay_restart(&r);
    CH_EXPECT(a, "type", "connection", "up", "true");
    CH_EXPECT(b, "type", "connection", "up", "true");
    ch_line(a, "third time");
    CH_EXPECT(b, "type", "message", "from", "alice", "text", "third time");
    assert_int_equal(CH_COUNT(b, "type", "message", "text", "while the relay is down"), 1);
    ch_chat_quit(a);
    ch_chat_quit(b);
    ch_relay_stop(&r);
}

static void test_restart_from_sealed_state(void **state)
{
    ch_relay r;
    ch_user alice, bob;
    ch_proc *a, *p;
    char got[256];

    (void)state;
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    init_user(&r, &bob, "bob");
    add_contact(&r, &alice, &bob);
    send_ok(&r, &alice, "@bob", "one");
    send_ok(&r, &bob, "@alice", "two");
    a = ch_chat(&r, &alice, "@bob");
    CH_EXPECT(a, "type", "message", "text", "two", "from", "bob");
    ch_line(a, "three");
    CH_EXPECT(a, "type", "sent");
    ch_chat_quit(a);

    /* At rest: no text, no key material in the clear, and not the passphrase. */
    assert_false(ch_dir_contains(alice.dir, "three"));
    assert_false(ch_dir_contains(alice.dir, "two"));
    assert_false(ch_dir_contains(alice.dir, CH_PASS));

    /* A new process from the sealed files: the log, and sessions that still work both ways. */
    a = ch_chat(&r, &alice, "@bob");
    ch_texts(a, got, sizeof got);
    assert_string_equal(got, "one|two|three");
    send_ok(&r, &bob, "@alice", "four");
    CH_EXPECT(a, "type", "message", "text", "four", "from", "bob", "backlog", "false");
    ch_line(a, "five");
    CH_EXPECT(a, "type", "sent");
    ch_chat_quit(a);
    p = CH_OK(&r, &bob, "history", "@alice", "--json");
    ch_texts(p, got, sizeof got);
    assert_string_equal(got, "one|two|three|four|five");
    ch_free(p);
    ch_relay_stop(&r);
}

static void test_wrong_passphrase(void **state)
{
    ch_relay r;
    ch_user alice;
    ch_proc *p;
    ch_opts wrong = {.pass = "not the passphrase"};
    ch_opts fd_ok = {.no_pass_env = true, .pass_fd = CH_PASS "\n"};
    ch_opts fd_bad = {.no_pass_env = true, .pass_fd = "nope\n"};
    char path[700];
    FILE *f;

    (void)state;
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    p = ch_expect_exit(EPASS, &r, &alice, &wrong, (const char *const[]){"whoami", NULL});
    ch_expect_text(p, 0, "wrong passphrase");
    ch_free(p);
    p = ch_expect_exit(EPASS, &r, &alice, &wrong, (const char *const[]){"rooms", "--json", NULL});
    CH_EXPECT(p, "type", "error", "exit", "4");
    ch_free(p);
    ch_free(ch_expect_exit(OK, &r, &alice, &fd_ok, (const char *const[]){"whoami", "--passphrase-fd", "3", NULL}));
    ch_free(ch_expect_exit(EPASS, &r, &alice, &fd_bad, (const char *const[]){"whoami", "--passphrase-fd", "3", NULL}));

    /* An altered state file is refused, not loaded. */
    snprintf(path, sizeof path, "%s/state", alice.dir);
    f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 100, SEEK_SET), 0);
    assert_int_equal(fputc(0x55 ^ 0xff, f) != EOF, 1);
    fclose(f);
    p = CH_FAILS(ESTATE, &r, &alice, "whoami");
    ch_expect_text(p, 0, "state");
    ch_free(p);
    ch_relay_stop(&r);
}

static void test_relay_unreachable(void **state)
{
    ch_relay r;
    ch_user alice;
    ch_proc *p;
    ch_opts dead = {.relay = "ws://127.0.0.1:9"};

    (void)state;
    ch_relay_start(&r);
    ch_user_init(&alice, "alice");
    /* The identity is created; publishing its prekeys waits for a relay. */
    p = ch_expect_exit(EUNREACH, &r, &alice, &dead, (const char *const[]){"init", "--name", "alice", NULL});
    ch_expect_text(p, 0, "relay unreachable");
    ch_free(p);
    ch_free(CH_OK(&r, &alice, "whoami", "--relay", "ws://127.0.0.1:9"));
    p = ch_expect_exit(EUNREACH, &r, &alice, &dead, (const char *const[]){"sync", "--json", NULL});
    CH_EXPECT(p, "type", "error", "exit", "7");
    ch_free(p);
    ch_free(ch_expect_exit(OK, &r, &alice, &dead, (const char *const[]){"rooms", "--offline", NULL}));
    /* With a relay, it goes on. */
    ch_free(CH_OK(&r, &alice, "sync"));
    ch_relay_stop(&r);
}

static void test_passphrase_prompt(void **state)
{
    ch_relay r;
    ch_user dave;
    ch_proc *p;
    ch_opts tty = {.no_pass_env = true, .pty = true};
    ch_opts none = {.no_pass_env = true};

    (void)state;
    ch_relay_start(&r);
    ch_user_init(&dave, "dave");
    p = ch_start(&r, &dave, &tty, (const char *const[]){"init", "--name", "dave", NULL});
    ch_expect_text(p, CH_WAIT_MS, "New passphrase");
    ch_line(p, "s3cret words");
    ch_expect_text(p, CH_WAIT_MS, "Repeat it");
    ch_line(p, "s3cret words");
    assert_int_equal(ch_wait(p, CH_WAIT_MS), 0);
    assert_null(strstr(ch_stdout(p), "s3cret")); /* no echo */
    ch_free(p);

    p = ch_start(&r, &dave, &tty, (const char *const[]){"whoami", NULL});
    ch_expect_text(p, CH_WAIT_MS, "passphrase for");
    ch_line(p, "s3cret words");
    assert_int_equal(ch_wait(p, CH_WAIT_MS), 0);
    ch_expect_text(p, 0, "fingerprint:");
    assert_null(strstr(ch_stdout(p), "s3cret"));
    ch_free(p);

    p = ch_start(&r, &dave, &tty, (const char *const[]){"whoami", NULL});
    ch_expect_text(p, CH_WAIT_MS, "passphrase for");
    ch_line(p, "wrong words");
    assert_int_equal(ch_wait(p, CH_WAIT_MS), EPASS);
    ch_free(p);

    /* No terminal, no variable, no descriptor: a clear refusal, not a hang. */
    p = ch_expect_exit(EUSAGE, &r, &dave, &none, (const char *const[]){"whoami", NULL});
    ch_expect_text(p, 0, "no terminal");
    ch_free(p);
    ch_relay_stop(&r);
}

static void test_human_chat_on_a_terminal(void **state)
{
    ch_relay r;
    ch_user alice, bob;
    ch_proc *a, *b;
    ch_opts tty = {.pty = true};
    const char *typed = "typed on a terminal";
    size_t i;

    (void)state;
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    init_user(&r, &bob, "bob");
    add_contact(&r, &alice, &bob);
    send_ok(&r, &alice, "@bob", "hello");
    b = ch_chat(&r, &bob, "@alice");

    a = ch_start(&r, &alice, &tty, (const char *const[]){"chat", "@bob", NULL});
    ch_expect_text(a, CH_WAIT_MS, "connected to");
    CH_EXPECT(b, "type", "presence", "from", "alice", "on", "true");
    ch_line(b, "hello from bob");
    ch_expect_text(a, CH_WAIT_MS, "bob: hello from bob");

    /* Keystrokes, one at a time, as a person types: bob sees alice typing, then the message. */
    for (i = 0; typed[i] != '\0'; i++) {
        char ch[2] = {typed[i], '\0'};
        ch_write(a, ch);
        ch_pump(a, 20);
    }
    CH_EXPECT(b, "type", "typing", "from", "alice", "on", "true");
    ch_write(a, "\r");
    CH_EXPECT(b, "type", "message", "from", "alice", "text", typed);
    ch_expect_text(a, CH_WAIT_MS, "me: typed on a terminal");
    ch_expect_text(a, CH_WAIT_MS, "read by bob");

    /* A command, then Ctrl-D on an empty line leaves. */
    ch_write(a, "/help\r");
    ch_expect_text(a, CH_WAIT_MS, "/react MSG EMOJI");
    ch_write(a, "\x04");
    assert_int_equal(ch_wait(a, CH_WAIT_MS), 0);
    ch_free(a);
    CH_EXPECT(b, "type", "presence", "from", "alice", "on", "false");
    ch_chat_quit(b);
    ch_relay_stop(&r);
}

/*
 * A hostile peer: its display name and its message carry terminal escapes (CSI, an OSC that would retitle
 * the window, an 8-bit CSI U+009B, a bidi override). None of it may reach the terminal raw in human output,
 * while --json keeps the text exactly (as \u escapes). Its reactions, with a 64-octet name and emoji of
 * chosen lengths, once made the reaction list of the human line overrun its stack buffer (ASan aborted).
 */
#define EVIL_NAME "bob\x1b[31m\x1b]0;pwned\x07xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define EVIL_TEXT "hi \x1b[2J\x1b]0;pwned\x07 \xc2\x9b" "31m \xe2\x80\xae" "desrever"

static void assert_no_raw_escapes(const char *out)
{
    assert_null(strstr(out, "\x1b[31m"));
    assert_null(strstr(out, "\x1b[2J"));
    assert_null(strstr(out, "\x1b]0;"));
    assert_null(strstr(out, "\x07"));
    assert_null(strstr(out, "\xc2\x9b"));
    assert_null(strstr(out, "\xe2\x80\xae"));
}

static void test_hostile_peer_text(void **state)
{
    static const char *const emoji[] = {"aaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaa3",
                                        "aaaaaaaaaaaaaaaaa4", "aaaaaaaaaaaaaaaaa5",
                                        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"};
    ch_relay r;
    ch_user alice, bob;
    ch_proc *p, *b;
    ch_opts tty = {.pty = true};
    cJSON *o;
    char ik[80], cmd[80], room[16];
    size_t i;

    (void)state;
    assert_int_equal(strlen(EVIL_NAME), 64);
    ch_relay_start(&r);
    init_user(&r, &alice, "alice");
    ch_user_init(&bob, "bob");
    p = CH_OK(&r, &bob, "init", "--name", EVIL_NAME, "--json");
    CH_EXPECT(p, "type", "identity");
    ch_free(p);
    /* By key, without a name of alice's: bob's own name is what she sees of him. */
    p = CH_OK(&r, &bob, "whoami", "--json", "--offline");
    snprintf(ik, sizeof ik, "%s", ch_str(CH_EXPECT(p, "type", "identity"), "ik"));
    ch_free(p);
    p = CH_OK(&r, &alice, "add", ik, "--json");
    snprintf(room, sizeof room, "%d", (int)ch_num(CH_EXPECT(p, "type", "room", "kind", "direct"), "room"));
    ch_free(p);
    send_ok(&r, &alice, room, "hello bob");
    p = CH_OK(&r, &bob, "history", "@alice", "--json");
    CH_EXPECT(p, "type", "message", "text", "hello bob");
    ch_free(p);
    send_ok(&r, &bob, "@alice", EVIL_TEXT);

    /* Six reactions to alice's message: 5 x 86 octets, then one that no longer fits. */
    b = ch_chat(&r, &bob, "@alice");
    for (i = 0; i < sizeof emoji / sizeof emoji[0]; i++) {
        snprintf(cmd, sizeof cmd, "/react #1 %s", emoji[i]);
        ch_line(b, cmd);
        CH_EXPECT(b, "type", "ok", "command", "react");
    }
    ch_chat_quit(b);

    /* Human output: no escape of the peer's reaches the terminal; the reactions line is cut, not overrun. */
    p = CH_OK(&r, &alice, "history", room);
    ch_expect_text(p, 0, "hi \xe2\x90\x9b[2J"); /* ESC shown as U+241B */
    ch_expect_text(p, 0, "aaaaaaaaaaaaaaaaa5");
    ch_expect_text(p, 0, " ...]");
    assert_no_raw_escapes(ch_stdout(p));
    assert_no_raw_escapes(ch_stderr(p));
    ch_free(p);
    p = CH_OK(&r, &alice, "contacts");
    ch_expect_text(p, 0, "bob\xe2\x90\x9b[31m");
    assert_no_raw_escapes(ch_stdout(p));
    ch_free(p);

    /* --json: the same text, exact, escaped. */
    p = CH_OK(&r, &alice, "history", room, "--json");
    o = CH_EXPECT(p, "type", "message", "text", EVIL_TEXT, "from", EVIL_NAME);
    assert_non_null(o);
    assert_non_null(strstr(ch_stdout(p), "\\u001b[2J"));
    assert_non_null(strstr(ch_stdout(p), "\\u009b"));
    assert_non_null(strstr(ch_stdout(p), "\\u202e"));
    assert_no_raw_escapes(ch_stdout(p));
    ch_free(p);

    /* The chat on a terminal: the prompt (the room's name) and the backlog are shown safely too. */
    p = ch_start(&r, &alice, &tty, (const char *const[]){"chat", room, NULL});
    ch_expect_text(p, CH_WAIT_MS, "connected to");
    ch_expect_text(p, CH_WAIT_MS, "desrever");
    ch_write(p, "\x04");
    assert_int_equal(ch_wait(p, CH_WAIT_MS), 0);
    assert_no_raw_escapes(ch_stdout(p));
    ch_free(p);
    ch_relay_stop(&r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        CH_TEST(test_usage_and_local_errors), CH_TEST(test_first_contact), CH_TEST(test_add_by_key),
        CH_TEST(test_group_of_three),         CH_TEST(test_member_removed),
        CH_TEST(test_offline_catch_up),       CH_TEST(test_relay_restart),
        CH_TEST(test_restart_from_sealed_state), CH_TEST(test_wrong_passphrase),
        CH_TEST(test_relay_unreachable),      CH_TEST(test_passphrase_prompt),
        CH_TEST(test_human_chat_on_a_terminal), CH_TEST(test_hostile_peer_text),
    };

    ch_init(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
