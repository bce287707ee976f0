/* SPDX-License-Identifier: ISC */
/**
 * \file relay_harness.h
 * \brief Integration-test harness for veil-relay: starts a real relay process
 *        on a loopback port with its SQLite file in a temporary directory,
 *        and talks to it through a WebSocket client on libwebsockets' client
 *        API (one lws context, many connections, serviced from the test
 *        thread with bounded waits), plus raw sockets for the cases no
 *        well-behaved client produces.
 *
 * Debugging aids (environment): TH_FILTER=test_name runs one test,
 * TH_RELAY_LOG_LEVEL=debug raises the relay's log level (the log stays in the
 * test's directory when a test fails), TH_DEBUG=1 traces client callbacks.
 */
#ifndef VEIL_RELAY_HARNESS_H
#define VEIL_RELAY_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "veil_wire.h"

/* ---- the relay process ---- */

typedef struct th_relay {
    pid_t pid;
    int port;
    char dir[256];  /* temporary directory, removed by th_relay_cleanup */
    char db[300];
    char log[300];
    char *extra[32];
    int nextra;
} th_relay;

/** Paths given on the command line of the test executable: argv[1] veil-relay, argv[2] web dir. */
void th_init(int argc, char **argv);

/**
 * Starts a relay with `--port 0 --db <tmp>/relay.db` and the given extra flags
 * (NULL-terminated list), waits until it listens (at most 15 s).
 */
void th_relay_start(th_relay *r, const char *const *flags);
/**
 * cmocka teardown: kills (SIGKILL) every relay the test started and did not
 * stop, so a failing test leaves no process behind; its directory and log are
 * kept and named on stderr. Use TH_TEST(fn) in the test list.
 */
int th_teardown(void **state);
#define TH_TEST(fn) cmocka_unit_test_teardown(fn, th_teardown)

/** Restarts on the same directory (same store), same flags, a new port. */
void th_relay_restart(th_relay *r);
/** Sends `sig` and waits for the process (at most 10 s); returns its wait status. */
int th_relay_signal(th_relay *r, int sig);
/** Stops the relay (SIGTERM; must exit 0) and removes the directory. */
void th_relay_stop(th_relay *r);
/** Removes the relay's directory (the relay must be stopped). */
void th_relay_remove(th_relay *r);
/** The veil-relay binary under test. */
const char *th_relay_binary(void);
/** Reads a Prometheus metric line value ("veil_connections" or a labelled name); -1 if absent. */
long long th_metric(const th_relay *r, const char *name);

/* ---- WebSocket client on lws ---- */

typedef struct tc tc;

/** Connects with subprotocol veil.v1 and waits for HELLO (at most 5 s); the HELLO nonce is kept. */
tc *tc_connect(const th_relay *r);
/** Connects without waiting for anything; NULL only if lws refuses at once. */
tc *tc_connect_nowait(const th_relay *r);
void tc_free(tc *c);

/** Queues one binary message (or a text one). */
void tc_send_raw(tc *c, const uint8_t *p, size_t n, bool text);
/** Encodes and queues a frame. */
void tc_send(tc *c, const veil_frame *f);

/**
 * Next received frame within timeout_ms. Returns 1 with *f decoded (it points
 * into a buffer valid until the next tc_recv on c), 0 on timeout, -1 when the
 * connection is closed (tc_close_code tells the status).
 */
int tc_recv(tc *c, veil_frame *f, int timeout_ms);
/** Next frame, which must be of `type` (else the test fails, naming what came). */
void tc_expect(tc *c, uint32_t type, veil_frame *f);
/** Next frame must be ERROR with `code` (and request id `id`). */
void tc_expect_error(tc *c, uint32_t id, int code);
/** Waits for the close (at most timeout_ms); returns the close status (0 if none was sent), or -1 on timeout. */
int tc_wait_closed(tc *c, int timeout_ms);
bool tc_is_closed(const tc *c);
/** Stops (0) or resumes (1) reading from the socket. */
void tc_rx(tc *c, int enable);
/** Services every connection for ms milliseconds. */
void tc_service(int ms);
/** Asserts that nothing arrives on c within ms. */
void tc_expect_silence(tc *c, int ms);

/* ---- identities, rooms, frames ---- */

typedef struct tc_id {
    uint8_t pk[32], sk[64];
} tc_id;

typedef struct tc_room {
    uint8_t id[32], apk[32], ask[64];
} tc_room;

void tc_id_from_seed(tc_id *id, uint8_t seed_byte);
void tc_room_from_secret(tc_room *room, uint8_t secret_byte);
/** The nonce of c's HELLO. */
const uint8_t *tc_nonce(const tc *c);

/** AUTH as id; expects AUTH_OK. */
void tc_auth(tc *c, const tc_id *id);
/** JOIN with a valid proof; since < 0 means no `since`. Expects JOINED, returns it in *out if non-NULL (valid until next recv). */
void tc_join(tc *c, const tc_room *room, const uint8_t *tag, size_t tag_len, int64_t since, veil_frame *out);
/** The one-octet presence tags of tc_two_members' first and second member. */
#define TC_TAG_A 0xa1
#define TC_TAG_B 0xb2
/**
 * Two members of one room: connects, authenticates as the identities of
 * seed_a and seed_b, and joins them to the room of `secret` with the tags
 * TC_TAG_A and TC_TAG_B (a first); checks the PRESENCE of b that a gets.
 */
void tc_two_members(const th_relay *r, uint8_t seed_a, uint8_t seed_b, uint8_t secret, tc **a, tc **b, tc_room *room);
/** Sends a PUBLISH (id = request id); does not wait. */
void tc_publish(tc *c, uint32_t id, const tc_room *room, const uint8_t cmid[16], const uint8_t *env, size_t len);
/** A fresh request id per connection. */
uint32_t tc_next_id(tc *c);

/** A prekey bundle base (SPEC.md 5.2 octets 0..228) for id with signed prekey spk_id. */
void tc_base(uint8_t base[229], const tc_id *id, uint32_t spk_id);

/* ---- raw sockets ---- */

/** TCP connection to the relay (blocking, 5 s timeouts); -1 on failure. `rcvbuf` > 0 sets SO_RCVBUF first. */
int th_tcp(const th_relay *r, int rcvbuf);
/** WebSocket handshake on a raw socket; `proto` NULL for none. Returns the HTTP status (101 on success). */
int th_ws_handshake(int fd, const char *proto);
/** Sends one masked client frame with opcode and payload; `declared` > 0 overrides the length field. */
int th_ws_send(int fd, uint8_t opcode, const uint8_t *p, size_t n, uint64_t declared);
/**
 * Reads one server frame (blocking up to timeout_ms): returns its opcode and
 * fills payload (up to cap); -1 on EOF/timeout/error. For a close frame
 * *status receives the status code.
 */
int th_ws_recv(int fd, uint8_t *payload, size_t cap, size_t *len, int *status, int timeout_ms);
/** Waits until the peer closes the TCP connection (EOF or reset) within timeout_ms; returns 1 if it did. */
int th_wait_eof(int fd, int timeout_ms);
/** Plain HTTP GET; returns the status and copies the body. */
int th_http_get(const th_relay *r, const char *path, char *body, size_t cap);

/** Monotonic milliseconds. */
int64_t th_now_ms(void);

#endif
