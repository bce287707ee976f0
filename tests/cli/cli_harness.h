/* SPDX-License-Identifier: ISC */
/**
 * \file cli_harness.h
 * \brief End-to-end test harness for the `veil` CLI: a real veil-relay
 *        process on a loopback port with its SQLite file in a temporary
 *        directory, and real `veil` processes driven through pipes (with
 *        --json, one object per line) or a pseudo-terminal (the human chat
 *        and the passphrase prompt). Every wait is bounded; every process a
 *        test starts is killed by the teardown if the test fails, and the
 *        test's directory is removed when it passes (kept and named when it
 *        fails).
 *
 * Debugging aids (environment): CH_FILTER=test_name runs one test,
 * CH_VERBOSE=1 echoes every command and its output.
 */
#ifndef VEIL_CLI_HARNESS_H
#define VEIL_CLI_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

/** A wait long enough for a loaded machine running the sanitizer build. */
#define CH_WAIT_MS 30000
#define CH_PASS "correct horse battery staple"

/** argv[1] the veil binary, argv[2] veil-relay, argv[3] the web directory. */
void ch_init(int argc, char **argv);
/** cmocka setup/teardown: a fresh directory per test; teardown kills what the test left running. */
int ch_setup(void **state);
int ch_teardown(void **state);
#define CH_TEST(fn) cmocka_unit_test_setup_teardown(fn, ch_setup, ch_teardown)
/** The current test's directory. */
const char *ch_dir(void);

/* ---- the relay ---- */

typedef struct ch_relay {
    pid_t pid;
    int port;
    char db[600], log[600], port_file[600];
} ch_relay;

/** Starts a relay on a free loopback port (at most 15 s). */
void ch_relay_start(ch_relay *r);
/** Starts it again on the same port and store (after a stop or a kill). */
void ch_relay_restart(ch_relay *r);
/** SIGKILL, and waits for it. */
void ch_relay_kill(ch_relay *r);
/** SIGTERM: it must exit 0 within 10 s. */
void ch_relay_stop(ch_relay *r);

/* ---- users: a data directory each ---- */

typedef struct ch_user {
    char name[32];
    char dir[600];
} ch_user;

void ch_user_init(ch_user *u, const char *name);

/* ---- veil processes ---- */

typedef struct ch_opts {
    const char *pass;    /**< VEIL_PASSPHRASE; NULL: CH_PASS */
    bool no_pass_env;    /**< do not set VEIL_PASSPHRASE at all */
    const char *pass_fd; /**< if set: written to a pipe the child reads as fd 3 (--passphrase-fd 3) */
    bool pty;            /**< stdin, stdout and stderr on a pseudo-terminal (the child's controlling tty) */
    const char *relay;   /**< VEIL_RELAY; NULL: the relay given */
} ch_opts;

typedef struct ch_proc ch_proc;

/** Starts `veil ARGS...` for u against r (VEIL_DATA, VEIL_RELAY, VEIL_PASSPHRASE set). args NULL-terminated. */
ch_proc *ch_start(const ch_relay *r, const ch_user *u, const ch_opts *o, const char *const *args);
/** Starts and waits for the exit (CH_WAIT_MS at most); the caller checks ch_status and frees. */
ch_proc *ch_run(const ch_relay *r, const ch_user *u, const ch_opts *o, const char *const *args);
#define CH_RUN(r, u, ...) ch_run((r), (u), NULL, (const char *const[]){__VA_ARGS__, NULL})
/** Runs and requires exit status `code` (else fails, showing the output). */
ch_proc *ch_expect_exit(int code, const ch_relay *r, const ch_user *u, const ch_opts *o, const char *const *args);
#define CH_OK(r, u, ...) ch_expect_exit(0, (r), (u), NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CH_FAILS(code, r, u, ...) ch_expect_exit((code), (r), (u), NULL, (const char *const[]){__VA_ARGS__, NULL})

/** Reads what the process wrote, for up to ms. */
void ch_pump(ch_proc *p, int ms);
/** Waits for the exit (ms at most, else kills and fails); returns the exit status. */
int ch_wait(ch_proc *p, int ms);
int ch_status(const ch_proc *p);
const char *ch_stdout(const ch_proc *p);
const char *ch_stderr(const ch_proc *p);
/** Writes raw bytes to the process's input. */
void ch_write(ch_proc *p, const char *s);
/** Writes a line (a newline after it; a carriage return on a terminal). */
void ch_line(ch_proc *p, const char *s);
/** Closes the process's input (end of file). */
void ch_close_input(ch_proc *p);
/** Sends a signal. */
void ch_kill(ch_proc *p, int sig);
void ch_free(ch_proc *p);

/**
 * The first JSON line not matched before whose fields equal the key/value
 * pairs (NULL-terminated; a value is compared as a string, a number or
 * true/false), waiting up to ms for it; fails (showing the output) if none
 * comes. The line is then marked matched. The object stays owned by p.
 */
cJSON *ch_expect_json(ch_proc *p, int ms, const char *const *kv);
#define CH_EXPECT(p, ...) ch_expect_json((p), CH_WAIT_MS, (const char *const[]){__VA_ARGS__, NULL})
/** Like ch_expect_json with no wait, among every line (matched or not); NULL if none. */
cJSON *ch_find_json(ch_proc *p, const char *const *kv);
#define CH_FIND(p, ...) ch_find_json((p), (const char *const[]){__VA_ARGS__, NULL})
/** How many JSON lines match. */
size_t ch_count_json(ch_proc *p, const char *const *kv);
#define CH_COUNT(p, ...) ch_count_json((p), (const char *const[]){__VA_ARGS__, NULL})
/** Every JSON line, in order (a cJSON array owned by p). */
cJSON *ch_json_lines(ch_proc *p);
/** Starts `veil chat ROOM --json` and waits until it is connected and caught up. */
ch_proc *ch_chat(const ch_relay *r, const ch_user *u, const char *room);
/** Leaves a chat with /quit; it must exit 0. Frees p. */
void ch_chat_quit(ch_proc *p);
/** The texts of the "message" objects of p's --json output, in order, joined by '|' (fails if cap is short). */
void ch_texts(ch_proc *p, char *out, size_t cap);
/** Waits until the output (from the start) contains needle; fails after ms. */
void ch_expect_text(ch_proc *p, int ms, const char *needle);
/** A string field of a JSON object ("" if absent). */
const char *ch_str(const cJSON *o, const char *key);
/** A number field (-1 if absent). */
double ch_num(const cJSON *o, const char *key);

/** Copies a directory tree (for snapshots of a data directory). */
void ch_copy_dir(const char *from, const char *to);
/** True if some file under dir contains the octets of needle. */
bool ch_dir_contains(const char *dir, const char *needle);
/** Sleeps ms. */
void ch_sleep(int ms);

#endif
