/* SPDX-License-Identifier: ISC */
/*
 * The one-shot commands (cli.h). Each opens the identity, does its local
 * part through the engine, then (unless --offline) goes online until its
 * goal is reached and the engine has settled, and prints its result.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

/* ---- shared ---- */

static int resolve_relay(veil_cli_app *a)
{
    const char *r = a->o.relay != NULL ? a->o.relay : a->log.relay[0] != '\0' ? a->log.relay : VEIL_CLI_DEFAULT_RELAY;
    char host[VEIL_CLI_URL_MAX], path[VEIL_CLI_URL_MAX];
    int port;
    bool tls;

    if (strlen(r) >= sizeof a->relay_url || strlen(r) > VEIL_CLI_LOG_RELAY_MAX ||
        veil_cli_url_parse(r, host, sizeof host, &port, path, sizeof path, &tls) != 0) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "invalid relay URL \"%s\" (ws://host:port or wss://host:port)", r);
    }
    snprintf(a->relay_url, sizeof a->relay_url, "%s", r);
    return 0;
}

static bool room_exists(void *ctx, uint32_t room)
{
    veil_room_info ri;

    return veil_engine_room_get(ctx, room, &ri) == 0;
}

int veil_cli_open(veil_cli_app *a)
{
    int rc = veil_cli_store_lock(a, false);

    if (rc == 0) {
        rc = veil_cli_store_open(a);
    }
    if (rc == 0) {
        rc = resolve_relay(a);
    }
    if (rc == 0) {
        /* Texts of rooms the engine no longer has (left, removed) have nowhere to be shown. */
        veil_cli_log_prune(&a->log, room_exists, a->e);
    }
    return rc;
}

static int need_args(veil_cli_app *a, int argc, int min, int max, const char *usage)
{
    if (argc < min || (max >= 0 && argc > max)) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: veil %s", usage);
    }
    return 0;
}

static int save_now(veil_cli_app *a)
{
    veil_cli_after(a);
    return veil_cli_store_save(a);
}

/* Prints the events a sync brings that a person would want to know of. */
static void sync_events(veil_cli_app *a, const veil_event *ev)
{
    switch (ev->type) {
    case VEIL_EV_ROOM:
    case VEIL_EV_CONTACT:
    case VEIL_EV_REMOVED:
    case VEIL_EV_ALERT:
    case VEIL_EV_ERROR:
        veil_cli_print_event(a, ev);
        break;
    default:
        break;
    }
}

/* A one-shot command's online phase: syncs with the relay, printing what changed on the way. */
static int online_sync(veil_cli_app *a)
{
    a->on_event = sync_events;
    return veil_cli_online(a);
}

static void print_identity(veil_cli_app *a)
{
    char fp[VEIL_FINGERPRINT_DIGITS + 1], code[VEIL_CONTACT_CODE_MAX + 64], hex[65];
    uint8_t ik[VEIL_SIGN_PK_BYTES];

    veil_engine_fingerprint(a->e, fp);
    veil_engine_identity(a->e, ik);
    veil_cli_hex(hex, ik, sizeof ik);
    if (veil_engine_contact_code(a->e, code, sizeof code) != 0) {
        code[0] = '\0';
    }
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "identity");
        cJSON_AddStringToObject(o, "fingerprint", fp);
        cJSON_AddStringToObject(o, "ik", hex);
        cJSON_AddStringToObject(o, "code", code);
        cJSON_AddStringToObject(o, "relay", a->relay_url);
        cJSON_AddStringToObject(o, "data", a->o.dir);
        veil_cli_json_emit(o);
        return;
    }
    printf("fingerprint:  %.5s %.5s %.5s %.5s %.5s %.5s\n", fp, fp + 5, fp + 10, fp + 15, fp + 20, fp + 25);
    printf("contact code: %s\n", code);
    veil_cli_line("relay:        %s", a->relay_url); /* the relay may come from the stored log */
    veil_cli_line("data:         %s", a->o.dir);
}

/* ---- init, whoami, invite ---- */

int veil_cli_cmd_init(veil_cli_app *a, int argc, char **argv)
{
    const char *name = a->o.name;
    int rc;

    (void)argv;
    if ((rc = need_args(a, argc, 1, 1, "init [--name NAME]")) != 0 || (rc = resolve_relay(a)) != 0) {
        return rc;
    }
    if (name == NULL) {
        name = getenv("USER");
        if (name == NULL || strlen(name) > VEIL_NAME_MAX_BYTES) {
            name = "";
        }
    }
    if ((rc = veil_cli_store_lock(a, true)) != 0) {
        return rc;
    }
    if (veil_cli_store_exists(a)) {
        return veil_cli_fail(a, VEIL_CLI_ENOIDENT, "%s already holds an identity (give another --data DIR)",
                             a->o.dir);
    }
    if ((rc = veil_cli_store_create(a, name, strlen(name))) != 0) {
        return rc;
    }
    print_identity(a);
    if (a->o.offline) {
        return 0;
    }
    rc = online_sync(a);
    if (rc == 0 && !a->o.json) {
        printf("prekeys published on %s\n", a->relay_url);
    } else if (rc == VEIL_CLI_EUNREACH) {
        veil_cli_warn(a, "the identity is created; its prekeys go to the relay with the next command that reaches it");
    }
    return rc;
}

int veil_cli_cmd_whoami(veil_cli_app *a, int argc, char **argv)
{
    int rc;

    (void)argv;
    if ((rc = need_args(a, argc, 1, 1, "whoami")) != 0 || (rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    print_identity(a);
    return 0;
}

int veil_cli_cmd_invite(veil_cli_app *a, int argc, char **argv)
{
    char code[VEIL_CONTACT_CODE_MAX + 64];
    int rc;

    if (argc >= 3) {
        /* `veil invite ROOM CONTACT...`: the group invitation. */
        char *args[64];
        int i, n = 0;
        if (argc > 63) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "too many arguments"); /* not some contacts left out */
        }
        args[n++] = "group";
        for (i = 0; i < argc; i++) {
            args[n++] = argv[i];
        }
        return veil_cli_cmd_group(a, n, args);
    }
    if ((rc = need_args(a, argc, 1, 1, "invite   (or: veil invite ROOM CONTACT...)")) != 0 ||
        (rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    if (veil_engine_contact_code(a->e, code, sizeof code) != 0) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "cannot make the contact code");
    }
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "code");
        cJSON_AddStringToObject(o, "code", code);
        veil_cli_json_emit(o);
    } else {
        printf("%s\n", code);
    }
    return 0;
}

/* ---- contacts ---- */

int veil_cli_cmd_add(veil_cli_app *a, int argc, char **argv)
{
    char own[VEIL_CONTACT_CODE_MAX + 64];
    uint32_t contact = 0, room = 0;
    veil_contact_info ci;
    int rc;

    uint8_t ik[VEIL_SIGN_PK_BYTES];
    size_t ik_len = 0;
    const char *end = NULL;
    bool by_key;

    if ((rc = need_args(a, argc, 2, 2, "add CODE|KEY")) != 0 || (rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    /* An identity key as `whoami --json` prints it ("ik", 64 hex digits): the name is the user's to give. */
    by_key = strlen(argv[1]) == 2 * sizeof ik &&
             sodium_hex2bin(ik, sizeof ik, argv[1], strlen(argv[1]), NULL, &ik_len, &end) == 0 &&
             ik_len == sizeof ik && *end == '\0';
    if (by_key) {
        const char *name = a->o.name != NULL ? a->o.name : "";
        rc = veil_engine_contact_add_key(a->e, veil_cli_now(), ik, name, strlen(name), &contact);
        if (rc == VEIL_EINVAL) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "not a key to add: your own, or an invalid --name");
        }
    } else {
        rc = veil_engine_contact_add(a->e, veil_cli_now(), argv[1], &contact);
    }
    if (rc == VEIL_EINVAL) {
        if (veil_engine_contact_code(a->e, own, sizeof own) == 0 && strcmp(own, argv[1]) == 0) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "this is your own contact code");
        }
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "not a valid contact code (they begin with \"%s\")",
                             VEIL_CONTACT_CODE_PREFIX);
    }
    if (rc == VEIL_EFULL) {
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "the contact list is full (%u contacts)",
                             VEIL_ENGINE_MAX_CONTACTS);
    }
    if (rc != 0) {
        return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot add the contact: %s", veil_strerror(rc));
    }
    if (veil_engine_contact_get(a->e, contact, &ci) == 0 && (ci.flags & VEIL_CONTACT_KEY_CHANGED)) {
        return veil_cli_fail(a, VEIL_CLI_EKEYCHANGED,
                             "%s's identity key changed: compare safety numbers (veil verify %u), then accept "
                             "it (veil accept-key %u)",
                             ci.name, contact, contact);
    }
    rc = veil_engine_direct_open(a->e, veil_cli_now(), contact, &room);
    if (rc != 0) {
        return veil_cli_fail(a, rc == VEIL_EFULL ? VEIL_CLI_ENOTALLOWED : veil_cli_exit_for(rc),
                             "contact added, but no direct room: %s",
                             rc == VEIL_EFULL ? "too many rooms" : veil_strerror(rc));
    }
    if ((rc = save_now(a)) != 0) {
        return rc;
    }
    rc = online_sync(a);
    veil_cli_print_contact(a, contact);
    veil_cli_print_room(a, room);
    if (rc == 0 && a->relay_err == VEIL_ENOPREKEY) {
        rc = VEIL_CLI_ERELAY; /* warned as it happened: the invitation waits for their prekeys */
    }
    return rc;
}

/* contacts, rooms: sync, then one line (or object) per item; `none` when there is nothing. */
static int list_cmd(veil_cli_app *a, int argc, const char *usage,
                    size_t (*list)(const veil_engine *, uint32_t *, size_t), void (*print)(veil_cli_app *, uint32_t),
                    const char *none)
{
    uint32_t ids[VEIL_ENGINE_MAX_CONTACTS > VEIL_ENGINE_MAX_ROOMS ? VEIL_ENGINE_MAX_CONTACTS : VEIL_ENGINE_MAX_ROOMS];
    size_t n, i;
    int rc;

    if ((rc = need_args(a, argc, 1, 1, usage)) != 0 || (rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    rc = online_sync(a);
    n = list(a->e, ids, sizeof ids / sizeof ids[0]);
    for (i = 0; i < n; i++) {
        print(a, ids[i]);
    }
    if (n == 0 && !a->o.json) {
        printf("%s\n", none);
    }
    return rc;
}

int veil_cli_cmd_contacts(veil_cli_app *a, int argc, char **argv)
{
    (void)argv;
    return list_cmd(a, argc, "contacts", veil_engine_contacts, veil_cli_print_contact,
                    "no contacts yet: `veil add CODE` with someone's code (`veil invite` prints yours)");
}

static int safety_line(veil_cli_app *a, uint32_t contact)
{
    char sn[VEIL_SAFETY_NUMBER_DIGITS + 1];
    veil_contact_info ci;
    int i;

    if (veil_engine_contact_get(a->e, contact, &ci) != 0 || veil_engine_safety_number(a->e, contact, sn) != 0) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "no safety number for this contact");
    }
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "safety_number");
        cJSON_AddNumberToObject(o, "contact", contact);
        cJSON_AddStringToObject(o, "name", ci.name);
        cJSON_AddStringToObject(o, "safety_number", sn);
        cJSON_AddStringToObject(o, "fingerprint", ci.fingerprint);
        cJSON_AddBoolToObject(o, "verified", (ci.flags & VEIL_CONTACT_VERIFIED) != 0);
        cJSON_AddBoolToObject(o, "key_changed", (ci.flags & VEIL_CONTACT_KEY_CHANGED) != 0);
        veil_cli_json_emit(o);
        return 0;
    }
    veil_cli_line("Safety number with %s (%s):", ci.name[0] ? ci.name : "this contact",
                  (ci.flags & VEIL_CONTACT_VERIFIED) ? "verified" : "not verified");
    for (i = 0; i < 3; i++) {
        const char *p = sn + 20 * i;
        printf("    %.5s %.5s %.5s %.5s\n", p, p + 5, p + 10, p + 15);
    }
    printf("Compare it with what `veil verify` shows on their side, in person or over a channel you trust.\n");
    if (ci.flags & VEIL_CONTACT_KEY_CHANGED) {
        printf("Their identity key CHANGED: accept the new key with `veil accept-key %u` once you are sure.\n",
               contact);
    }
    return 0;
}

int veil_cli_cmd_verify(veil_cli_app *a, int argc, char **argv)
{
    uint32_t contact;
    veil_contact_info ci;
    int rc;
    bool mark = a->o.yes, unmark = a->o.no;

    if ((rc = need_args(a, argc, 2, 2, "verify CONTACT [--yes|--no]")) != 0 || (rc = veil_cli_open(a)) != 0 ||
        (rc = veil_cli_find_contact(a, argv[1], &contact)) != 0 || (rc = safety_line(a, contact)) != 0) {
        return rc;
    }
    if (!mark && !unmark && !a->o.json && isatty(0) && isatty(1)) {
        char answer[16] = "";
        printf("Do the numbers match? Mark as verified [y/N]: ");
        fflush(stdout);
        if (fgets(answer, sizeof answer, stdin) != NULL && (answer[0] == 'y' || answer[0] == 'Y')) {
            mark = true;
        }
    }
    if (mark || unmark) {
        rc = veil_engine_contact_verify(a->e, contact, mark);
        if (rc != 0) {
            return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot mark the contact: %s", veil_strerror(rc));
        }
        if ((rc = save_now(a)) != 0) {
            return rc;
        }
        if (veil_engine_contact_get(a->e, contact, &ci) != 0) {
            return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "the contact is gone");
        }
        if (a->o.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "verified");
            cJSON_AddNumberToObject(o, "contact", contact);
            cJSON_AddBoolToObject(o, "verified", (ci.flags & VEIL_CONTACT_VERIFIED) != 0);
            veil_cli_json_emit(o);
        } else {
            veil_cli_line("%s is now marked %s.", ci.name, mark ? "verified" : "not verified");
        }
    }
    return 0;
}

/* After a user action on the engine: its refusal explained (VEIL_ESTATE: `refused`), or the change saved. */
static int acted(veil_cli_app *a, int rc, const char *refused, const char *what)
{
    if (rc == VEIL_ESTATE) {
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "%s", refused);
    }
    if (rc != 0) {
        return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot %s: %s", what, veil_strerror(rc));
    }
    return save_now(a);
}

int veil_cli_cmd_accept_key(veil_cli_app *a, int argc, char **argv)
{
    uint32_t contact;
    int rc;

    if ((rc = need_args(a, argc, 2, 2, "accept-key CONTACT")) != 0 || (rc = veil_cli_open(a)) != 0 ||
        (rc = veil_cli_find_contact(a, argv[1], &contact)) != 0) {
        return rc;
    }
    if ((rc = acted(a, veil_engine_contact_accept_key(a->e, veil_cli_now(), contact),
                    "no identity key change is pending for this contact", "accept the key")) != 0) {
        return rc;
    }
    rc = online_sync(a);
    veil_cli_print_contact(a, contact);
    return rc;
}

int veil_cli_cmd_name(veil_cli_app *a, int argc, char **argv)
{
    int rc;

    if ((rc = need_args(a, argc, 2, 2, "name NEWNAME")) != 0 || (rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    rc = veil_engine_set_name(a->e, veil_cli_now(), argv[1], strlen(argv[1]));
    if (rc != 0) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "invalid name (UTF-8, at most %u octets)", VEIL_NAME_MAX_BYTES);
    }
    if ((rc = save_now(a)) != 0) {
        return rc;
    }
    rc = online_sync(a);
    if (rc == 0) {
        print_identity(a);
    }
    return rc;
}

/* ---- rooms ---- */

int veil_cli_cmd_rooms(veil_cli_app *a, int argc, char **argv)
{
    (void)argv;
    return list_cmd(a, argc, "rooms", veil_engine_rooms, veil_cli_print_room,
                    "no rooms yet: `veil add CODE` opens a direct room, `veil group create TITLE` a group");
}

/* sync: everything new, printed as it comes. */
static void sync_print(veil_cli_app *a, const veil_event *ev)
{
    switch (ev->type) {
    case VEIL_EV_MESSAGE:
    case VEIL_EV_EDIT:
    case VEIL_EV_DELETE:
    case VEIL_EV_REACTION:
    case VEIL_EV_RECEIPT:
    case VEIL_EV_MEMBER:
    case VEIL_EV_NAME:
        veil_cli_print_event(a, ev);
        break;
    default:
        sync_events(a, ev);
        break;
    }
}

int veil_cli_cmd_sync(veil_cli_app *a, int argc, char **argv)
{
    int rc;

    (void)argv;
    if ((rc = need_args(a, argc, 1, 1, "sync")) != 0 || (rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    if (a->o.offline) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "sync needs the relay (without --offline)");
    }
    a->on_event = sync_print;
    return veil_cli_online(a);
}

int veil_cli_cmd_members(veil_cli_app *a, int argc, char **argv)
{
    uint32_t room, i;
    veil_room_info ri;
    veil_member_info mi;
    int rc;

    if ((rc = need_args(a, argc, 2, 2, "members ROOM")) != 0 || (rc = veil_cli_open(a)) != 0 ||
        (rc = veil_cli_find_room(a, argv[1], &room)) != 0) {
        return rc;
    }
    rc = online_sync(a);
    if (veil_engine_room_get(a->e, room, &ri) != 0) {
        return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "the room is gone");
    }
    for (i = 0; i < ri.members; i++) {
        if (veil_engine_room_member(a->e, room, i, &mi) == 0) {
            veil_cli_print_member(a, room, &mi);
        }
    }
    return rc;
}

/* Checks that a room can take messages; its exit code otherwise. */
static int room_usable(veil_cli_app *a, uint32_t room)
{
    veil_room_info ri;
    veil_contact_info ci;

    if (veil_engine_room_get(a->e, room, &ri) != 0) {
        return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "the room is gone");
    }
    if (ri.state == VEIL_ROOM_INVITED) {
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "this is an invitation: accept it first (veil accept %u)", room);
    }
    if (ri.state != VEIL_ROOM_ACTIVE) {
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "you are leaving this room");
    }
    if (ri.kind == VEIL_ROOM_DIRECT && veil_engine_contact_get(a->e, ri.peer, &ci) == 0 &&
        (ci.flags & VEIL_CONTACT_KEY_CHANGED)) {
        return veil_cli_fail(a, VEIL_CLI_EKEYCHANGED,
                             "%s's identity key changed: nothing is sent to them until you compare safety numbers "
                             "(veil verify %u) and accept the new key (veil accept-key %u)",
                             ci.name, ri.peer, ri.peer);
    }
    return 0;
}

int veil_cli_do_send(veil_cli_app *a, uint32_t room, const char *text, size_t len, const veil_cli_msg *reply_to,
                     veil_cli_msg **out)
{
    uint8_t mid[VEIL_MID_BYTES], own[VEIL_SIGN_PK_BYTES];
    veil_cli_msg *m;
    bool dup;
    int rc;

    if (out != NULL) {
        *out = NULL;
    }
    rc = veil_engine_send_text(a->e, veil_cli_now(), room, text, len, reply_to != NULL ? reply_to->mid : NULL, mid);
    switch (rc) {
    case 0:
        break;
    case VEIL_EINVAL:
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "cannot send: the text must be 1 to %u octets of UTF-8",
                             VEIL_TEXT_MAX_BYTES);
    case VEIL_ESTATE:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "cannot send: the room is not active");
    case VEIL_EFULL:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED,
                             "cannot send: %u messages already wait for the relay; try again once it confirms them",
                             VEIL_ENGINE_OUTBOX);
    default:
        return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot send: %s", veil_strerror(rc));
    }
    veil_engine_identity(a->e, own);
    m = veil_cli_log_add(&a->log, room, 0, mid, own, reply_to != NULL ? VEIL_PK_REPLY : VEIL_PK_TEXT,
                         reply_to != NULL ? reply_to->mid : NULL, text, len, veil_cli_now(), VEIL_CLI_MSG_OWN, &dup);
    if (m == NULL) {
        veil_cli_warn(a, "out of memory: the message is sent but not kept in the log");
    }
    if (out != NULL) {
        *out = m;
    }
    veil_cli_after(a);
    return a->rc != 0 ? a->rc : 0;
}

typedef struct send_state {
    uint32_t room;
    uint8_t mid[VEIL_MID_BYTES];
    bool sent, failed;
    int32_t code;
} send_state;

static void send_event(veil_cli_app *a, const veil_event *ev)
{
    send_state *s = a->cmd;

    if ((ev->type == VEIL_EV_SENT || ev->type == VEIL_EV_FAILED) && ev->room == s->room &&
        memcmp(ev->mid, s->mid, VEIL_MID_BYTES) == 0) {
        s->sent = ev->type == VEIL_EV_SENT;
        s->failed = ev->type == VEIL_EV_FAILED;
        s->code = ev->code;
        return;
    }
    sync_events(a, ev);
}

static bool send_goal(veil_cli_app *a)
{
    send_state *s = a->cmd;

    if (s->failed) {
        a->rc = veil_cli_fail(a, VEIL_CLI_ERELAY, "the relay refused the message: %s", veil_strerror(s->code));
        a->done = true;
    }
    return s->sent;
}

static int read_stdin_text(veil_cli_app *a, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;

    for (;;) {
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return veil_cli_fail(a, VEIL_CLI_EIO, "cannot read the message from standard input: %s", strerror(errno));
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n == cap) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "the message is longer than %u octets", VEIL_TEXT_MAX_BYTES);
        }
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
    }
    *len = n;
    return 0;
}

int veil_cli_cmd_send(veil_cli_app *a, int argc, char **argv)
{
    static char text[VEIL_TEXT_MAX_BYTES + 2];
    size_t len = 0;
    uint32_t room;
    veil_cli_msg *m, *reply = NULL;
    send_state s;
    int rc, i;

    if ((rc = need_args(a, argc, 3, -1, "send ROOM TEXT... [--reply MSG]   (TEXT - reads standard input)")) != 0 ||
        (rc = veil_cli_open(a)) != 0 || (rc = veil_cli_find_room(a, argv[1], &room)) != 0 ||
        (rc = room_usable(a, room)) != 0) {
        return rc;
    }
    if (argc == 3 && strcmp(argv[2], "-") == 0) {
        if ((rc = read_stdin_text(a, text, sizeof text, &len)) != 0) {
            sodium_memzero(text, sizeof text); /* what was read before the error */
            return rc;
        }
    } else {
        for (i = 2; i < argc; i++) {
            size_t l = strlen(argv[i]);
            if (len + l + 1 > VEIL_TEXT_MAX_BYTES) {
                sodium_memzero(text, sizeof text);
                return veil_cli_fail(a, VEIL_CLI_EUSAGE, "the message is longer than %u octets", VEIL_TEXT_MAX_BYTES);
            }
            if (i > 2) {
                text[len++] = ' ';
            }
            memcpy(text + len, argv[i], l);
            len += l;
        }
    }
    text[len] = '\0';
    if (a->o.reply != NULL && (rc = veil_cli_find_msg(a, room, a->o.reply, &reply)) != 0) {
        sodium_memzero(text, sizeof text);
        return rc;
    }
    rc = veil_cli_do_send(a, room, text, len, reply, &m);
    sodium_memzero(text, sizeof text);
    if (rc != 0) {
        return rc;
    }
    memset(&s, 0, sizeof s);
    s.room = room;
    if (m != NULL) {
        memcpy(s.mid, m->mid, VEIL_MID_BYTES);
    }
    if (a->o.offline) {
        if (a->o.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "queued");
            cJSON_AddNumberToObject(o, "room", room);
            if (m != NULL) {
                cJSON_AddNumberToObject(o, "num", m->num);
            }
            veil_cli_json_hex(o, "mid", s.mid, VEIL_MID_BYTES);
            veil_cli_json_emit(o);
        } else {
            printf("queued; it goes to the relay with the next command that reaches it\n");
        }
        return 0;
    }
    a->cmd = &s;
    a->on_event = send_event;
    a->goal_met = send_goal;
    rc = veil_cli_online(a);
    m = veil_cli_log_find(&a->log, room, s.mid);
    if (s.sent && m != NULL) {
        if (a->o.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "type", "sent");
            cJSON_AddNumberToObject(o, "room", room);
            cJSON_AddNumberToObject(o, "num", m->num);
            veil_cli_json_hex(o, "mid", m->mid, VEIL_MID_BYTES);
            cJSON_AddNumberToObject(o, "seq", (double)m->seq);
            veil_cli_json_emit(o);
        } else {
            char name[VEIL_NAME_MAX_BYTES + 32];
            veil_cli_room_name(a, room, name, sizeof name);
            veil_cli_line("sent #%u to %s", m->num, name);
        }
    } else if (!s.failed && (rc == VEIL_CLI_EUNREACH || rc == VEIL_CLI_ETIMEOUT)) {
        veil_cli_warn(a, "the message is saved and goes out with the next command that reaches the relay");
    }
    return rc;
}

/* ---- history ---- */

typedef struct history_state {
    uint32_t room;
    bool started, done, printed;
    uint32_t fetched;
} history_state;

static void print_history(veil_cli_app *a, uint32_t room)
{
    size_t total = veil_cli_log_count(&a->log, room, false), skip, i, k = 0;

    skip = total > a->o.limit ? total - a->o.limit : 0;
    for (i = veil_cli_log_next(&a->log, room, 0); i < a->log.n; i = veil_cli_log_next(&a->log, room, i + 1)) {
        veil_cli_msg *m = a->log.msgs[i];
        if (k++ < skip) {
            continue;
        }
        veil_cli_print_msg(a, m, true);
        if (!(m->flags & (VEIL_CLI_MSG_OWN | VEIL_CLI_MSG_READ))) {
            /* Shown to the user: a read receipt goes to its author (not for history pages, SPEC.md 13.7). */
            if (!(m->flags & VEIL_CLI_MSG_HISTORY)) {
                if (veil_engine_mark_read(a->e, veil_cli_now(), room, m->mid) != 0) {
                    /* Older than the engine's window: no receipt can be sent for it any more. */
                }
            }
            m->flags |= VEIL_CLI_MSG_READ;
            a->log.dirty = true;
        }
    }
    if (total == 0 && !a->o.json) {
        printf("no messages yet\n");
    }
}

static void history_event(veil_cli_app *a, const veil_event *ev)
{
    history_state *h = a->cmd;

    if (ev->type == VEIL_EV_HISTORY && ev->room == h->room && h->started && !h->done) {
        h->fetched += (uint32_t)ev->n;
        if ((ev->flags & VEIL_EVF_MORE) && h->fetched < a->o.limit &&
            veil_engine_history(a->e, veil_cli_now(), h->room, VEIL_ENGINE_HISTORY_PAGE) == 0) {
            return;
        }
        h->done = true;
        return;
    }
    sync_events(a, ev);
}

static bool history_goal(veil_cli_app *a)
{
    history_state *h = a->cmd;

    if (!veil_cli_synced(a)) {
        return false;
    }
    if (a->o.fetch && !h->started) {
        h->started = true;
        if (veil_engine_history(a->e, veil_cli_now(), h->room, VEIL_ENGINE_HISTORY_PAGE) == 0) {
            veil_cli_after(a);
            return false;
        }
        h->done = true;
    }
    if (a->o.fetch && !h->done) {
        return false;
    }
    if (!h->printed) {
        h->printed = true;
        print_history(a, h->room);
        veil_cli_after(a);
    }
    return true;
}

int veil_cli_cmd_history(veil_cli_app *a, int argc, char **argv)
{
    history_state h;
    int rc;

    memset(&h, 0, sizeof h);
    if ((rc = need_args(a, argc, 2, 2, "history ROOM [--limit N] [--fetch]")) != 0 || (rc = veil_cli_open(a)) != 0 ||
        (rc = veil_cli_find_room(a, argv[1], &h.room)) != 0) {
        return rc;
    }
    if (a->o.offline) {
        print_history(a, h.room);
        return save_now(a);
    }
    a->cmd = &h;
    a->on_event = history_event;
    a->goal_met = history_goal;
    rc = veil_cli_online(a);
    if (!h.printed) {
        /* The relay could not be reached or did not answer: what is stored is still worth showing. */
        print_history(a, h.room);
        (void)save_now(a);
    }
    return rc;
}

/* ---- groups ---- */

int veil_cli_do_invite(veil_cli_app *a, uint32_t room, uint32_t contact)
{
    veil_contact_info ci;
    int rc = veil_engine_group_invite(a->e, veil_cli_now(), room, contact);

    if (veil_engine_contact_get(a->e, contact, &ci) != 0) {
        memset(&ci, 0, sizeof ci);
    }
    switch (rc) {
    case 0:
        veil_cli_after(a);
        return 0;
    case VEIL_EPERM:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "only the group's admins can invite");
    case VEIL_ESTATE:
        if (ci.flags & VEIL_CONTACT_KEY_CHANGED) {
            return veil_cli_fail(a, VEIL_CLI_EKEYCHANGED, "%s's identity key changed: accept it first (veil accept-key %u)",
                                 ci.name, contact);
        }
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "the group is not active (an invitation, or being left)");
    case VEIL_EFULL:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "the group is full (%u members)", VEIL_ENGINE_MAX_MEMBERS);
    case VEIL_EINVAL:
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "%s cannot be invited here (not a group, or already a member)",
                             ci.name);
    default:
        return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot invite %s: %s", ci.name, veil_strerror(rc));
    }
}

int veil_cli_do_remove(veil_cli_app *a, uint32_t room, uint32_t contact)
{
    veil_contact_info ci;
    int rc = veil_engine_group_remove(a->e, veil_cli_now(), room, contact);

    if (veil_engine_contact_get(a->e, contact, &ci) != 0) {
        memset(&ci, 0, sizeof ci);
    }
    switch (rc) {
    case 0:
        veil_cli_after(a);
        return 0;
    case VEIL_EPERM:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "only the group's admins can remove members");
    case VEIL_ESTATE:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "the group is not active (an invitation, or being left)");
    case VEIL_EINVAL:
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "%s is not a member of this group", ci.name);
    default:
        return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot remove %s: %s", ci.name, veil_strerror(rc));
    }
}

static int resolve_contacts(veil_cli_app *a, int argc, char **argv, int from, uint32_t *out)
{
    int i, rc;

    for (i = from; i < argc; i++) {
        if ((rc = veil_cli_find_contact(a, argv[i], &out[i - from])) != 0) {
            return rc;
        }
    }
    return 0;
}

int veil_cli_cmd_group(veil_cli_app *a, int argc, char **argv)
{
    uint32_t contacts[64], room = 0;
    const char *sub = argc >= 2 ? argv[1] : "";
    int rc, i, n;

    if (argc > 64) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "too many arguments");
    }
    if (strcmp(sub, "create") == 0) {
        if ((rc = need_args(a, argc, 3, -1, "group create TITLE [CONTACT...]")) != 0 || (rc = veil_cli_open(a)) != 0 ||
            (rc = resolve_contacts(a, argc, argv, 3, contacts)) != 0) {
            return rc;
        }
        rc = veil_engine_group_create(a->e, veil_cli_now(), argv[2], strlen(argv[2]), &room);
        if (rc == VEIL_EINVAL) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "invalid title (UTF-8, at most %u octets)", VEIL_NAME_MAX_BYTES);
        }
        if (rc != 0) {
            return veil_cli_fail(a, veil_cli_exit_for(rc), "cannot create the group: %s",
                                 rc == VEIL_EFULL ? "too many rooms" : veil_strerror(rc));
        }
        veil_cli_after(a);
        for (i = 3; i < argc; i++) {
            if ((rc = veil_cli_do_invite(a, room, contacts[i - 3])) != 0) {
                (void)save_now(a);
                return rc;
            }
        }
    } else if (strcmp(sub, "invite") == 0 || strcmp(sub, "remove") == 0) {
        bool invite = sub[0] == 'i';
        if ((rc = need_args(a, argc, 4, -1, invite ? "group invite ROOM CONTACT..." : "group remove ROOM CONTACT...")) !=
                0 ||
            (rc = veil_cli_open(a)) != 0 || (rc = veil_cli_find_room(a, argv[2], &room)) != 0 ||
            (rc = resolve_contacts(a, argc, argv, 3, contacts)) != 0) {
            return rc;
        }
        n = argc - 3;
        for (i = 0; i < n; i++) {
            rc = invite ? veil_cli_do_invite(a, room, contacts[i]) : veil_cli_do_remove(a, room, contacts[i]);
            if (rc != 0) {
                (void)save_now(a);
                return rc;
            }
        }
    } else if (strcmp(sub, "leave") == 0) {
        if ((rc = need_args(a, argc, 3, 3, "group leave ROOM")) != 0 || (rc = veil_cli_open(a)) != 0 ||
            (rc = veil_cli_find_room(a, argv[2], &room)) != 0) {
            return rc;
        }
        rc = veil_engine_group_leave(a->e, veil_cli_now(), room);
        if (rc != 0) {
            return veil_cli_fail(a, rc == VEIL_EINVAL ? VEIL_CLI_EUSAGE : veil_cli_exit_for(rc), "cannot leave: %s",
                                 rc == VEIL_EINVAL ? "not a group" : rc == VEIL_ESTATE ? "not an active member" : veil_strerror(rc));
        }
        veil_cli_after(a);
    } else {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: veil group create|invite|remove|leave ... (veil --help)");
    }
    if ((rc = save_now(a)) != 0) {
        return rc;
    }
    rc = online_sync(a);
    if (strcmp(sub, "leave") == 0) {
        if (rc == 0 && !a->o.json) {
            printf("left\n");
        }
    } else {
        veil_cli_print_room(a, room);
    }
    return rc;
}

int veil_cli_cmd_accept(veil_cli_app *a, int argc, char **argv)
{
    uint32_t room;
    int rc;

    if ((rc = need_args(a, argc, 2, 2, "accept ROOM")) != 0 || (rc = veil_cli_open(a)) != 0 ||
        (rc = veil_cli_find_room(a, argv[1], &room)) != 0) {
        return rc;
    }
    if ((rc = acted(a, veil_engine_invite_accept(a->e, veil_cli_now(), room),
                    "this room is not an invitation (already accepted?)", "accept")) != 0) {
        return rc;
    }
    rc = online_sync(a);
    veil_cli_print_room(a, room);
    return rc;
}

int veil_cli_cmd_decline(veil_cli_app *a, int argc, char **argv)
{
    uint32_t room;
    int rc;

    if ((rc = need_args(a, argc, 2, 2, "decline ROOM")) != 0 || (rc = veil_cli_open(a)) != 0 ||
        (rc = veil_cli_find_room(a, argv[1], &room)) != 0) {
        return rc;
    }
    if ((rc = acted(a, veil_engine_invite_decline(a->e, room), "this room is not an invitation", "decline")) != 0) {
        return rc;
    }
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "declined");
        cJSON_AddNumberToObject(o, "room", room);
        veil_cli_json_emit(o);
    } else {
        printf("declined\n");
    }
    return 0;
}
