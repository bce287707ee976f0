/* SPDX-License-Identifier: ISC */
/*
 * `veil chat ROOM` (cli.h): the interactive chat. Standard input is adopted
 * into the lws loop, so typing, the relay and the timers share one thread.
 *
 * On a terminal (and without --json) the terminal is put in non-canonical
 * mode and the CLI edits the input line itself: every keystroke is a typing
 * signal for the engine (which debounces it, SPEC.md 13.7), and incoming
 * lines are printed above the line being typed, which is redrawn after them.
 * From a pipe, input is read line by line; a chunk that holds part of a line
 * counts as keystrokes. Each input line is a message, or a /command.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#define CHAT_BACKLOG 20U
#define CHAT_QUIT_SETTLE_MS 3000U
#define CHAT_TYPERS 32U

typedef struct chat {
    uint32_t room;
    bool raw; /* our own line editor on a terminal */
    struct termios saved;
    char line[VEIL_TEXT_MAX_BYTES + 1];
    size_t len;
    int esc; /* 0, or inside an escape sequence: 1 after ESC, 2 after ESC [ */
    bool quitting;
    int conn_state; /* 0 unknown, 1 up, 2 down */
    uint8_t typers[CHAT_TYPERS][VEIL_SIGN_PK_BYTES];
    size_t ntypers;
    char prompt[3 * 2 * (VEIL_NAME_MAX_BYTES + 32) + 64]; /* two names through veil_cli_safe */
    char shown[3 * VEIL_TEXT_MAX_BYTES + 1];               /* the line as redrawn (veil_cli_safe) */
} chat;

static chat *g_chat;

/*
 * The terminal modes for the signal handlers: only tcsetattr(), sigaction(),
 * sigprocmask() and raise() there, all async-signal-safe.
 */
static struct termios g_tio_saved, g_tio_raw;
static volatile sig_atomic_t g_tio_is_raw;
static struct sigaction g_old_tstp, g_old_quit;

/* ---- terminal ---- */

/*
 * Ctrl-Z and Ctrl-\ (ISIG stays on in our mode): the shell must get the
 * terminal back as it was, not without echo. SIGTSTP: the saved modes, stop,
 * and on SIGCONT our mode again (the line is redrawn with the next output or
 * keystroke). SIGQUIT: the saved modes, then the default action.
 */
static void on_term_signal(int sig)
{
    int saved_errno = errno;
    struct sigaction dfl, ours;
    sigset_t set;

    if (g_tio_is_raw) {
        (void)tcsetattr(0, TCSAFLUSH, &g_tio_saved);
    }
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(sig, &dfl, &ours);
    sigemptyset(&set);
    sigaddset(&set, sig);
    (void)sigprocmask(SIG_UNBLOCK, &set, NULL);
    (void)raise(sig);
    /* Continued after a stop (SIGQUIT does not come back). */
    (void)sigaction(sig, &ours, NULL);
    if (g_tio_is_raw) {
        (void)tcsetattr(0, TCSAFLUSH, &g_tio_raw);
    }
    errno = saved_errno;
}

static void term_signals(bool on)
{
    struct sigaction sa;

    if (on) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term_signal;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGTSTP, &sa, &g_old_tstp);
        (void)sigaction(SIGQUIT, &sa, &g_old_quit);
    } else {
        (void)sigaction(SIGTSTP, &g_old_tstp, NULL);
        (void)sigaction(SIGQUIT, &g_old_quit, NULL);
    }
}

static void term_restore(void)
{
    if (g_chat != NULL && g_chat->raw) {
        g_tio_is_raw = 0;
        (void)tcsetattr(0, TCSAFLUSH, &g_chat->saved);
        g_chat->raw = false;
        term_signals(false);
    }
}

static void redraw(void)
{
    chat *c = g_chat;

    if (c == NULL || !c->raw) {
        return;
    }
    fputs("\r\033[K", stdout);
    fputs(c->prompt, stdout);
    /* Our own typing, but maybe pasted: shown through veil_cli_safe like everything else. */
    fwrite(c->shown, 1, veil_cli_safe(c->shown, sizeof c->shown, c->line, c->len), stdout);
    fflush(stdout);
    sodium_memzero(c->shown, sizeof c->shown);
}

static void clear_line(void)
{
    if (g_chat != NULL && g_chat->raw) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
    }
}

static void set_prompt(veil_cli_app *a, chat *c)
{
    char raw[VEIL_NAME_MAX_BYTES + 32], name[3 * sizeof raw + 1], who[3 * sizeof raw + 1];

    /* The prompt is written as it is by redraw(): the names (the peers' choice) made safe here. */
    veil_cli_room_name(a, c->room, raw, sizeof raw);
    veil_cli_safe(name, sizeof name, raw, strlen(raw));
    if (c->ntypers == 1) {
        veil_cli_party_name(a, c->room, c->typers[0], raw, sizeof raw);
        veil_cli_safe(who, sizeof who, raw, strlen(raw));
        snprintf(c->prompt, sizeof c->prompt, "%s (%s is typing)> ", name, who);
    } else if (c->ntypers > 1) {
        snprintf(c->prompt, sizeof c->prompt, "%s (%zu are typing)> ", name, c->ntypers);
    } else {
        snprintf(c->prompt, sizeof c->prompt, "%s> ", name);
    }
}

/* A line of the chat's own (not an engine event). */
static void say(veil_cli_app *a, const char *type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(veil_cli_app *a, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", type);
        cJSON_AddStringToObject(o, "message", msg);
        veil_cli_json_emit(o);
        return;
    }
    veil_cli_line("* %s", msg); /* around the input line when it is ours (veil_cli_out_before/after) */
}

/* ---- typing state of the others ---- */

static bool typer_set(chat *c, const uint8_t ik[VEIL_SIGN_PK_BYTES], bool on)
{
    size_t i;

    for (i = 0; i < c->ntypers; i++) {
        if (memcmp(c->typers[i], ik, VEIL_SIGN_PK_BYTES) == 0) {
            if (!on) {
                memmove(c->typers[i], c->typers[i + 1], (c->ntypers - i - 1) * VEIL_SIGN_PK_BYTES);
                c->ntypers--;
                return true;
            }
            return false;
        }
    }
    if (!on || c->ntypers == CHAT_TYPERS) {
        return false;
    }
    memcpy(c->typers[c->ntypers++], ik, VEIL_SIGN_PK_BYTES);
    return true;
}

/* ---- leaving ---- */

/* Stops reading input and waits briefly for what is in flight (the last messages), then ends. */
static void quit(veil_cli_app *a, chat *c)
{
    if (c->quitting) {
        return;
    }
    c->quitting = true;
    clear_line();
    term_restore();
    a->persistent = false;
    a->goal = true;
    a->give_up_at = 0;
    a->settle_until = veil_cli_now() + CHAT_QUIT_SETTLE_MS;
    veil_cli_after(a);
}

/* ---- events ---- */

static void mark_read(veil_cli_app *a, veil_cli_msg *m)
{
    if (m == NULL || (m->flags & (VEIL_CLI_MSG_OWN | VEIL_CLI_MSG_READ))) {
        return;
    }
    if (!(m->flags & VEIL_CLI_MSG_HISTORY)) {
        if (veil_engine_mark_read(a->e, veil_cli_now(), m->room, m->mid) != 0) {
            /* Older than the engine's window: no receipt can be sent for it any more. */
        }
    }
    m->flags |= VEIL_CLI_MSG_READ;
    a->log.dirty = true;
}

static void chat_event(veil_cli_app *a, const veil_event *ev)
{
    chat *c = a->cmd;

    if (ev->room != 0 && ev->room != c->room) {
        /* Other rooms: their messages are logged (cli_app.c); an invitation or a new room is worth a line. */
        if (ev->type == VEIL_EV_ROOM || ev->type == VEIL_EV_ALERT) {
            veil_cli_print_event(a, ev);
        }
        return;
    }
    switch (ev->type) {
    case VEIL_EV_MESSAGE:
        if (typer_set(c, ev->from, false)) {
            set_prompt(a, c);
        }
        veil_cli_print_event(a, ev);
        mark_read(a, veil_cli_log_find(&a->log, c->room, ev->mid));
        break;
    case VEIL_EV_TYPING:
        if (typer_set(c, ev->from, (ev->flags & VEIL_EVF_ON) != 0)) {
            set_prompt(a, c);
            if (a->o.json) {
                veil_cli_print_event(a, ev);
            } else {
                redraw();
            }
        }
        break;
    case VEIL_EV_SENT:
        /* Only for the messages shown (not receipts, edits or keys, which the engine sends as messages too). */
        if (a->o.json && veil_cli_log_find(&a->log, c->room, ev->mid) != NULL) {
            veil_cli_print_event(a, ev);
        }
        break;
    case VEIL_EV_PRESENCE:
        if (!(ev->flags & VEIL_EVF_ON) && typer_set(c, ev->from, false)) {
            set_prompt(a, c);
        }
        veil_cli_print_event(a, ev);
        break;
    case VEIL_EV_REMOVED:
        veil_cli_print_event(a, ev);
        quit(a, c);
        break;
    case VEIL_EV_CAUGHT_UP:
    case VEIL_EV_READY:
    case VEIL_EV_CONNECT:
    case VEIL_EV_CLOSE:
        if (a->o.json && (ev->type == VEIL_EV_CAUGHT_UP || ev->type == VEIL_EV_READY)) {
            veil_cli_print_event(a, ev);
        }
        break;
    default:
        veil_cli_print_event(a, ev);
        break;
    }
}

static void chat_conn(veil_cli_app *a, bool up)
{
    chat *c = a->cmd;
    int state = up ? 1 : 2;

    if (c->quitting || state == c->conn_state) {
        return;
    }
    c->conn_state = state;
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "connection");
        cJSON_AddBoolToObject(o, "up", up);
        if (!up) {
            cJSON_AddStringToObject(o, "reason", a->conn_err);
        }
        veil_cli_json_emit(o);
    } else if (up) {
        say(a, "connection", "connected to %s", a->relay_url);
    } else {
        say(a, "connection", "%s; reconnecting", a->conn_err);
    }
}

/* ---- commands ---- */

/* The next word of *p (advanced past it and the spaces after), NUL-terminated in place. */
static char *word(char **p)
{
    char *s = *p, *w;

    while (*s == ' ') {
        s++;
    }
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    w = s;
    while (*s != '\0' && *s != ' ') {
        s++;
    }
    if (*s != '\0') {
        *s++ = '\0';
    }
    while (*s == ' ') {
        s++;
    }
    *p = s;
    return w;
}

static bool looks_like_ref(const char *w)
{
    size_t i;

    if (w[0] == '#' || strcmp(w, "last") == 0) {
        return true;
    }
    for (i = 0; w[i] != '\0'; i++) {
        if (!isxdigit((unsigned char)w[i])) {
            return false;
        }
    }
    return i >= 8;
}

/* Our last message in the room that is not deleted, or NULL. */
static veil_cli_msg *last_own(veil_cli_app *a, uint32_t room)
{
    veil_cli_msg *found = NULL;
    size_t i;

    for (i = veil_cli_log_next(&a->log, room, 0); i < a->log.n; i = veil_cli_log_next(&a->log, room, i + 1)) {
        veil_cli_msg *m = a->log.msgs[i];
        if ((m->flags & VEIL_CLI_MSG_OWN) && !(m->flags & VEIL_CLI_MSG_DELETED)) {
            found = m;
        }
    }
    return found;
}

static void ok(veil_cli_app *a, const char *what, const veil_cli_msg *m)
{
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "ok");
        cJSON_AddStringToObject(o, "command", what);
        if (m != NULL) {
            cJSON_AddNumberToObject(o, "num", m->num);
            veil_cli_json_hex(o, "mid", m->mid, VEIL_MID_BYTES);
        }
        veil_cli_json_emit(o);
    }
}

static int edit_error(veil_cli_app *a, int rc)
{
    switch (rc) {
    case VEIL_EPERM:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "only your own messages, and only recent ones (the last %u)",
                             VEIL_ENGINE_WINDOW);
    case VEIL_EINVAL:
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "the text must be 1 to %u octets of UTF-8", VEIL_TEXT_MAX_BYTES);
    case VEIL_EFULL:
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "too many messages wait for the relay; try again shortly");
    default:
        return veil_cli_fail(a, veil_cli_exit_for(rc), "%s", veil_strerror(rc));
    }
}

static const char HELP[] =
    "commands:\n"
    "  TEXT                      send a message\n"
    "  /reply MSG TEXT           reply to a message (MSG: #N, last, or an id prefix)\n"
    "  /edit [MSG] TEXT          edit one of your messages (default: your last)\n"
    "  /delete [MSG]             delete one of your messages (default: your last)\n"
    "  /react MSG EMOJI          react to a message (again to take it back)\n"
    "  /members                  who is in the room, who is here\n"
    "  /invite CONTACT           add a contact to this group (admins)\n"
    "  /remove CONTACT           remove a member from this group (admins)\n"
    "  /leave                    leave this group\n"
    "  /history [N]              show the last N messages again (default 20)\n"
    "  /more                     fetch older messages from the relay\n"
    "  /name NEWNAME             change your display name\n"
    "  /quit                     leave the chat (also Ctrl-D, Ctrl-C)\n";

static void show_history(veil_cli_app *a, chat *c, uint32_t n)
{
    size_t total = veil_cli_log_count(&a->log, c->room, false), skip = total > n ? total - n : 0, k = 0, i;

    for (i = veil_cli_log_next(&a->log, c->room, 0); i < a->log.n; i = veil_cli_log_next(&a->log, c->room, i + 1)) {
        if (k++ >= skip) {
            veil_cli_print_msg(a, a->log.msgs[i], true);
            mark_read(a, a->log.msgs[i]);
        }
    }
}

static void command(veil_cli_app *a, chat *c, char *line)
{
    char *p = line + 1, *cmd = word(&p), *w;
    veil_cli_msg *m = NULL;
    uint8_t mid[VEIL_MID_BYTES], own[VEIL_SIGN_PK_BYTES];
    uint32_t contact, i;
    int rc;

    if (cmd == NULL || strcmp(cmd, "help") == 0) {
        if (a->o.json) {
            say(a, "help", "%s", HELP);
        } else {
            clear_line();
            fputs(HELP, stdout);
            redraw();
        }
    } else if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0) {
        quit(a, c);
    } else if (strcmp(cmd, "reply") == 0) {
        if ((w = word(&p)) == NULL || *p == '\0') {
            (void)veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: /reply MSG TEXT");
        } else if (veil_cli_find_msg(a, c->room, w, &m) == 0 && veil_cli_do_send(a, c->room, p, strlen(p), m, &m) == 0) {
            if (m != NULL) {
                veil_cli_print_msg(a, m, false);
            }
        }
    } else if (strcmp(cmd, "edit") == 0) {
        char first[80];
        size_t fl = strcspn(p, " ");
        snprintf(first, sizeof first, "%.*s", (int)(fl < sizeof first ? fl : sizeof first - 1), p);
        if (fl > 0 && p[fl] == ' ' && looks_like_ref(first)) {
            w = word(&p);
            rc = veil_cli_find_msg(a, c->room, w, &m);
        } else {
            m = last_own(a, c->room);
            rc = m != NULL ? 0 : veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "you have no message here to edit");
        }
        if (rc == 0 && *p == '\0') {
            rc = veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: /edit [MSG] TEXT");
        }
        if (rc == 0) {
            rc = veil_engine_edit(a->e, veil_cli_now(), c->room, m->mid, p, strlen(p), mid);
            if (rc != 0) {
                (void)edit_error(a, rc);
            } else {
                (void)veil_cli_log_set_text(&a->log, m, p, strlen(p));
                m->flags |= VEIL_CLI_MSG_EDITED;
                ok(a, "edit", m);
                if (!a->o.json) {
                    veil_cli_line("* you edited #%u: %s", m->num, m->text);
                }
                veil_cli_after(a);
            }
        }
    } else if (strcmp(cmd, "delete") == 0) {
        w = word(&p);
        rc = w != NULL ? veil_cli_find_msg(a, c->room, w, &m) : 0;
        if (w == NULL) {
            m = last_own(a, c->room);
            rc = m != NULL ? 0 : veil_cli_fail(a, VEIL_CLI_EUNKNOWN, "you have no message here to delete");
        }
        if (rc == 0) {
            rc = veil_engine_delete(a->e, veil_cli_now(), c->room, m->mid, mid);
            if (rc != 0) {
                (void)edit_error(a, rc);
            } else {
                (void)veil_cli_log_set_text(&a->log, m, "", 0);
                m->flags |= VEIL_CLI_MSG_DELETED;
                m->nreacts = 0;
                ok(a, "delete", m);
                if (!a->o.json) {
                    say(a, "ok", "you deleted #%u", m->num);
                }
                veil_cli_after(a);
            }
        }
    } else if (strcmp(cmd, "react") == 0 || strcmp(cmd, "unreact") == 0) {
        char *emoji;
        bool on = cmd[0] == 'r';
        w = word(&p);
        emoji = word(&p);
        if (w == NULL || emoji == NULL) {
            (void)veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: /react MSG EMOJI");
        } else if (veil_cli_find_msg(a, c->room, w, &m) == 0) {
            veil_engine_identity(a->e, own);
            for (i = 0; on && i < m->nreacts; i++) {
                if (memcmp(m->reacts[i].author, own, sizeof own) == 0 && strcmp(m->reacts[i].emoji, emoji) == 0) {
                    on = false; /* again: take it back */
                }
            }
            rc = veil_engine_react(a->e, veil_cli_now(), c->room, m->mid, emoji, strlen(emoji), on, mid);
            if (rc != 0) {
                (void)veil_cli_fail(a, veil_cli_exit_for(rc), "cannot react: %s",
                                    rc == VEIL_EINVAL ? "an emoji is 1 to 32 octets" : veil_strerror(rc));
            } else {
                veil_cli_log_react(&a->log, m, own, emoji, on);
                ok(a, on ? "react" : "unreact", m);
                if (!a->o.json) {
                    say(a, "ok", "you %s %s %s #%u", on ? "reacted" : "took back", emoji, on ? "to" : "from", m->num);
                }
                veil_cli_after(a);
            }
        }
    } else if (strcmp(cmd, "members") == 0) {
        veil_room_info ri;
        veil_member_info mi;
        if (veil_engine_room_get(a->e, c->room, &ri) == 0) {
            clear_line();
            for (i = 0; i < ri.members; i++) {
                if (veil_engine_room_member(a->e, c->room, i, &mi) == 0) {
                    veil_cli_print_member(a, c->room, &mi);
                }
            }
            redraw();
        }
    } else if (strcmp(cmd, "invite") == 0 || strcmp(cmd, "remove") == 0) {
        bool invite = cmd[0] == 'i';
        if ((w = word(&p)) == NULL) {
            (void)veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: /%s CONTACT", cmd);
        } else if (veil_cli_find_contact(a, w, &contact) == 0 &&
                   (invite ? veil_cli_do_invite(a, c->room, contact) : veil_cli_do_remove(a, c->room, contact)) == 0) {
            ok(a, cmd, NULL);
            if (!a->o.json) {
                say(a, "ok", "%s %s", invite ? "invited" : "removed", w);
            }
        }
    } else if (strcmp(cmd, "leave") == 0) {
        rc = veil_engine_group_leave(a->e, veil_cli_now(), c->room);
        if (rc != 0) {
            (void)veil_cli_fail(a, veil_cli_exit_for(rc), "cannot leave: %s",
                                rc == VEIL_EINVAL ? "not a group" : veil_strerror(rc));
        } else {
            ok(a, "leave", NULL);
            veil_cli_after(a);
        }
    } else if (strcmp(cmd, "history") == 0) {
        uint32_t n = CHAT_BACKLOG;
        if ((w = word(&p)) != NULL) {
            n = (uint32_t)strtoul(w, NULL, 10);
        }
        clear_line();
        show_history(a, c, n == 0 ? CHAT_BACKLOG : n);
        redraw();
        veil_cli_after(a);
    } else if (strcmp(cmd, "more") == 0) {
        rc = veil_engine_history(a->e, veil_cli_now(), c->room, VEIL_ENGINE_HISTORY_PAGE);
        if (rc != 0) {
            (void)veil_cli_fail(a, veil_cli_exit_for(rc), "cannot fetch older messages now: %s",
                                rc == VEIL_ESTATE ? "not connected, or a fetch is running" : veil_strerror(rc));
        }
        veil_cli_after(a);
    } else if (strcmp(cmd, "name") == 0) {
        if (*p == '\0') {
            (void)veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: /name NEWNAME");
        } else if (veil_engine_set_name(a->e, veil_cli_now(), p, strlen(p)) != 0) {
            (void)veil_cli_fail(a, VEIL_CLI_EUSAGE, "invalid name (UTF-8, at most %u octets)", VEIL_NAME_MAX_BYTES);
        } else {
            ok(a, "name", NULL);
            veil_cli_after(a);
        }
    } else {
        (void)veil_cli_fail(a, VEIL_CLI_EUSAGE, "unknown command /%s (/help lists them)", cmd);
    }
}

static void submit(veil_cli_app *a, chat *c)
{
    veil_cli_msg *m = NULL;
    size_t n = c->len;

    c->line[n] = '\0';
    c->len = 0;
    while (n > 0 && (c->line[n - 1] == ' ' || c->line[n - 1] == '\r')) {
        c->line[--n] = '\0';
    }
    if (n == 0) {
        redraw();
        return;
    }
    if (c->raw) {
        clear_line();
    }
    if (c->line[0] == '/' && c->line[1] != '/') {
        command(a, c, c->line);
    } else {
        const char *text = c->line[0] == '/' ? c->line + 1 : c->line; /* "//x" sends "/x" */
        if (veil_cli_do_send(a, c->room, text, strlen(text), NULL, &m) == 0 && m != NULL) {
            veil_cli_print_msg(a, m, false);
        }
    }
    sodium_memzero(c->line, sizeof c->line);
    redraw();
}

static void typed(veil_cli_app *a, chat *c)
{
    if (c->len > 0 && c->line[0] != '/') {
        if (veil_engine_typing(a->e, veil_cli_now(), c->room) != 0) {
            /* The room went away meanwhile: nothing to signal. */
        }
    }
}

static void chat_input(veil_cli_app *a, const uint8_t *p, size_t n)
{
    chat *c = a->cmd;
    size_t i;
    bool keys = false;

    if (c->quitting) {
        return;
    }
    if (n == 0) { /* end of input, or a signal */
        if (c->len > 0 && !c->raw) {
            submit(a, c);
        }
        quit(a, c);
        return;
    }
    for (i = 0; i < n && !c->quitting; i++) {
        uint8_t b = p[i];
        if (c->raw && c->esc != 0) {
            /* Skip escape sequences (arrows, function keys): ESC [ params final, ESC O x. */
            if (c->esc == 1) {
                c->esc = b == '[' || b == 'O' ? 2 : 0;
            } else if (b >= 0x40 && b <= 0x7E) {
                c->esc = 0;
            }
            continue;
        }
        if (b == '\n' || (c->raw && b == '\r')) {
            if (keys) {
                typed(a, c);
                keys = false;
            }
            submit(a, c);
            continue;
        }
        if (c->raw) {
            switch (b) {
            case 0x1b:
                c->esc = 1;
                continue;
            case 0x7f:
            case 0x08: /* backspace: one UTF-8 character */
                while (c->len > 0 && ((unsigned char)c->line[c->len - 1] & 0xC0) == 0x80) {
                    c->len--;
                }
                if (c->len > 0) {
                    c->len--;
                }
                redraw();
                continue;
            case 0x15: /* Ctrl-U */
                c->len = 0;
                redraw();
                continue;
            case 0x17: /* Ctrl-W: the last word */
                while (c->len > 0 && c->line[c->len - 1] == ' ') {
                    c->len--;
                }
                while (c->len > 0 && c->line[c->len - 1] != ' ') {
                    c->len--;
                }
                redraw();
                continue;
            case 0x0c: /* Ctrl-L */
                redraw();
                continue;
            case 0x04: /* Ctrl-D */
                if (c->len == 0) {
                    quit(a, c);
                }
                continue;
            default:
                break;
            }
            if (b < 0x20) {
                continue;
            }
        }
        if (c->len < VEIL_TEXT_MAX_BYTES) {
            c->line[c->len++] = (char)b;
            keys = true;
        }
    }
    if (keys) {
        typed(a, c);
        if (c->raw) {
            c->line[c->len] = '\0';
            redraw();
        }
    }
    veil_cli_after(a);
}

int veil_cli_cmd_chat(veil_cli_app *a, int argc, char **argv)
{
    static chat c;
    veil_room_info ri;
    char name[VEIL_NAME_MAX_BYTES + 32];
    int rc;

    memset(&c, 0, sizeof c);
    if (argc != 2) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "usage: veil chat ROOM");
    }
    if (a->o.offline) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "chat needs the relay (without --offline)");
    }
    if ((rc = veil_cli_open(a)) != 0) {
        return rc;
    }
    if ((rc = veil_cli_find_room(a, argv[1], &c.room)) != 0) {
        return rc;
    }
    if (veil_engine_room_get(a->e, c.room, &ri) != 0 || ri.state == VEIL_ROOM_INVITED) {
        return veil_cli_fail(a, VEIL_CLI_ENOTALLOWED, "this is an invitation: accept it first (veil accept %u)",
                             c.room);
    }
    g_chat = &c;
    a->cmd = &c;
    a->persistent = true;
    a->on_event = chat_event;
    a->on_input = chat_input;
    a->on_conn = chat_conn;
    set_prompt(a, &c);
    veil_cli_room_name(a, c.room, name, sizeof name);
    if (!a->o.json) {
        veil_cli_line("* %s: %s room, %u member%s. /help lists the commands; /quit or Ctrl-D leaves.", name,
                      ri.kind == VEIL_ROOM_DIRECT ? "direct" : "group", ri.members, ri.members == 1 ? "" : "s");
    }
    if (a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "chat");
        cJSON_AddNumberToObject(o, "room", c.room);
        cJSON_AddStringToObject(o, "room_name", name);
        cJSON_AddStringToObject(o, "kind", ri.kind == VEIL_ROOM_DIRECT ? "direct" : "group");
        cJSON_AddNumberToObject(o, "members", ri.members);
        veil_cli_json_emit(o);
    }
    show_history(a, &c, CHAT_BACKLOG);
    if (!a->o.json && isatty(0) && isatty(1) && tcgetattr(0, &c.saved) == 0) {
        struct termios t = c.saved;
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        g_tio_saved = c.saved;
        g_tio_raw = t;
        term_signals(true);
        g_tio_is_raw = 1;
        if (tcsetattr(0, TCSAFLUSH, &t) != 0) {
            g_tio_is_raw = 0;
            term_signals(false);
        } else {
            c.raw = true;
            atexit(term_restore);
            veil_cli_out_before = clear_line;
            veil_cli_out_after = redraw;
        }
    }
    redraw();
    rc = veil_cli_net_init(a, true);
    if (rc == 0) {
        rc = veil_cli_net_run(a);
    }
    term_restore();
    veil_cli_out_before = NULL;
    veil_cli_out_after = NULL;
    veil_cli_net_free(a);
    if (veil_cli_store_save(a) != 0 && rc == 0) {
        rc = VEIL_CLI_EIO;
    }
    g_chat = NULL;
    sodium_memzero(&c, sizeof c); /* a line being typed when the chat ended */
    return rc;
}
