/* SPDX-License-Identifier: ISC */
/*
 * Output (cli.h): a line of text per item for people, or with --json one
 * JSON object per line, each with a "type", for scripts. Human output goes
 * to stdout; warnings and errors to stderr.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

void (*veil_cli_out_before)(void);
void (*veil_cli_out_after)(void);

/* ---- hostile text ---- */

/*
 * Decodes one UTF-8 character of p[0..n) (n > 0): its length, and *cp; 0
 * when p does not start with a valid sequence (overlong, surrogate, beyond
 * U+10FFFF, truncated).
 */
static size_t utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
    uint32_t c;
    size_t len, i;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2;
        c = p[0] & 0x1FU;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3;
        c = p[0] & 0x0FU;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        c = p[0] & 0x07U;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (p[i] & 0x3FU);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return len;
}

/*
 * Characters a terminal acts on rather than shows, besides C0 and DEL: the
 * C1 controls (U+009B is CSI on terminals that take 8-bit controls) and the
 * bidirectional overrides and isolates, which reorder what follows them on
 * the line ("Trojan Source"): a peer could make its text read as ours.
 */
static bool invisible_control(uint32_t c)
{
    return (c >= 0x80 && c <= 0x9F) || c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2066 && c <= 0x2069);
}

size_t veil_cli_safe(char *out, size_t cap, const char *in, size_t len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0, o = 0;

    if (cap == 0) {
        return 0;
    }
    while (i < len) {
        unsigned char rep[4];
        size_t rl, step;
        uint32_t c = 0;

        step = utf8_char(p + i, len - i, &c);
        if (step == 0) { /* not UTF-8: U+FFFD */
            step = 1;
            rep[0] = 0xEF, rep[1] = 0xBF, rep[2] = 0xBD, rl = 3;
        } else if (c == '\t') {
            rep[0] = ' ', rl = 1;
        } else if (c < 0x20) { /* its Control Picture, U+2400 + c: ESC shows as a harmless symbol */
            rep[0] = 0xE2, rep[1] = 0x90, rep[2] = (unsigned char)(0x80 + c), rl = 3;
        } else if (c == 0x7F) { /* U+2421 */
            rep[0] = 0xE2, rep[1] = 0x90, rep[2] = 0xA1, rl = 3;
        } else if (invisible_control(c)) {
            rep[0] = 0xEF, rep[1] = 0xBF, rep[2] = 0xBD, rl = 3;
        } else {
            memcpy(rep, p + i, step);
            rl = step;
        }
        if (rl >= cap - o) {
            break; /* whole characters only */
        }
        memcpy(out + o, rep, rl);
        o += rl;
        i += step;
    }
    out[o] = '\0';
    return o;
}

/* Writes s (n octets, already formatted) as one line, made safe for a terminal; the copies are wiped. */
static void put_safe_line(FILE *f, const char *s, size_t n)
{
    size_t cap = 3 * n + 1; /* n <= a formatted line, far below SIZE_MAX / 3 */
    char *safe = malloc(cap);
    size_t m;

    if (safe == NULL) {
        fputs("veil: out of memory printing a line\n", stderr);
        return;
    }
    m = veil_cli_safe(safe, cap, s, n);
    fwrite(safe, 1, m, f);
    fputc('\n', f);
    fflush(f);
    sodium_memzero(safe, cap);
    free(safe);
}

void veil_cli_vline(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
    char small[512], *buf = small;
    size_t plen = strlen(prefix), cap = sizeof small;
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return;
    }
    if ((size_t)n + plen + 1 > cap) {
        cap = (size_t)n + plen + 1;
        buf = malloc(cap);
        if (buf == NULL) {
            fputs("veil: out of memory printing a line\n", stderr);
            return;
        }
    }
    memcpy(buf, prefix, plen);
    (void)vsnprintf(buf + plen, cap - plen, fmt, ap);
    if (veil_cli_out_before != NULL) {
        veil_cli_out_before();
    }
    put_safe_line(f, buf, plen + (size_t)n);
    if (veil_cli_out_after != NULL) {
        veil_cli_out_after();
    }
    sodium_memzero(buf, cap);
    if (buf != small) {
        free(buf);
    }
}

void veil_cli_line(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    veil_cli_vline(stdout, "", fmt, ap);
    va_end(ap);
}

void veil_cli_hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void veil_cli_json_hex(cJSON *o, const char *key, const uint8_t *p, size_t n)
{
    char hex[2 * 64 + 1];

    if (n > 64) {
        return;
    }
    veil_cli_hex(hex, p, n);
    cJSON_AddStringToObject(o, key, hex);
}

/*
 * cJSON escapes C0, '"' and '\\' but passes every other octet through: a
 * string that is not UTF-8 would make the line invalid JSON, and C1 or bidi
 * controls would reach a terminal the output is shown on. Outside strings
 * cJSON's output is ASCII, so every octet >= 0x7F is inside a string, where
 * a \\u escape means the same character. Returns a malloc'd copy or NULL.
 */
static char *json_safe(const char *s, size_t *out_len)
{
    size_t n = strlen(s), i = 0, o = 0, cap = 6 * n + 1;
    char *out = malloc(cap);

    if (out == NULL) {
        return NULL;
    }
    while (i < n) {
        uint32_t c = 0;
        size_t step = utf8_char((const unsigned char *)s + i, n - i, &c);
        if (step == 0 || c == 0x7F || invisible_control(c)) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", step == 0 ? 0xFFFDU : (unsigned)c);
            i += step == 0 ? 1 : step;
        } else {
            memcpy(out + o, s + i, step);
            o += step;
            i += step;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* The tree holds message texts: wiped before it is freed. */
static void json_wipe(cJSON *o)
{
    for (; o != NULL; o = o->next) {
        if (o->valuestring != NULL) {
            sodium_memzero(o->valuestring, strlen(o->valuestring));
        }
        json_wipe(o->child);
    }
}

void veil_cli_json_emit(cJSON *o)
{
    char *s, *safe;
    size_t n = 0;

    if (o == NULL) {
        return;
    }
    s = cJSON_PrintUnformatted(o);
    if (s != NULL) {
        safe = json_safe(s, &n);
        if (safe != NULL) {
            if (veil_cli_out_before != NULL) {
                veil_cli_out_before();
            }
            fwrite(safe, 1, n, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            if (veil_cli_out_after != NULL) {
                veil_cli_out_after();
            }
            sodium_memzero(safe, n);
            free(safe);
        }
        sodium_memzero(s, strlen(s));
        cJSON_free(s);
    }
    json_wipe(o);
    cJSON_Delete(o);
}

/* One human line on stdout, around the chat's input line; made safe for the terminal (veil_cli_safe). */
#define line veil_cli_line

const char *veil_cli_alert_str(int32_t code)
{
    switch (code) {
    case VEIL_ALERT_MALFORMED:
        return "a malformed frame or envelope was dropped";
    case VEIL_ALERT_FORGED:
        return "an envelope failed authentication (forged or tampered with) and was dropped";
    case VEIL_ALERT_REPLAY:
        return "a replayed message was dropped";
    case VEIL_ALERT_DUPLICATE:
        return "the relay delivered a sequence number twice or went backwards";
    case VEIL_ALERT_SEQ_GAP:
        return "the relay skipped sequence numbers";
    case VEIL_ALERT_DROPPED:
        return "messages of this sender are missing (dropped by the relay?)";
    case VEIL_ALERT_REORDERED:
        return "a message arrived out of order";
    case VEIL_ALERT_UNKNOWN_SENDER:
        return "an envelope under a key no member gave us was dropped";
    case VEIL_ALERT_NOT_MEMBER:
        return "a message or key from someone outside the group was dropped";
    case VEIL_ALERT_BAD_KIND:
        return "a message of a kind that does not belong here was dropped";
    case VEIL_ALERT_CMID:
        return "the relay's message id differs from the one inside the message";
    case VEIL_ALERT_ROSTER:
        return "an invalid change of the group's members was rejected";
    case VEIL_ALERT_ROLLBACK:
        return "the relay's history is behind what was already processed (rollback)";
    case VEIL_ALERT_BUNDLE:
        return "a prekey bundle of the wrong identity or with bad signatures was rejected";
    case VEIL_ALERT_PROTOCOL:
        return "the relay answered outside the protocol";
    case VEIL_ALERT_KEY_CHANGED:
        return "a contact's identity key changed: nothing is sent to or accepted from them until you compare "
               "safety numbers (`veil verify`) and accept the new key (`veil accept-key`)";
    case VEIL_ALERT_UNAUTHORIZED:
        return "an edit, deletion or invitation its sender may not make was rejected";
    case VEIL_ALERT_OVERFLOW:
        return "events were lost (the engine's queue was full)";
    case VEIL_ALERT_ROSTER_CONFLICT:
        return "our change of the group's members lost to a concurrent one: redo it";
    default:
        return "a check failed";
    }
}

static const char *alert_name(int32_t code)
{
    static const char *const names[] = {"",          "malformed",     "forged",     "replay",     "duplicate",
                                        "seq_gap",   "dropped",       "reordered",  "unknown_sender",
                                        "not_member", "bad_kind",     "cmid",       "roster",     "rollback",
                                        "bundle",    "protocol",      "key_changed", "unauthorized", "overflow",
                                        "roster_conflict"};
    return code > 0 && (size_t)code < sizeof names / sizeof names[0] ? names[code] : "unknown";
}

const char *veil_cli_frame_str(uint32_t t)
{
    switch (t) {
    case 0x10:
        return "AUTH";
    case 0x20:
        return "JOIN";
    case 0x22:
        return "LEAVE";
    case 0x30:
        return "PUBLISH";
    case 0x33:
        return "EPHEMERAL";
    case 0x40:
        return "HISTORY";
    case 0x50:
        return "INBOX_POST";
    case 0x52:
        return "INBOX_FETCH";
    case 0x54:
        return "INBOX_ACK";
    case 0x60:
        return "PREKEY_UPLOAD";
    case 0x62:
        return "PREKEY_FETCH";
    case 0x64:
        return "PREKEY_COUNT";
    default:
        return "a request";
    }
}

static const char *status_str(uint8_t s)
{
    switch (s) {
    case VEIL_MSG_PENDING:
        return "pending";
    case VEIL_MSG_SENT:
        return "sent";
    case VEIL_MSG_DELIVERED:
        return "delivered";
    case VEIL_MSG_READ:
        return "read";
    default:
        return "";
    }
}

static void fmt_time(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000U), now = time(NULL);
    struct tm tm, tn;

    if (ms == 0 || localtime_r(&t, &tm) == NULL || localtime_r(&now, &tn) == NULL) {
        snprintf(out, cap, "--:--");
        return;
    }
    if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday) {
        strftime(out, cap, "%H:%M", &tm);
    } else {
        strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
    }
}

static void json_room(veil_cli_app *a, cJSON *o, uint32_t room)
{
    char name[VEIL_NAME_MAX_BYTES + 32];

    cJSON_AddNumberToObject(o, "room", room);
    veil_cli_room_name(a, room, name, sizeof name);
    cJSON_AddStringToObject(o, "room_name", name);
}

static void json_party(veil_cli_app *a, cJSON *o, const char *key, uint32_t room, const uint8_t ik[32])
{
    char name[VEIL_NAME_MAX_BYTES + 32], k[32];

    veil_cli_party_name(a, room, ik, name, sizeof name);
    cJSON_AddStringToObject(o, key, name);
    snprintf(k, sizeof k, "%s_ik", key);
    veil_cli_json_hex(o, k, ik, 32);
}

/* ---- rooms, contacts, members ---- */

void veil_cli_print_room(veil_cli_app *a, uint32_t room)
{
    veil_room_info ri;
    char name[VEIL_NAME_MAX_BYTES + 32], hex[65];
    const char *state;
    size_t unread;

    if (veil_engine_room_get(a->e, room, &ri) != 0) {
        return;
    }
    state = ri.state == VEIL_ROOM_INVITED ? "invited" : ri.state == VEIL_ROOM_LEAVING ? "leaving" : "active";
    unread = veil_cli_log_count(&a->log, room, true);
    veil_cli_room_name(a, room, name, sizeof name);
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "room");
        json_room(a, o, room);
        cJSON_AddStringToObject(o, "kind", ri.kind == VEIL_ROOM_DIRECT ? "direct" : "group");
        cJSON_AddStringToObject(o, "state", state);
        if (ri.kind == VEIL_ROOM_GROUP) {
            cJSON_AddStringToObject(o, "title", ri.title);
            cJSON_AddBoolToObject(o, "admin", ri.admin != 0);
            cJSON_AddNumberToObject(o, "roster_rev", (double)ri.roster_rev);
            cJSON_AddNumberToObject(o, "epoch", ri.epoch);
        } else {
            cJSON_AddNumberToObject(o, "peer", ri.peer);
        }
        cJSON_AddNumberToObject(o, "members", ri.members);
        cJSON_AddNumberToObject(o, "last_seq", (double)ri.last_seq);
        cJSON_AddNumberToObject(o, "messages", (double)veil_cli_log_count(&a->log, room, false));
        cJSON_AddNumberToObject(o, "unread", (double)unread);
        veil_cli_json_hex(o, "room_id", ri.room_id, sizeof ri.room_id);
        veil_cli_json_emit(o);
        return;
    }
    veil_cli_hex(hex, ri.room_id, 4);
    if (ri.kind == VEIL_ROOM_DIRECT) {
        line("%3u  %-24s direct   %-8s %zu unread  [%s]", room, name, state, unread, hex);
    } else {
        line("%3u  %-24s group    %-8s %u member%s%s, %zu unread  [%s]", room, name, state, ri.members,
             ri.members == 1 ? "" : "s", ri.admin ? ", admin" : "", unread, hex);
    }
}

void veil_cli_print_contact(veil_cli_app *a, uint32_t contact)
{
    veil_contact_info ci;
    char hex[65];

    if (veil_engine_contact_get(a->e, contact, &ci) != 0) {
        return;
    }
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "contact");
        cJSON_AddNumberToObject(o, "contact", ci.id);
        cJSON_AddStringToObject(o, "name", ci.name);
        cJSON_AddStringToObject(o, "fingerprint", ci.fingerprint);
        veil_cli_json_hex(o, "ik", ci.ik, sizeof ci.ik);
        cJSON_AddBoolToObject(o, "verified", (ci.flags & VEIL_CONTACT_VERIFIED) != 0);
        cJSON_AddBoolToObject(o, "key_changed", (ci.flags & VEIL_CONTACT_KEY_CHANGED) != 0);
        cJSON_AddBoolToObject(o, "added", (ci.flags & VEIL_CONTACT_ADDED) != 0);
        cJSON_AddBoolToObject(o, "session", (ci.flags & VEIL_CONTACT_SESSION) != 0);
        cJSON_AddNumberToObject(o, "direct_room", ci.direct_room);
        veil_cli_json_emit(o);
        return;
    }
    veil_cli_hex(hex, ci.ik, 8);
    line("%3u  %-24s %.5s %.5s %.5s %.5s %.5s %.5s  %s%s", ci.id, ci.name[0] ? ci.name : "(no name)",
         ci.fingerprint, ci.fingerprint + 5, ci.fingerprint + 10, ci.fingerprint + 15, ci.fingerprint + 20,
         ci.fingerprint + 25, (ci.flags & VEIL_CONTACT_KEY_CHANGED) ? "KEY CHANGED" : (ci.flags & VEIL_CONTACT_VERIFIED) ? "verified" : "unverified",
         (ci.flags & VEIL_CONTACT_SESSION) ? "" : ", no session yet");
}

void veil_cli_print_member(veil_cli_app *a, uint32_t room, const veil_member_info *mi)
{
    char name[VEIL_NAME_MAX_BYTES + 32];
    const char *role = mi->role == VEIL_ROSTER_ROLE_ADMIN ? "admin" : "member";
    veil_room_info ri;
    uint8_t own[VEIL_SIGN_PK_BYTES];
    bool present = mi->present != 0;

    /* The engine tracks the others' presence; ours is our own joined connection. */
    veil_engine_identity(a->e, own);
    if (memcmp(own, mi->ik, sizeof own) == 0) {
        present = a->ready && veil_engine_room_get(a->e, room, &ri) == 0 && ri.joined;
    }
    veil_cli_party_name(a, room, mi->ik, name, sizeof name);
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "member");
        json_room(a, o, room);
        json_party(a, o, "member", room, mi->ik);
        cJSON_AddNumberToObject(o, "contact", mi->contact);
        cJSON_AddStringToObject(o, "role", role);
        cJSON_AddBoolToObject(o, "present", present);
        cJSON_AddBoolToObject(o, "typing", mi->typing != 0);
        cJSON_AddBoolToObject(o, "has_key", mi->has_key != 0);
        veil_cli_json_emit(o);
        return;
    }
    line("  %-24s %-6s%s%s", name, role, present ? "  here" : "", mi->typing ? "  typing" : "");
}

/* ---- messages ---- */

static void quote_of(veil_cli_app *a, const veil_cli_msg *m, char *out, size_t cap)
{
    const veil_cli_msg *q = veil_cli_log_find(&a->log, m->room, m->ref);
    size_t n;

    if (q == NULL) {
        char hex[33];
        veil_cli_hex(hex, m->ref, 4);
        snprintf(out, cap, "re %s", hex);
        return;
    }
    n = q->len > 24 ? 24 : q->len;
    /* Do not cut a UTF-8 sequence. */
    while (n > 0 && n < q->len && ((unsigned char)q->text[n] & 0xC0) == 0x80) {
        n--;
    }
    snprintf(out, cap, "re #%u \"%.*s%s\"", q->num, (int)n, q->text, n < q->len ? "..." : "");
}

void veil_cli_print_msg(veil_cli_app *a, const veil_cli_msg *m, bool backlog)
{
    char who[VEIL_NAME_MAX_BYTES + 32], when[32], quote[96] = "", reacts[512] = "", status[48] = "";
    uint32_t i;
    size_t rn = 0;

    veil_cli_party_name(a, m->room, m->author, who, sizeof who);
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject(), *arr;
        cJSON_AddStringToObject(o, "type", "message");
        json_room(a, o, m->room);
        cJSON_AddNumberToObject(o, "num", m->num);
        veil_cli_json_hex(o, "mid", m->mid, 16);
        cJSON_AddNumberToObject(o, "seq", (double)m->seq);
        json_party(a, o, "from", m->room, m->author);
        cJSON_AddBoolToObject(o, "own", (m->flags & VEIL_CLI_MSG_OWN) != 0);
        cJSON_AddStringToObject(o, "kind", m->kind == VEIL_PK_REPLY ? "reply" : "text");
        if (m->kind == VEIL_PK_REPLY) {
            const veil_cli_msg *q = veil_cli_log_find(&a->log, m->room, m->ref);
            veil_cli_json_hex(o, "reply_to", m->ref, 16);
            if (q != NULL) {
                cJSON_AddNumberToObject(o, "reply_to_num", q->num);
            }
        }
        cJSON_AddStringToObject(o, "text", m->text);
        cJSON_AddNumberToObject(o, "ts", (double)m->ts);
        cJSON_AddBoolToObject(o, "edited", (m->flags & VEIL_CLI_MSG_EDITED) != 0);
        cJSON_AddBoolToObject(o, "deleted", (m->flags & VEIL_CLI_MSG_DELETED) != 0);
        cJSON_AddBoolToObject(o, "late", (m->flags & VEIL_CLI_MSG_LATE) != 0);
        cJSON_AddBoolToObject(o, "history", (m->flags & VEIL_CLI_MSG_HISTORY) != 0);
        cJSON_AddBoolToObject(o, "backlog", backlog);
        if (m->flags & VEIL_CLI_MSG_OWN) {
            cJSON_AddStringToObject(o, "status", (m->flags & VEIL_CLI_MSG_FAILED) ? "failed" : status_str(m->status));
            cJSON_AddNumberToObject(o, "delivered", m->delivered);
            cJSON_AddNumberToObject(o, "read", m->read);
        }
        arr = cJSON_AddArrayToObject(o, "reactions");
        for (i = 0; i < m->nreacts; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "emoji", m->reacts[i].emoji);
            json_party(a, r, "from", m->room, m->reacts[i].author);
            cJSON_AddItemToArray(arr, r);
        }
        veil_cli_json_emit(o);
        return;
    }
    fmt_time(m->ts, when, sizeof when);
    if (m->kind == VEIL_PK_REPLY) {
        char q[80];
        quote_of(a, m, q, sizeof q);
        snprintf(quote, sizeof quote, " (%s)", q);
    }
    for (i = 0; i < m->nreacts; i++) {
        char rw[VEIL_NAME_MAX_BYTES + 32];
        int w;
        veil_cli_party_name(a, m->room, m->reacts[i].author, rw, sizeof rw);
        /* Names and emoji are the peers' (up to ~100 octets a reaction): keep room for " ...]". */
        w = snprintf(reacts + rn, sizeof reacts - rn - 6, "%s%s %s", i == 0 ? "  [" : ", ", m->reacts[i].emoji, rw);
        if (w < 0 || (size_t)w >= sizeof reacts - rn - 6) {
            reacts[rn] = '\0'; /* drop the partial entry */
            memcpy(reacts + rn, rn > 0 ? " ..." : "  [...", rn > 0 ? 5 : 7);
            rn += rn > 0 ? 4 : 6;
            break;
        }
        rn += (size_t)w;
    }
    if (rn > 0) {
        memcpy(reacts + rn, "]", 2);
    }
    if (m->flags & VEIL_CLI_MSG_OWN) {
        if (m->flags & VEIL_CLI_MSG_FAILED) {
            snprintf(status, sizeof status, "  (failed)");
        } else if (m->status == VEIL_MSG_READ) {
            snprintf(status, sizeof status, "  (read by %u)", m->read);
        } else if (m->status == VEIL_MSG_DELIVERED) {
            snprintf(status, sizeof status, "  (delivered to %u)", m->delivered);
        } else if (m->status == VEIL_MSG_PENDING) {
            snprintf(status, sizeof status, "  (pending)");
        }
    }
    if (m->flags & VEIL_CLI_MSG_DELETED) {
        line("[#%u %s] %s%s: (deleted)", m->num, when, who, quote);
    } else {
        line("[#%u %s] %s%s: %s%s%s%s%s", m->num, when, who, quote, m->text,
             (m->flags & VEIL_CLI_MSG_EDITED) ? "  (edited)" : "", (m->flags & VEIL_CLI_MSG_LATE) ? "  (late)" : "",
             reacts, status);
    }
}

/* ---- events ---- */

static void target_ref(veil_cli_app *a, uint32_t room, const uint8_t mid[16], char *out, size_t cap, cJSON *o,
                       const char *key)
{
    const veil_cli_msg *m = veil_cli_log_find(&a->log, room, mid);
    char hex[33];

    if (o != NULL) {
        veil_cli_json_hex(o, key, mid, 16);
        if (m != NULL) {
            cJSON_AddNumberToObject(o, "num", m->num);
        }
        return;
    }
    if (m != NULL) {
        snprintf(out, cap, "#%u", m->num);
    } else {
        veil_cli_hex(hex, mid, 4);
        snprintf(out, cap, "message %s", hex);
    }
}

static const char *event_type(uint32_t t)
{
    switch (t) {
    case VEIL_EV_EDIT:
        return "edit";
    case VEIL_EV_DELETE:
        return "delete";
    case VEIL_EV_REACTION:
        return "reaction";
    case VEIL_EV_TYPING:
        return "typing";
    case VEIL_EV_RECEIPT:
        return "receipt";
    case VEIL_EV_SENT:
        return "sent";
    case VEIL_EV_FAILED:
        return "failed";
    case VEIL_EV_PRESENCE:
        return "presence";
    case VEIL_EV_NAME:
        return "name";
    case VEIL_EV_MEMBER:
        return "member";
    case VEIL_EV_REMOVED:
        return "removed";
    case VEIL_EV_ROOM:
        return "new_room";
    case VEIL_EV_CONTACT:
        return "contact_update";
    case VEIL_EV_CAUGHT_UP:
        return "caught_up";
    case VEIL_EV_READY:
        return "ready";
    case VEIL_EV_HISTORY:
        return "history";
    case VEIL_EV_ALERT:
        return "alert";
    case VEIL_EV_ERROR:
        return "relay_error";
    default:
        return "event";
    }
}

void veil_cli_print_event(veil_cli_app *a, const veil_event *ev)
{
    char who[VEIL_NAME_MAX_BYTES + 32] = "", room[VEIL_NAME_MAX_BYTES + 32] = "", ref[48] = "";
    cJSON *o = NULL;
    bool json = a->o.json;
    veil_cli_msg *m;

    if (json) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", event_type(ev->type));
        if (ev->room != 0) {
            json_room(a, o, ev->room);
        }
    }
    if (ev->room != 0) {
        veil_cli_room_name(a, ev->room, room, sizeof room);
    }
    if (!sodium_is_zero(ev->from, sizeof ev->from)) {
        veil_cli_party_name(a, ev->room, ev->from, who, sizeof who);
        if (json) {
            json_party(a, o, "from", ev->room, ev->from);
        }
    }
    switch (ev->type) {
    case VEIL_EV_MESSAGE:
        m = veil_cli_log_find(&a->log, ev->room, ev->mid);
        cJSON_Delete(o);
        if (m != NULL) {
            veil_cli_print_msg(a, m, false);
        }
        return;
    case VEIL_EV_EDIT:
        target_ref(a, ev->room, ev->ref, ref, sizeof ref, o, "mid");
        if (json) {
            cJSON_AddStringToObject(o, "text", ev->text);
        } else {
            line("* %s edited %s: %s", who, ref, ev->text);
        }
        break;
    case VEIL_EV_DELETE:
        target_ref(a, ev->room, ev->ref, ref, sizeof ref, o, "mid");
        if (!json) {
            line("* %s deleted %s", who, ref);
        }
        break;
    case VEIL_EV_REACTION:
        target_ref(a, ev->room, ev->ref, ref, sizeof ref, o, "mid");
        if (json) {
            cJSON_AddStringToObject(o, "emoji", ev->text);
            cJSON_AddBoolToObject(o, "on", (ev->flags & VEIL_EVF_ON) != 0);
        } else if (ev->flags & VEIL_EVF_ON) {
            line("* %s reacted %s to %s", who, ev->text, ref);
        } else {
            line("* %s took back %s from %s", who, ev->text, ref);
        }
        break;
    case VEIL_EV_TYPING:
        if (json) {
            cJSON_AddBoolToObject(o, "on", (ev->flags & VEIL_EVF_ON) != 0);
        } else if (ev->flags & VEIL_EVF_ON) {
            line("* %s is typing...", who);
        }
        break;
    case VEIL_EV_RECEIPT:
        target_ref(a, ev->room, ev->ref, ref, sizeof ref, o, "mid");
        if (json) {
            cJSON_AddStringToObject(o, "kind", ev->kind == VEIL_PK_READ ? "read" : "delivered");
        } else {
            line("* %s %s %s", ref, ev->kind == VEIL_PK_READ ? "read by" : "delivered to", who);
        }
        break;
    case VEIL_EV_SENT:
        target_ref(a, ev->room, ev->mid, ref, sizeof ref, o, "mid");
        if (json) {
            cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
        }
        break;
    case VEIL_EV_FAILED:
        target_ref(a, ev->room, ev->mid, ref, sizeof ref, o, "mid");
        if (json) {
            cJSON_AddNumberToObject(o, "code", ev->code);
            cJSON_AddStringToObject(o, "error", veil_strerror(ev->code));
        } else {
            line("! %s was refused by the relay: %s", ref, veil_strerror(ev->code));
        }
        break;
    case VEIL_EV_PRESENCE:
        if (json) {
            cJSON_AddBoolToObject(o, "on", (ev->flags & VEIL_EVF_ON) != 0);
            cJSON_AddBoolToObject(o, "unknown", (ev->flags & VEIL_EVF_UNKNOWN) != 0);
        } else if (ev->flags & VEIL_EVF_UNKNOWN) {
            line("* someone the group does not know %s (the relay says so)",
                 (ev->flags & VEIL_EVF_ON) ? "is here" : "left");
        } else if (!(ev->flags & VEIL_EVF_OWN)) {
            line("* %s %s", who, (ev->flags & VEIL_EVF_ON) ? "is here" : "left");
        }
        break;
    case VEIL_EV_NAME:
        if (json) {
            cJSON_AddStringToObject(o, "name", ev->text);
        } else if (!(ev->flags & VEIL_EVF_OWN)) {
            line("* %s calls themself \"%s\"", who, ev->text);
        }
        break;
    case VEIL_EV_MEMBER:
        if (json) {
            cJSON_AddBoolToObject(o, "added", (ev->flags & VEIL_EVF_ADDED) != 0);
            cJSON_AddBoolToObject(o, "removed", (ev->flags & VEIL_EVF_REMOVED) != 0);
        } else {
            line("* %s %s %s", who, (ev->flags & VEIL_EVF_ADDED) ? "joined" : "left", room);
        }
        break;
    case VEIL_EV_REMOVED:
        if (!json) {
            line("* you are no longer a member of %s", room);
        }
        break;
    case VEIL_EV_ROOM:
        if (json) {
            cJSON_AddBoolToObject(o, "invite", (ev->flags & VEIL_EVF_INVITE) != 0);
            cJSON_AddBoolToObject(o, "direct", (ev->flags & VEIL_EVF_DIRECT) != 0);
        } else if (ev->flags & VEIL_EVF_INVITE) {
            line("* you are invited to %s (veil accept %u)", room, ev->room);
        } else {
            line("* new room %s", room);
        }
        break;
    case VEIL_EV_CONTACT:
        if (json) {
            cJSON_AddNumberToObject(o, "contact", ev->contact);
            cJSON_AddBoolToObject(o, "new", (ev->flags & VEIL_EVF_NEW) != 0);
            cJSON_AddBoolToObject(o, "key_changed", (ev->flags & VEIL_EVF_KEY_CHANGED) != 0);
        } else if (ev->flags & VEIL_EVF_KEY_CHANGED) {
            line("! %s's identity key changed: compare safety numbers (veil verify %u), then accept it "
                 "(veil accept-key %u)",
                 who, ev->contact, ev->contact);
        } else if (ev->flags & VEIL_EVF_NEW) {
            line("* new contact %s", who);
        }
        break;
    case VEIL_EV_CAUGHT_UP:
        if (json) {
            cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
        }
        break;
    case VEIL_EV_READY:
        break;
    case VEIL_EV_HISTORY:
        if (json) {
            cJSON_AddNumberToObject(o, "n", (double)ev->n);
            cJSON_AddBoolToObject(o, "more", (ev->flags & VEIL_EVF_MORE) != 0);
        } else {
            line("* %llu older message%s fetched%s", (unsigned long long)ev->n, ev->n == 1 ? "" : "s",
                 (ev->flags & VEIL_EVF_MORE) ? "; /more for more" : "");
        }
        break;
    case VEIL_EV_ALERT:
        if (json) {
            cJSON_AddStringToObject(o, "alert", alert_name(ev->code));
            cJSON_AddNumberToObject(o, "code", ev->code);
            cJSON_AddStringToObject(o, "message", veil_cli_alert_str(ev->code));
            cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
            cJSON_AddNumberToObject(o, "n", (double)ev->n);
        } else if (ev->code == VEIL_ALERT_REORDERED) {
            /* Informative: the message is shown, flagged late. */
        } else if (a->on_event == NULL) {
            veil_cli_warn(a, "%s%s%s%s%s", room[0] ? room : "", room[0] ? ": " : "", veil_cli_alert_str(ev->code),
                          who[0] ? " -- from " : "", who);
        } else {
            line("! %s%s%s%s", veil_cli_alert_str(ev->code), who[0] ? " (from " : "", who, who[0] ? ")" : "");
        }
        break;
    case VEIL_EV_ERROR:
        if (json) {
            cJSON_AddNumberToObject(o, "code", ev->code);
            cJSON_AddStringToObject(o, "error", veil_err_name(ev->code));
            cJSON_AddStringToObject(o, "request", veil_cli_frame_str(ev->kind));
            cJSON_AddStringToObject(o, "message", veil_strerror(ev->code));
        } else if (ev->kind == 0x62 && ev->code == VEIL_ENOPREKEY) {
            veil_cli_warn(a, "%s has published no prekeys on this relay (has %s run `veil init` with it?); "
                             "retrying later",
                          who[0] ? who : "the contact", who[0] ? who : "the contact");
        } else {
            veil_cli_warn(a, "the relay refused %s%s%s: %s", veil_cli_frame_str(ev->kind), room[0] ? " in " : "", room,
                          veil_strerror(ev->code));
        }
        break;
    default:
        break;
    }
    if (json) {
        veil_cli_json_emit(o);
    }
}
