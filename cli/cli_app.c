/* SPDX-License-Identifier: ISC */
/*
 * The glue between the engine and everything else (cli.h). After every call
 * into the engine, veil_cli_after() takes its events (into the message log,
 * then to the running command), saves the state when it is dirty, and only
 * then hands the queued frames to the transport: the host contract of
 * veil_engine.h (state saved before the frames of the call that changed it).
 */
#include "cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

static void log_event(veil_cli_app *a, const veil_event *ev)
{
    veil_cli_msg *m;
    veil_msg_info mi;
    bool dup;
    uint16_t flags = 0;

    switch (ev->type) {
    case VEIL_EV_MESSAGE:
        if (ev->flags & VEIL_EVF_OWN) {
            flags |= VEIL_CLI_MSG_OWN;
        }
        if (ev->flags & VEIL_EVF_LATE) {
            flags |= VEIL_CLI_MSG_LATE;
        }
        if (ev->flags & VEIL_EVF_HISTORY) {
            flags |= VEIL_CLI_MSG_HISTORY;
        }
        m = veil_cli_log_add(&a->log, ev->room, ev->seq, ev->mid, ev->from, (uint8_t)ev->kind,
                             ev->kind == VEIL_PK_REPLY ? ev->ref : NULL, ev->text, ev->text_len, ev->ts, flags, &dup);
        if (m == NULL) {
            veil_cli_warn(a, "out of memory: a message could not be kept in the log");
        } else if (!dup && (flags & VEIL_CLI_MSG_OWN)) {
            m->status = VEIL_MSG_SENT;
        }
        break;
    case VEIL_EV_EDIT:
        m = veil_cli_log_find(&a->log, ev->room, ev->ref);
        if (m != NULL && !(m->flags & VEIL_CLI_MSG_DELETED)) {
            if (veil_cli_log_set_text(&a->log, m, ev->text, ev->text_len) == 0) {
                m->flags |= VEIL_CLI_MSG_EDITED;
            }
        }
        break;
    case VEIL_EV_DELETE:
        m = veil_cli_log_find(&a->log, ev->room, ev->ref);
        if (m != NULL) {
            (void)veil_cli_log_set_text(&a->log, m, "", 0);
            m->flags |= VEIL_CLI_MSG_DELETED;
            m->nreacts = 0;
            a->log.dirty = true;
        }
        break;
    case VEIL_EV_REACTION:
        m = veil_cli_log_find(&a->log, ev->room, ev->ref);
        if (m != NULL) {
            veil_cli_log_react(&a->log, m, ev->from, ev->text, (ev->flags & VEIL_EVF_ON) != 0);
        }
        break;
    case VEIL_EV_SENT:
        m = veil_cli_log_find(&a->log, ev->room, ev->mid);
        if (m != NULL) {
            veil_cli_log_set_seq(&a->log, m, ev->seq);
            if (m->status < VEIL_MSG_SENT) {
                m->status = VEIL_MSG_SENT;
            }
            a->log.dirty = true;
        }
        break;
    case VEIL_EV_FAILED:
        m = veil_cli_log_find(&a->log, ev->room, ev->mid);
        if (m != NULL) {
            m->flags |= VEIL_CLI_MSG_FAILED;
            a->log.dirty = true;
        }
        break;
    case VEIL_EV_RECEIPT:
        m = veil_cli_log_find(&a->log, ev->room, ev->ref);
        if (m != NULL) {
            if (veil_engine_message(a->e, ev->room, ev->ref, &mi) == 0) {
                m->status = mi.status;
                m->delivered = mi.delivered;
                m->read = mi.read;
            } else if (ev->kind == VEIL_PK_READ) {
                m->read++;
                m->status = VEIL_MSG_READ;
            } else {
                m->delivered++;
                if (m->status < VEIL_MSG_DELIVERED) {
                    m->status = VEIL_MSG_DELIVERED;
                }
            }
            a->log.dirty = true;
        }
        break;
    default:
        break;
    }
}

static void on_engine_event(veil_cli_app *a, const veil_event *ev)
{
    switch (ev->type) {
    case VEIL_EV_CONNECT:
        a->want_connect = true;
        break;
    case VEIL_EV_CLOSE:
        veil_cli_net_abandon(a);
        if (a->ready) {
            a->ready = false;
            if (a->on_conn != NULL) {
                a->on_conn(a, false);
            }
        }
        break;
    case VEIL_EV_READY:
        a->ready = true;
        a->ever_ready = true;
        a->conn_failures = 0;
        if (a->on_conn != NULL) {
            a->on_conn(a, true);
        }
        break;
    case VEIL_EV_ERROR:
        a->relay_err = ev->code;
        a->relay_err_kind = ev->kind;
        break;
    case VEIL_EV_ALERT:
        if (ev->code == VEIL_ALERT_KEY_CHANGED) {
            a->key_changed = true;
        }
        break;
    default:
        log_event(a, ev);
        break;
    }
    if (a->on_event != NULL) {
        a->on_event(a, ev);
    } else if (ev->type == VEIL_EV_ALERT || ev->type == VEIL_EV_ERROR) {
        veil_cli_print_event(a, ev);
    }
}

static void check_goal(veil_cli_app *a)
{
    if (a->done || a->persistent || a->net == NULL) {
        return;
    }
    if (!a->goal) {
        bool met = a->goal_met != NULL ? a->goal_met(a) : a->ready;
        if (a->done || !met) {
            return;
        }
        a->goal = true;
        a->settle_until = veil_cli_now() + VEIL_CLI_SETTLE_MS;
    }
    if (veil_cli_synced(a)) {
        a->done = true;
    }
}

static void remember_names(veil_cli_app *a)
{
    uint32_t ids[VEIL_ENGINE_MAX_ROOMS];
    size_t n = veil_engine_rooms(a->e, ids, VEIL_ENGINE_MAX_ROOMS), i;

    for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
        a->names[i].room = i < n ? ids[i] : 0;
        if (i < n) {
            a->names[i].room = 0; /* veil_cli_room_name() must not answer from the cache being rebuilt */
            veil_cli_room_name(a, ids[i], a->names[i].name, sizeof a->names[i].name);
            a->names[i].room = ids[i];
        }
    }
}

void veil_cli_after(veil_cli_app *a)
{
    const uint8_t *f;
    size_t n;

    if (a->e == NULL) {
        return;
    }
    if (a->in_after) {
        a->again = true;
        return;
    }
    a->in_after = true;
    do {
        a->again = false;
        while (veil_engine_next_event(a->e, &a->ev)) {
            on_engine_event(a, &a->ev);
        }
        sodium_memzero(a->ev.text, sizeof a->ev.text);
        if (veil_cli_store_save(a) != 0) {
            /* Nothing may be sent that the saved state does not account for: stop here. */
            while (veil_engine_next_frame(a->e, &f, &n)) {
            }
            veil_cli_net_abandon(a);
            a->rc = VEIL_CLI_EIO;
            a->done = true;
            break;
        }
        while (veil_engine_next_frame(a->e, &f, &n)) {
            veil_cli_net_send(a, f, n);
        }
        if (a->want_connect && a->net != NULL && !a->done) {
            a->want_connect = false;
            veil_cli_net_connect(a);
        }
    } while (a->again);
    a->in_after = false;
    remember_names(a);
    check_goal(a);
    veil_cli_net_rearm(a);
    if (a->done) {
        veil_cli_net_wake(a);
    }
}

void veil_cli_on_open(veil_cli_app *a)
{
    veil_engine_connected(a->e, veil_cli_now());
    veil_cli_after(a);
}

void veil_cli_on_closed(veil_cli_app *a, const char *why)
{
    snprintf(a->conn_err, sizeof a->conn_err, "%s", why);
    a->ready = false;
    if (!a->ever_ready) {
        a->conn_failures++;
    }
    veil_engine_disconnected(a->e, veil_cli_now());
    if (a->on_conn != NULL) {
        a->on_conn(a, false);
    }
    if (!a->persistent && !a->ever_ready && a->conn_failures >= VEIL_CLI_MAX_CONNECT_FAILURES && !a->done) {
        a->rc = veil_cli_fail(a, VEIL_CLI_EUNREACH, "relay unreachable: %s", why);
        a->done = true;
    }
    veil_cli_after(a);
}

void veil_cli_on_frame(veil_cli_app *a, const uint8_t *p, size_t n)
{
    (void)veil_engine_receive(a->e, veil_cli_now(), p, n);
    veil_cli_after(a);
}

void veil_cli_on_timer(veil_cli_app *a)
{
    uint64_t now = veil_cli_now();

    if (!a->done && a->give_up_at != 0 && now >= a->give_up_at) {
        a->done = true;
        if (a->goal) {
            a->rc = 0; /* what is still in flight is saved and resumes next time */
        } else if (!a->ever_ready) {
            a->rc = veil_cli_fail(a, VEIL_CLI_EUNREACH, "relay unreachable: %s",
                                  a->conn_err[0] != '\0' ? a->conn_err : "no answer within the timeout");
        } else if (a->relay_err != 0) {
            a->rc = veil_cli_fail(a, VEIL_CLI_ERELAY, "the relay refused %s: %s",
                                  veil_cli_frame_str(a->relay_err_kind), veil_strerror(a->relay_err));
        } else if (!a->ready) {
            a->rc = veil_cli_fail(a, VEIL_CLI_EUNREACH, "lost the relay: %s; the work is saved and resumes next time",
                                  a->conn_err);
        } else {
            a->rc = veil_cli_fail(a, VEIL_CLI_ETIMEOUT,
                                  "the relay did not confirm within %u s; the work is saved and resumes next time",
                                  a->o.timeout_s);
        }
    }
    if (!a->done && a->settle_until != 0 && now >= a->settle_until) {
        a->done = true;
    }
    veil_engine_tick(a->e, now);
    if (a->on_tick != NULL && !a->done) {
        a->on_tick(a);
    }
    veil_cli_after(a);
}

bool veil_cli_synced(veil_cli_app *a)
{
    uint32_t ids[VEIL_ENGINE_MAX_ROOMS];
    size_t n, i;
    veil_room_info ri;
    uint64_t d, now;

    if (!a->ready) {
        return false;
    }
    n = veil_engine_rooms(a->e, ids, VEIL_ENGINE_MAX_ROOMS);
    for (i = 0; i < n; i++) {
        if (veil_engine_room_get(a->e, ids[i], &ri) == 0 && ri.state == VEIL_ROOM_ACTIVE &&
            !(ri.joined && ri.caught_up)) {
            return false;
        }
    }
    /*
     * No request in flight: each has a deadline at most VEIL_ENGINE_REQUEST_TIMEOUT_MS ahead, and
     * veil_engine_deadline() is the earliest of them and of every other timer. (The engine declares no
     * "idle" query; something due within that window that is not a request, a receipt batch, is worth
     * waiting for too.)
     */
    d = veil_engine_deadline(a->e);
    now = veil_cli_now();
    return d == 0 || d > now + VEIL_ENGINE_REQUEST_TIMEOUT_MS;
}

int veil_cli_online(veil_cli_app *a)
{
    int rc;

    if (a->o.offline) {
        return 0;
    }
    a->done = false;
    a->rc = 0;
    a->goal = false;
    a->settle_until = 0;
    a->conn_failures = 0;
    a->ever_ready = false;
    rc = veil_cli_net_init(a, false);
    if (rc != 0) {
        return rc;
    }
    a->give_up_at = veil_cli_now() + (uint64_t)a->o.timeout_s * 1000U;
    rc = veil_cli_net_run(a);
    veil_cli_net_free(a);
    /* Ready for another phase (a chat, a command after a sync for a name). */
    a->done = false;
    a->rc = 0;
    a->goal = false;
    a->give_up_at = 0;
    a->settle_until = 0;
    /* The connection is gone with the context: the engine must know, or a later phase would wait on it. */
    a->ready = false;
    veil_engine_disconnected(a->e, veil_cli_now());
    veil_cli_after(a);
    if (veil_cli_store_save(a) != 0 && rc == 0) {
        rc = VEIL_CLI_EIO;
    }
    return rc;
}

/* ---- names ---- */

#define AMBIGUOUS (-1) /* internal: several matches, not reported yet */

/* The outcome of a name lookup: exactly one match, or an error that says which way it failed. */
static int pick(veil_cli_app *a, const char *q, const uint32_t *found, size_t nf, uint32_t *out, bool report,
                const char *what, const char *hint)
{
    if (nf == 1) {
        *out = found[0];
        return 0;
    }
    if (!report) {
        return nf == 0 ? VEIL_CLI_EUNKNOWN : AMBIGUOUS;
    }
    if (nf == 0) {
        return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "unknown %s \"%s\" (`veil %ss` lists them)", what, q, what);
    }
    return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "\"%s\" names %zu %ss: use %s", q, nf, what, hint);
}

static bool all_digits(const char *s, size_t *n)
{
    size_t i = 0, d = 0;

    for (; s[i] != '\0'; i++) {
        if (isdigit((unsigned char)s[i])) {
            d++;
        } else if (s[i] != ' ') {
            return false;
        }
    }
    *n = d;
    return d > 0;
}

static bool hex_prefix(const char *q, const uint8_t *p, size_t n)
{
    char hex[2 * 64 + 1];
    size_t ql = strlen(q);

    if (n > 64 || ql > 2 * n) {
        return false;
    }
    veil_cli_hex(hex, p, n);
    return strncasecmp(hex, q, ql) == 0;
}

static bool is_hex(const char *q, size_t min)
{
    size_t i;

    for (i = 0; q[i] != '\0'; i++) {
        if (!isxdigit((unsigned char)q[i])) {
            return false;
        }
    }
    return i >= min;
}

static bool fp_prefix(const char *q, const char *fp)
{
    size_t i, j = 0;

    for (i = 0; q[i] != '\0'; i++) {
        if (q[i] == ' ') {
            continue;
        }
        if (fp[j] == '\0' || fp[j] != q[i]) {
            return false;
        }
        j++;
    }
    return true;
}

static int find_contact(veil_cli_app *a, const char *q, uint32_t *contact, bool report)
{
    uint32_t ids[VEIL_ENGINE_MAX_CONTACTS], found[VEIL_ENGINE_MAX_CONTACTS];
    size_t n = veil_engine_contacts(a->e, ids, VEIL_ENGINE_MAX_CONTACTS), i, nf = 0, digits;
    veil_contact_info ci;
    int pass;

    *contact = 0;
    if (q[0] == '@') {
        q++;
    }
    if (q[0] == '\0') {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "no contact named");
    }
    /* In order of precedence: a handle number, an exact name, a name ignoring case, a fingerprint or key prefix, a
     * name prefix. */
    for (pass = 0; pass < 5 && nf == 0; pass++) {
        for (i = 0; i < n; i++) {
            bool hit = false;
            if (veil_engine_contact_get(a->e, ids[i], &ci) != 0) {
                continue;
            }
            switch (pass) {
            case 0:
                hit = all_digits(q, &digits) && digits <= 5 && strtoul(q, NULL, 10) == ci.id;
                break;
            case 1:
                hit = strcmp(ci.name, q) == 0;
                break;
            case 2:
                hit = strcasecmp(ci.name, q) == 0;
                break;
            case 3:
                hit = (all_digits(q, &digits) && digits >= 6 && fp_prefix(q, ci.fingerprint)) ||
                      (is_hex(q, 8) && hex_prefix(q, ci.ik, sizeof ci.ik));
                break;
            default:
                hit = strncasecmp(ci.name, q, strlen(q)) == 0;
                break;
            }
            if (hit) {
                found[nf++] = ids[i];
            }
        }
    }
    return pick(a, q, found, nf, contact, report, "contact", "the number or the fingerprint (`veil contacts`)");
}

static int find_room(veil_cli_app *a, const char *q, uint32_t *room, bool report)
{
    uint32_t ids[VEIL_ENGINE_MAX_ROOMS], found[VEIL_ENGINE_MAX_ROOMS];
    size_t n = veil_engine_rooms(a->e, ids, VEIL_ENGINE_MAX_ROOMS), i, nf = 0, digits;
    veil_room_info ri;
    veil_contact_info ci;
    bool at = q[0] == '@';
    const char *name = at ? q + 1 : q;
    int pass;

    *room = 0;
    if (name[0] == '\0') {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "no room named");
    }
    for (pass = 0; pass < 5 && nf == 0; pass++) {
        for (i = 0; i < n; i++) {
            bool hit = false;
            const char *title;
            if (veil_engine_room_get(a->e, ids[i], &ri) != 0) {
                continue;
            }
            title = ri.title;
            if (ri.kind == VEIL_ROOM_DIRECT) {
                title = veil_engine_contact_get(a->e, ri.peer, &ci) == 0 ? ci.name : "";
            } else if (at) {
                continue; /* @name: direct rooms only */
            }
            switch (pass) {
            case 0:
                hit = !at && all_digits(name, &digits) && digits <= 5 && strtoul(name, NULL, 10) == ri.id;
                break;
            case 1:
                hit = strcmp(title, name) == 0;
                break;
            case 2:
                hit = strcasecmp(title, name) == 0;
                break;
            case 3:
                hit = !at && is_hex(name, 8) && hex_prefix(name, ri.room_id, sizeof ri.room_id);
                break;
            default:
                hit = strncasecmp(title, name, strlen(name)) == 0;
                break;
            }
            if (hit) {
                found[nf++] = ids[i];
            }
        }
    }
    return pick(a, q, found, nf, room, report, "room", "its number (`veil rooms`)");
}

/*
 * A name not known yet may be on its way (an invitation or a first message in the inbox): outside an online
 * phase, and unless --offline, one sync with the relay before giving up.
 */
static bool sync_for_name(veil_cli_app *a)
{
    void (*on_event)(veil_cli_app *, const veil_event *) = a->on_event;
    bool (*goal_met)(veil_cli_app *) = a->goal_met;
    int rc;

    if (a->o.offline || a->net != NULL || a->persistent) {
        return false;
    }
    a->on_event = NULL;
    a->goal_met = NULL;
    rc = veil_cli_online(a);
    a->on_event = on_event;
    a->goal_met = goal_met;
    return rc == 0;
}

int veil_cli_find_contact(veil_cli_app *a, const char *q, uint32_t *contact)
{
    int rc = find_contact(a, q, contact, false);

    if (rc == VEIL_CLI_EUNKNOWN && sync_for_name(a)) {
        rc = find_contact(a, q, contact, false);
    }
    return rc == 0 ? 0 : find_contact(a, q, contact, true);
}

int veil_cli_find_room(veil_cli_app *a, const char *q, uint32_t *room)
{
    int rc = find_room(a, q, room, false);

    if (rc == VEIL_CLI_EUNKNOWN && sync_for_name(a)) {
        rc = find_room(a, q, room, false);
    }
    return rc == 0 ? 0 : find_room(a, q, room, true);
}

int veil_cli_find_msg(veil_cli_app *a, uint32_t room, const char *q, veil_cli_msg **out)
{
    veil_cli_msg *m = NULL;
    size_t i, nf = 0, digits;
    const char *p = q[0] == '#' ? q + 1 : q;

    *out = NULL;
    if (strcmp(q, "last") == 0) {
        for (i = veil_cli_log_next(&a->log, room, 0); i < a->log.n; i = veil_cli_log_next(&a->log, room, i + 1)) {
            m = a->log.msgs[i];
        }
    } else if (all_digits(p, &digits) && digits <= 9 && strchr(p, ' ') == NULL) {
        m = veil_cli_log_by_num(&a->log, room, (uint32_t)strtoul(p, NULL, 10));
    } else if (is_hex(q, 4)) {
        for (i = veil_cli_log_next(&a->log, room, 0); i < a->log.n; i = veil_cli_log_next(&a->log, room, i + 1)) {
            if (hex_prefix(q, a->log.msgs[i]->mid, 16)) {
                m = a->log.msgs[i];
                nf++;
            }
        }
        if (nf > 1) {
            return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "\"%s\" matches %zu messages: give more of the id", q, nf);
        }
    }
    if (m == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "no message \"%s\" in this room (use #number or the id)", q);
    }
    *out = m;
    return 0;
}

void veil_cli_party_name(veil_cli_app *a, uint32_t room, const uint8_t ik[VEIL_SIGN_PK_BYTES], char *out, size_t cap)
{
    uint8_t own[VEIL_SIGN_PK_BYTES];
    veil_contact_info ci;
    veil_member_info mi;
    veil_room_info ri;
    uint32_t c, i;
    char hex[17];

    veil_engine_identity(a->e, own);
    if (sodium_memcmp(own, ik, sizeof own) == 0) {
        snprintf(out, cap, "me");
        return;
    }
    c = veil_engine_contact_find(a->e, ik);
    if (c != 0 && veil_engine_contact_get(a->e, c, &ci) == 0 && ci.name[0] != '\0') {
        snprintf(out, cap, "%s", ci.name);
        return;
    }
    if (room != 0 && veil_engine_room_get(a->e, room, &ri) == 0) {
        for (i = 0; i < ri.members; i++) {
            if (veil_engine_room_member(a->e, room, i, &mi) == 0 && memcmp(mi.ik, ik, sizeof mi.ik) == 0 &&
                mi.name[0] != '\0') {
                snprintf(out, cap, "%s", mi.name);
                return;
            }
        }
    }
    veil_cli_hex(hex, ik, 8);
    snprintf(out, cap, "~%s", hex);
}

void veil_cli_room_name(veil_cli_app *a, uint32_t room, char *out, size_t cap)
{
    veil_room_info ri;
    veil_contact_info ci;

    if (veil_engine_room_get(a->e, room, &ri) != 0) {
        size_t i;
        for (i = 0; i < VEIL_ENGINE_MAX_ROOMS; i++) {
            if (a->names[i].room == room && room != 0) {
                snprintf(out, cap, "%s", a->names[i].name);
                return;
            }
        }
        snprintf(out, cap, "room %u", room);
    } else if (ri.kind == VEIL_ROOM_DIRECT) {
        if (veil_engine_contact_get(a->e, ri.peer, &ci) == 0 && ci.name[0] != '\0') {
            snprintf(out, cap, "@%s", ci.name);
        } else {
            snprintf(out, cap, "@contact-%u", ri.peer);
        }
    } else if (ri.title[0] != '\0') {
        snprintf(out, cap, "%s", ri.title);
    } else {
        snprintf(out, cap, "group %u", room);
    }
}
