/* SPDX-License-Identifier: ISC */
/**
 * \file cli.h
 * \brief veil, the native command-line client: a thin host around the
 *        sans-I/O engine (client-core/engine/veil_engine.h).
 *
 * The engine does every bit of protocol work. The CLI supplies what the
 * engine may not touch: the WebSocket to the relay (libwebsockets' client
 * API, one thread, one lws event loop), the clock and the timer the engine
 * asks for, the files that hold the sealed state, the terminal.
 *
 * Modules: main.c (command line, help), cli_store.c (data directory, lock,
 * passphrase, sealing, atomic writes), cli_log.c (the message log: the engine
 * keeps no text, SPEC.md 13.13, so the host stores what it shows), cli_net.c
 * (lws), cli_app.c (the glue: engine outputs, events into the log, waiting
 * for a command's goal, name resolution), cli_out.c (human and JSON output),
 * cli_cmd.c (one-shot commands), cli_chat.c (the interactive chat).
 */
#ifndef VEIL_CLI_H
#define VEIL_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "veil_engine.h"
#include "veil_err.h"

#include "cli_log.h"

/* Exit codes, X(name, value, meaning): the list `veil --help` prints. */
#define VEIL_CLI_EXIT_MAP(X)                                                                                     \
    X(VEIL_CLI_OK, 0, "success")                                                                                 \
    X(VEIL_CLI_EINTERNAL, 1, "internal error (out of memory, a bug)")                                            \
    X(VEIL_CLI_EUSAGE, 2, "bad command line, or an invalid argument (not a contact code, text too long)")        \
    X(VEIL_CLI_ENOIDENT, 3, "no identity in the data directory (run `veil init`), or `init` found one")          \
    X(VEIL_CLI_EPASS, 4, "wrong passphrase")                                                                     \
    X(VEIL_CLI_ESTATE, 5, "stored state unreadable: altered, truncated, or of another version")                  \
    X(VEIL_CLI_EBUSY, 6, "the data directory is in use by another veil process")                                \
    X(VEIL_CLI_EUNREACH, 7, "relay unreachable, or the connection was lost before the command completed")       \
    X(VEIL_CLI_ERELAY, 8, "the relay refused a request (an error frame), or refused a message")                  \
    X(VEIL_CLI_EUNKNOWN, 9, "unknown or ambiguous contact, room or message")                                     \
    X(VEIL_CLI_EKEYCHANGED, 10, "a contact's identity key changed: compare safety numbers, then `accept-key`")   \
    X(VEIL_CLI_ENOTALLOWED, 11, "not possible now: not an admin, room not active, invitation pending, full")     \
    X(VEIL_CLI_ETIMEOUT, 12, "the relay did not confirm in time (the work is saved and resumes next time)")      \
    X(VEIL_CLI_EIO, 13, "file system error in the data directory")                                              \
    X(VEIL_CLI_EINTR, 130, "interrupted (Ctrl-C, SIGTERM); what was done so far is saved")

enum veil_cli_exit {
#define VEIL_CLI__EXIT_ENUM(name, value, msg) name = (value),
    VEIL_CLI_EXIT_MAP(VEIL_CLI__EXIT_ENUM)
#undef VEIL_CLI__EXIT_ENUM
};

#define VEIL_CLI_DEFAULT_RELAY "ws://127.0.0.1:8080"
#define VEIL_CLI_DEFAULT_TIMEOUT_S 20U
/** After a command's goal is reached, how long it waits for the engine's follow-up work (receipts, keys). */
#define VEIL_CLI_SETTLE_MS 5000U
/** Connection attempts that fail before the first AUTH_OK after which a one-shot command gives up. */
#define VEIL_CLI_MAX_CONNECT_FAILURES 3U
#define VEIL_CLI_PATH_MAX 1024U
#define VEIL_CLI_URL_MAX 256U
#define VEIL_CLI_PASS_MAX 1024U

/** Command-line options (main.c). Every option may appear before or after the command. */
typedef struct veil_cli_opts {
    char dir[VEIL_CLI_PATH_MAX]; /**< data directory (--data, VEIL_DATA, ~/.veil) */
    const char *relay;           /**< --relay or VEIL_RELAY; NULL: the one remembered at init, else the default */
    bool json;                   /**< --json: one JSON object per line */
    int pass_fd;                 /**< --passphrase-fd, -1 if none */
    bool offline;                /**< --offline: do not contact the relay */
    uint32_t timeout_s;          /**< --timeout */
    bool yes, no;                /**< verify --yes / --no */
    const char *name;            /**< init --name */
    const char *reply;           /**< send --reply */
    uint32_t limit;              /**< history --limit */
    bool fetch;                  /**< history --fetch: ask the relay for older pages */
    bool quiet;                  /**< --quiet: no warnings on stderr */
} veil_cli_opts;

typedef struct veil_cli_net veil_cli_net;
typedef struct veil_cli_app veil_cli_app;

/** The whole client: one per process. */
struct veil_cli_app {
    veil_cli_opts o;
    /* storage (cli_store.c) */
    int lock_fd;
    uint8_t *keys; /**< sodium_malloc'd: the state key then the log key, 32 octets each */
    veil_engine *e;
    veil_rng rng;
    veil_cli_log log;
    char relay_url[VEIL_CLI_URL_MAX];
    /* transport (cli_net.c) */
    veil_cli_net *net;
    bool want_connect;
    bool ready;          /**< authenticated on the current connection */
    bool ever_ready;     /**< reached AUTH_OK at least once in this process */
    bool persistent;     /**< chat: never give up reconnecting */
    uint32_t conn_failures;
    char conn_err[128];
    /* the run loop */
    bool done;
    int rc;
    bool in_after, again;
    bool goal;               /**< the command's goal is reached; now settling */
    uint64_t settle_until;   /**< wall ms */
    uint64_t give_up_at;     /**< wall ms: the command's timeout */
    int32_t relay_err;       /**< the last VEIL_EV_ERROR code seen, 0 if none */
    uint32_t relay_err_kind; /**< its request frame type */
    bool key_changed;        /**< a KEY_CHANGED alert was seen */
    /* the running command's hooks */
    void (*on_event)(veil_cli_app *a, const veil_event *ev); /**< after the log is updated */
    bool (*goal_met)(veil_cli_app *a);                       /**< NULL: synced is the goal */
    void (*on_input)(veil_cli_app *a, const uint8_t *p, size_t n); /**< stdin bytes; n = 0 at EOF */
    void (*on_tick)(veil_cli_app *a);                              /**< the command's own timer fired */
    void (*on_conn)(veil_cli_app *a, bool up); /**< authenticated (up), or a connection closed or failed */
    void *cmd;
    veil_event ev; /* scratch: one event is large (its text) */
    /* Room names as last seen: a room the engine wiped (VEIL_EV_REMOVED) is still named in its last event. */
    struct {
        uint32_t room;
        char name[VEIL_NAME_MAX_BYTES + 32];
    } names[VEIL_ENGINE_MAX_ROOMS];
};

/* ---- main.c ---- */
/** Prints a message to stderr (and, with --json, an {"type":"error"} line on stdout); returns code. */
int veil_cli_fail(veil_cli_app *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** A warning on stderr (silenced by --quiet). */
void veil_cli_warn(veil_cli_app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Wall clock, milliseconds since the Unix epoch (the engine's `now`). */
uint64_t veil_cli_now(void);
/** The exit code for an engine return code of a user action. */
int veil_cli_exit_for(int veil_rc);

/* ---- cli_store.c ---- */
/** Creates the data directory (0700) if needed and takes its lock. */
int veil_cli_store_lock(veil_cli_app *a, bool create);
/** True when an identity exists in the data directory. */
bool veil_cli_store_exists(const veil_cli_app *a);
/** Reads the passphrase: --passphrase-fd, VEIL_PASSPHRASE, or the terminal (confirm: asks twice). */
int veil_cli_store_passphrase(veil_cli_app *a, bool confirm, char **pass, size_t *len);
/** init: a new data key sealed under the passphrase, a new engine, first save. */
int veil_cli_store_create(veil_cli_app *a, const char *name, size_t name_len);
/** Opens the key under the passphrase, then the engine and the log. */
int veil_cli_store_open(veil_cli_app *a);
/** Saves the log, then the engine state, when either changed. 0 or VEIL_CLI_EIO. */
int veil_cli_store_save(veil_cli_app *a);
void veil_cli_store_close(veil_cli_app *a);

/* ---- cli_net.c ---- */
/** Creates the lws context; with_stdin adopts fd 0 into the loop (chat). */
int veil_cli_net_init(veil_cli_app *a, bool with_stdin);
void veil_cli_net_free(veil_cli_app *a);
/** Opens a WebSocket to a->relay_url (the engine asked, VEIL_EV_CONNECT). */
void veil_cli_net_connect(veil_cli_app *a);
/** Drops the current connection without telling the engine (it asked, VEIL_EV_CLOSE). */
void veil_cli_net_abandon(veil_cli_app *a);
/** Queues a frame on the open connection (dropped when none is open: the engine resends on the next). */
void veil_cli_net_send(veil_cli_app *a, const uint8_t *p, size_t n);
/** Arms the timer for min(engine deadline, the command's deadlines). */
void veil_cli_net_rearm(veil_cli_app *a);
/** Runs the lws loop until a->done; returns a->rc. */
int veil_cli_net_run(veil_cli_app *a);
/** Wakes the loop from a signal handler. */
void veil_cli_net_wake(veil_cli_app *a);
/** Parses ws://host[:port][/path] or wss://. 0 or -1. */
int veil_cli_url_parse(const char *url, char *host, size_t host_cap, int *port, char *path, size_t path_cap,
                       bool *tls);

/* ---- cli_app.c ---- */
/** Processes what the last engine call produced: events, save, frames, timer. Call after every engine call. */
void veil_cli_after(veil_cli_app *a);
/** Connected callbacks from cli_net.c. */
void veil_cli_on_open(veil_cli_app *a);
void veil_cli_on_closed(veil_cli_app *a, const char *why);
void veil_cli_on_frame(veil_cli_app *a, const uint8_t *p, size_t n);
void veil_cli_on_timer(veil_cli_app *a);
/** True when connected, every active room caught up and nothing is due soon (no request in flight). */
bool veil_cli_synced(veil_cli_app *a);
/**
 * Runs a one-shot command online: connects, waits for the goal (a->goal_met,
 * or being synced) and for the engine to settle, within --timeout.
 * Returns 0 or an exit code.
 */
int veil_cli_online(veil_cli_app *a);
/** Resolves a contact by name, handle number, fingerprint or key prefix. 0 or VEIL_CLI_EUNKNOWN (printed). */
int veil_cli_find_contact(veil_cli_app *a, const char *q, uint32_t *contact);
/** Resolves a room by title, peer name (@name), handle number or room-id prefix. */
int veil_cli_find_room(veil_cli_app *a, const char *q, uint32_t *room);
/** Resolves a message of a room: #n / n (its number), or a prefix of its id in hex. */
int veil_cli_find_msg(veil_cli_app *a, uint32_t room, const char *q, veil_cli_msg **m);
/** A member's display name: contact name, member name, "me", or a fingerprint prefix. */
void veil_cli_party_name(veil_cli_app *a, uint32_t room, const uint8_t ik[VEIL_SIGN_PK_BYTES], char *out,
                         size_t cap);
/** A room's display name: group title or "@peer". */
void veil_cli_room_name(veil_cli_app *a, uint32_t room, char *out, size_t cap);

/* ---- cli_out.c ---- */
/** A room, contact, member, message or event as one line (human) or one JSON object (--json). */
void veil_cli_print_room(veil_cli_app *a, uint32_t room);
void veil_cli_print_contact(veil_cli_app *a, uint32_t contact);
void veil_cli_print_member(veil_cli_app *a, uint32_t room, const veil_member_info *mi);
void veil_cli_print_msg(veil_cli_app *a, const veil_cli_msg *m, bool backlog);
/** An engine event as the chat shows it (also used for alerts and errors in one-shot commands). */
void veil_cli_print_event(veil_cli_app *a, const veil_event *ev);
/**
 * Text from peers (names, titles, messages, emoji) made safe to show on a
 * terminal: C0 controls become their Control Pictures (ESC shows as U+241B),
 * TAB a space, DEL U+2421; C1 controls, bidirectional overrides and octets
 * that are not UTF-8 become U+FFFD. Copies whole characters while they fit;
 * out is NUL-terminated (cap > 0). cap = 3 * len + 1 always suffices.
 * Returns the length written.
 */
size_t veil_cli_safe(char *out, size_t cap, const char *in, size_t len);
/** One human line (a newline is added) on stdout, through veil_cli_safe, around the chat's input line. */
void veil_cli_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** The same on f, with a fixed prefix ("veil: "). */
void veil_cli_vline(FILE *f, const char *prefix, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
/** A JSON object built by the caller, printed on one line (valid UTF-8; C1 and bidi controls escaped). The cJSON is wiped and deleted. */
struct cJSON;
void veil_cli_json_emit(struct cJSON *o);
/** Helpers for JSON objects. */
void veil_cli_json_hex(struct cJSON *o, const char *key, const uint8_t *p, size_t n);
/** A readable description of an alert code. */
const char *veil_cli_alert_str(int32_t code);
/** A readable name of a request frame type ("PUBLISH"). */
const char *veil_cli_frame_str(uint32_t t);
/** Lower-case hex of p into out (2n+1 octets). */
void veil_cli_hex(char *out, const uint8_t *p, size_t n);
/** Hook the chat installs so that output does not clobber the line being typed (NULL: none). */
extern void (*veil_cli_out_before)(void);
extern void (*veil_cli_out_after)(void);

/* ---- cli_cmd.c / cli_chat.c ---- */
/** Locks the data directory, opens the identity (passphrase), picks the relay. 0 or an exit code (printed). */
int veil_cli_open(veil_cli_app *a);
int veil_cli_cmd_init(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_whoami(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_invite(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_add(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_contacts(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_rooms(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_send(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_history(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_verify(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_accept_key(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_members(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_name(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_sync(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_group(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_accept(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_decline(veil_cli_app *a, int argc, char **argv);
int veil_cli_cmd_chat(veil_cli_app *a, int argc, char **argv);

/** Shared by commands and chat: group operations on a resolved room and contact. */
int veil_cli_do_invite(veil_cli_app *a, uint32_t room, uint32_t contact);
int veil_cli_do_remove(veil_cli_app *a, uint32_t room, uint32_t contact);
/** Sends a text or reply and records it in the log as pending; *out receives the log entry. */
int veil_cli_do_send(veil_cli_app *a, uint32_t room, const char *text, size_t len, const veil_cli_msg *reply_to,
                     veil_cli_msg **out);

#endif
