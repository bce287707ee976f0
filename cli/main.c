/* SPDX-License-Identifier: ISC */
/*
 * veil: the command line (cli.h). Options may come before or after the
 * command; `--` ends them.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#define VEIL_CLI_VERSION "0.1.0"

static const char USAGE[] =
    "usage: veil [options] COMMAND [ARGS]\n"
    "\n"
    "veil: end-to-end encrypted chat through a blind relay. Every key and every\n"
    "message stays on this machine, sealed under your passphrase; the relay sees\n"
    "only ciphertext.\n"
    "\n"
    "Identity and contacts:\n"
    "  init [--name NAME]             create an identity (asks for a new passphrase)\n"
    "                                 and publish its prekeys on the relay\n"
    "  whoami                         your name, fingerprint and contact code\n"
    "  invite                         print your contact code (give it to people who\n"
    "                                 should reach you)\n"
    "  add CODE                       add the contact of a code and open a direct room\n"
    "  add KEY [--name NAME]          the same by identity key (64 hex digits, \"ik\" in\n"
    "                                 `whoami --json`); compare safety numbers after\n"
    "  contacts                       list your contacts\n"
    "  verify CONTACT [--yes|--no]    show the safety number to compare with CONTACT\n"
    "                                 (in person, by phone); mark them verified or not\n"
    "  accept-key CONTACT             accept CONTACT's new identity key after a change\n"
    "  name NEWNAME                   change your display name (told to every room)\n"
    "\n"
    "Rooms and messages:\n"
    "  rooms                          list rooms (after fetching what is new)\n"
    "  sync                           fetch what is new (inbox, every room) and exit\n"
    "  send ROOM TEXT... [--reply MSG]\n"
    "                                 send a message (TEXT - reads it from stdin)\n"
    "  history ROOM [--limit N] [--fetch]\n"
    "                                 a room's messages; --fetch also asks the relay\n"
    "                                 for older ones\n"
    "  chat ROOM                      interactive chat; /help inside lists its commands\n"
    "                                 (reply, edit, delete, react, members, invite,\n"
    "                                 remove, leave)\n"
    "  members ROOM                   a room's members\n"
    "\n"
    "Groups:\n"
    "  group create TITLE [CONTACT...] create a group and invite contacts to it\n"
    "  group invite ROOM CONTACT...   add contacts to a group (admins only)\n"
    "  group remove ROOM CONTACT...   remove members (admins only); the others rotate\n"
    "                                 their keys, and the removed read nothing after\n"
    "  group leave ROOM               leave a group\n"
    "  accept ROOM                    accept an invitation to a group\n"
    "  decline ROOM                   decline an invitation\n"
    "\n"
    "Names: ROOM is a number from `veil rooms`, a group's title, @name for a direct\n"
    "room, or a prefix of the room id; CONTACT is a number from `veil contacts`, a\n"
    "name, or a prefix of the fingerprint; MSG is #N (the number shown before a\n"
    "message), `last`, or a prefix of the message id.\n"
    "\n"
    "Options:\n"
    "  --data DIR          data directory (default: $VEIL_DATA, else ~/.veil)\n"
    "  --relay URL         the relay, ws://host:port or wss://host:port (default:\n"
    "                      $VEIL_RELAY, else the one given at init, else\n"
    "                      " VEIL_CLI_DEFAULT_RELAY ")\n"
    "  --json              one JSON object per line on stdout, each with a \"type\"\n"
    "  --passphrase-fd N   read the passphrase from file descriptor N (up to a\n"
    "                      newline); otherwise $VEIL_PASSPHRASE, otherwise it is\n"
    "                      asked on the terminal without echo\n"
    "  --offline           do not contact the relay: show what is stored, queue\n"
    "                      what is sent for the next command that goes online\n"
    "  --timeout SECONDS   how long a command waits for the relay (default 20)\n"
    "  --quiet             no warnings on stderr\n"
    "  --help, --version\n"
    "\n"
    "Exit codes:\n";

static veil_cli_app *g_app_for_exit;

uint64_t veil_cli_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U;
}

static const char *exit_name(int code)
{
    switch (code) {
#define VEIL_CLI__EXIT_NAME(name, value, msg)                                                                        \
    case value:                                                                                                      \
        return #name;
        VEIL_CLI_EXIT_MAP(VEIL_CLI__EXIT_NAME)
#undef VEIL_CLI__EXIT_NAME
    default:
        return "VEIL_CLI_UNKNOWN";
    }
}

static void fail_line(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_line(const char *prefix, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    veil_cli_vline(stderr, prefix, fmt, ap);
    va_end(ap);
}

int veil_cli_fail(veil_cli_app *a, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages name contacts and rooms, which peers name: through veil_cli_safe like every human line. */
    fail_line("veil: ", "%s", msg);
    if (a != NULL && a->o.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "error");
        cJSON_AddNumberToObject(o, "exit", code);
        cJSON_AddStringToObject(o, "error", exit_name(code));
        cJSON_AddStringToObject(o, "message", msg);
        veil_cli_json_emit(o);
    }
    return code;
}

void veil_cli_warn(veil_cli_app *a, const char *fmt, ...)
{
    va_list ap;

    if (a != NULL && a->o.quiet) {
        return;
    }
    va_start(ap, fmt);
    veil_cli_vline(stderr, "veil: warning: ", fmt, ap);
    va_end(ap);
}

int veil_cli_exit_for(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case VEIL_EINVAL:
        return VEIL_CLI_EUSAGE;
    case VEIL_EPERM:
    case VEIL_ESTATE:
    case VEIL_EFULL:
        return VEIL_CLI_ENOTALLOWED;
    default:
        return VEIL_CLI_EINTERNAL;
    }
}

static void usage(FILE *f)
{
    fputs(USAGE, f);
#define VEIL_CLI__EXIT_HELP(name, value, msg) fprintf(f, "  %3d  %s\n", value, msg);
    VEIL_CLI_EXIT_MAP(VEIL_CLI__EXIT_HELP)
#undef VEIL_CLI__EXIT_HELP
}

/* ---- options ---- */

static int parse_uint(const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-') {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Splits argv into options (a->o) and positional arguments (pos). Returns 0, or an exit code. */
static int parse_args(veil_cli_app *a, int argc, char **argv, char **pos, int *npos, bool *help, bool *version)
{
    static const char *const with_value[] = {"--data", "--relay", "--passphrase-fd", "--timeout",
                                             "--name", "--reply", "--limit"};
    const char *data = NULL;
    bool opts_done = false;
    int i;
    size_t k;

    *npos = 0;
    a->o.pass_fd = -1;
    a->o.timeout_s = VEIL_CLI_DEFAULT_TIMEOUT_S;
    a->o.limit = 50;
    for (i = 1; i < argc; i++) {
        char *arg = argv[i], *val = NULL, name[32];
        bool takes = false;

        if (opts_done || strncmp(arg, "--", 2) != 0 || strcmp(arg, "-") == 0) {
            pos[(*npos)++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            opts_done = true;
            continue;
        }
        /* --opt=value or --opt value */
        snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
        for (k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
            takes = takes || strcmp(name, with_value[k]) == 0;
        }
        if (takes) {
            if (arg[strlen(name)] == '=') {
                val = arg + strlen(name) + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return veil_cli_fail(a, VEIL_CLI_EUSAGE, "%s needs a value (veil --help)", name);
            }
        } else if (arg[strlen(name)] == '=') {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "%s takes no value", name);
        }
        if (strcmp(name, "--data") == 0) {
            data = val;
        } else if (strcmp(name, "--relay") == 0) {
            a->o.relay = val;
        } else if (strcmp(name, "--passphrase-fd") == 0) {
            uint32_t fd;
            if (parse_uint(val, INT_MAX, &fd) != 0) {
                return veil_cli_fail(a, VEIL_CLI_EUSAGE, "--passphrase-fd needs a file descriptor number");
            }
            a->o.pass_fd = (int)fd;
        } else if (strcmp(name, "--timeout") == 0) {
            if (parse_uint(val, 86400, &a->o.timeout_s) != 0 || a->o.timeout_s == 0) {
                return veil_cli_fail(a, VEIL_CLI_EUSAGE, "--timeout needs a number of seconds (1..86400)");
            }
        } else if (strcmp(name, "--name") == 0) {
            a->o.name = val;
        } else if (strcmp(name, "--reply") == 0) {
            a->o.reply = val;
        } else if (strcmp(name, "--limit") == 0) {
            if (parse_uint(val, 100000, &a->o.limit) != 0 || a->o.limit == 0) {
                return veil_cli_fail(a, VEIL_CLI_EUSAGE, "--limit needs a positive number");
            }
        } else if (strcmp(name, "--json") == 0) {
            a->o.json = true;
        } else if (strcmp(name, "--offline") == 0) {
            a->o.offline = true;
        } else if (strcmp(name, "--quiet") == 0) {
            a->o.quiet = true;
        } else if (strcmp(name, "--yes") == 0) {
            a->o.yes = true;
        } else if (strcmp(name, "--no") == 0) {
            a->o.no = true;
        } else if (strcmp(name, "--fetch") == 0) {
            a->o.fetch = true;
        } else if (strcmp(name, "--help") == 0) {
            *help = true;
        } else if (strcmp(name, "--version") == 0) {
            *version = true;
        } else {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "unknown option %s (veil --help)", name);
        }
    }
    if (data == NULL) {
        data = getenv("VEIL_DATA");
    }
    if (data != NULL && data[0] != '\0') {
        if (strlen(data) >= sizeof a->o.dir - 16) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "data directory path too long");
        }
        snprintf(a->o.dir, sizeof a->o.dir, "%s", data);
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || home[0] == '\0' || strlen(home) >= sizeof a->o.dir - 24) {
            return veil_cli_fail(a, VEIL_CLI_EUSAGE, "no home directory: give --data DIR");
        }
        snprintf(a->o.dir, sizeof a->o.dir, "%s/.veil", home);
    }
    if (a->o.relay == NULL && getenv("VEIL_RELAY") != NULL && getenv("VEIL_RELAY")[0] != '\0') {
        a->o.relay = getenv("VEIL_RELAY");
    }
    if (a->o.yes && a->o.no) {
        return veil_cli_fail(a, VEIL_CLI_EUSAGE, "--yes and --no exclude each other");
    }
    return 0;
}

typedef struct command {
    const char *name;
    int (*fn)(veil_cli_app *a, int argc, char **argv);
} command;

static const command COMMANDS[] = {
    {"init", veil_cli_cmd_init},         {"whoami", veil_cli_cmd_whoami},   {"invite", veil_cli_cmd_invite},
    {"add", veil_cli_cmd_add},           {"contacts", veil_cli_cmd_contacts}, {"rooms", veil_cli_cmd_rooms},
    {"send", veil_cli_cmd_send},         {"history", veil_cli_cmd_history}, {"verify", veil_cli_cmd_verify},
    {"accept-key", veil_cli_cmd_accept_key}, {"members", veil_cli_cmd_members}, {"name", veil_cli_cmd_name},
    {"sync", veil_cli_cmd_sync},         {"group", veil_cli_cmd_group},     {"accept", veil_cli_cmd_accept},
    {"decline", veil_cli_cmd_decline},   {"chat", veil_cli_cmd_chat},
};

static void cleanup(void)
{
    if (g_app_for_exit != NULL) {
        veil_cli_net_free(g_app_for_exit);
        veil_cli_store_close(g_app_for_exit);
    }
}

int main(int argc, char **argv)
{
    static veil_cli_app app;
    veil_cli_app *a = &app;
    char **pos;
    int npos = 0, rc;
    bool help = false, version = false;
    size_t i;
    struct sigaction sa;

    memset(a, 0, sizeof *a);
    a->lock_fd = -1;
    a->rng.fill = veil_rng_system;
    veil_cli_log_init(&a->log);
    if (sodium_init() < 0) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "libsodium failed to initialise");
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    pos = calloc((size_t)argc + 1, sizeof *pos);
    if (pos == NULL) {
        return veil_cli_fail(a, VEIL_CLI_EINTERNAL, "out of memory");
    }
    rc = parse_args(a, argc, argv, pos, &npos, &help, &version);
    if (rc != 0) {
        free(pos);
        return rc;
    }
    if (version) {
        printf("veil %s\n", VEIL_CLI_VERSION);
        free(pos);
        return 0;
    }
    if (help || npos == 0) {
        usage(help ? stdout : stderr);
        free(pos);
        return help ? 0 : VEIL_CLI_EUSAGE;
    }
    g_app_for_exit = a;
    rc = -1;
    for (i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(pos[0], COMMANDS[i].name) == 0) {
            rc = COMMANDS[i].fn(a, npos, pos);
            break;
        }
    }
    if (rc < 0) {
        rc = veil_cli_fail(a, VEIL_CLI_EUSAGE, "unknown command \"%s\" (veil --help)", pos[0]);
    }
    cleanup();
    g_app_for_exit = NULL;
    free(pos);
    return rc;
}
